//! One deploy in memory: its files by path and its rules, and the routing of
//! a request path to what answers it. Pure: no I/O, tested on its own.
//!
//! The order, for a decoded path:
//! 1. What the path serves as a file ("How paths are served" in README):
//!    `dir/` → `dir/index.html`; `dir` → 301 `dir/` when `dir/index.html`
//!    exists; `page` → `page.html` when there is no file `page`.
//! 2. The first redirect rule that applies: forced rules always, others only
//!    when step 1 found nothing (shadowing).
//! 3. Step 1's answer, or the nearest `404.html`: the one in the path's own
//!    directory, else its parent's, up to the root; else a plain 404.
//!
//! The rule files `_redirects` and `_headers` at the root are not served.
//!
//! An index is compact because a platform's edge holds thousands of them
//! within one bound (`--edge-index-cache-mib`): a file costs about 150
//! bytes, 290 with both compressed variants. Hashes are kept as bytes,
//! and what can be derived from them (blob keys, ETags) is made when a
//! request needs it; paths share one buffer, variants one list, and
//! content types are shared by every index.

use super::respond;
use crate::db::{DeployContents, IndexedVariant};
use crate::deploys::compress::Encoding;
use axum::http::{HeaderValue, StatusCode};
use jamstack_rules::{Action, MatchedRule, Request, RuleSet, Rules};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, RwLock};

/// A stored representation of a file: the file itself or a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    sha256: [u8; 32],
    pub size: u64,
    key: KeyTail,
    /// Its bytes, once served, when it is small and the edge's budget for
    /// such bytes allows (`EdgeCache::bytes_of`): a request for a hot small
    /// file then touches nothing outside the deploy's index.
    pub held: HeldBytes,
}

/// A blob's key in the blob store, told apart from its hash: the store
/// names blobs `<sha256>.<8 hex digits>` (`blob_store::new_key`), so most
/// keys are their hash and four bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyTail {
    /// `<sha256>.<the number in 8 lowercase hex digits>`.
    Suffix(u32),
    /// Any other form, kept whole.
    Whole(Box<str>),
}

impl KeyTail {
    fn of(sha256: &[u8; 32], key: &str) -> KeyTail {
        let suffix = key
            .split_once('.')
            .filter(|(hash, suffix)| {
                suffix.len() == 8
                    && suffix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    && decode_sha256(hash).as_ref() == Some(sha256)
            })
            .and_then(|(_, suffix)| u32::from_str_radix(suffix, 16).ok());
        match suffix {
            Some(suffix) => KeyTail::Suffix(suffix),
            None => KeyTail::Whole(key.into()),
        }
    }
}

fn decode_sha256(hex_text: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut bytes).ok()?;
    // Hashes are written in lowercase; another spelling is another key.
    (hex_text.bytes().all(|b| !b.is_ascii_uppercase())).then_some(bytes)
}

/// The bytes of a small file kept beside its index entry, counted against
/// the edge's budget for them until the index is dropped.
#[derive(Default)]
pub struct HeldBytes(once_cell::race::OnceBox<Held>);

pub(super) struct Held {
    pub bytes: bytes::Bytes,
    /// Bytes held by all indexes; this hold gives its share back on drop.
    pub total: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total
            .fetch_sub(self.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl HeldBytes {
    pub fn get(&self) -> Option<&bytes::Bytes> {
        self.0.get().map(|held| &held.bytes)
    }

    /// Keeps `held` unless bytes are held already (another request was
    /// first; `held` is dropped and gives its share back).
    pub(super) fn hold(&self, held: Held) {
        let _ = self.0.set(Box::new(held));
    }
}

/// Held bytes are a cache, not part of what a file is: a copy starts
/// without them, and they do not count in comparisons.
impl Clone for HeldBytes {
    fn clone(&self) -> Self {
        HeldBytes::default()
    }
}

impl PartialEq for HeldBytes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HeldBytes {}

impl std::fmt::Debug for HeldBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            Some(bytes) => write!(f, "HeldBytes({} bytes)", bytes.len()),
            None => f.write_str("HeldBytes(none)"),
        }
    }
}

