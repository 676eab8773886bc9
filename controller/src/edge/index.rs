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

use super::respond;
use crate::db::{DeployContents, IndexedVariant};
use crate::deploys::compress::Encoding;
use axum::http::{HeaderValue, StatusCode};
use jamstack_rules::{Action, MatchedRule, Request, RuleSet, Rules};
use std::collections::HashMap;

/// A stored representation of a file: the file itself or a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
    pub key: String,
    /// The representation's strong ETag, made once when the deploy is
    /// loaded rather than on every request.
    pub etag: HeaderValue,
    /// Its bytes, once served, when it is small and the edge's budget for
    /// such bytes allows (`EdgeCache::bytes_of`): a request for a hot small
    /// file then touches nothing outside the deploy's index.
    pub held: HeldBytes,
}

/// The bytes of a small file kept beside its index entry, counted against
/// the edge's budget for them until the index is dropped.
#[derive(Default)]
pub struct HeldBytes(std::sync::OnceLock<Held>);

pub(super) struct Held {
    pub bytes: bytes::Bytes,
    /// Bytes held by all indexes; this hold gives its share back on drop.
    pub total: std::sync::Arc<std::sync::atomic::AtomicU64>,
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
        let _ = self.0.set(held);
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
    /// The file itself: its ETag is its content hash.
    pub fn original(sha256: String, size: u64, key: String) -> Self {
        let etag = header_value(format!("\"{sha256}\""));
        Stored {
            sha256,
            size,
            key,
            etag,
            held: HeldBytes::default(),
        }
    }

