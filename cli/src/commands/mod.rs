//! One module per command group.

pub mod account;
pub mod build_hooks;
pub mod builds;
pub mod certificates;
pub mod deploy_dir;
pub mod deploys;
pub mod domains;
pub mod login;
pub mod notifications;
pub mod schedules;
pub mod sites;
pub mod teams;
