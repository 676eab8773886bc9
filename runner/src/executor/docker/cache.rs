//! The build cache's copies on a Docker-compatible engine: the cache and
//! the job's scratch copy are volumes, copied by helper containers.
//!
//! A build never writes to the cache volume itself. It gets a scratch
//! volume of its own at [`crate::executor::cache::CACHE_DIR`], filled from the cache before it
//! starts ([`restore`]); only after the build succeeded is the scratch
//! copied back ([`save`]), so a failed or cancelled build leaves the cache
//! as it was. Inside the cache volume every save is a complete directory
//! `v-<time>-<job>`, written under a temporary name and renamed into place,
//! then older ones are removed: a reader always finds a whole copy, and two
//! saves racing leave the newer one. Both copies run in helper containers
//! on the engine ([`Engine::run_helper`]), so no cache byte travels through
//! the runner.
//!
//! Which cache a build uses and its volume's name: [`crate::executor::cache`].

use super::engine::{ContainerSpec, Engine, HelperRun, Network, VolumeMount};
use crate::executor::cache::{CacheVolume, Saved};
use crate::executor::{Exit, Limits, labels};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the helpers run in, and within which bounds.
#[derive(Debug, Clone)]
pub struct HelperSettings {
    pub image: String,
    pub limits: Limits,
    /// Labels naming the job and the runner instance.
    pub labels: HashMap<String, String>,
    /// A prefix for the helper containers' names.
    pub name: String,
}

impl HelperSettings {
    fn spec(&self, role: &str, script: String, mounts: Vec<VolumeMount>) -> ContainerSpec {
        let mut labels = self.labels.clone();
        labels.insert(labels::ROLE.to_owned(), "cache-helper".to_owned());
        ContainerSpec {
            name: format!("{}-cache-{role}", self.name),
            image: self.image.clone(),
            command: script,
            working_dir: "/".to_owned(),
            env: Vec::new(),
            labels,
            limits: self.limits,
            network: Network::Off,
            mounts,
        }
    }
}

