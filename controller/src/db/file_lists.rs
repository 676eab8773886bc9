//! How a deploy's file list is stored: in full, or as a delta against a
//! base deploy of the same site (the paths added or changed since the base,
//! and removal rows with a NULL sha256 for the paths it no longer has). A
//! deploy that changes 1% of a site's files writes 1% of the rows.
//!
//! Every reader goes through [`effective_files`]: walking the chain from the
//! deploy down to its full list, the nearest level that names a path wins,
//! and a removal row hides the path. Removing a deploy first rebases the
//! deploys based on it ([`rebase_children`]), so a chain never reaches a
//! deploy without files.

use super::{Backend, Database};
use jamstack_proto::ManifestFile;
use std::collections::HashMap;

/// The most deltas stacked on a full list. Each read of a deploy walks its
/// chain and ranks the rows of every level, so a deep chain makes the
/// edge's index load and finalize slower; a new full list costs one row per
/// file once. At 16, a site deploying 1% changes each time reads at most
/// about 1.2 times its file count of rows, and writes a full list once
/// every 17 deploys.
pub(super) const MAX_CHAIN_DEPTH: i64 = 16;

/// Rows per multi-row INSERT; 5 parameters each stays far below SQLite's
/// limit on bound parameters.
const INSERT_BATCH: usize = 200;

/// `FROM … WHERE …` of the rows deploy `$1` stores itself whose blob is not
/// stored (as `f`). Enough to know every blob a deploy lacks: the files it
/// takes from its base belong to ready deploys, whose blobs were all stored
/// when they were finalized and cannot be swept while a row names them (the
/// rows of a removed base move to its children first). So a delta of 100
/// files is checked by looking at 100 rows, not the whole list.
pub(super) const OWN_ROWS_LACKING_BLOBS: &str = "FROM deploy_files f LEFT JOIN blobs b ON b.sha256 = f.sha256 \
     WHERE f.deploy_id = $1 AND f.sha256 IS NOT NULL AND b.sha256 IS NULL";

/// `WITH RECURSIVE chain (id, base_id, level)`: deploy `$1` at level 0,
/// then its base, its base's base, and so on down to its full list.
pub(super) const CHAIN: &str = "WITH RECURSIVE chain (id, base_id, level) AS (\
       SELECT id, base_deploy_id, 0 FROM deploys WHERE id = $1 \
       UNION ALL \
       SELECT d.id, d.base_deploy_id, c.level + 1 FROM chain c CROSS JOIN deploys d WHERE d.id = c.base_id)";

/// A level's own rows, removals included, read by key as one text value:
/// a line per row of `path`, `sha256` (empty for a removal), `size` and
/// `mode`, tab-separated. Paths never hold control characters
/// (`deploys::is_safe_relative_path` refuses them in every manifest), so
/// neither a tab nor a newline can be part of one. One value instead of a
/// row per file: the driver copies and converts every value of every row
/// it hands over, which for a 100,000-file base was most of the time a
/// manifest took to record.
pub(super) fn level_rows(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "SELECT group_concat(path || char(9) || COALESCE(sha256, '') || char(9) || size || char(9) || mode, \
             char(10)) FROM deploy_files WHERE deploy_id = $1"
        }
        Backend::Postgres => {
            "SELECT string_agg(path || chr(9) || COALESCE(sha256, '') || chr(9) || size || chr(9) || mode, \
             chr(10)) FROM deploy_files WHERE deploy_id = $1"
        }
    }
}

