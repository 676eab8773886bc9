//! The controller: webhooks, REST API, job queue, deploy store and edge.
//!
//! [`startup::Application`] binds a listener and serves [`router::router`].
//! A webhook ([`api::webhooks`]) or an API call queues a build
//! ([`builds::queue_build`]); a runner leases its job and reports back
//! through [`runner_api`]; [`deploys`] keeps the content-addressed files and
//! [`db`] the pointer that says which deploy each site serves; [`edge`]
//! serves it; [`dashboard`] is the web interface over all of it. Only [`db`]
//! holds SQL and only [`github`] knows GitHub's types.

pub mod acme;
pub mod api;
pub mod audit;
pub mod auth;
pub mod build_hooks;
pub mod builds;
pub mod cli;
pub mod config;
pub mod config_reference;
pub mod dashboard;
pub mod db;
pub mod demo;
pub mod deploys;
pub mod domains;
pub mod edge;
pub mod embedded_runner;
pub mod error;
pub mod events;
pub mod github;
pub mod group_commit;
pub mod http_server;
pub mod lease_writes;
pub mod leases;
pub mod metrics;
pub mod notifications;
pub mod push_batches;
pub mod router;
pub mod runner_api;
pub mod schedules;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod supervisor;
pub mod tls;
pub mod triggers;
pub mod urls;
pub mod waiting;

pub use config::Config;
pub use startup::Application;
