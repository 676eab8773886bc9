//! The edge's memory: which deploy each hostname serves, each deploy's index,
//! and the bytes of small hot files.
//!
//! Blobs never change once stored, so their cache needs no invalidation.
//! The bytes of a hot small file are also held by its deploy's index entry,
//! within a quarter of the memory budget, and given back when the index is
//! dropped (ten minutes after its last load, or on eviction).
//! A hostname's pointer moves, and a deploy's index changes once: when the
//! compressed variants of its files are made, after it went ready. Entries
//! are forgotten the moment a [`DeployEvent`] says their site or deploy
//! changed ([`EdgeCache::apply`]), and a lookup that raced with such an
//! event does not store its (possibly old) answer: every event bumps a
//! generation, and an answer read under an older generation is used once
//! and not kept. Pointer entries also expire after `pointer_ttl`, a bound
//! on staleness should a notification from another controller be lost.
//!
//! Variants being made is not a reason to forget: the index in memory
//! serves correctly without them, so it stays, and the variants are read
//! and swapped into it ([`EdgeCache::refresh_variants`]). A first request
//! while the variant worker is busy thus never waits for a cold load of a
//! deploy it could have served from memory.

use super::Target;
use super::index::{DeployIndex, Held, Stored};
use super::protection::Guard;
use crate::config::EdgeSettings;
use crate::db::{Database, SiteTransport};
use crate::deploys::BlobStore;
use crate::deploys::events::DeployEvent;
use crate::metrics::EdgeIndexMetrics;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

/// What a hostname serves now, with what its visitors must show and how
/// it answers over HTTP and HTTPS.
#[derive(Debug, Clone)]
pub struct Serving {
    pub index: Arc<DeployIndex>,
    /// A permalink: the same bytes forever.
    pub immutable: bool,
    pub guard: Option<Guard>,
    pub transport: SiteTransport,
}

/// What a hostname serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    NoSite,
    NothingPublished,
    NoAlias,
    NoDeploy,
    Deploy {
        deploy_id: String,
        /// A permalink: the same bytes forever.
        immutable: bool,
    },
}

#[derive(Debug, Clone)]
struct HostEntry {
    site_id: i64,
    resolved: Resolved,
    /// What a visitor must show before this hostname answers; `None` for
    /// a public one, which thus costs nothing more.
    guard: Option<Guard>,
    /// Whether plain HTTP redirects to HTTPS, and the HSTS header.
    transport: SiteTransport,
    filled: Instant,
    /// The index of the deploy `resolved` names, once loaded: a request
    /// for a hostname already served needs this one entry and nothing else.
    /// Weak: the index cache alone decides which indexes stay in memory, so
    /// its bound holds however many hostnames were ever served.
    index: Option<Weak<DeployIndex>>,
}

#[derive(Debug, Default)]
struct Hosts {
    generation: u64,
    entries: HashMap<Target, HostEntry>,
    /// The entry count at which expired entries are next swept out, so
    /// hostnames served once and never again do not pile up.
    sweep_at: usize,
}

/// The fewest entries worth sweeping.
const SWEEP_FLOOR: usize = 1024;

pub struct EdgeCache {
    hosts: RwLock<Hosts>,
    /// Deploy indexes, weighed by their estimated memory and bounded by
    /// `EdgeSettings::index_cache_bytes` over all sites: a platform with
    /// thousands of sites keeps the ones being served, not all of them.
    deploys: moka::future::Cache<String, Arc<DeployIndex>>,
    index_metrics: EdgeIndexMetrics,
    blobs: moka::future::Cache<String, Bytes>,
    /// Bytes of small files held beside their index entries (see
    /// [`EdgeCache::bytes_of`]), and the most they may be.
    held: Arc<AtomicU64>,
    held_budget: u64,
    settings: EdgeSettings,
    /// Which verified custom hostnames serve which site.
    pub custom_hosts: super::custom_domains::CustomHosts,
    /// Bumped by each [`DeployEvent::VariantsMade`]: an index read across
    /// one has its variants read again.
    variants_made: AtomicU64,
}

impl std::fmt::Debug for EdgeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCache").finish_non_exhaustive()
    }
}