/// A common table expression `effective_files (path, sha256, size, mode)`:
/// the files deploy `$1` has, whether stored in full or as a delta. With
/// `only_path` (a placeholder such as `$2`), only that path is looked at,
/// which keeps a one-file lookup from ranking the whole list. Begin the
/// statement with it: `format!("{} SELECT … FROM effective_files f …")`.
///
/// Its joins, and those of the statements built on it, are written as
/// `CROSS JOIN … WHERE`, which SQLite takes as the order to join in (the
/// deploy's chain, that chain's rows, then each blob by its key): left to
/// choose, its planner at times started from `blobs` or built a temporary
/// index over every deploy's rows, so one cold load read the whole table
/// (`a_deploys_files_are_read_by_key_not_by_scanning_every_site` checks the
/// plans). PostgreSQL plans an inner join either way.
pub(super) fn effective_files(only_path: Option<&str>) -> String {
    let path_filter = only_path.map_or(String::new(), |p| format!(" AND r.path = {p}"));
    format!(
        "{CHAIN}, \
         ranked AS (\
           SELECT r.path, r.sha256, r.size, r.mode, \
             ROW_NUMBER() OVER (PARTITION BY r.path ORDER BY c.level) AS nearest \
           FROM chain c CROSS JOIN deploy_files r WHERE r.deploy_id = c.id{path_filter}), \
         effective_files AS (\
           SELECT path, sha256, size, mode FROM ranked WHERE nearest = 1 AND sha256 IS NOT NULL) "
    )
}

/// How a deploy's file list is stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFileList {
    /// The deploy its list is a delta against; `None` for a full list.
    pub base_deploy_id: Option<String>,
    /// Deltas between it and the full list at the bottom of its chain.
    pub chain_depth: i64,
    /// Rows it stores: files added or changed and removals, or every file.
    #[sqlx(rename = "stored_rows")]
    pub rows: i64,
}

impl Database {
    /// How `deploy_id`'s file list is stored, for the figures of storage
    /// and for checking what a delta costs.
    pub async fn stored_file_list(&self, deploy_id: &str) -> anyhow::Result<Option<StoredFileList>> {
        Ok(sqlx::query_as(
            "SELECT d.base_deploy_id, d.chain_depth, \
               (SELECT COUNT(*) FROM deploy_files f WHERE f.deploy_id = d.id) AS stored_rows \
             FROM deploys d WHERE d.id = $1",
        )
        .bind(deploy_id)
        .fetch_optional(&self.pool)
        .await?)
    }
}

/// A deploy's files as its manifest gave them.
#[derive(Debug, Clone, Copy)]
pub enum NewFileList<'a> {
    /// Every file.
    Full(&'a [ManifestFile]),
    /// Only the changes since a ready deploy of the same site, checked
    /// against it ([`Database::resolve_changes`]).
    Changes(&'a ResolvedChanges),
}

/// A manifest's changes, checked against its base deploy: what makes the
/// new deploy from the base, and the new deploy's totals.
#[derive(Debug)]
pub struct ResolvedChanges {
    base_id: String,
    /// The files added or changed; those the base has as they are left out.
    changed: Vec<ManifestFile>,
    /// Paths the base has that the new deploy does not.
    removed: Vec<String>,
    pub file_count: u64,
    pub total_size: u64,
}

/// Why a manifest's base deploy cannot be used. Nothing was recorded; the
/// sender sends every file instead.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BaseRefused {
    #[error("the manifest's base, deploy {0}, is not a deploy of this site (or was removed)")]
    Unknown(String),
    #[error("the manifest's base, deploy {0}, is not finalized; only a ready deploy can be a base")]
    NotReady(String),
    #[error("the manifest removes `{path}`, which its base, deploy {base}, does not have")]
    NoSuchPath { base: String, path: String },
}

