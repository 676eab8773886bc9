//! An executor that runs nothing: each test scripts how its step ends and
//! reads back what the job asked of it, so `job.rs`'s orchestration
//! (cancel, timeout, a lost lease, hand-back) is tested in milliseconds,
//! without an engine.

use super::cache::{CacheVolume, Saved};
use super::image::PullPolicy;
use super::{
    Downloaded, Executor, ExecutorError, Exit, ImageReady, JobIds, JobNetwork, StepId, StepSpec, Swept,
    Workspace,
};
use crate::build_log::LogItem;
use crate::log_format::Stream;
use async_trait::async_trait;
use ipnet::Ipv4Net;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How a step ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepScript {
    /// It prints a line and exits with this code.
    Exits(i64),
    /// It prints a line and runs until it is stopped.
    RunsUntilStopped,
}

/// What the job asked of the executor, in order, and a signal for the
/// moment a step starts.
#[derive(Debug, Default)]
pub struct Record {
    calls: Mutex<Vec<String>>,
    /// Notified (once, remembered) when a step starts running.
    pub step_running: Notify,
}

impl Record {
    fn push(&self, call: impl Into<String>) {
        self.calls.lock().unwrap().push(call.into());
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[derive(Debug, Clone)]
pub struct FakeExecutor {
    pub step: StepScript,
    pub record: Arc<Record>,
}

impl FakeExecutor {
    pub fn new(step: StepScript) -> Self {
        FakeExecutor {
            step,
            record: Arc::default(),
        }
    }
}

#[async_trait]
impl Executor for FakeExecutor {
    fn engine_name(&self) -> &'static str {
        "Fake"
    }

    fn open(&self, job: JobIds, offline: bool) -> Box<dyn Workspace> {
        self.record.push(format!("open {} offline={offline}", job.name));
        Box::new(FakeWorkspace {
            step: self.step,
            record: self.record.clone(),
            offline,
            cleaned: Mutex::new(false),
        })
    }

    async fn sweep(&self, instance: &str) -> Result<Swept, String> {
        self.record.push(format!("sweep {instance}"));
        Ok(Swept::default())
    }

    async fn check_egress(&self) -> Result<(), String> {
        Ok(())
    }

    async fn retire_cache(&self, _key: &str, _current: u64) -> usize {
        0
    }
}

#[derive(Debug)]
struct FakeWorkspace {
    step: StepScript,
    record: Arc<Record>,
    offline: bool,
    cleaned: Mutex<bool>,
}

#[async_trait]
impl Workspace for FakeWorkspace {
    async fn ensure_image(&self, image: &str, _policy: PullPolicy) -> Result<ImageReady, ExecutorError> {
        self.record.push(format!("ensure_image {image}"));
        Ok(ImageReady::Present)
    }

    async fn network(&self) -> Result<(JobNetwork, Vec<String>), String> {
        Ok((
            if self.offline {
                JobNetwork::Off
            } else {
                JobNetwork::Own
            },
            Vec::new(),
        ))
    }

    async fn hold_off_private_networks(&self) -> Result<(), String> {
        self.record.push("hold_off_private_networks");
        Ok(())
    }

    async fn allow_private_hosts(&self, nets: &[Ipv4Net]) -> Result<(), String> {
        self.record.push(format!("allow_private_hosts {nets:?}"));
        Ok(())
    }

    async fn prepare_cache(&self, cache: &CacheVolume) -> Result<(), ExecutorError> {
        self.record.push(format!("prepare_cache {}", cache.name));
        Ok(())
    }

    async fn create_step(&self, step: &StepSpec, source_tar: &Path) -> Result<StepId, ExecutorError> {
        assert!(
            source_tar.is_file(),
            "the source is packed before the step is made"
        );
        self.record.push(format!("create_step {}", step.role));
        Ok(StepId(step.role.to_owned()))
    }

    async fn restore_cache(
        &self,
        _cache: &CacheVolume,
        _stop: &CancellationToken,
    ) -> Result<Option<u64>, String> {
        self.record.push("restore_cache");
        Ok(None)
    }

    async fn run_step(
        &self,
        step: &StepId,
        output: &mpsc::Sender<LogItem>,
        stop: &CancellationToken,
        _grace: Duration,
    ) -> Result<(Exit, Duration), ExecutorError> {
        self.record.push(format!("run_step {}", step.0));
        let _ = output
            .send(LogItem::now(
                Stream::Out,
                format!("{} is running\n", step.0).into(),
            ))
            .await;
        self.record.step_running.notify_one();
        match self.step {
            StepScript::Exits(code) => Ok((
                Exit::Code {
                    code,
                    oom_killed: false,
                },
                Duration::ZERO,
            )),
            StepScript::RunsUntilStopped => {
                stop.cancelled().await;
                self.record.push(format!("stopped {}", step.0));
                Ok((Exit::Stopped, Duration::ZERO))
            }
        }
    }

    async fn copy_out(
        &self,
        step: &StepId,
        path: &str,
        _dest: &Path,
        _limit: u64,
    ) -> Result<Downloaded, ExecutorError> {
        self.record.push(format!("copy_out {} {path}", step.0));
        Err(ExecutorError::PublishDirMissing {
            path: path.to_owned(),
        })
    }

    async fn has_entries(&self, _step: &StepId, _path: &str) -> Result<bool, ExecutorError> {
        Ok(false)
    }

    async fn save_cache(
        &self,
        _cache: &CacheVolume,
        _scratch_is_empty: bool,
        _version: &str,
        _limit_bytes: u64,
        _stop: &CancellationToken,
    ) -> Result<Saved, String> {
        self.record.push("save_cache");
        Ok(Saved::Emptied)
    }

    async fn clean_up(&self) {
        *self.cleaned.lock().unwrap() = true;
        self.record.push("clean_up");
    }
}

impl Drop for FakeWorkspace {
    fn drop(&mut self) {
        if !*self.cleaned.lock().unwrap() {
            self.record.push("dropped without clean_up");
        }
    }
}