/// A deploy index no request has loaded for this long is dropped, and with
/// it the bytes it holds: a deploy that went out of service gives its share
/// of the budget back. A served one is reloaded at least once per pointer
/// lifetime (`EdgeSettings::pointer_ttl`), far more often.
const INDEX_IDLE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The share of `EdgeSettings::memory_cache_bytes` held beside index
/// entries; the blob cache has the rest, so the two together stay within it.
const HELD_SHARE: u64 = 4;

#[derive(Debug, thiserror::Error)]
#[error("not there")]
struct Absent;

#[async_trait::async_trait]
impl crate::deploys::events::ForgetsFirst for EdgeCache {
    async fn forget(&self, event: &DeployEvent) {
        self.apply(event).await;
    }
}

impl EdgeCache {
    pub fn new(settings: EdgeSettings, index_metrics: EdgeIndexMetrics) -> Self {
        let held_budget = settings.memory_cache_bytes / HELD_SHARE;
        let evictions = index_metrics.evictions.clone();
        EdgeCache {
            hosts: RwLock::new(Hosts::default()),
            deploys: moka::future::Cache::builder()
                .max_capacity(settings.index_cache_bytes)
                .weigher(|_, index: &Arc<DeployIndex>| {
                    u32::try_from(index.approximate_bytes()).unwrap_or(u32::MAX)
                })
                .time_to_idle(INDEX_IDLE)
                .eviction_listener(move |_, _, cause| {
                    if cause == moka::notification::RemovalCause::Size {
                        evictions.inc();
                    }
                })
                .build(),
            index_metrics,
            blobs: moka::future::Cache::builder()
                .max_capacity(settings.memory_cache_bytes - held_budget)
                .weigher(|_, bytes: &Bytes| u32::try_from(bytes.len()).unwrap_or(u32::MAX))
                .build(),
            held: Arc::new(AtomicU64::new(0)),
            held_budget,
            custom_hosts: super::custom_domains::CustomHosts::new(settings.pointer_ttl),
            settings,
            variants_made: AtomicU64::new(0),
        }
    }

    /// What `target` serves now, and what a visitor must show first.
    pub async fn resolve(
        &self,
        db: &Database,
        target: &Target,
    ) -> anyhow::Result<(Resolved, Option<Guard>, SiteTransport)> {
        let generation = {
            let hosts = self.hosts.read().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = hosts.entries.get(target)
                && entry.filled.elapsed() < self.settings.pointer_ttl
            {
                return Ok((entry.resolved.clone(), entry.guard, entry.transport));
            }
            hosts.generation
        };
        let Some((site_id, resolved, guard, transport)) = resolve_in_db(db, target).await? else {
            // Unknown sites are not remembered: nothing would forget them
            // when the site is created.
            return Ok((Resolved::NoSite, None, SiteTransport::default()));
        };
        if matches!(resolved, Resolved::NoDeploy | Resolved::NoAlias) {
            // Nor are permalinks and aliases naming nothing: anyone can make
            // up such hostnames for a real site, one per request, and each
            // remembered would be memory held for a pointer's lifetime.
            return Ok((resolved, guard, transport));
        }
        let mut hosts = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        if hosts.generation == generation {
            if hosts.entries.len() >= hosts.sweep_at {
                let ttl = self.settings.pointer_ttl;
                hosts.entries.retain(|_, entry| entry.filled.elapsed() < ttl);
                hosts.sweep_at = (hosts.entries.len() * 2).max(SWEEP_FLOOR);
            }
            hosts.entries.insert(
                target.clone(),
                HostEntry {
                    site_id,
                    resolved: resolved.clone(),
                    guard,
                    transport,
                    filled: Instant::now(),
                    index: None,
                },
            );
        }
        Ok((resolved, guard, transport))
    }

    /// What `target` serves, from memory alone when its pointer and the
    /// deploy's index are both there: the hot path, one read lock and no
    /// awaiting. `None` sends the caller to [`EdgeCache::resolve`] and
    /// [`EdgeCache::index`].
    pub fn serving_now(&self, target: &Target) -> Option<Serving> {
        let hosts = self.hosts.read().unwrap_or_else(|e| e.into_inner());
        let entry = hosts.entries.get(target)?;
        if entry.filled.elapsed() >= self.settings.pointer_ttl {
            return None;
        }
        let immutable = matches!(entry.resolved, Resolved::Deploy { immutable: true, .. });
        entry.index.as_ref().and_then(Weak::upgrade).map(|index| Serving {
            index,
            immutable,
            guard: entry.guard,
            transport: entry.transport,
        })
    }