impl Database {
    /// Checks a manifest's changes against `base_id`, which must be a
    /// ready deploy of `site_id`: every removed path must be one of its
    /// files. Reads only the paths the manifest names, by key, level by
    /// level of the base's chain, so 1,000 changes to a 100,000-file
    /// deploy look at about 1,000 rows a level. A ready deploy's files
    /// never change, so what is read here still holds when the changes
    /// are recorded (which checks the base is still there).
    pub async fn resolve_changes(
        &self,
        site_id: i64,
        base_id: &str,
        files: &[ManifestFile],
        removed: &[String],
    ) -> anyhow::Result<Result<ResolvedChanges, BaseRefused>> {
        let base: Option<(i64, String, i64, i64)> =
            sqlx::query_as("SELECT site_id, state, file_count, total_size FROM deploys WHERE id = $1")
                .bind(base_id)
                .fetch_optional(&self.pool)
                .await?;
        let (file_count, total_size) = match base {
            Some((site, _, _, _)) if site != site_id => return Ok(Err(BaseRefused::Unknown(base_id.into()))),
            None => return Ok(Err(BaseRefused::Unknown(base_id.into()))),
            Some((_, state, _, _)) if state != "ready" => {
                return Ok(Err(BaseRefused::NotReady(base_id.into())));
            }
            Some((_, _, count, size)) => (count, size),
        };
        let levels: Vec<String> = sqlx::query_scalar(&format!("{CHAIN} SELECT id FROM chain ORDER BY level"))
            .bind(base_id)
            .fetch_all(&self.pool)
            .await?;
        // The nearest level naming a path decides it; a removal row says
        // the base does not have it.
        let mut decided: HashMap<String, Option<StoredFile>> = HashMap::new();
        let mut pending: Vec<&str> = files
            .iter()
            .map(|f| f.path.as_str())
            .chain(removed.iter().map(String::as_str))
            .collect();
        for level in &levels {
            for batch in pending.chunks(LOOKUP_BATCH) {
                let sql = format!(
                    "SELECT path, sha256, size, mode FROM deploy_files WHERE deploy_id = $1 AND path IN ({})",
                    super::placeholders(batch.len(), 2)
                );
                let mut query = sqlx::query_as::<_, (String, Option<String>, i64, i64)>(&sql).bind(level);
                for path in batch {
                    query = query.bind(*path);
                }
                for (path, sha256, size, mode) in query.fetch_all(&self.pool).await? {
                    let file = sha256.map(|sha256| StoredFile { sha256, size, mode });
                    decided.insert(path, file);
                }
            }
            pending.retain(|path| !decided.contains_key(*path));
            if pending.is_empty() {
                break;
            }
        }
        let in_base = |path: &str| decided.get(path).and_then(Option::as_ref);
        let (mut count, mut size) = (file_count, total_size);
        let mut changed = Vec::new();
        for file in files {
            match in_base(&file.path) {
                Some(stored)
                    if stored.sha256 == file.sha256
                        && stored.size == file.size as i64
                        && stored.mode == i64::from(file.mode) => {}
                Some(stored) => {
                    size += file.size as i64 - stored.size;
                    changed.push(file.clone());
                }
                None => {
                    count += 1;
                    size += file.size as i64;
                    changed.push(file.clone());
                }
            }
        }
        for path in removed {
            let Some(stored) = in_base(path) else {
                return Ok(Err(BaseRefused::NoSuchPath {
                    base: base_id.into(),
                    path: path.clone(),
                }));
            };
            count -= 1;
            size -= stored.size;
        }
        Ok(Ok(ResolvedChanges {
            base_id: base_id.to_owned(),
            changed,
            removed: removed.to_vec(),
            file_count: count.max(0) as u64,
            total_size: size.max(0) as u64,
        }))
    }
}

/// Paths per `IN (…)` lookup of a base's files.
const LOOKUP_BATCH: usize = 500;

/// One file as stored: what a delta compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredFile {
    sha256: String,
    size: i64,
    mode: i64,
}

/// A row to write: `sha256` `None` removes the path relative to the base.
struct FileRow<'a> {
    path: &'a str,
    sha256: Option<&'a str>,
    size: i64,
    mode: i64,
}

impl<'a> From<&'a ManifestFile> for FileRow<'a> {
    fn from(file: &'a ManifestFile) -> Self {
        FileRow {
            path: &file.path,
            sha256: Some(&file.sha256),
            size: file.size as i64,
            mode: i64::from(file.mode),
        }
    }
}

