//! The Podman executor: Podman's API service, rootless where the host lets
//! it enforce a build's limits, driven through its Docker-compatible API
//! with the Docker executor's workspace. Where Podman differs, this
//! executor differs:
//!
//! - It connects to the service's unix socket (`--podman-socket`), not to
//!   `DOCKER_HOST`.
//! - It refuses a service that would ignore the builds' limits: rootless
//!   Podman on a cgroup v1 host runs containers without memory, CPU or
//!   process limits (it only warns), and a build without limits is not
//!   something this runner runs.
//! - Its networks are netavark's (inside the service user's own network
//!   namespace when rootless), which the iptables rules of
//!   `docker/egress.rs` do not see; so builds with network are refused
//!   unless the runner allows private networks, with a message saying so.
//!   Each job still gets a network of its own, so builds cannot reach each
//!   other.
//! - Podman does not say a container was killed out of memory when the
//!   kernel killed a process other than its first (the init process), so a
//!   step killed by SIGKILL that the runner did not stop counts as out of
//!   memory.
//! - Images are the service user's own: `scripts/start-podman.sh` loads
//!   the build images into its storage (`docker save | podman load`).

use super::docker::engine::Engine;
use super::docker::{DockerExecutor, DockerSettings};
use super::{Executor, JobIds, Swept, Workspace};
use async_trait::async_trait;
use std::path::Path;

/// The default `--podman-socket`, where `scripts/start-podman.sh` starts
/// the service.
pub const DEFAULT_SOCKET: &str = "/run/jamstack-podman/podman.sock";

/// Jobs on Podman's API service.
#[derive(Debug)]
pub struct PodmanExecutor {
    inner: DockerExecutor,
}

impl PodmanExecutor {
    /// Connects to the service on `socket` and checks that it can enforce
    /// the builds' limits.
    pub async fn connect(socket: &Path, settings: DockerSettings) -> Result<Self, String> {
        let hint = "is Podman's API service running? Start it with scripts/start-podman.sh (or \
                    `podman system service --time=0 unix://<socket>` as the user builds run as), \
                    or point --podman-socket at it";
        let engine = Engine::connect_unix(socket, hint).await?;
        let host = engine
            .host()
            .await
            .map_err(|e| format!("asking Podman on {} about its host: {e}", socket.display()))?;
        if host.rootless && !host.cgroup_v2 {
            return Err(format!(
                "the Podman service on {} runs rootless on a cgroup v1 host, where Podman ignores a \
                 container's memory, CPU and process limits; builds need them. Run the host with cgroup v2 \
                 (systemd.unified_cgroup_hierarchy=1) so rootless Podman can enforce them, or run the \
                 service as root",
                socket.display()
            ));
        }
        tracing::info!(
            socket = %socket.display(),
            rootless = host.rootless,
            "connected to Podman"
        );
        let settings = DockerSettings {
            egress_rules: false,
            sigkill_means_out_of_memory: true,
            ..settings
        };
        Ok(PodmanExecutor {
            inner: DockerExecutor::new(engine, settings, "Podman"),
        })
    }
}

#[async_trait]
impl Executor for PodmanExecutor {
    fn engine_name(&self) -> &'static str {
        "Podman"
    }

    fn open(&self, job: JobIds, offline: bool) -> Box<dyn Workspace> {
        self.inner.open(job, offline)
    }

    async fn sweep(&self, instance: &str) -> Result<Swept, String> {
        self.inner.sweep(instance).await
    }

    async fn check_egress(&self) -> Result<(), String> {
        self.inner.check_egress().await
    }

    async fn retire_cache(&self, key: &str, current: u64) -> usize {
        self.inner.retire_cache(key, current).await
    }
}
