//! Docker: the only module that knows bollard.
//!
//! A build container lives through fixed steps, in this order:
//! [`Engine::ensure_image`], [`Engine::create`], [`Engine::upload`] (the
//! source, as a tar through the engine's archive API, so a remote engine
//! works too), [`Engine::run`] (attach, start, stream output, wait),
//! [`Engine::download`] (the publish directory, again as a tar), and
//! [`Engine::remove`], which the caller runs whatever happened before.
//! [`container_config`] translates our settings into Docker's types and is a
//! pure function with its own tests.

use bollard::Docker;
use bollard::container::{
    AttachContainerOptions, Config, CreateContainerOptions, DownloadFromContainerOptions, LogOutput,
    RemoveContainerOptions, StopContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bollard::errors::Error as BollardError;
use bollard::image::CreateImageOptions;
use bollard::models::{HostConfig, HostConfigLogConfig};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// The label every container of ours carries, with the job id as value.
pub const JOB_LABEL: &str = "org.jamstack.job";
/// The label naming the runner that made a container.
pub const RUNNER_LABEL: &str = "org.jamstack.runner";

/// Resource bounds for one build container.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 2 * 1024 * 1024 * 1024,
            nano_cpus: 2_000_000_000,
            pids: 512,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub image: String,
    pub command: String,
    /// Absolute path inside the container the command runs in.
    pub working_dir: String,
    pub env: Vec<(String, String)>,
    pub job_id: i64,
    /// The lease this container works under; it makes the name unique even
    /// when several controllers hand out the same job id.
    pub lease_id: String,
    /// The runner's name, recorded on the container.
    pub runner: String,
    pub limits: Limits,
}

/// Where a build's source lives inside its container.
pub const WORKSPACE: &str = "/workspace";

/// The uid and gid builds run as: not root, the `builder` user of our images.
pub const BUILD_USER: u32 = 1000;

/// Docker's container settings for a spec: unprivileged, every capability
/// dropped, no privilege escalation, an init process to reap zombies,
/// bounded memory (swap included), CPU and process count, no restarts.
pub fn container_config(spec: &ContainerSpec) -> Config<String> {
    let env = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Config {
        image: Some(spec.image.clone()),
        cmd: Some(vec!["sh".into(), "-c".into(), spec.command.clone()]),
        working_dir: Some(spec.working_dir.clone()),
        env: Some(env),
        user: Some(format!("{BUILD_USER}:{BUILD_USER}")),
        labels: Some(HashMap::from([
            (JOB_LABEL.to_owned(), spec.job_id.to_string()),
            (RUNNER_LABEL.to_owned(), spec.runner.clone()),
        ])),
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
            // Output is streamed through attach; the engine keeps no copy.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "image `{image}` is not on this runner's Docker engine and could not be pulled ({detail}). \
         Build it on the runner's machine (scripts/build-images.sh makes jamstack/busybox:1 and jamstack/hugo:1), \
         or set `image` in jamstack.toml to an image the runner has"
    )]
    ImageUnavailable { image: String, detail: String },
    #[error(
        "`{path}` does not exist in the build container after the build; check `publish` in jamstack.toml"
    )]
    PublishDirMissing { path: String },
    #[error("Docker engine: {0}")]
    Engine(#[from] BollardError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How a build container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code { code: i64, oom_killed: bool },
    Cancelled,
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

    /// Makes sure `image` is present: used as is when the engine has it,
    /// pulled otherwise.
    pub async fn ensure_image(&self, image: &str) -> Result<(), DockerError> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let mut pull = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: image,
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(progress) = pull.next().await {
            if let Err(e) = progress {
                return Err(DockerError::ImageUnavailable {
                    image: image.to_owned(),
                    detail: e.to_string(),
                });
            }
        }
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|e| DockerError::ImageUnavailable {
                image: image.to_owned(),
                detail: e.to_string(),
            })
    }

    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let lease: String = spec.lease_id.chars().take(16).collect();
        let name = format!("jamstack-job-{}-{lease}", spec.job_id);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: name.as_str(),
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

    /// Starts the container, sends each chunk of output to `output` as it
    /// comes, and waits for the end. On `cancel` the container is stopped
    /// (a grace period, then killed). Also returns how long the engine took
    /// to start the container.
    pub async fn run(
        &self,
        container: &str,
        output: &tokio::sync::mpsc::Sender<Bytes>,
        cancel: &CancellationToken,
    ) -> Result<(Exit, std::time::Duration), DockerError> {
        let started = std::time::Instant::now();
        // Attach before starting, so not a byte of early output is missed.
        let mut attached = self
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
        let start = started.elapsed();
        loop {
            tokio::select! {
                chunk = attached.output.next() => match chunk {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message })) => {
                        // Waiting here when the log falls behind keeps memory bounded.
                        let _ = output.send(message).await;
                    }
                    Some(Ok(LogOutput::StdIn { .. })) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => break,
                },
                () = cancel.cancelled() => {
                    self.stop(container).await;
                    return Ok((Exit::Cancelled, start));
                }
            }
        }
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
        Ok((Exit::Code { code, oom_killed }, start))
    }

    async fn stop(&self, container: &str) {
        if let Err(e) = self
            .docker
            .stop_container(container, Some(StopContainerOptions { t: 5 }))
            .await
        {
            tracing::warn!(container, error = %e, "stopping a build container failed");
        }
    }

    /// Copies `path` out of the container into `dest` (which must exist);
    /// returns the directory it landed in.
    pub async fn download(
        &self,
        container: &str,
        path: &str,
        dest: &Path,
    ) -> Result<std::path::PathBuf, DockerError> {
        let mut stream = self
            .docker
            .download_from_container(container, Some(DownloadFromContainerOptions { path }));
        let tar_path = dest.join("publish.tar");
        let mut file = tokio::fs::File::create(&tar_path).await?;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => file.write_all(&bytes).await?,
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
        let unpack_into = unpack_dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&unpack_into)?;
            // `unpack` refuses entries that would land outside the folder.
            tar::Archive::new(std::fs::File::open(&tar_path)?).unpack(&unpack_into)?;
            std::fs::remove_file(&tar_path)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        // The archive holds one top-level entry: the directory asked for.
        let top = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        Ok(unpack_dir.join(top))
    }

    /// Removes a container and its anonymous volumes, forcefully.
    pub async fn remove(&self, container: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if let Err(e) = self.docker.remove_container(container, Some(options)).await {
            tracing::warn!(container, error = %e, "removing a build container failed");
        }
    }
}