/// Copies the newest complete copy in the cache volume into the scratch
/// volume; on any error the scratch is emptied, never left half full. A
/// preview or branch deploy with no cache of its own yet copies from
/// production's, mounted read-only.
const RESTORE: &str = r#"set -u
latest=
for d in /from/v-*; do if [ -d "$d" ]; then latest=$d; fi; done
if [ -z "$latest" ]; then echo "restored 0"; exit 0; fi
if ! cp -a "$latest/." /to/; then
  rm -rf /to/* /to/.[!.]* /to/..?* 2>/dev/null
  echo "the copy failed; the build starts with an empty cache"
  exit 4
fi
echo "restored $(du -sk /to | cut -f1)"
"#;

/// Copies the scratch volume into the cache volume as a new complete copy,
/// then removes older copies and stale temporary ones. `$1` names the copy,
/// `$2` is the size limit in KiB.
const SAVE: &str = r#"set -eu
size=$(du -sk /from | cut -f1)
if [ "$size" -gt "$2" ]; then echo "too-large $size"; exit 3; fi
tmp="/to/.tmp-$1"
rm -rf "$tmp"
mkdir "$tmp"
cp -a /from/. "$tmp/"
mv "$tmp" "/to/v-$1"
for d in /to/v-*; do
  if [ "$d" = "/to/v-$1" ]; then break; fi
  rm -rf "$d"
done
find /to -maxdepth 1 -name '.tmp-*' -mmin +60 -exec rm -rf {} \; 2>/dev/null || true
echo "saved $size"
"#;

/// Fills the job's scratch volume from the cache. Returns the KiB restored,
/// `None` when there was no cache yet.
pub async fn restore(
    engine: &Engine,
    helper: &HelperSettings,
    cache: &CacheVolume,
    scratch: &str,
    stop: &CancellationToken,
) -> Result<Option<u64>, String> {
    let mut source = None;
    for name in std::iter::once(&cache.name).chain(&cache.warm_from) {
        if engine.volume_exists(name).await.map_err(|e| e.to_string())? {
            source = Some(name.clone());
            break;
        }
    }
    let Some(source) = source else {
        return Ok(None);
    };
    let spec = helper.spec(
        "restore",
        RESTORE.to_owned(),
        vec![
            VolumeMount {
                volume: source,
                target: "/from".into(),
                read_only: true,
            },
            VolumeMount {
                volume: scratch.to_owned(),
                target: "/to".into(),
                read_only: false,
            },
        ],
    );
    let run = engine
        .run_helper(&spec, &["/to"], stop, HELPER_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    parse_report(&run, "restored").map(Some)
}

/// Makes the scratch volume's content the site's cache.
#[allow(clippy::too_many_arguments)]
pub async fn save(
    engine: &Engine,
    helper: &HelperSettings,
    cache: &CacheVolume,
    scratch: &str,
    scratch_is_empty: bool,
    version: &str,
    limit_bytes: u64,
    stop: &CancellationToken,
) -> Result<Saved, String> {
    if scratch_is_empty {
        // Nothing to keep: no volume is the cheapest empty cache.
        if engine
            .volume_exists(&cache.name)
            .await
            .map_err(|e| e.to_string())?
            && !engine.remove_volume(&cache.name).await
        {
            return Err("the cache volume is in use by another build; it was not emptied".into());
        }
        return Ok(Saved::Emptied);
    }
    engine
        .create_volume(&cache.name, &cache.labels())
        .await
        .map_err(|e| e.to_string())?;
    let limit_kib = limit_bytes / 1024;
    // `version` is made of digits and `-` (see `job.rs`), safe to quote.
    let spec = helper.spec(
        "save",
        format!("set -- '{version}' '{limit_kib}'\n{SAVE}"),
        vec![
            VolumeMount {
                volume: scratch.to_owned(),
                target: "/from".into(),
                read_only: true,
            },
            VolumeMount {
                volume: cache.name.clone(),
                target: "/to".into(),
                read_only: false,
            },
        ],
    );
    let run = engine
        .run_helper(&spec, &["/to"], stop, HELPER_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(kib) = run
        .output
        .lines()
        .find_map(|l| l.strip_prefix("too-large "))
        .and_then(|n| n.trim().parse().ok())
    {
        return Ok(Saved::TooLarge { kib, limit_kib });
    }
    parse_report(&run, "saved").map(Saved::Saved)
}

fn parse_report(run: &HelperRun, word: &str) -> Result<u64, String> {
    let prefix = format!("{word} ");
    let reported = run
        .output
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok());
    match (run.exit, reported) {
        (Exit::Code { code: 0, .. }, Some(kib)) => Ok(kib),
        (Exit::Stopped, _) => Err("stopped".into()),
        (_, _) => Err(format!(
            "the cache helper failed: {}",
            run.output.trim().lines().last().unwrap_or("no output")
        )),
    }
}

/// Removes the cache volumes of older generations of `key` (both trust
/// levels). Volumes still in use are left for a later build.
pub async fn retire_old_generations(engine: &Engine, key: &str, current: u64) -> usize {
    let Some(cache) = CacheVolume::new(key, true, current) else {
        return 0;
    };
    let volumes = match engine
        .volumes_labelled(&[(labels::CACHE_KEY, cache.key.as_str())])
        .await
    {
        Ok(volumes) => volumes,
        Err(e) => {
            tracing::warn!(error = %e, "listing cache volumes failed");
            return 0;
        }
    };
    let mut removed = 0;
    for (name, labels) in volumes {
        let generation = labels
            .get(labels::CACHE_GENERATION)
            .and_then(|g| g.parse::<u64>().ok());
        if generation.is_some_and(|g| g < current) && engine.remove_volume(&name).await {
            removed += 1;
        }
    }
    removed
}

/// How long a cache copy may take before it counts as stuck and is stopped.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(600);