/// The rows that make `files` from `base`: the added or changed files, and
/// a removal for every path of `base` that `files` lacks.
fn delta<'a>(base: &'a HashMap<String, StoredFile>, files: &'a [ManifestFile]) -> Vec<FileRow<'a>> {
    let mut rows: Vec<FileRow<'a>> = files
        .iter()
        .filter(|file| {
            base.get(&file.path).is_none_or(|stored| {
                stored.sha256 != file.sha256
                    || stored.size != file.size as i64
                    || stored.mode != i64::from(file.mode)
            })
        })
        .map(FileRow::from)
        .collect();
    let named: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    rows.extend(
        base.keys()
            .filter(|path| !named.contains(path.as_str()))
            .map(|path| FileRow {
                path,
                sha256: None,
                size: 0,
                mode: 0,
            }),
    );
    rows
}

/// Records (or replaces, for a retried manifest) the file list of
/// `deploy_id`, a deploy of `site_id` still uploading, and its totals,
/// inside the caller's write transaction.
///
/// Every file ([`NewFileList::Full`]): the base is the site's newest
/// ready deploy when its chain is not at [`MAX_CHAIN_DEPTH`] and the delta
/// is at most half the files; otherwise the full list is written. Changes
/// ([`NewFileList::Changes`]): their base is the base unless its chain is
/// full, and then the full list is written; a base removed since the
/// changes were resolved fails with [`BaseRefused`].
pub(super) async fn record_file_list(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    deploy_id: &str,
    site_id: i64,
    list: NewFileList<'_>,
) -> anyhow::Result<()> {
    // On PostgreSQL the base is locked against removal until this
    // transaction ends: removing it waits, then finds this deploy among
    // those to rebase; or it was removed first, and the row no longer
    // passes `state = 'ready'` when rechecked under the lock.
    let share = match backend {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "",
    };
    let base: Option<(String, i64)> = match list {
        // The newest ready deploy is the likeliest to share the most files;
        // when it was removed first the full list is written instead.
        NewFileList::Full(_) => {
            sqlx::query_as(&format!(
                "SELECT id, chain_depth FROM deploys WHERE site_id = $1 AND state = 'ready' AND id <> $2 \
             ORDER BY created_at DESC, id DESC LIMIT 1{share}"
            ))
            .bind(site_id)
            .bind(deploy_id)
            .fetch_optional(&mut **tx)
            .await?
        }
        NewFileList::Changes(changes) => {
            let depth: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT chain_depth FROM deploys WHERE id = $1 AND site_id = $2 AND state = 'ready'{share}"
            ))
            .bind(&changes.base_id)
            .bind(site_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(depth) = depth else {
                return Err(BaseRefused::Unknown(changes.base_id.clone()).into());
            };
            Some((changes.base_id.clone(), depth))
        }
    };
    let base = base.filter(|(_, depth)| *depth < MAX_CHAIN_DEPTH);
    // A retried manifest replaces the rows of the first. The deploy is
    // locked after its base, the order removing a deploy takes them in, so
    // a removal rebasing this deploy meanwhile has finished first. Only a
    // ready deploy is ever a base, so this one has no children; should one
    // appear, it keeps its files.
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    sqlx::query(&format!("SELECT id FROM deploys WHERE id = $1{lock}"))
        .bind(deploy_id)
        .fetch_optional(&mut **tx)
        .await?;
    rebase_children(tx, backend, deploy_id).await?;
    sqlx::query("DELETE FROM deploy_files WHERE deploy_id = $1")
        .bind(deploy_id)
        .execute(&mut **tx)
        .await?;
    let (base_id, depth, file_count, total_size) = match list {
        NewFileList::Full(files) => {
            let base_files = match &base {
                Some((base_id, _)) => Some(stored_files(tx, backend, base_id).await?),
                None => None,
            };
            let delta_rows = base_files
                .as_ref()
                .map(|base_files| delta(base_files, files))
                .filter(|rows| rows.len() * 2 <= files.len());
            let (rows, base_id, depth) = match (delta_rows, base) {
                (Some(rows), Some((base_id, depth))) => (rows, Some(base_id), depth + 1),
                _ => (files.iter().map(FileRow::from).collect(), None, 0),
            };
            insert_rows(tx, deploy_id, &rows).await?;
            let total_size: i64 = files.iter().map(|f| f.size as i64).sum();
            (base_id, depth, files.len() as i64, total_size)
        }
        NewFileList::Changes(changes) => {
            let totals = (changes.file_count as i64, changes.total_size as i64);
            match base {
                Some((base_id, depth)) => {
                    let removals = changes.removed.iter().map(|path| FileRow {
                        path,
                        sha256: None,
                        size: 0,
                        mode: 0,
                    });
                    let rows: Vec<FileRow<'_>> = changes
                        .changed
                        .iter()
                        .map(FileRow::from)
                        .chain(removals)
                        .collect();
                    insert_rows(tx, deploy_id, &rows).await?;
                    (Some(base_id), depth + 1, totals.0, totals.1)
                }
                // The base's chain is full: its files, changed, in full.
                None => {
                    let mut files = stored_files(tx, backend, &changes.base_id).await?;
                    for path in &changes.removed {
                        files.remove(path);
                    }
                    for file in &changes.changed {
                        let stored = StoredFile {
                            sha256: file.sha256.clone(),
                            size: file.size as i64,
                            mode: i64::from(file.mode),
                        };
                        files.insert(file.path.clone(), stored);
                    }
                    let rows: Vec<FileRow<'_>> = files
                        .iter()
                        .map(|(path, file)| FileRow {
                            path,
                            sha256: Some(&file.sha256),
                            size: file.size,
                            mode: file.mode,
                        })
                        .collect();
                    insert_rows(tx, deploy_id, &rows).await?;
                    (None, 0, totals.0, totals.1)
                }
            }
        }
    };
    sqlx::query(
        "UPDATE deploys SET file_count = $1, total_size = $2, base_deploy_id = $3, chain_depth = $4 \
         WHERE id = $5",
    )
    .bind(file_count)
    .bind(total_size)
    .bind(base_id)
    .bind(depth)
    .bind(deploy_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The effective files of a deploy, by path, read in the caller's
/// transaction: each level of its chain by key, from its full list up,
/// each nearer level replacing or removing paths. Reading the levels one
/// by one spares the ranking [`effective_files`] does over all their rows
/// at once, a sort of the whole list that was most of the time a 1% change
/// to a 100,000-file site took to record.
async fn stored_files(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    deploy_id: &str,
) -> anyhow::Result<HashMap<String, StoredFile>> {
    let levels: Vec<String> =
        sqlx::query_scalar(&format!("{CHAIN} SELECT id FROM chain ORDER BY level DESC"))
            .bind(deploy_id)
            .fetch_all(&mut **tx)
            .await?;
    let mut files = HashMap::new();
    for level in &levels {
        let rows: Option<String> = sqlx::query_scalar(level_rows(backend))
            .bind(level)
            .fetch_one(&mut **tx)
            .await?;
        for row in rows.as_deref().unwrap_or_default().lines() {
            let bad = || anyhow::anyhow!("deploy {level} has a file row that cannot be read: {row:?}");
            let mut fields = row.split('\t');
            let (Some(path), Some(sha256), Some(size), Some(mode), None) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                return Err(bad());
            };
            if sha256.is_empty() {
                files.remove(path);
            } else {
                let file = StoredFile {
                    sha256: sha256.to_owned(),
                    size: size.parse().map_err(|_| bad())?,
                    mode: mode.parse().map_err(|_| bad())?,
                };
                files.insert(path.to_owned(), file);
            }
        }
    }
    Ok(files)
}