    /// The count of events so far: an answer read before an event is not
    /// kept after it.
    pub fn generation(&self) -> u64 {
        self.hosts.read().unwrap_or_else(|e| e.into_inner()).generation
    }

    /// Keeps `index` beside `target`'s pointer, if the pointer still names
    /// that deploy and no event came since `generation` (an event may have
    /// moved or forgotten the pointer, or changed the index, meanwhile).
    pub fn attach_index(&self, target: &Target, index: &Arc<DeployIndex>, generation: u64) {
        let mut hosts = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        if hosts.generation != generation {
            return;
        }
        if let Some(entry) = hosts.entries.get_mut(target)
            && matches!(&entry.resolved, Resolved::Deploy { deploy_id, .. } if *deploy_id == index.deploy_id)
        {
            entry.index = Some(Arc::downgrade(index));
        }
    }

    /// Forgets what an event makes stale.
    pub async fn apply(&self, event: &DeployEvent) {
        match event {
            DeployEvent::CertificatesChanged => return,
            // The index stays; `refresh_variants` brings the variants in.
            DeployEvent::VariantsMade { .. } => {
                self.variants_made.fetch_add(1, Relaxed);
                return;
            }
            _ => {}
        }
        // The index first: a request between the two steps still finds the
        // pointer with its old index and serves that, as before the event;
        // one that finds no pointer reads the index anew.
        if let DeployEvent::DeployRemoved { deploy_id } = event {
            self.deploys.invalidate(deploy_id).await;
        }
        if matches!(event, DeployEvent::DomainsChanged | DeployEvent::Everything) {
            self.custom_hosts.forget();
        }
        let mut hosts = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        hosts.generation += 1;
        match event {
            DeployEvent::SiteChanged { site_id } => hosts.entries.retain(|_, e| e.site_id != *site_id),
            DeployEvent::DeployRemoved { deploy_id } => hosts.entries.retain(
                |_, e| !matches!(&e.resolved, Resolved::Deploy { deploy_id: id, .. } if id == deploy_id),
            ),
            // Which site a custom hostname names is not kept here.
            DeployEvent::DomainsChanged => {}
            DeployEvent::Everything => hosts.entries.clear(),
            // Nothing a hostname serves has changed.
            DeployEvent::CertificatesChanged | DeployEvent::VariantsMade { .. } => {}
        }
    }

    /// Swaps the variants a deploy has now into its index, if the index is
    /// in memory (one loaded later reads them anyway), and into the
    /// pointers that hold it: the same files and rules, nothing forgotten.
    pub async fn refresh_variants(&self, db: &Database, deploy_id: &str) -> anyhow::Result<()> {
        let Some(old) = self.deploys.get(deploy_id).await else {
            return Ok(());
        };
        let variants = db
            .deploy_variants(deploy_id)
            .await
            .map_err(|e| anyhow::anyhow!("reading the variants of deploy {deploy_id}: {e:#}"))?;
        let fresh = Arc::new(old.with_variants(variants));
        self.deploys.insert(deploy_id.to_owned(), fresh.clone()).await;
        let mut hosts = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        for entry in hosts.entries.values_mut() {
            if entry.index.is_some()
                && matches!(&entry.resolved, Resolved::Deploy { deploy_id: id, .. } if id == deploy_id)
            {
                entry.index = Some(Arc::downgrade(&fresh));
            }
        }
        Ok(())
    }

