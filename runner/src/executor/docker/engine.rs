//! The Docker Engine API through bollard: the only module that knows
//! bollard. Podman's Docker-compatible API service is driven through it
//! too.
//!
//! A build container lives through fixed steps, in this order:
//! [`Engine::ensure_image`], [`Engine::create_network`] (one bridge network
//! per job, so concurrent builds cannot reach each other),
//! [`Engine::create_volume`] (the job's scratch cache), [`Engine::create`],
//! [`Engine::upload_tar_file`] (the source, as a tar through the engine's
//! archive API, so a remote engine works too), [`Engine::run`] (attach,
//! start, stream output, wait; stop with a grace period on cancel),
//! [`Engine::download`] (the publish directory, again as a tar), and the
//! removals, which the caller runs whatever happened before.
//! [`Engine::run_helper`] runs a short script of the runner's own (the cache
//! copies) in a container as bounded as a build's.
//!
//! Every object carries [`labels`] naming the job and the runner instance
//! that made it, so [`Engine::remove_left_by`] can clear what a crashed
//! runner left behind, and nothing else.
//! [`container_config`] translates our settings into Docker's types and is a
//! pure function with its own tests.

use crate::build_log::LogItem;
use crate::executor::image::{PullPolicy, is_latest};
use crate::executor::source::append_owned_dir;
use crate::executor::{BUILD_USER, Downloaded, ExecutorError, Exit, ImageReady, Limits, Swept, labels};
use crate::log_format::Stream;
use bollard::Docker;
use bollard::container::{
    AttachContainerOptions, Config, CreateContainerOptions, DownloadFromContainerOptions,
    KillContainerOptions, ListContainersOptions, LogOutput, RemoveContainerOptions, StopContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use bollard::errors::Error as BollardError;
use bollard::image::CreateImageOptions;
use bollard::models::{
    HostConfig, HostConfigLogConfig, Mount as DockerMount, MountTypeEnum, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::network::{CreateNetworkOptions, ListNetworksOptions};
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions, RemoveVolumeOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The network a container joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// A network of its own (made with [`Engine::create_network`]).
    Named(String),
    /// Docker's default bridge.
    DefaultBridge,
    /// No network at all.
    Off,
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Unique on the engine.
    pub name: String,
    pub image: String,
    /// Run with `sh -c`.
    pub command: String,
    /// Absolute path inside the container the command runs in.
    pub working_dir: String,
    pub env: Vec<(String, String)>,
    pub labels: HashMap<String, String>,
    pub limits: Limits,
    pub network: Network,
    pub mounts: Vec<VolumeMount>,
}

/// Docker's container settings for a spec: unprivileged, every capability
/// dropped, no privilege escalation, an init process to reap zombies and
/// pass signals on, bounded memory (swap included), CPU and process count,
/// no restarts, no log kept by the engine.
pub fn container_config(spec: &ContainerSpec) -> Config<String> {
    let env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let network_mode = match &spec.network {
        Network::Named(name) => name.clone(),
        Network::DefaultBridge => "bridge".to_owned(),
        Network::Off => "none".to_owned(),
    };
    let mounts = spec
        .mounts
        .iter()
        .map(|m| DockerMount {
            target: Some(m.target.clone()),
            source: Some(m.volume.clone()),
            typ: Some(MountTypeEnum::VOLUME),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    Config {
        image: Some(spec.image.clone()),
        cmd: Some(vec!["sh".into(), "-c".into(), spec.command.clone()]),
        working_dir: Some(spec.working_dir.clone()),
        env: Some(env),
        user: Some(format!("{BUILD_USER}:{BUILD_USER}")),
        labels: Some(spec.labels.clone()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(HostConfig {
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            init: Some(true),
            memory: Some(spec.limits.memory_bytes),
            memory_swap: Some(spec.limits.memory_bytes),
            nano_cpus: Some(spec.limits.nano_cpus),
            pids_limit: Some(spec.limits.pids),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            network_mode: Some(network_mode),
            mounts: Some(mounts),
            // Output is streamed through attach; the engine keeps no copy,
            // so a build that prints without end fills no disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// This module's errors are the executor's; bollard's become
/// [`ExecutorError::Engine`].
pub type DockerError = ExecutorError;

impl From<BollardError> for ExecutorError {
    fn from(e: BollardError) -> Self {
        ExecutorError::Engine(format!("Docker engine: {e}"))
    }
}

/// How a helper container ended, with the tail of its output.
#[derive(Debug, Clone)]
pub struct HelperRun {
    pub exit: Exit,
    pub output: String,
}

/// What [`Engine::host`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineHost {
    pub rootless: bool,
    pub cgroup_v2: bool,
}

#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects as the `docker` CLI would (`DOCKER_HOST` or the local
    /// socket) and settles on an API version the engine speaks.
    pub async fn connect() -> Result<Self, String> {
        let hint = "is the Docker engine running? Start it (`systemctl start docker` or `dockerd &`) \
                    or point DOCKER_HOST at one";
        let docker =
            Docker::connect_with_defaults().map_err(|e| format!("connecting to Docker: {e}; {hint}"))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| format!("reaching the Docker engine: {e}; {hint}"))?;
        docker
            .ping()
            .await
            .map_err(|e| format!("pinging the Docker engine: {e}; {hint}"))?;
        Ok(Engine { docker })
    }

    /// Connects to an engine speaking the Docker Engine API on the unix
    /// socket `socket` (Podman's API service); `hint` says how to start it.
    pub async fn connect_unix(socket: &Path, hint: &str) -> Result<Self, String> {
        let shown = socket.display();
        let docker = Docker::connect_with_unix(&socket.to_string_lossy(), 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| format!("connecting to {shown}: {e}; {hint}"))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| format!("reaching the engine on {shown}: {e}; {hint}"))?;
        docker
            .ping()
            .await
            .map_err(|e| format!("pinging the engine on {shown}: {e}; {hint}"))?;
        Ok(Engine { docker })
    }

    /// What the engine says of its host: whether it runs without root and
    /// whether its cgroups are version 2.
    pub async fn host(&self) -> Result<EngineHost, DockerError> {
        let info = self.docker.info().await?;
        Ok(EngineHost {
            rootless: info
                .security_options
                .unwrap_or_default()
                .iter()
                .any(|option| option.split(',').any(|part| part == "name=rootless")),
            cgroup_v2: info.cgroup_version.is_some_and(|v| v.to_string() == "2"),
        })
    }

    /// Makes sure `image` is present, pulling it as `policy` says.
    pub async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageReady, DockerError> {
        let present = self.docker.inspect_image(image).await.is_ok();
        let pull = match policy {
            PullPolicy::Always => true,
            PullPolicy::Never => false,
            PullPolicy::IfNotPresent => !present || is_latest(image),
        };
        if !pull {
            return if present {
                Ok(ImageReady::Present)
            } else {
                Err(DockerError::ImageUnavailable {
                    image: image.to_owned(),
                    detail: "the runner's pull policy is `never`".to_owned(),
                })
            };
        }
        match self.pull(image).await {
            Ok(()) => Ok(ImageReady::Pulled),
            Err(detail) if present => Ok(ImageReady::Stale { detail }),
            Err(detail) => Err(DockerError::ImageUnavailable {
                image: image.to_owned(),
                detail,
            }),
        }
    }

    async fn pull(&self, image: &str) -> Result<(), String> {
        let mut pull = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: image,
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(progress) = pull.next().await {
            progress.map_err(|e| e.to_string())?;
        }
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Makes a bridge network of the job's own. `bridge` names its host
    /// interface, which the egress rules ([`super::egress`]) match; `None`
    /// leaves the name to Docker.
    pub async fn create_network(
        &self,
        name: &str,
        bridge: Option<&str>,
        labels: &HashMap<String, String>,
    ) -> Result<(), DockerError> {
        let options = bridge
            .map(|bridge| HashMap::from([("com.docker.network.bridge.name".to_owned(), bridge.to_owned())]))
            .unwrap_or_default();
        self.docker
            .create_network(CreateNetworkOptions {
                name: name.to_owned(),
                driver: "bridge".to_owned(),
                labels: labels.clone(),
                options,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    pub async fn remove_network(&self, name: &str) {
        if let Err(e) = self.docker.remove_network(name).await
            && !is_not_found(&e)
        {
            tracing::warn!(network = name, error = %e, "removing a job network failed");
        }
    }

    /// Makes a named volume; one that exists already is left as it is.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), DockerError> {
        self.docker
            .create_volume(CreateVolumeOptions {
                name: name.to_owned(),
                driver: "local".to_owned(),
                labels: labels.clone(),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    pub async fn volume_exists(&self, name: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a volume; false when it is in use (or could not be removed).
    pub async fn remove_volume(&self, name: &str) -> bool {
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Ok(()) => true,
            Err(e) if is_not_found(&e) => true,
            Err(e) => {
                tracing::debug!(volume = name, error = %e, "a volume was not removed");
                false
            }
        }
    }

    /// Volumes carrying every `label=value` pair given: name and labels.
    pub async fn volumes_labelled(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<(String, HashMap<String, String>)>, DockerError> {
        let filters = label_filters(filters);
        let answer = self
            .docker
            .list_volumes(Some(ListVolumesOptions { filters }))
            .await?;
        Ok(answer
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels))
            .collect())
    }

    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: spec.name.as_str(),
                    platform: None,
                }),
                container_config(spec),
            )
            .await?;
        Ok(created.id)
    }

    /// Unpacks a tar archive at `/` in the container.
    pub async fn upload(&self, container: &str, tar: Bytes) -> Result<(), DockerError> {
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: "/",
                    ..Default::default()
                }),
                tar,
            )
            .await?;
        Ok(())
    }

    /// Streams the tar archive in `file` into the container, unpacked at
    /// `/`; the archive is never held in memory whole.
    pub async fn upload_tar_file(&self, container: &str, file: &Path) -> Result<(), DockerError> {
        let file = tokio::fs::File::open(file).await?;
        let body = tokio_util::io::ReaderStream::new(file)
            .take_while(|chunk| std::future::ready(chunk.is_ok()))
            .map(|chunk| chunk.unwrap_or_default());
        self.docker
            .upload_to_container_streaming(
                container,
                Some(UploadToContainerOptions {
                    path: "/",
                    ..Default::default()
                }),
                body,
            )
            .await?;
        Ok(())
    }

    /// Attaches (before starting, so not a byte of early output is missed)
    /// and starts the container.
    async fn attach_and_start(
        &self,
        container: &str,
    ) -> Result<bollard::container::AttachContainerResults, DockerError> {
        let attached = self
            .docker
            .attach_container(
                container,
                Some(AttachContainerOptions::<String> {
                    stdout: Some(true),
                    stderr: Some(true),
                    stream: Some(true),
                    logs: Some(false),
                    ..Default::default()
                }),
            )
            .await?;
        self.docker.start_container::<String>(container, None).await?;
        Ok(attached)
    }

    /// Starts the container, sends each chunk of output to `output` as it
    /// comes, and waits for the end. On `stop` the container is stopped:
    /// SIGTERM (passed on by its init process), then SIGKILL after `grace`.
    /// Also returns how long the engine took to start the container.
    pub async fn run(
        &self,
        container: &str,
        output: &mpsc::Sender<LogItem>,
        stop: &CancellationToken,
        grace: Duration,
    ) -> Result<(Exit, Duration), DockerError> {
        let started = std::time::Instant::now();
        let mut attached = tokio::select! {
            attached = self.attach_and_start(container) => attached?,
            () = stop.cancelled() => return Ok((Exit::Stopped, started.elapsed())),
        };
        let start = started.elapsed();
        loop {
            tokio::select! {
                chunk = attached.output.next() => match chunk {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                        // Waiting here when the log falls behind keeps memory bounded.
                        let _ = output.send(LogItem::now(Stream::Out, message)).await;
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        let _ = output.send(LogItem::now(Stream::Err, message)).await;
                    }
                    Some(Ok(LogOutput::StdIn { .. })) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => break,
                },
                () = stop.cancelled() => {
                    self.stop(container, grace).await;
                    return Ok((Exit::Stopped, start));
                }
            }
        }
        let exit = tokio::select! {
            exit = self.wait(container) => exit?,
            () = stop.cancelled() => {
                self.stop(container, grace).await;
                Exit::Stopped
            }
        };
        Ok((exit, start))
    }

    async fn wait(&self, container: &str) -> Result<Exit, DockerError> {
        let mut wait = self
            .docker
            .wait_container(container, None::<WaitContainerOptions<String>>);
        let code = match wait.next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(e.into()),
            None => -1,
        };
        let oom_killed = self
            .docker
            .inspect_container(container, None)
            .await?
            .state
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        Ok(Exit::Code { code, oom_killed })
    }

    /// SIGTERM, then SIGKILL after `grace`; a kill follows if the engine's
    /// stop itself failed.
    async fn stop(&self, container: &str, grace: Duration) {
        let t = grace.as_secs().try_into().unwrap_or(i64::MAX);
        let stopped = tokio::time::timeout(
            grace + Duration::from_secs(10),
            self.docker
                .stop_container(container, Some(StopContainerOptions { t })),
        )
        .await;
        if !matches!(stopped, Ok(Ok(()))) {
            tracing::warn!(container, "stopping a container failed; killing it");
            let _ = self
                .docker
                .kill_container(container, Some(KillContainerOptions { signal: "SIGKILL" }))
                .await;
        }
    }

    /// Runs a runner's own script to its end in `spec`'s container, then
    /// removes the container. `own_dirs` are mount points to hand to the
    /// build user first (a new volume's root belongs to root). Returns the
    /// exit and the last few KiB of output.
    pub async fn run_helper(
        &self,
        spec: &ContainerSpec,
        own_dirs: &[&str],
        stop: &CancellationToken,
        timeout: Duration,
    ) -> Result<HelperRun, DockerError> {
        let stop = stop.child_token();
        let timer = tokio::spawn({
            let stop = stop.clone();
            async move {
                tokio::time::sleep(timeout).await;
                stop.cancel();
            }
        });
        let id = self.create(spec).await?;
        let result = async {
            if !own_dirs.is_empty() {
                self.upload(&id, Bytes::from(owned_dirs_tar(own_dirs)?)).await?;
            }
            let (tx, mut rx) = mpsc::channel(16);
            let collect = tokio::spawn(async move {
                let mut tail = Vec::new();
                while let Some(item) = rx.recv().await {
                    let LogItem { bytes, .. } = item;
                    tail.extend_from_slice(&bytes);
                    if tail.len() > 8192 {
                        tail.drain(..tail.len() - 4096);
                    }
                }
                String::from_utf8_lossy(&tail).into_owned()
            });
            let (exit, _) = self.run(&id, &tx, &stop, Duration::from_secs(2)).await?;
            drop(tx);
            let output = collect.await.unwrap_or_default();
            Ok::<_, DockerError>(HelperRun { exit, output })
        }
        .await;
        timer.abort();
        self.remove(&id).await;
        result
    }

    /// Whether directory `path` of the container holds anything, read from
    /// the head of its archive without copying it.
    pub async fn dir_has_entries(&self, container: &str, path: &str) -> Result<bool, DockerError> {
        let mut stream = self
            .docker
            .download_from_container(container, Some(DownloadFromContainerOptions { path }));
        let mut head = Vec::new();
        while head.len() < 16 * 1024 {
            match stream.next().await {
                Some(Ok(bytes)) => head.extend_from_slice(&bytes),
                Some(Err(e)) if is_not_found(&e) => return Ok(false),
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        // The first entry is the directory itself; a second one is content.
        let mut archive = tar::Archive::new(&head[..]);
        let entries = archive.entries()?;
        Ok(entries.take(2).filter(Result::is_ok).count() >= 2)
    }

    /// Copies `path` out of the container into `dest` (which must exist),
    /// at most `limit` bytes of archive, unpacked with
    /// [`crate::inside::unpack`] (the archive is the build's: it may hold
    /// symlinks, devices and `..` entries). Returns the folder it unpacked
    /// into, the name of the entry asked for (its one top-level entry, not
    /// yet checked: it may be a symlink), and what was left out.
    pub async fn download(
        &self,
        container: &str,
        path: &str,
        dest: &Path,
        limit: u64,
    ) -> Result<Downloaded, DockerError> {
        let mut stream = self
            .docker
            .download_from_container(container, Some(DownloadFromContainerOptions { path }));
        let tar_path = dest.join("publish.tar");
        let mut file = tokio::fs::File::create(&tar_path).await?;
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    received = received.saturating_add(bytes.len() as u64);
                    // Counted as it comes, so an endless output never fills the runner's disk.
                    if received > limit {
                        drop(file);
                        let _ = tokio::fs::remove_file(&tar_path).await;
                        return Err(DockerError::OutputTooLarge {
                            path: path.to_owned(),
                            limit: crate::inside::human_size(limit),
                        });
                    }
                    file.write_all(&bytes).await?
                }
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                    return Err(DockerError::PublishDirMissing {
                        path: path.to_owned(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        file.flush().await?;
        drop(file);
        let unpack_dir = dest.join("publish");
        let (unpack_into, asked) = (unpack_dir.clone(), path.to_owned());
        let unpacked = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&unpack_into)?;
            let archive = std::io::BufReader::new(std::fs::File::open(&tar_path)?);
            let unpacked = crate::inside::unpack(archive, &unpack_into, limit);
            let _ = std::fs::remove_file(&tar_path);
            unpacked.map_err(|e| match e {
                crate::inside::UnpackError::TooLarge { limit } => {
                    DockerError::OutputTooLarge { path: asked, limit }
                }
                crate::inside::UnpackError::Io(e) => DockerError::Io(e),
            })
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        // The archive holds one top-level entry: the directory asked for.
        let top = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned();
        Ok(Downloaded {
            folder: unpack_dir,
            top,
            skipped: unpacked.skipped,
        })
    }

    /// Removes a container and its anonymous volumes, forcefully.
    pub async fn remove(&self, container: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if let Err(e) = self.docker.remove_container(container, Some(options)).await
            && !is_not_found(&e)
        {
            tracing::warn!(container, error = %e, "removing a container failed");
        }
    }

    /// Removes every container, volume and network labelled with runner
    /// instance `instance`: what a runner that died left behind. Objects of
    /// other runners are never touched.
    pub async fn remove_left_by(&self, instance: &str) -> Result<Swept, DockerError> {
        let filter = [(labels::INSTANCE, instance)];
        let mut removed = Swept::default();
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: label_filters(&filter),
                ..Default::default()
            }))
            .await?;
        for container in containers {
            if let Some(id) = container.id {
                self.remove(&id).await;
                removed.containers += 1;
            }
        }
        for (name, _) in self.volumes_labelled(&filter).await? {
            if self.remove_volume(&name).await {
                removed.volumes += 1;
            }
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: label_filters(&filter),
            }))
            .await?;
        for network in networks {
            if let Some(name) = network.name {
                self.remove_network(&name).await;
                removed.networks += 1;
            }
        }
        Ok(removed)
    }
}

