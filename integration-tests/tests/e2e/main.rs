//! End-to-end tests: one binary, real parts. Each test starts its own
//! controller on a random port with a fresh SQLite database, a runner in the
//! same process talking to it over real HTTP, real git repositories in
//! temporary folders and real Docker containers.

mod helpers;
mod processes;

mod acme;
mod api;
mod atomic_deploys;
mod build_cache;
mod build_hooks;
mod build_limits;
mod build_network;
mod chat_and_email;
mod cli;
mod conditions;
mod dashboard;
mod demo_image;
mod domains;
mod executors;
mod failures;
mod faults;
mod github;
mod github_signin;
mod hostile_builds;
mod hostile_deploys;
mod invitations;
mod live_logs;
mod monorepo;
mod oidc;
mod ops;
mod people;
mod protection;
mod proxy;
mod push_to_deploy;
mod replays;
mod rolling_upgrades;
mod rules_parity;
mod runner_process;
mod schedules;
mod secrets;
mod serving;
mod site_settings;
mod storage;
mod teams;
mod tls;
mod trust;
mod untrusted_clients;
mod webhooks;
