//! Precompressed variants: brotli and gzip copies of compressible files, made
//! once per blob and stored as blobs of their own. The edge picks one by
//! `Accept-Encoding`; nothing is compressed per request.
//!
//! A blob is compressed once for all deploys and sites that hold it: the
//! `blob_variants` table records each (blob, encoding), including "did not
//! pay" (a variant less than 10% smaller, or taking as many disk blocks as
//! the file, is not kept).
//!
//! Variants are made after a deploy goes ready, in the background, by one
//! worker ([`make_variants_in_background`]) taking deploys from the
//! [`VariantQueue`] one at a time: compressing the new files of a large
//! deploy takes far longer than the rest of its upload, and a deploy needs
//! none to be served. Until its variants exist the edge serves its files as
//! they are; then [`DeployEvent::VariantsMade`] has the edge read the
//! deploy's index again. A controller stopped before it made them makes
//! those of the deploys it serves when it starts again.

use super::Deploys;
use super::blob_store::{BlobStore, new_key, sha256_hex};
use super::events::DeployEvent;
use crate::db::Database;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use tokio::sync::Notify;

/// A content coding the edge can serve a variant in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    /// Best first: the edge offers the first one the client accepts.
    pub const ALL: [Encoding; 2] = [Encoding::Brotli, Encoding::Gzip];

    /// The `Content-Encoding` token, also the name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "br" => Some(Encoding::Brotli),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }
}

/// Files smaller than this gain too little to be worth a variant.
const MIN_SIZE: i64 = 256;
/// Files larger than this are served as they are: compressing them would
/// hold up the deploy for little gain (they are rarely text).
const MAX_SIZE: i64 = 32 * 1024 * 1024;
/// Brotli's quality. With the `brotli` crate, 9 (and 5-8 with a window of
/// 16 bits or less) picks a match finder whose tables, up to 32 MB, are
/// allocated and cleared for every file: timed on README.md's text, a
/// 2.6 KB page took 5.1 ms at 9 and 0.34 ms at 7 with an 18-bit window, a
/// 16 KB one 17.7 against 1.2 ms, a 64 KB one 29 against 4.2 ms, for output
/// 0.01-0.2% larger. A deploy of many small pages spent most of its
/// variant time clearing that memory.
const BROTLI_QUALITY: u32 = 7;
/// The smallest window: 16 bits or less would choose the costly match
/// finder again.
const BROTLI_MIN_WINDOW: u32 = 18;
const BROTLI_WINDOW: u32 = 22;

/// Whether files at `path` are worth compressing, by their type.
pub fn is_compressible(path: &str) -> bool {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let (kind, sub) = (mime.type_().as_str(), mime.subtype().as_str());
    let suffix = mime.suffix().map(|s| s.as_str());
    kind == "text"
        || suffix == Some("xml")
        || suffix == Some("json")
        || matches!(
            sub,
            "javascript" | "json" | "xml" | "wasm" | "manifest+json" | "x-javascript" | "ld+json"
        )
        || matches!(
            (kind, sub),
            ("image", "svg+xml")
                | ("image", "x-icon")
                | ("image", "vnd.microsoft.icon")
                | ("image", "bmp")
                | ("font", "ttf")
                | ("font", "otf")
                | ("application", "vnd.ms-fontobject")
                | ("application", "x-font-ttf")
        )
}

/// `bytes` compressed with `encoding`.
pub fn compress(bytes: &[u8], encoding: Encoding) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(bytes.len() / 3),
                flate2::Compression::best(),
            );
            encoder.write_all(bytes)?;
            encoder.finish()
        }
        Encoding::Brotli => {
            let mut out = Vec::with_capacity(bytes.len() / 3);
            // A window no larger than the file compresses it as well and
            // spares allocating (and clearing) a large one per small file.
            let fits = usize::BITS - bytes.len().max(1).leading_zeros();
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY as i32,
                lgwin: fits.clamp(BROTLI_MIN_WINDOW, BROTLI_WINDOW) as i32,
                size_hint: bytes.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
            Ok(out)
        }
    }
}

/// The unit a filesystem allocates in: a stored file of 1 byte takes as
/// much disk as one of 4 KB.
const DISK_BLOCK: usize = 4096;

/// Whether a variant of `compressed` bytes is worth keeping for `original`:
/// at least 10% smaller, and a block smaller on disk. A 2.6 KB page and its
/// 900-byte variant each fill one block, so keeping the variant would double
/// the disk the page takes and spare no read; pages that small go out as
/// they are (most of such a response is its headers anyway).
fn pays(original: usize, compressed: usize) -> bool {
    compressed * 10 < original * 9 && compressed.div_ceil(DISK_BLOCK) < original.div_ceil(DISK_BLOCK)
}

/// Deploys whose variants are still to be made, oldest first.
#[derive(Debug, Default)]
pub struct VariantQueue {
    waiting: Mutex<VecDeque<String>>,
    added: Notify,
}

impl VariantQueue {
    /// Queues a ready deploy for its variants; false when it is queued
    /// already.
    fn push(&self, deploy_id: &str) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.iter().any(|id| id == deploy_id) {
            return false;
        }
        waiting.push_back(deploy_id.to_owned());
        drop(waiting);
        self.added.notify_one();
        true
    }

    fn pop(&self) -> Option<String> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

