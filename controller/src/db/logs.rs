//! Build logs, appended by byte offset per attempt.

use super::Database;

/// A stored piece of a log, starting at `byte_offset`.
#[derive(sqlx::FromRow)]
struct Chunk {
    byte_offset: i64,
    data: Vec<u8>,
}

impl Database {
    /// Appends `data` at `offset` if `offset` is the stored length of this
    /// attempt's log. Returns the stored length afterwards, so a caller whose
    /// offset was stale learns where to resume and nothing is written twice.
    pub async fn append_log(
        &self,
        build_id: i64,
        attempt: i64,
        offset: i64,
        data: &[u8],
    ) -> anyhow::Result<i64> {
        let mut tx = self.write_tx().await?;
        let stored = log_length(&mut tx, build_id, attempt).await?;
        if stored != offset || data.is_empty() {
            return Ok(stored);
        }
        sqlx::query("INSERT INTO log_chunks (build_id, attempt, byte_offset, data) VALUES ($1, $2, $3, $4)")
            .bind(build_id)
            .bind(attempt)
            .bind(offset)
            .bind(data)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored + data.len() as i64)
    }

    /// The log of one attempt from byte `from` on.
    pub async fn read_log(&self, build_id: i64, attempt: i64, from: i64) -> anyhow::Result<Vec<u8>> {
        let chunks: Vec<Chunk> = sqlx::query_as(
            "SELECT byte_offset, data FROM log_chunks WHERE build_id = $1 AND attempt = $2 \
             AND byte_offset + LENGTH(data) > $3 ORDER BY byte_offset",
        )
        .bind(build_id)
        .bind(attempt)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        let mut log = Vec::new();
        for Chunk { byte_offset, data } in chunks {
            let skip = (from - byte_offset).max(0) as usize;
            log.extend_from_slice(&data[skip.min(data.len())..]);
        }
        Ok(log)
    }
}

async fn log_length(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    build_id: i64,
    attempt: i64,
) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(MAX(byte_offset + LENGTH(data)), 0) FROM log_chunks \
         WHERE build_id = $1 AND attempt = $2",
    )
    .bind(build_id)
    .bind(attempt)
    .fetch_one(&mut **tx)
    .await?)
}

/// Appends `data` at the end of an attempt's log inside a transaction (for
/// notes the controller itself writes, such as a lost attempt's last line).
pub(super) async fn append_in_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    build_id: i64,
    attempt: i64,
    data: &[u8],
) -> anyhow::Result<()> {
    let offset = log_length(tx, build_id, attempt).await?;
    sqlx::query("INSERT INTO log_chunks (build_id, attempt, byte_offset, data) VALUES ($1, $2, $3, $4)")
        .bind(build_id)
        .bind(attempt)
        .bind(offset)
        .bind(data)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