async fn insert_rows(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    deploy_id: &str,
    rows: &[FileRow<'_>],
) -> anyhow::Result<()> {
    for batch in rows.chunks(INSERT_BATCH) {
        let sql = format!(
            "INSERT INTO deploy_files (deploy_id, path, sha256, size, mode) VALUES {}",
            super::value_rows(batch.len(), 5, 1)
        );
        let mut query = sqlx::query(&sql);
        for row in batch {
            query = query
                .bind(deploy_id)
                .bind(row.path)
                .bind(row.sha256)
                .bind(row.size)
                .bind(row.mode);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Makes the deploys based on `deploy_id` stand without it, before its rows
/// are deleted (inside the caller's write transaction): each child gets the
/// rows of `deploy_id` for the paths it does not name itself and takes its
/// base; when `deploy_id` had no base, the children's removal rows have
/// nothing left to hide and go. Their effective lists stay the same.
///
/// On PostgreSQL the caller has locked `deploy_id`'s row (the `UPDATE` that
/// marks it deleted, or `FOR UPDATE`), so no manifest can choose it as a
/// base meanwhile; the children are locked here, after it, in the same
/// order (base, then child) recording a manifest takes them.
pub(super) async fn rebase_children(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    deploy_id: &str,
) -> anyhow::Result<()> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let children: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM deploys WHERE base_deploy_id = $1 ORDER BY id{lock}"
    ))
    .bind(deploy_id)
    .fetch_all(&mut **tx)
    .await?;
    if children.is_empty() {
        return Ok(());
    }
    let base: Option<String> = sqlx::query_scalar("SELECT base_deploy_id FROM deploys WHERE id = $1")
        .bind(deploy_id)
        .fetch_one(&mut **tx)
        .await?;
    for child in &children {
        sqlx::query(
            "INSERT INTO deploy_files (deploy_id, path, sha256, size, mode) \
             SELECT $1, r.path, r.sha256, r.size, r.mode FROM deploy_files r \
             WHERE r.deploy_id = $2 AND NOT EXISTS \
               (SELECT 1 FROM deploy_files c WHERE c.deploy_id = $3 AND c.path = r.path)",
        )
        .bind(child)
        .bind(deploy_id)
        .bind(child)
        .execute(&mut **tx)
        .await?;
        if base.is_none() {
            sqlx::query("DELETE FROM deploy_files WHERE deploy_id = $1 AND sha256 IS NULL")
                .bind(child)
                .execute(&mut **tx)
                .await?;
        }
    }
    // Every deploy above the removed one is one delta nearer its full list.
    sqlx::query(
        "UPDATE deploys SET chain_depth = chain_depth - 1 WHERE id IN (\
           WITH RECURSIVE above (id) AS (\
             SELECT id FROM deploys WHERE base_deploy_id = $1 \
             UNION ALL \
             SELECT d.id FROM above a JOIN deploys d ON d.base_deploy_id = a.id) \
           SELECT id FROM above)",
    )
    .bind(deploy_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE deploys SET base_deploy_id = $1 WHERE base_deploy_id = $2")
        .bind(base)
        .bind(deploy_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, sha: char, size: u64) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            sha256: sha.to_string().repeat(64),
            size,
            mode: 0o644,
        }
    }

    #[test]
    fn a_delta_names_added_changed_and_removed_paths_only() {
        let base: HashMap<String, StoredFile> = [
            file("same", 'a', 1),
            file("changed", 'b', 1),
            file("gone", 'c', 1),
        ]
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                StoredFile {
                    sha256: f.sha256.clone(),
                    size: f.size as i64,
                    mode: i64::from(f.mode),
                },
            )
        })
        .collect();
        let mut chmod = file("chmod", 'd', 1);
        let files = vec![
            file("same", 'a', 1),
            file("changed", 'e', 1),
            file("new", 'f', 2),
            chmod.clone(),
        ];
        let mut base = base;
        chmod.mode = 0o755;
        base.insert(
            "chmod".into(),
            StoredFile {
                sha256: chmod.sha256.clone(),
                size: 1,
                mode: i64::from(chmod.mode),
            },
        );
        let mut rows: Vec<(String, Option<String>)> = delta(&base, &files)
            .iter()
            .map(|r| (r.path.to_owned(), r.sha256.map(str::to_owned)))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("changed".into(), Some("e".repeat(64))),
                ("chmod".into(), Some("d".repeat(64))),
                ("gone".into(), None),
                ("new".into(), Some("f".repeat(64))),
            ]
        );
    }
}