impl Stored {
    /// A blob of `size` bytes whose hash is `sha256` (64 lowercase hex
    /// digits, as the database holds it) stored under `key`.
    pub fn new(sha256: &str, size: u64, key: &str) -> Self {
        // The database holds only checked hashes; should one be otherwise,
        // its ETag is of zeros and its key kept whole, so it is still served.
        let sha256 = decode_sha256(sha256).unwrap_or_default();
        Stored {
            key: KeyTail::of(&sha256, key),
            sha256,
            size,
            held: HeldBytes::default(),
        }
    }

    /// Where the blob store keeps it.
    pub fn key(&self) -> String {
        match &self.key {
            KeyTail::Suffix(suffix) => format!("{}.{suffix:08x}", hex::encode(self.sha256)),
            KeyTail::Whole(key) => key.to_string(),
        }
    }

    /// Its content hash, in hex.
    #[cfg(test)]
    fn sha256(&self) -> String {
        hex::encode(self.sha256)
    }

    fn heap_bytes(&self) -> usize {
        match &self.key {
            KeyTail::Suffix(_) => 0,
            KeyTail::Whole(key) => key.len(),
        }
    }
}

/// A file's compressed variants, best first (`Encoding::ALL` order).
pub type Variants = Vec<(Encoding, Stored)>;

/// A file of a deploy as the index keeps it.
#[derive(Debug, Clone)]
struct Entry {
    /// Where its path is in `DeployIndex::paths`.
    path_start: u32,
    path_len: u32,
    original: Stored,
    /// Its variants: `DeployIndex::variants[variants_start..][..variants_len]`.
    variants_start: u32,
    variants_len: u8,
    immutable_name: bool,
    compressible: bool,
    content_type: &'static HeaderValue,
}

/// A file of a deploy, as a request sees it.
#[derive(Debug, Clone, Copy)]
pub struct File<'a> {
    pub original: &'a Stored,
    /// Compressed variants, best first (`Encoding::ALL` order).
    pub variants: &'a [(Encoding, Stored)],
    /// What its path says, worked out once: `Content-Type`, whether the
    /// name is fingerprinted (cacheable as immutable unless it is HTML) and
    /// whether the answer varies by `Accept-Encoding`.
    pub content_type: &'static HeaderValue,
    pub immutable_name: bool,
    pub compressible: bool,
}

impl File<'_> {
    /// The strong ETag of the file itself (`None`) or of its `encoding`
    /// variant: the file's hash, and the coding, so each representation has
    /// its own.
    pub fn etag(&self, encoding: Option<Encoding>) -> HeaderValue {
        let mut text = [0u8; 2 + 64 + 1 + 8];
        text[0] = b'"';
        let _ = hex::encode_to_slice(self.original.sha256, &mut text[1..65]);
        let mut end = 65;
        if let Some(encoding) = encoding {
            let coding = encoding.as_str().as_bytes();
            text[end] = b'-';
            text[end + 1..end + 1 + coding.len()].copy_from_slice(coding);
            end += 1 + coding.len();
        }
        text[end] = b'"';
        HeaderValue::from_bytes(&text[..=end]).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }
}

/// The `Content-Type` of `path`, one value for all files of that type in
/// every index. The set is bounded (the types `mime_guess` knows, and
/// `application/octet-stream`), so the values are kept for the process's
/// life.
fn content_type_of(path: &str) -> &'static HeaderValue {
    static TYPES: LazyLock<RwLock<HashMap<String, &'static HeaderValue>>> = LazyLock::new(Default::default);
    let text = respond::content_type(path);
    if let Some(value) = TYPES.read().unwrap_or_else(|e| e.into_inner()).get(&text) {
        return value;
    }
    let mut types = TYPES.write().unwrap_or_else(|e| e.into_inner());
    types.entry(text).or_insert_with_key(|text| {
        let value = HeaderValue::from_str(text)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        Box::leak(Box::new(value))
    })
}