    /// The index of a ready deploy, loaded once.
    pub async fn index(&self, db: &Database, deploy_id: &str) -> anyhow::Result<Option<Arc<DeployIndex>>> {
        let generation = self.generation();
        let variants_made = self.variants_made.load(Relaxed);
        let loaded = self
            .deploys
            .try_get_with_by_ref(deploy_id, async {
                match db.ready_deploy_contents(deploy_id).await? {
                    Some(contents) => Ok(Arc::new(DeployIndex::from_contents(deploy_id, contents))),
                    None => Err(anyhow::Error::new(Absent)),
                }
            })
            .await;
        self.index_metrics
            .bytes
            .set(i64::try_from(self.deploys.weighted_size()).unwrap_or(i64::MAX));
        if self.generation() != generation {
            // Read before an event that may have changed this deploy's
            // index (its variants): used once, not kept.
            self.deploys.invalidate(deploy_id).await;
        } else if self.variants_made.load(Relaxed) != variants_made && loaded.is_ok() {
            // Variants were made meanwhile, perhaps after this load read
            // them: read them again rather than keep an index without.
            match self.refresh_variants(db, deploy_id).await {
                Ok(()) => {
                    if let Some(fresh) = self.deploys.get(deploy_id).await {
                        return Ok(Some(fresh));
                    }
                }
                // Served as loaded; the next VariantsMade or load tries again.
                Err(error) => tracing::warn!(
                    deploy = deploy_id,
                    error = format!("{error:#}"),
                    "rereading variants failed"
                ),
            }
        }
        match loaded {
            Ok(index) => Ok(Some(index)),
            Err(e) if e.is::<Absent>() => Ok(None),
            Err(e) => Err(anyhow::anyhow!("loading deploy {deploy_id}: {e:#}")),
        }
    }

    /// Whether a blob of `size` bytes is kept in memory.
    pub fn fits_in_memory(&self, size: u64) -> bool {
        size <= self.settings.memory_cache_max_file
    }

    /// The bytes of `stored`, a small file: those its index entry holds, or
    /// the blob cache's, which the entry then holds if the budget allows.
    /// The hot path of a small file is then one reference count, where the
    /// blob cache costs a hash lookup and recording the read for eviction.
    pub async fn bytes_of(&self, store: &dyn BlobStore, stored: &Stored) -> anyhow::Result<Option<Bytes>> {
        if let Some(bytes) = stored.held.get() {
            return Ok(Some(bytes.clone()));
        }
        let Some(bytes) = self.small_blob(store, &stored.key()).await? else {
            return Ok(None);
        };
        let size = bytes.len() as u64;
        let reserved = self
            .held
            .fetch_update(Relaxed, Relaxed, |held| {
                (held + size <= self.held_budget).then_some(held + size)
            })
            .is_ok();
        if reserved {
            stored.held.hold(Held {
                bytes: bytes.clone(),
                total: self.held.clone(),
            });
        }
        Ok(Some(bytes))
    }

    /// Bytes held beside index entries now.
    #[cfg(test)]
    fn held_bytes(&self) -> u64 {
        self.held.load(Relaxed)
    }

    /// The bytes of a small blob, read from the store once.
    async fn small_blob(&self, store: &dyn BlobStore, key: &str) -> anyhow::Result<Option<Bytes>> {
        let loaded = self
            .blobs
            .try_get_with_by_ref(key, async {
                match store.read(key).await? {
                    Some(bytes) => Ok(bytes),
                    None => Err(anyhow::Error::new(Absent)),
                }
            })
            .await;
        match loaded {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is::<Absent>() => Ok(None),
            Err(e) => Err(anyhow::anyhow!("reading blob {key}: {e:#}")),
        }
    }
}

