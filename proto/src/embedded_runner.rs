//! The contract between `jamstack-controller up` and the runner it starts
//! as a child process, `jamstack-runner embedded-runner`.
//!
//! The child's settings, its token among them, travel as one JSON line on
//! its standard input: never on the command line, where `ps` shows them to
//! every user, nor in a file left behind. The parent then holds the pipe
//! open and says nothing more: the child stops (handing its lease back)
//! when the pipe closes, which the kernel does for any death of the parent,
//! `kill -9` included.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The hidden subcommand of `jamstack-runner` that `up` starts.
pub const SUBCOMMAND: &str = "embedded-runner";

/// What the runner of `up` needs, sent as one JSON line on its standard
/// input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddedRunnerSettings {
    pub controller_url: String,
    pub token: String,
    pub name: String,
    pub work_dir: PathBuf,
    pub publish_limit_bytes: u64,
    pub default_image: String,
    /// The operator's `--allow-private-networks`: builds may reach the
    /// host and private networks.
    pub allow_private_networks: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_of_the_runner_of_up_survive_their_json_line() {
        let settings = EmbeddedRunnerSettings {
            controller_url: "http://127.0.0.1:8080".to_owned(),
            token: "jsr_secret".to_owned(),
            name: "embedded".to_owned(),
            work_dir: PathBuf::from("/var/lib/jamstack/runner"),
            publish_limit_bytes: 10 << 30,
            default_image: "jamstack/busybox:1".to_owned(),
            allow_private_networks: true,
        };
        let line = serde_json::to_string(&settings).unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        let back: EmbeddedRunnerSettings = serde_json::from_str(&line).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), line);
    }
}