/// Variants by the hash of the blob they are of, best first.
fn variants_by_hash(
    variants: Vec<IndexedVariant>,
) -> HashMap<[u8; 32], Vec<(Encoding, Stored)>, foldhash::fast::RandomState> {
    let mut by_hash: HashMap<[u8; 32], Vec<(Encoding, Stored)>, _> = HashMap::default();
    for variant in variants {
        let Some(encoding) = Encoding::parse(&variant.encoding) else {
            continue;
        };
        let Some(of) = decode_sha256(&variant.sha256) else {
            continue;
        };
        let stored = Stored::new(&variant.variant_sha256, variant.size as u64, &variant.key);
        by_hash.entry(of).or_default().push((encoding, stored));
    }
    for variants in by_hash.values_mut() {
        variants.sort_by_key(|(encoding, _)| Encoding::ALL.iter().position(|e| e == encoding));
    }
    by_hash
}

/// A deploy's compiled rules, counted at a flat rate: most deploys have a
/// handful, and a deploy with thousands is one of few.
const RULES_ALLOWANCE: usize = 1024;

/// What answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Serve the deploy's file at `path` with `status`.
    File {
        path: String,
        status: StatusCode,
    },
    Redirect {
        status: StatusCode,
        location: String,
    },
    /// Nothing to serve: a plain answer with this status.
    Plain(StatusCode),
    /// Forward the request to `url` with `headers` added (a proxy rewrite).
    Proxy {
        url: String,
        headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
        /// The site variable the request is signed with (`X-Nf-Sign`).
        signed: Option<String>,
    },
}

pub struct DeployIndex {
    pub deploy_id: String,
    /// Every file's path, one after another.
    paths: String,
    entries: Vec<Entry>,
    /// Every file's variants, each file's together.
    variants: Vec<(Encoding, Stored)>,
    /// Positions in `entries`, found by path. Paths are a repository's to
    /// choose, so the hash is seeded anew in each process.
    by_path: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    pub rules: Rules,
}

impl Default for DeployIndex {
    fn default() -> Self {
        DeployIndex::new(Vec::new(), Rules::default())
    }
}

impl std::fmt::Debug for DeployIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployIndex")
            .field("deploy_id", &self.deploy_id)
            .field("files", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// The path of the entry at `position`, from the deploy's path buffer.
fn path_at<'a>(paths: &'a str, entries: &[Entry], position: u32) -> &'a str {
    let entry = &entries[position as usize];
    &paths[entry.path_start as usize..][..entry.path_len as usize]
}

/// Files the edge never serves: the rule files at the root.
const HIDDEN: [&str; 2] = ["_redirects", "_headers"];

enum Static {
    File(String),
    /// `dir` has an index: canonical with a trailing slash.
    Slash(String),
}

impl DeployIndex {
    /// An index of `files`: each one's path, the file and its variants.
    pub fn new(files: Vec<(String, Stored, Variants)>, rules: Rules) -> Self {
        let mut index = DeployIndex::empty(
            String::new(),
            rules,
            files.len(),
            files.iter().map(|f| f.0.len()).sum(),
        );
        for (path, original, variants) in files {
            index.push(&path, original, &variants);
        }
        index.variants.shrink_to_fit();
        index
    }

    fn empty(deploy_id: String, rules: Rules, files: usize, path_bytes: usize) -> Self {
        DeployIndex {
            deploy_id,
            paths: String::with_capacity(path_bytes),
            entries: Vec::with_capacity(files),
            variants: Vec::new(),
            by_path: hashbrown::HashTable::with_capacity(files),
            hasher: foldhash::fast::RandomState::default(),
            rules,
        }
    }

