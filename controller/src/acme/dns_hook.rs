//! DNS-01 answers published by the operator's executable, in the
//! convention of lego's `exec` provider (which acme.sh and certbot's manual
//! hooks resemble), so scripts written for those work here:
//!
//! ```text
//! <hook> present _acme-challenge.example.com. <value>
//! <hook> cleanup _acme-challenge.example.com. <value>
//! ```
//!
//! `present` returns once the TXT record is published (waiting for the
//! zone's servers to have it is the hook's part); exit status 0 is
//! success. The hook is the operator's and trusted as they are; it gets no
//! standard input, an environment with only `PATH`, `HOME` and the names
//! above, and [`HOOK_TIMEOUT`] to finish. What it prints, bounded, goes
//! into the error a user sees.

use super::{ChallengeAnswer, ChallengeResponder};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// How long one call of the hook may take.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(180);
/// How much of what the hook prints is kept for the error.
const OUTPUT_KEPT: u64 = 4096;

/// The operator's DNS hook (`--acme-dns-hook`).
#[derive(Debug, Clone)]
pub struct DnsHook {
    pub program: PathBuf,
    pub timeout: Duration,
}

impl DnsHook {
    pub fn new(program: PathBuf) -> Self {
        DnsHook {
            program,
            timeout: HOOK_TIMEOUT,
        }
    }

    /// Runs `<hook> <action> <record name> <value>`; an error names the
    /// hook, the action and says what it printed.
    pub async fn run(&self, action: &str, record_name: &str, value: &str) -> Result<(), String> {
        let hook = self.program.display();
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(action)
            .arg(record_name)
            .arg(value)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("the DNS hook {hook} could not be started ({e}); check --acme-dns-hook names an executable file"))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let finished = tokio::time::timeout(self.timeout, async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            // Read bounded, but drain the rest so the hook never blocks on
            // a full pipe.
            let (read_out, read_err, status) = tokio::join!(
                bounded_read(&mut stdout, &mut out),
                bounded_read(&mut stderr, &mut err),
                child.wait()
            );
            let _ = (read_out, read_err);
            (status, out, err)
        })
        .await;
        let (status, out, err) = match finished {
            Ok(done) => done,
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!(
                    "the DNS hook {hook} {action} {record_name} did not finish within {} s",
                    self.timeout.as_secs()
                ));
            }
        };
        let status = status.map_err(|e| format!("waiting for the DNS hook {hook}: {e}"))?;
        if status.success() {
            return Ok(());
        }
        let printed = [String::from_utf8_lossy(&out), String::from_utf8_lossy(&err)]
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Err(format!(
            "the DNS hook {hook} {action} {record_name} failed ({status}){}",
            if printed.is_empty() {
                String::from(" and printed nothing")
            } else {
                format!(": {printed}")
            }
        ))
    }
}

async fn bounded_read(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    kept: &mut Vec<u8>,
) -> std::io::Result<()> {
    (&mut *reader).take(OUTPUT_KEPT).read_to_end(kept).await?;
    tokio::io::copy(reader, &mut tokio::io::sink()).await?;
    Ok(())
}

#[async_trait::async_trait]
impl ChallengeResponder for DnsHook {
    async fn present(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        match answer {
            ChallengeAnswer::Dns01 { record_name, value } => self.run("present", record_name, value).await,
            other => Err(format!("the DNS hook answers dns-01 only, not {other:?}")),
        }
    }

    async fn clean_up(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        match answer {
            ChallengeAnswer::Dns01 { record_name, value } => self.run("cleanup", record_name, value).await,
            _ => Ok(()),
        }
    }
}