/// A tar archive of `dir` (without `.git`) under `workspace/`, every entry
/// owned by the build user, ready for [`Engine::upload`].
pub fn workspace_tar(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_uid(BUILD_USER.into());
    header.set_gid(BUILD_USER.into());
    header.set_size(0);
    builder.append_data(&mut header, "workspace", std::io::empty())?;
    for entry in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry.path().strip_prefix(dir).map_err(std::io::Error::other)?;
        if relative
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() == ".git")
        {
            continue;
        }
        let metadata = entry.path().symlink_metadata()?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata(&metadata);
        header.set_uid(BUILD_USER.into());
        header.set_gid(BUILD_USER.into());
        let name = Path::new("workspace").join(relative);
        if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            builder.append_link(&mut header, &name, &target)?;
        } else if metadata.is_dir() {
            builder.append_data(&mut header, &name, std::io::empty())?;
        } else {
            builder.append_data(&mut header, &name, std::fs::File::open(entry.path())?)?;
        }
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "jamstack/busybox:1".into(),
            command: "make site".into(),
            working_dir: "/workspace/docs".into(),
            env: vec![("CONTEXT".into(), "production".into())],
            job_id: 7,
            lease_id: "0123456789abcdef0123".into(),
            runner: "r1".into(),
            limits: Limits::default(),
        }
    }

    #[test]
    fn build_containers_are_unprivileged_and_bounded() {
        let config = container_config(&spec());
        let host = config.host_config.unwrap();
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_owned()]));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.pids_limit, Some(512));
        assert_eq!(host.memory, host.memory_swap, "no swap beyond the memory limit");
        assert_eq!(config.user.as_deref(), Some("1000:1000"));
    }

    #[test]
    fn the_command_runs_through_sh_in_the_base_directory_with_the_job_label() {
        let config = container_config(&spec());
        assert_eq!(config.cmd.unwrap(), ["sh", "-c", "make site"]);
        assert_eq!(config.working_dir.as_deref(), Some("/workspace/docs"));
        assert_eq!(config.env.unwrap(), ["CONTEXT=production"]);
        assert_eq!(config.labels.unwrap()[JOB_LABEL], "7");
    }

    #[test]
    fn the_workspace_tar_leaves_out_git_and_belongs_to_the_build_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "hello").unwrap();
        let tar = workspace_tar(dir.path()).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.header().uid().unwrap(), 1000);
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        names.sort();
        assert_eq!(names, ["workspace", "workspace/src", "workspace/src/a.txt"]);
    }
}