    /// Adds a file; a path given twice names the last one given.
    fn push(&mut self, path: &str, original: Stored, variants: &[(Encoding, Stored)]) {
        let (Ok(path_start), Ok(path_len), Ok(position), Ok(variants_start)) = (
            u32::try_from(self.paths.len()),
            u32::try_from(path.len()),
            u32::try_from(self.entries.len()),
            u32::try_from(self.variants.len()),
        ) else {
            // Four billion bytes of paths: no deploy the controller accepts.
            tracing::error!(
                deploy = self.deploy_id,
                path,
                "deploy too large to index; file left out"
            );
            return;
        };
        let variants = &variants[..variants.len().min(usize::from(u8::MAX))];
        self.paths.push_str(path);
        self.variants.extend_from_slice(variants);
        self.entries.push(Entry {
            path_start,
            path_len,
            original,
            variants_start,
            variants_len: variants.len() as u8,
            immutable_name: !respond::is_html(path) && respond::is_fingerprinted(path),
            compressible: crate::deploys::compress::is_compressible(path),
            content_type: content_type_of(path),
        });
        let hash = self.hasher.hash_one(path);
        let (paths, entries, hasher) = (&self.paths, &self.entries, &self.hasher);
        match self.by_path.entry(
            hash,
            |&other| path_at(paths, entries, other) == path,
            |&other| hasher.hash_one(path_at(paths, entries, other)),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut earlier) => *earlier.get_mut() = position,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(position);
            }
        }
    }

    fn view<'a>(&'a self, entry: &'a Entry) -> File<'a> {
        File {
            original: &entry.original,
            variants: &self.variants[entry.variants_start as usize..][..usize::from(entry.variants_len)],
            content_type: entry.content_type,
            immutable_name: entry.immutable_name,
            compressible: entry.compressible,
        }
    }

    /// Builds the index from what the database holds. Stored rules were
    /// checked when the deploy was finalized; should they not compile now
    /// (a newer server being stricter), the deploy is served without them
    /// and the reason logged.
    pub fn from_contents(deploy_id: &str, contents: DeployContents) -> Self {
        let by_hash = variants_by_hash(contents.variants);
        let rules = match contents.rules.as_deref().map(serde_json::from_str::<RuleSet>) {
            None => Rules::default(),
            Some(Ok(set)) => set.compile().unwrap_or_else(|e| {
                tracing::error!(deploy = deploy_id, error = %e, "stored rules do not compile; serving without them");
                Rules::default()
            }),
            Some(Err(e)) => {
                tracing::error!(deploy = deploy_id, error = %e, "stored rules are unreadable; serving without them");
                Rules::default()
            }
        };
        let path_bytes = contents.files.iter().map(|file| file.path.len()).sum();
        let mut index = DeployIndex::empty(deploy_id.to_owned(), rules, contents.files.len(), path_bytes);
        index.variants.reserve_exact(
            contents
                .files
                .iter()
                .filter_map(|file| decode_sha256(&file.sha256))
                .map(|sha256| by_hash.get(&sha256).map_or(0, Vec::len))
                .sum(),
        );
        for file in &contents.files {
            let original = Stored::new(&file.sha256, file.size as u64, &file.key);
            let variants = by_hash.get(&original.sha256).map_or(&[][..], Vec::as_slice);
            index.push(&file.path, original, variants);
        }
        index
    }

    /// The same deploy with `variants` as its files' compressed variants:
    /// what the edge swaps in when they have been made, without reading
    /// the deploy's files again.
    pub fn with_variants(&self, variants: Vec<IndexedVariant>) -> Self {
        let by_hash = variants_by_hash(variants);
        let mut swapped = Vec::new();
        let entries = self
            .entries
            .iter()
            .map(|entry| {
                let variants = by_hash.get(&entry.original.sha256).map_or(&[][..], Vec::as_slice);
                let variants_start = u32::try_from(swapped.len()).unwrap_or(u32::MAX);
                swapped.extend_from_slice(variants);
                Entry {
                    variants_start,
                    variants_len: variants.len() as u8,
                    ..entry.clone()
                }
            })
            .collect();
        swapped.shrink_to_fit();
        DeployIndex {
            deploy_id: self.deploy_id.clone(),
            paths: self.paths.clone(),
            entries,
            variants: swapped,
            by_path: self.by_path.clone(),
            hasher: self.hasher.clone(),
            rules: self.rules.clone(),
        }
    }

    /// The memory the index holds, for the edge's bound on it, from its
    /// real sizes: its lists' capacities and its table's buckets (checked
    /// against a counting allocator in `tests/edge_memory.rs`). Held bytes
    /// of small files are not in it: they have a budget of their own.
    pub fn approximate_bytes(&self) -> usize {
        use std::mem::size_of;
        // A hash table's buckets are a power of two, at most 7/8 full (all
        // but one when fewer than 8), each with a control byte, and a
        // group's worth of control bytes more.
        let buckets = match self.by_path.capacity() {
            0 => 0,
            capacity if capacity < 7 => (capacity + 1).next_power_of_two(),
            capacity => (capacity * 8 / 7).next_power_of_two(),
        };
        let table = buckets * (size_of::<u32>() + 1) + 16;
        let whole_keys: usize = self
            .entries
            .iter()
            .map(|entry| &entry.original)
            .chain(self.variants.iter().map(|(_, stored)| stored))
            .map(Stored::heap_bytes)
            .sum();
        size_of::<Self>()
            + self.deploy_id.capacity()
            + self.paths.capacity()
            + self.entries.capacity() * size_of::<Entry>()
            + self.variants.capacity() * size_of::<(Encoding, Stored)>()
            + table
            + whole_keys
            + RULES_ALLOWANCE
    }

    /// How many files the deploy has (the edge's cache weighs deploys by it).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file at `path` (no leading `/`), unless hidden.
    pub fn file(&self, path: &str) -> Option<File<'_>> {
        if HIDDEN.contains(&path) {
            return None;
        }
        let hash = self.hasher.hash_one(path);
        let position = self.by_path.find(hash, |&position| {
            path_at(&self.paths, &self.entries, position) == path
        })?;
        Some(self.view(&self.entries[*position as usize]))
    }

    fn has(&self, path: &str) -> bool {
        self.file(path).is_some()
    }

    fn resolve(&self, path: &str) -> Option<Static> {
        if path.is_empty() || path.ends_with('/') {
            let index = format!("{path}index.html");
            return self.has(&index).then_some(Static::File(index));
        }
        if self.has(path) {
            return Some(Static::File(path.to_owned()));
        }
        if self.has(&format!("{path}/index.html")) {
            return Some(Static::Slash(format!("/{}/", super::path::encode(path))));
        }
        let html = format!("{path}.html");
        self.has(&html).then_some(Static::File(html))
    }

    /// The file a rewrite's target serves: like a request for it, except
    /// that a directory's index is served directly, without a redirect.
    fn resolve_target(&self, path: &str) -> Option<String> {
        match self.resolve(path)? {
            Static::File(file) => Some(file),
            Static::Slash(_) => Some(format!("{path}/index.html")),
        }
    }

    /// The nearest `404.html` for `path`, served with `status`.
    fn not_found(&self, path: &str, status: StatusCode) -> Route {
        let mut dir = path.trim_end_matches('/');
        loop {
            let candidate = if dir.is_empty() {
                "404.html".to_owned()
            } else {
                format!("{dir}/404.html")
            };
            if self.has(&candidate) {
                return Route::File {
                    path: candidate,
                    status,
                };
            }
            if dir.is_empty() {
                return Route::Plain(status);
            }
            dir = dir.rsplit_once('/').map_or("", |(parent, _)| parent);
        }
    }

    /// What answers `request`, whose `path` is `/` followed by `decoded`,
    /// the decoded path inside the deploy (see `path::decode`).
    pub fn route(&self, decoded: &str, request: &Request<'_>) -> Route {
        self.route_with_rule(decoded, request).0
    }

    /// Like [`DeployIndex::route`], with the redirect rule that decided,
    /// if one did.
    pub fn route_with_rule(&self, decoded: &str, request: &Request<'_>) -> (Route, Option<MatchedRule>) {
        let found = self.resolve(decoded);
        if let Some((action, rule)) = self.rules.matching_redirect(request, found.is_some()) {
            let route = match action {
                Action::Redirect { status, location } => Route::Redirect {
                    status: StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
                    location,
                },
                Action::Rewrite { status, path } => {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                    let target = path.trim_start_matches('/');
                    match self.resolve_target(target) {
                        Some(file) => Route::File { path: file, status },
                        // A rewrite to nothing is a missing page where it was
                        // asked for; a 404/410/451 rule keeps its status.
                        None if status == StatusCode::OK => self.not_found(decoded, StatusCode::NOT_FOUND),
                        None => self.not_found(decoded, status),
                    }
                }
                Action::Proxy { url, headers, signed } => Route::Proxy { url, headers, signed },
            };
            return (route, Some(rule));
        }
        let route = match found {
            Some(Static::File(path)) => Route::File {
                path,
                status: StatusCode::OK,
            },
            Some(Static::Slash(location)) => Route::Redirect {
                status: StatusCode::MOVED_PERMANENTLY,
                location,
            },
            None => self.not_found(decoded, StatusCode::NOT_FOUND),
        };
        (route, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jamstack_rules::{RuleSet, parse_redirects_file};

    fn index(paths: &[&str], redirects: &str) -> DeployIndex {
        let files = paths
            .iter()
            .map(|p| {
                let stored = Stored::new(&"0".repeat(64), 1, &"0".repeat(64));
                ((*p).to_owned(), stored, Vec::new())
            })
            .collect();
        let rules = RuleSet {
            redirects: parse_redirects_file(redirects).unwrap(),
            headers: Vec::new(),
        }
        .compile()
        .unwrap();
        DeployIndex::new(files, rules)
    }

    fn route(index: &DeployIndex, url: &str) -> Route {
        let (raw, query) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
        let decoded = super::super::path::decode(raw).unwrap();
        let path = format!("/{decoded}");
        let request = Request {
            path: &path,
            query,
            ..Request::default()
        };
        index.route(&decoded, &request)
    }

    fn file(path: &str, status: u16) -> Route {
        Route::File {
            path: path.to_owned(),
            status: StatusCode::from_u16(status).unwrap(),
        }
    }

    fn moved(status: u16, location: &str) -> Route {
        Route::Redirect {
            status: StatusCode::from_u16(status).unwrap(),
            location: location.to_owned(),
        }
    }

    #[test]
    fn variants_made_later_are_swapped_in_with_files_and_rules_kept() {
        let contents = DeployContents {
            files: ["index.html", "app.js"]
                .iter()
                .enumerate()
                .map(|(n, path)| crate::db::IndexedFile {
                    path: (*path).into(),
                    sha256: n.to_string().repeat(64),
                    size: 9_000,
                    key: format!("key-{n}"),
                })
                .collect(),
            variants: Vec::new(),
            rules: None,
        };
        let plain = DeployIndex::from_contents("d1", contents);
        assert!(plain.file("index.html").unwrap().variants.is_empty());

        let brotli = IndexedVariant {
            sha256: "0".repeat(64),
            encoding: "br".into(),
            variant_sha256: "f".repeat(64),
            size: 1_200,
            key: "key-br".into(),
        };
        let gzip = IndexedVariant {
            encoding: "gzip".into(),
            key: "key-gz".into(),
            ..brotli.clone()
        };
        let squeezed = plain.with_variants(vec![gzip, brotli]);

        assert_eq!(squeezed.deploy_id, "d1");
        assert_eq!(squeezed.len(), 2);
        let home = squeezed.file("index.html").unwrap();
        assert_eq!(home.original, plain.file("index.html").unwrap().original);
        let keys: Vec<_> = home.variants.iter().map(|(_, v)| v.key()).collect();
        assert_eq!(keys, ["key-br", "key-gz"], "best first");
        assert_eq!(
            home.etag(None),
            "\"0000000000000000000000000000000000000000000000000000000000000000\""
        );
        assert_eq!(
            home.etag(Some(Encoding::Brotli)),
            "\"0000000000000000000000000000000000000000000000000000000000000000-br\""
        );
        assert!(squeezed.file("app.js").unwrap().variants.is_empty());
    }

    #[test]
    fn blob_keys_and_hashes_come_back_as_the_database_gave_them() {
        let sha256 = "0123456789abcdef".repeat(4);
        for key in [
            format!("{sha256}.00c0ffee"),
            format!("{sha256}.ffffffff"),
            sha256.clone(),
            format!("{sha256}.abc"),
            format!("{}.00c0ffee", "f".repeat(64)),
            format!("{}.00c0ffee", sha256.to_uppercase()),
            format!("{sha256}.00C0FFEE"),
        ] {
            let stored = Stored::new(&sha256, 7, &key);
            assert_eq!(stored.key(), key);
            assert_eq!(stored.sha256(), sha256);
        }
        assert_eq!(
            Stored::new(&sha256, 7, &format!("{sha256}.00c0ffee")).heap_bytes(),
            0
        );
    }

    #[test]
    fn paths_follow_the_one_trailing_slash_rule() {
        let site = index(
            &["index.html", "docs/index.html", "about.html", "raw", "404.html"],
            "",
        );
        let table = [
            ("/", file("index.html", 200)),
            ("/docs/", file("docs/index.html", 200)),
            ("/docs", moved(301, "/docs/")),
            ("/about", file("about.html", 200)),
            ("/about.html", file("about.html", 200)),
            ("/raw", file("raw", 200)),
            ("/missing", file("404.html", 404)),
            ("/docs/missing/", file("404.html", 404)),
        ];
        for (url, expected) in table {
            assert_eq!(route(&site, url), expected, "{url}");
        }
    }

    #[test]
    fn the_nearest_404_page_answers_a_missing_path() {
        let site = index(
            &["404.html", "en/404.html", "en/guide/404.html", "de/index.html"],
            "",
        );
        let table = [
            ("/en/guide/missing.html", file("en/guide/404.html", 404)),
            ("/en/guide/", file("en/guide/404.html", 404)),
            ("/en/other/deep/page", file("en/404.html", 404)),
            ("/de/missing", file("404.html", 404)),
            ("/nothing", file("404.html", 404)),
        ];
        for (url, expected) in table {
            assert_eq!(route(&site, url), expected, "{url}");
        }
        let bare = index(&["index.html"], "");
        assert_eq!(route(&bare, "/missing"), Route::Plain(StatusCode::NOT_FOUND));
    }

    #[test]
    fn the_rule_that_decided_is_named_where_it_was_written() {
        let site = index(
            &["index.html", "docs/index.html"],
            "# Moved\n/old  /new  301\n/docs/*  /manual/:splat  302!\n/lang/* /fr/:splat 302 Language=fr,de\n",
        );
        let decided = |url: &str, accept_language: Option<&str>| {
            let decoded = super::super::path::decode(url).unwrap();
            let path = format!("/{decoded}");
            let request = Request {
                path: &path,
                accept_language,
                ..Request::default()
            };
            site.route_with_rule(&decoded, &request)
        };
        let rule = |origin: &str, rule: &str| {
            Some(MatchedRule {
                origin: origin.to_owned(),
                rule: rule.to_owned(),
            })
        };
        assert_eq!(
            decided("/old", None),
            (moved(301, "/new"), rule("_redirects:2", "/old /new 301"))
        );
        // Forced, so it applies over the file.
        assert_eq!(
            decided("/docs/", None),
            (
                moved(302, "/manual/"),
                rule("_redirects:3", "/docs/* /manual/:splat 302!")
            )
        );
        assert_eq!(
            decided("/lang/a", Some("de")).1,
            rule("_redirects:4", "/lang/* /fr/:splat 302 Language=fr,de")
        );
        // Files and 404s are decided by no rule.
        assert_eq!(decided("/", None), (file("index.html", 200), None));
        assert_eq!(decided("/lang/a", None).1, None);
    }

    #[test]
    fn rules_apply_around_the_files() {
        let site = index(
            &[
                "index.html",
                "app/index.html",
                "style.css",
                "_redirects",
                "gone-page.html",
                "404.html",
            ],
            "/old        /            301
/app/*      /app         200
/gone       /gone-page.html 410
/removed    /nowhere     410
/missing/*  /nowhere     200
/*          /index.html  200
",
        );
        let table = [
            ("/old?x=1", moved(301, "/?x=1")),
            // A rewrite to a directory serves its index without redirecting.
            ("/app/settings/profile", file("app/index.html", 200)),
            ("/app/", file("app/index.html", 200)),
            ("/gone", file("gone-page.html", 410)),
            ("/removed", file("404.html", 410)),
            ("/missing/page", file("404.html", 404)),
            ("/style.css", file("style.css", 200)),
            ("/anything/else", file("index.html", 200)),
            // The rule file itself is not served: the SPA fallback answers.
            ("/_redirects", file("index.html", 200)),
        ];
        for (url, expected) in table {
            assert_eq!(route(&site, url), expected, "{url}");
        }
    }
}
