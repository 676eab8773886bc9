//! The plans SQLite makes for the statements a cold deploy load and the
//! variant worker run: each must reach rows by key, never by reading a
//! whole table (a cold load was once as slow as every blob of every site).

use super::Backend;
use super::Database;
use super::blobs::LACKING_VARIANTS;
use super::deploy_index::{FILE_KEY, INDEX_FILES, INDEX_VARIANTS};
use super::file_lists::{CHAIN, effective_files, level_rows};
use super::push_intake::branch_histories_sql;
use sqlx::Row;

/// What the plan of `sql` (with `$1` a deploy and `$2` a path) does, one
/// step a line.
async fn plan(db: &Database, sql: &str) -> Vec<String> {
    sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .bind("d7")
        .bind("p3.html")
        .fetch_all(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("explaining {sql}: {e}"))
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect()
}

/// `WITH` rows numbered 0 to `last`, for filling tables.
fn numbers(last: u32) -> String {
    format!("WITH RECURSIVE n (value) AS (SELECT 0 UNION ALL SELECT value + 1 FROM n WHERE value < {last}) ")
}

/// Steps that read every row of a table the statements name (by table or
/// by alias), or build a temporary index over one.
fn whole_table_reads(steps: &[String]) -> Vec<&String> {
    const TABLES: [&str; 8] = [
        "deploys",
        "deploy_files",
        "blobs",
        "blob_variants",
        "d",
        "r",
        "b",
        "v",
    ];
    steps
        .iter()
        .filter(|step| {
            let mut words = step.split_whitespace();
            let scans_a_table =
                words.next() == Some("SCAN") && words.next().is_some_and(|t| TABLES.contains(&t));
            scans_a_table || step.contains("AUTOMATIC")
        })
        .collect()
}

#[tokio::test]
async fn a_deploys_files_are_read_by_key_not_by_scanning_every_site() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_sqlite(&dir.path().join("plans.db")).await.unwrap();
    // Many sites' deploys, each a full list or a delta on the one before,
    // their blobs, and variants of half of them: enough rows that a plan
    // which scans a table is the planner's own choice, not a tiny table's.
    let fill = [
        "PRAGMA foreign_keys = OFF".to_owned(),
        format!(
            "{} INSERT INTO deploys (id, site_id, context, branch, commit_sha, state, file_count, \
               total_size, created_at, base_deploy_id, chain_depth) \
             SELECT 'd' || value, value / 2, 'production', 'main', 'c', 'ready', 100, 0, 0, \
               CASE WHEN value % 2 = 1 THEN 'd' || (value - 1) END, value % 2 FROM n",
            numbers(199)
        ),
        format!(
            "{} INSERT INTO blobs (sha256, size, created_at, storage_key) \
             SELECT printf('%064d', value), 2600, 0, 'k' || value FROM n",
            numbers(20_000)
        ),
        format!(
            "{} INSERT INTO deploy_files (deploy_id, path, sha256, size, mode) \
             SELECT 'd' || (value / 100), 'p' || (value % 100) || '.html', printf('%064d', value), 2600, 420 \
             FROM n",
            numbers(19_999)
        ),
        format!(
            "{} INSERT INTO blob_variants (sha256, encoding, variant_sha256, created_at) \
             SELECT printf('%064d', value), 'br', printf('%064d', value + 1), 0 FROM n WHERE value % 2 = 0",
            numbers(19_999)
        ),
    ];
    for statement in fill {
        sqlx::query(&statement).execute(&db.writer).await.unwrap();
    }
    let statements = [
        (
            "the edge's files",
            format!("{} {INDEX_FILES}", effective_files(None)),
        ),
        (
            "the edge's variants",
            format!("{} {INDEX_VARIANTS}", effective_files(None)),
        ),
        (
            "files lacking variants",
            format!("{} {LACKING_VARIANTS}", effective_files(None)),
        ),
        (
            "one file's key",
            format!("{} {FILE_KEY}", effective_files(Some("$2"))),
        ),
        (
            "a manifest's base, its chain",
            format!("{CHAIN} SELECT id FROM chain ORDER BY level DESC"),
        ),
        (
            "a manifest's base, one level",
            level_rows(Backend::Sqlite).to_owned(),
        ),
    ];
    for (what, sql) in statements {
        let steps = plan(&db, &sql).await;
        assert!(
            whole_table_reads(&steps).is_empty(),
            "{what} reads a whole table:\n{}",
            steps.join("\n")
        );
    }
    // The rows come back whole: the delta's own 100 files, each with its
    // blob, and the variants of half of them.
    let contents = db.ready_deploy_contents("d7").await.unwrap().unwrap();
    assert_eq!(contents.files.len(), 100);
    assert_eq!(contents.variants.len(), 50);
}

#[tokio::test]
async fn a_batch_of_pushes_reads_each_branchs_history_by_key_not_by_scanning_every_build() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_sqlite(&dir.path().join("plans.db")).await.unwrap();
    let fill = [
        "PRAGMA foreign_keys = OFF".to_owned(),
        format!(
            "{} INSERT INTO builds (site_id, context, branch, commit_sha, trigger, state, created_at) \
             SELECT value % 50, 'production', 'b' || (value % 7), printf('%040d', value), 'push', 'succeeded', 0 \
             FROM n",
            numbers(20_000)
        ),
        "ANALYZE".to_owned(),
    ];
    for statement in fill {
        sqlx::query(&statement).execute(&db.writer).await.unwrap();
    }
    let steps = plan(&db, &branch_histories_sql(3)).await;
    assert!(
        whole_table_reads(&steps).is_empty(),
        "the branch histories read a whole table:\n{}",
        steps.join("\n")
    );
}