/// Asks the worker for the variants of a ready deploy's files.
pub fn queue(state: &Deploys, deploy_id: &str) {
    if state.variants.push(deploy_id) {
        state.metrics.record_variants_queued();
    }
}

/// The worker that makes the variants of the deploys queued, one deploy at
/// a time (each with several blobs at once), and tells the edge. It starts
/// with the deploys served now, whose variants a controller stopped too
/// early may not have made.
pub async fn make_variants_in_background(state: Deploys) {
    match state.db.served_deploy_ids().await {
        Ok(served) => served.iter().for_each(|id| queue(&state, id)),
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "listing the deploys served failed; their missing variants are made when next deployed"
        ),
    }
    loop {
        while let Some(deploy_id) = state.variants.pop() {
            let made = match make_variants(&state.db, state.blobs.as_ref(), &deploy_id).await {
                Ok(0) => 0,
                Ok(count) => {
                    tracing::info!(deploy = %deploy_id, count, "compressed variants made");
                    state.announce(DeployEvent::VariantsMade { deploy_id }).await;
                    count
                }
                // Variants make serving better but are not needed to serve.
                Err(error) => {
                    tracing::warn!(
                        deploy = %deploy_id,
                        error = format!("{error:#}"),
                        "making compressed variants failed; the files are served uncompressed"
                    );
                    0
                }
            };
            state.metrics.record_variants_made(made);
        }
        state.variants.added.notified().await;
    }
}

/// Makes the missing variants of the compressible files of a deploy, several
/// at once. Returns how many blobs were compressed.
pub async fn make_variants(db: &Database, store: &dyn BlobStore, deploy_id: &str) -> anyhow::Result<usize> {
    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<_> = db
        .blobs_lacking_variants(deploy_id)
        .await?
        .into_iter()
        .filter(|blob| (MIN_SIZE..=MAX_SIZE).contains(&blob.size) && is_compressible(&blob.path))
        .filter(|blob| seen.insert(blob.sha256.clone()))
        .collect();
    // Compressing runs on the blocking pool; more blobs at once than cores
    // lets the writes (each synced to disk) of some overlap the work of
    // others, and the filesystem commits concurrent syncs together.
    let parallel = 4 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let count = wanted.len();
    let mut work = futures_util::stream::iter(wanted)
        .map(|blob| async move { compress_blob(db, store, &blob.sha256, &blob.key).await })
        .buffer_unordered(parallel);
    while let Some(done) = work.next().await {
        done?;
    }
    Ok(count)
}

async fn compress_blob(db: &Database, store: &dyn BlobStore, sha256: &str, key: &str) -> anyhow::Result<()> {
    let Some(original) = store.read(key).await? else {
        anyhow::bail!("blob {sha256} is recorded under `{key}` but the store has nothing there");
    };
    let source = original.clone();
    let variants = tokio::task::spawn_blocking(move || {
        Encoding::ALL
            .iter()
            .map(|&encoding| compress(&source, encoding).map(|bytes| (encoding, bytes)))
            .collect::<std::io::Result<Vec<_>>>()
    })
    .await??;
    for (encoding, compressed) in variants {
        if !pays(original.len(), compressed.len()) {
            db.record_variant(sha256, encoding.as_str(), None).await?;
            continue;
        }
        let variant_sha = sha256_hex(&compressed);
        let variant_key = new_key(&variant_sha);
        let size = compressed.len() as i64;
        store.put_bytes(&variant_key, Bytes::from(compressed)).await?;
        let stored = db
            .record_variant(
                sha256,
                encoding.as_str(),
                Some((&variant_sha, size, &variant_key)),
            )
            .await?;
        if !stored {
            // The same bytes were stored already under another key.
            store.delete(&variant_key).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn text_types_compress_and_media_does_not() {
        for path in [
            "index.html",
            "a/style.css",
            "app.js",
            "app.mjs",
            "data.json",
            "feed.xml",
            "logo.svg",
            "robots.txt",
            "favicon.ico",
            "font.ttf",
            "module.wasm",
        ] {
            assert!(is_compressible(path), "{path}");
        }
        for path in [
            "photo.jpg",
            "logo.png",
            "font.woff2",
            "movie.mp4",
            "archive.zip",
            "blob",
        ] {
            assert!(!is_compressible(path), "{path}");
        }
    }

    #[test]
    fn variants_decompress_to_the_original() {
        let original = "<p>hello, world</p>\n".repeat(1000);
        let gzip = compress(original.as_bytes(), Encoding::Gzip).unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, original);
        let br = compress(original.as_bytes(), Encoding::Brotli).unwrap();
        let mut back = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut back).unwrap();
        assert_eq!(back, original.as_bytes());
        assert!(pays(original.len(), br.len()) && pays(original.len(), gzip.len()));
        assert!(!pays(10_000, 9_500), "5% smaller is not worth a second copy");
        assert!(!pays(2_600, 900), "one disk block either way");
        assert!(pays(8_000, 2_000), "two blocks become one");
    }
}
