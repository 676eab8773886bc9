//! The build cache as every executor keeps it: one named volume per site,
//! scope ([`CacheScope`]) and generation, that carries files from one
//! successful build to the next.
//!
//! A build never writes to the cache itself. It gets a scratch copy of its
//! own at [`CACHE_DIR`], filled from the cache before it starts; only after
//! the build succeeded is the scratch copied back, so a failed or cancelled
//! build leaves the cache as it was (the Docker executor's
//! `executor/docker/cache.rs` does the copies).
//!
//! Each context has a cache of its own: only production builds write
//! production's. Deploy previews and branch deploys of the site's own
//! repository start from production's when they have none yet (a warm
//! start, read only) and save into their own, so what a preview leaves in
//! its cache never reaches a production build. Builds from forks
//! (untrusted) neither read nor write any of those. "Clear cache" is a new
//! generation: new, empty volumes; [`super::Executor::retire_cache`]
//! removes the old ones.

use super::labels;
use jamstack_proto::BuildContext;
use std::collections::HashMap;

/// Where the cache is inside a build container.
pub const CACHE_DIR: &str = "/cache";

/// The variable that tells a build where its cache is.
pub const CACHE_ENV: &str = "JAMSTACK_CACHE_DIR";

/// Whose cache a build uses: one per context, and one for untrusted code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    Production,
    DeployPreview,
    BranchDeploy,
    /// Code nobody with access to the repository wrote (a fork's pull
    /// request, a commit not on the branch it was built for).
    Untrusted,
}

impl CacheScope {
    pub fn of(trusted: bool, context: BuildContext) -> Self {
        match (trusted, context) {
            (false, _) => CacheScope::Untrusted,
            (true, BuildContext::Production) => CacheScope::Production,
            (true, BuildContext::DeployPreview) => CacheScope::DeployPreview,
            (true, BuildContext::BranchDeploy) => CacheScope::BranchDeploy,
        }
    }

    /// The volume name's and label's word; production keeps `trusted`, the
    /// name its cache had before contexts had caches of their own.
    fn as_str(self) -> &'static str {
        match self {
            CacheScope::Production => "trusted",
            CacheScope::DeployPreview => "preview",
            CacheScope::BranchDeploy => "branch",
            CacheScope::Untrusted => "untrusted",
        }
    }
}

/// The cache volume of a site's builds in one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheVolume {
    pub name: String,
    pub key: String,
    pub scope: CacheScope,
    pub generation: u64,
    /// Production's volume, restored from (never saved to) while this
    /// scope has no cache yet: previews and branch deploys only.
    pub warm_from: Option<String>,
}

impl CacheVolume {
    /// The production cache (`trusted`) or the untrusted one. `None` when
    /// the controller sent no usable key.
    pub fn new(key: &str, trusted: bool, generation: u64) -> Option<Self> {
        let scope = if trusted {
            CacheScope::Production
        } else {
            CacheScope::Untrusted
        };
        Self::scoped(key, scope, generation)
    }

    /// The cache a build of `context` uses.
    pub fn for_build(key: &str, trusted: bool, context: BuildContext, generation: u64) -> Option<Self> {
        Self::scoped(key, CacheScope::of(trusted, context), generation)
    }

    fn scoped(key: &str, scope: CacheScope, generation: u64) -> Option<Self> {
        let key: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        if key.trim_matches('-').is_empty() {
            return None;
        }
        let name = |scope: CacheScope| format!("jamstack-cache-{key}-{}-g{generation}", scope.as_str());
        let warm_from = matches!(scope, CacheScope::DeployPreview | CacheScope::BranchDeploy)
            .then(|| name(CacheScope::Production));
        Some(CacheVolume {
            name: name(scope),
            key,
            scope,
            generation,
            warm_from,
        })
    }

    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (labels::CACHE_KEY.to_owned(), self.key.clone()),
            (labels::CACHE_TRUST.to_owned(), self.scope.as_str().to_owned()),
            (labels::CACHE_GENERATION.to_owned(), self.generation.to_string()),
        ])
    }
}

/// How a save ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// The cache now holds the build's copy, this many KiB.
    Saved(u64),
    /// The build left its cache empty; the cache volume was removed.
    Emptied,
    /// Larger than the runner allows; the previous cache stays.
    TooLarge { kib: u64, limit_kib: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_never_share_a_cache_with_production_and_a_new_generation_is_a_new_volume() {
        let production = CacheVolume::new("ab12cd34-7", true, 0).unwrap();
        let fork = CacheVolume::new("ab12cd34-7", false, 0).unwrap();
        let cleared = CacheVolume::new("ab12cd34-7", true, 1).unwrap();
        assert_eq!(production.name, "jamstack-cache-ab12cd34-7-trusted-g0");
        assert_eq!(fork.name, "jamstack-cache-ab12cd34-7-untrusted-g0");
        assert_eq!(cleared.name, "jamstack-cache-ab12cd34-7-trusted-g1");
        assert_eq!(production.labels()[labels::CACHE_TRUST], "trusted");
    }

    #[test]
    fn previews_and_branch_deploys_save_their_own_cache_and_only_read_productions() {
        let production = CacheVolume::for_build("k-1", true, BuildContext::Production, 3).unwrap();
        let preview = CacheVolume::for_build("k-1", true, BuildContext::DeployPreview, 3).unwrap();
        let branch = CacheVolume::for_build("k-1", true, BuildContext::BranchDeploy, 3).unwrap();
        let fork = CacheVolume::for_build("k-1", false, BuildContext::DeployPreview, 3).unwrap();
        assert_eq!(production.name, "jamstack-cache-k-1-trusted-g3");
        assert_eq!(production.warm_from, None);
        assert_eq!(preview.name, "jamstack-cache-k-1-preview-g3");
        assert_eq!(branch.name, "jamstack-cache-k-1-branch-g3");
        for own in [&preview, &branch] {
            assert_eq!(own.warm_from.as_deref(), Some(production.name.as_str()));
        }
        assert_eq!(fork.name, "jamstack-cache-k-1-untrusted-g3");
        assert_eq!(fork.warm_from, None, "a fork never reads production's cache");
    }

    #[test]
    fn keys_become_safe_volume_names() {
        let cache = CacheVolume::new("Site 1/../x", true, 2).unwrap();
        assert_eq!(cache.name, "jamstack-cache-site-1----x-trusted-g2");
        assert!(CacheVolume::new("", true, 0).is_none());
        assert!(CacheVolume::new("//", true, 0).is_none());
    }
}