fn is_not_found(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError { status_code: 404, .. }
    )
}

fn label_filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

/// A tar of empty directories owned by the build user; unpacked over a
/// volume's mount point, it hands the volume's root to the build user.
fn owned_dirs_tar(dirs: &[&str]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in dirs {
        append_owned_dir(&mut builder, dir.trim_start_matches('/'))?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "jamstack-job-7-0123456789abcdef".into(),
            image: "jamstack/busybox:1".into(),
            command: "make site".into(),
            working_dir: "/workspace/docs".into(),
            env: vec![("CONTEXT".into(), "production".into())],
            labels: HashMap::from([(labels::JOB.to_owned(), "7".to_owned())]),
            limits: Limits::default(),
            network: Network::Named("jamstack-job-7-0123456789abcdef".into()),
            mounts: vec![VolumeMount {
                volume: "scratch".into(),
                target: "/cache".into(),
                read_only: false,
            }],
        }
    }

    #[test]
    fn build_containers_are_unprivileged_and_bounded() {
        let config = container_config(&spec());
        let host = config.host_config.unwrap();
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.cap_add, None, "no capability is added back");
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_owned()]));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.pids_limit, Some(512));
        assert_eq!(host.memory, host.memory_swap, "no swap beyond the memory limit");
        assert_eq!(host.nano_cpus, Some(2_000_000_000));
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(host.log_config.unwrap().typ.as_deref(), Some("none"));
        assert_eq!(host.binds, None, "nothing of the host is mounted");
        assert_eq!(config.user.as_deref(), Some("1000:1000"));
    }

    #[test]
    fn the_command_runs_through_sh_in_the_base_directory_with_its_labels_network_and_cache() {
        let config = container_config(&spec());
        assert_eq!(config.cmd.unwrap(), ["sh", "-c", "make site"]);
        assert_eq!(config.working_dir.as_deref(), Some("/workspace/docs"));
        assert_eq!(config.env.unwrap(), ["CONTEXT=production"]);
        assert_eq!(config.labels.unwrap()[labels::JOB], "7");
        let host = config.host_config.unwrap();
        assert_eq!(
            host.network_mode.as_deref(),
            Some("jamstack-job-7-0123456789abcdef")
        );
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.typ, Some(MountTypeEnum::VOLUME));
        assert_eq!(
            (mount.source.as_deref(), mount.target.as_deref()),
            (Some("scratch"), Some("/cache"))
        );
        let mut off = spec();
        off.network = Network::Off;
        assert_eq!(
            container_config(&off)
                .host_config
                .unwrap()
                .network_mode
                .as_deref(),
            Some("none")
        );
    }
}