    /// The `encoding` variant of the file whose hash is `of`: its ETag is
    /// the file's hash and the coding, so each representation has its own.
    pub fn variant(of: &str, encoding: Encoding, sha256: String, size: u64, key: String) -> Self {
        Stored {
            sha256,
            size,
            key,
            etag: header_value(format!("\"{of}-{}\"", encoding.as_str())),
            held: HeldBytes::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub original: Stored,
    /// Compressed variants, best first (`Encoding::ALL` order).
    pub variants: Vec<(Encoding, Stored)>,
    /// What its path says, worked out once: `Content-Type`, whether the
    /// name is fingerprinted (cacheable as immutable unless it is HTML) and
    /// whether the answer varies by `Accept-Encoding`.
    pub content_type: HeaderValue,
    pub immutable_name: bool,
    pub compressible: bool,
}

impl StoredFile {
    pub fn new(path: &str, original: Stored, variants: Vec<(Encoding, Stored)>) -> Self {
        StoredFile {
            original,
            variants,
            content_type: header_value(respond::content_type(path)),
            immutable_name: !respond::is_html(path) && respond::is_fingerprinted(path),
            compressible: crate::deploys::compress::is_compressible(path),
        }
    }
}

/// Variants by the hash of the blob they are of, best first.
fn variants_by_hash(variants: Vec<IndexedVariant>) -> HashMap<String, Vec<(Encoding, Stored)>> {
    let mut by_hash: HashMap<String, Vec<(Encoding, Stored)>> = HashMap::new();
    for variant in variants {
        let Some(encoding) = Encoding::parse(&variant.encoding) else {
            continue;
        };
        let stored = Stored::variant(
            &variant.sha256,
            encoding,
            variant.variant_sha256,
            variant.size as u64,
            variant.key,
        );
        by_hash
            .entry(variant.sha256)
            .or_default()
            .push((encoding, stored));
    }
    for variants in by_hash.values_mut() {
        variants.sort_by_key(|(encoding, _)| Encoding::ALL.iter().position(|e| e == encoding));
    }
    by_hash
}

/// What a stored representation holds on the heap: its hash, key and ETag.
fn stored_heap(stored: &Stored) -> usize {
    stored.sha256.capacity() + stored.key.capacity() + stored.etag.len()
}

/// A deploy's compiled rules, counted at a flat rate: most deploys have a
/// handful, and a deploy with thousands is one of few.
const RULES_ALLOWANCE: usize = 1024;

/// Values made from hashes and MIME types are always valid header values.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

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

#[derive(Debug, Default)]
pub struct DeployIndex {
    pub deploy_id: String,
    files: HashMap<String, StoredFile>,
    pub rules: Rules,
}

/// Files the edge never serves: the rule files at the root.
const HIDDEN: [&str; 2] = ["_redirects", "_headers"];

enum Static {
    File(String),
    /// `dir` has an index: canonical with a trailing slash.
    Slash(String),
}

impl DeployIndex {
    pub fn new(files: HashMap<String, StoredFile>, rules: Rules) -> Self {
        DeployIndex {
            deploy_id: String::new(),
            files,
            rules,
        }
    }

    /// Builds the index from what the database holds. Stored rules were
    /// checked when the deploy was finalized; should they not compile now
    /// (a newer server being stricter), the deploy is served without them
    /// and the reason logged.
    pub fn from_contents(deploy_id: &str, contents: DeployContents) -> Self {
        let by_hash = variants_by_hash(contents.variants);
        let files = contents
            .files
            .into_iter()
            .map(|file| {
                let variants = by_hash.get(&file.sha256).cloned().unwrap_or_default();
                let original = Stored::original(file.sha256, file.size as u64, file.key);
                let stored = StoredFile::new(&file.path, original, variants);
                (file.path, stored)
            })
            .collect();
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
        DeployIndex {
            deploy_id: deploy_id.to_owned(),
            files,
            rules,
        }
    }

    /// The same deploy with `variants` as its files' compressed variants:
    /// what the edge swaps in when they have been made, without reading
    /// the deploy's files again.
    pub fn with_variants(&self, variants: Vec<IndexedVariant>) -> Self {
        let by_hash = variants_by_hash(variants);
        let files = self
            .files
            .iter()
            .map(|(path, file)| {
                let variants = by_hash.get(&file.original.sha256).cloned().unwrap_or_default();
                let original = file.original.clone();
                (
                    path.clone(),
                    StoredFile {
                        original,
                        variants,
                        ..file.clone()
                    },
                )
            })
            .collect();
        DeployIndex {
            deploy_id: self.deploy_id.clone(),
            files,
            rules: self.rules.clone(),
        }
    }

    /// The memory the index holds, for the edge's bound on it, from its
    /// real sizes: the map's table, and each file's path, hashes, keys,
    /// ETags, content type and variants (checked against a counting
    /// allocator in `tests/edge_memory.rs`). Held bytes of small files are
    /// not in it: they have a budget of their own.
    pub fn approximate_bytes(&self) -> usize {
        use std::mem::size_of;
        // A hash table's buckets are a power of two, at most 7/8 full,
        // each with a control byte.
        let buckets = (self.files.capacity() * 8 / 7 + 1).next_power_of_two();
        let table = buckets * (size_of::<(String, StoredFile)>() + 1);
        let files: usize = self
            .files
            .iter()
            .map(|(path, file)| {
                path.capacity()
                    + stored_heap(&file.original)
                    + file.content_type.len()
                    + file.variants.capacity() * size_of::<(Encoding, Stored)>()
                    + file
                        .variants
                        .iter()
                        .map(|(_, stored)| stored_heap(stored))
                        .sum::<usize>()
            })
            .sum();
        table + files + size_of::<Self>() + self.deploy_id.capacity() + RULES_ALLOWANCE
    }

    /// How many files the deploy has (the edge's cache weighs deploys by it).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file at `path` (no leading `/`), unless hidden.
    pub fn file(&self, path: &str) -> Option<&StoredFile> {
        if HIDDEN.contains(&path) {
            return None;
        }
        self.files.get(path)
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
                let stored = Stored::original("0".repeat(64), 1, "0".repeat(64));
                ((*p).to_owned(), StoredFile::new(p, stored, Vec::new()))
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
        let keys: Vec<_> = home.variants.iter().map(|(_, v)| v.key.as_str()).collect();
        assert_eq!(keys, ["key-br", "key-gz"], "best first");
        assert!(squeezed.file("app.js").unwrap().variants.is_empty());
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