/// Reads what `target` serves from the database: the site's id, the
/// answer and the guard its kind of hostname has, or `None` when there is
/// no such site.
async fn resolve_in_db(
    db: &Database,
    target: &Target,
) -> anyhow::Result<Option<(i64, Resolved, Option<Guard>, SiteTransport)>> {
    let (Target::Published { site } | Target::Permalink { site, .. } | Target::Alias { site, .. }) = target;
    let Some(site) = db.site_by_name(site).await? else {
        return Ok(None);
    };
    let resolved = match target {
        Target::Published { .. } => match site.published_deploy_id {
            Some(deploy_id) => Resolved::Deploy {
                deploy_id,
                immutable: false,
            },
            None => Resolved::NothingPublished,
        },
        Target::Permalink { deploy_id, .. } => match db.deploy(deploy_id).await? {
            Some(deploy) if deploy.site_id == site.id && deploy.state == "ready" => Resolved::Deploy {
                deploy_id: deploy.id,
                immutable: true,
            },
            _ => Resolved::NoDeploy,
        },
        Target::Alias { alias, .. } => match db.alias_deploy(site.id, alias).await? {
            Some(deploy_id) => Resolved::Deploy {
                deploy_id,
                immutable: false,
            },
            None => Resolved::NoAlias,
        },
    };
    let (protection, transport) = tokio::try_join!(db.site_protection(site.id), db.site_transport(site.id))?;
    let guard = Guard::of(site.id, target, &protection);
    Ok(Some((site.id, resolved, guard, transport)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DeployContents, IndexedFile};
    use crate::deploys::blob_store::{LocalBlobStore, new_key};

    /// A deploy of `files` pages, as the database would give it.
    fn deploy(id: &str, files: usize) -> Arc<DeployIndex> {
        let files = (0..files)
            .map(|n| IndexedFile {
                path: format!("page-{n}.html"),
                sha256: format!("{n:064}"),
                size: 2_600,
                key: format!("{n:064}"),
            })
            .collect();
        Arc::new(DeployIndex::from_contents(
            id,
            DeployContents {
                files,
                ..DeployContents::default()
            },
        ))
    }

    /// `site` served from memory: its pointer names `index`, held beside it.
    /// Runs the index cache's maintenance until `done`, or 200 rounds.
    /// The cache applies its evictions in rounds of maintenance work, which
    /// requests run as they come; each round stops after a couple of
    /// milliseconds, so a busy machine needs more of them.
    async fn settle(edge: &EdgeCache, done: impl Fn() -> bool) {
        for _ in 0..200 {
            edge.deploys.run_pending_tasks().await;
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    async fn serve(edge: &EdgeCache, site: &str, index: &Arc<DeployIndex>) -> Target {
        let target = Target::Published { site: site.into() };
        edge.deploys.insert(index.deploy_id.clone(), index.clone()).await;
        edge.hosts.write().unwrap().entries.insert(
            target.clone(),
            HostEntry {
                site_id: 1,
                resolved: Resolved::Deploy {
                    deploy_id: index.deploy_id.clone(),
                    immutable: false,
                },
                guard: None,
                transport: SiteTransport::default(),
                filled: Instant::now(),
                index: Some(Arc::downgrade(index)),
            },
        );
        target
    }

    #[tokio::test]
    async fn a_site_stays_served_from_memory_while_its_variants_are_made() {
        let edge = EdgeCache::new(EdgeSettings::default(), EdgeIndexMetrics::default());
        let index = deploy("d1", 10);
        let target = serve(&edge, "blog", &index).await;

        edge.apply(&DeployEvent::VariantsMade {
            deploy_id: "d1".into(),
        })
        .await;

        let serving = edge.serving_now(&target).expect("still served from memory");
        assert!(
            Arc::ptr_eq(&serving.index, &index),
            "the same index, not a cold load"
        );
        assert!(edge.deploys.get("d1").await.is_some());
        // A removed deploy is forgotten, as before.
        edge.apply(&DeployEvent::DeployRemoved {
            deploy_id: "d1".into(),
        })
        .await;
        assert!(edge.serving_now(&target).is_none());
    }

    #[tokio::test]
    async fn deploy_indexes_past_the_memory_bound_are_dropped_and_counted() {
        let metrics = EdgeIndexMetrics::default();
        let one = deploy("d0", 200).approximate_bytes() as u64;
        // Room for about three sites of 200 files.
        let edge = EdgeCache::new(
            EdgeSettings {
                index_cache_bytes: 3 * one + one / 2,
                ..EdgeSettings::default()
            },
            metrics.clone(),
        );
        for n in 0..50 {
            let index = deploy(&format!("d{n}"), 200);
            edge.deploys.insert(index.deploy_id.clone(), index).await;
        }
        settle(&edge, || edge.deploys.entry_count() <= 3).await;

        assert!(edge.deploys.weighted_size() <= 3 * one + one / 2);
        assert!(edge.deploys.entry_count() <= 3, "{}", edge.deploys.entry_count());
        assert!(metrics.evictions.get() >= 47, "{}", metrics.evictions.get());
    }

    #[tokio::test]
    async fn hostnames_served_once_do_not_keep_their_indexes_past_the_memory_bound() {
        let one = deploy("d0", 200).approximate_bytes() as u64;
        let edge = EdgeCache::new(
            EdgeSettings {
                index_cache_bytes: 3 * one + one / 2,
                ..EdgeSettings::default()
            },
            EdgeIndexMetrics::default(),
        );
        // Fifty sites each served once, as a crawler or a first visit
        // would: their pointers stay, their indexes may not.
        let mut loaded = Vec::new();
        for n in 0..50 {
            let index = deploy(&format!("d{n}"), 200);
            serve(&edge, &format!("site-{n}"), &index).await;
            loaded.push(Arc::downgrade(&index));
        }
        let alive = || loaded.iter().filter(|index| index.upgrade().is_some()).count();
        settle(&edge, || alive() <= 3).await;

        let alive = alive();
        assert!(alive <= 3, "{alive} of 50 indexes still in memory");
        let served_from_memory = (0..50)
            .filter(|n| {
                edge.serving_now(&Target::Published {
                    site: format!("site-{n}"),
                })
                .is_some()
            })
            .count();
        assert!(served_from_memory <= 3, "{served_from_memory}");
        assert!(
            served_from_memory >= 1,
            "the cached ones are still served from memory"
        );
    }

    #[tokio::test]
    async fn made_up_permalinks_and_aliases_of_a_real_site_are_answered_but_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_sqlite(&dir.path().join("edge.db")).await.unwrap();
        db.insert_site(&crate::db::NewSite {
            name: "blog".into(),
            repo_url: None,
            github_repo: None,
            production_branch: "main".into(),
            production_branch_follows_default: false,
            settings: Default::default(),
        })
        .await
        .unwrap()
        .unwrap();
        let edge = EdgeCache::new(EdgeSettings::default(), EdgeIndexMetrics::default());
        for n in 0..50 {
            let permalink = Target::Permalink {
                site: "blog".into(),
                deploy_id: format!("made-up-{n}"),
            };
            assert_eq!(edge.resolve(&db, &permalink).await.unwrap().0, Resolved::NoDeploy);
            let alias = Target::Alias {
                site: "blog".into(),
                alias: format!("made-up-{n}"),
            };
            assert_eq!(edge.resolve(&db, &alias).await.unwrap().0, Resolved::NoAlias);
        }
        assert_eq!(edge.hosts.read().unwrap().entries.len(), 0);

        // The site's own hostname is remembered, as before.
        let published = Target::Published { site: "blog".into() };
        assert_eq!(
            edge.resolve(&db, &published).await.unwrap().0,
            Resolved::NothingPublished
        );
        assert_eq!(edge.hosts.read().unwrap().entries.len(), 1);
    }

    fn stored(store_key: &str, size: u64) -> Stored {
        Stored::new(&"ab".repeat(32), size, store_key)
    }

    #[tokio::test]
    async fn hot_small_files_are_held_by_their_index_within_a_quarter_of_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path());
        let (one, two) = (new_key(&"1".repeat(64)), new_key(&"2".repeat(64)));
        store.put_bytes(&one, Bytes::from(vec![1u8; 600])).await.unwrap();
        store.put_bytes(&two, Bytes::from(vec![2u8; 600])).await.unwrap();
        // A quarter of 4,000 bytes: room to hold one file of 600, not two.
        let edge = EdgeCache::new(
            EdgeSettings {
                memory_cache_bytes: 4_000,
                ..EdgeSettings::default()
            },
            EdgeIndexMetrics::default(),
        );
        let (first, second) = (stored(&one, 600), stored(&two, 600));

        let served = edge.bytes_of(&store, &first).await.unwrap().unwrap();
        assert_eq!(served, vec![1u8; 600]);
        assert_eq!(first.held.get(), Some(&served), "served once, then held");
        assert_eq!(edge.held_bytes(), 600);

        // Over the budget: served from the blob cache, not held.
        let served = edge.bytes_of(&store, &second).await.unwrap().unwrap();
        assert_eq!(served, vec![2u8; 600]);
        assert_eq!(second.held.get(), None);
        assert_eq!(edge.held_bytes(), 600);

        // Served again from what it holds, even with the blob gone.
        store.delete(&one).await.unwrap();
        edge.blobs.invalidate(&one).await;
        assert_eq!(
            edge.bytes_of(&store, &first).await.unwrap().unwrap(),
            vec![1u8; 600]
        );

        // A dropped index gives its share back, and another file may be held.
        drop(first);
        assert_eq!(edge.held_bytes(), 0);
        edge.bytes_of(&store, &second).await.unwrap().unwrap();
        assert_eq!(edge.held_bytes(), 600);
        assert!(second.held.get().is_some());
    }
}
