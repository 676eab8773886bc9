//! Answering with a file: which representation (`Accept-Encoding`), whether
//! the client's copy is current (`If-None-Match`), which bytes (`Range`),
//! how long it may be cached (`Cache-Control`), and from where (the memory
//! cache for small files, a stream from the blob store for the rest).

use super::Edge;
use super::index::{File, Stored};
use crate::deploys::compress::Encoding;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use std::ops::Range;

/// `Cache-Control` of what may change on the next publish: caches keep it
/// but ask every time (cheap, with the ETag).
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";
/// `Cache-Control` of what never changes: permalinks and fingerprinted files.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// [`REVALIDATE`] of a protected answer: only the visitor's own browser
/// keeps it.
pub const PRIVATE_REVALIDATE: &str = "private, max-age=0, must-revalidate";
/// [`IMMUTABLE`] of a protected answer.
pub const PRIVATE_IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// One answer with a file.
#[derive(Debug)]
pub struct FileAnswer<'a> {
    pub path: &'a str,
    pub file: File<'a>,
    pub status: StatusCode,
    /// Served on a permalink hostname.
    pub permalink: bool,
    /// Protected: no shared cache may keep it, and it varies by cookie.
    /// Said here rather than changed afterwards, because every answer of a
    /// protected hostname pays for it.
    pub private: bool,
}

pub async fn file_response(
    state: &Edge,
    answer: FileAnswer<'_>,
    method: &Method,
    request: &HeaderMap,
) -> anyhow::Result<Response> {
    let FileAnswer {
        path,
        file,
        status,
        permalink,
        private,
    } = answer;
    let original = file.original;
    let wants_range = status == StatusCode::OK
        && request.contains_key(header::RANGE)
        && header_str(request, header::IF_RANGE)
            .is_none_or(|tag| tag.as_bytes() == file.etag(None).as_bytes());
    // A range is of the file itself; otherwise the best variant accepted.
    let accept_encoding = header_str(request, header::ACCEPT_ENCODING);
    let (encoding, stored) = match file
        .variants
        .iter()
        .find(|(encoding, _)| !wants_range && accepts(accept_encoding, *encoding))
    {
        Some((encoding, stored)) => (Some(*encoding), stored),
        None => (None, original),
    };
    let immutable = status == StatusCode::OK && (permalink || file.immutable_name);
    let cache_control = match (immutable, private) {
        (true, false) => IMMUTABLE,
        (false, false) => REVALIDATE,
        (true, true) => PRIVATE_IMMUTABLE,
        (false, true) => PRIVATE_REVALIDATE,
    };
    let vary = match (file.compressible, private) {
        (true, false) => Some("Accept-Encoding"),
        (true, true) => Some("Accept-Encoding, Cookie"),
        (false, true) => Some("Cookie"),
        (false, false) => None,
    };

    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    // Room for the edge's headers, a deploy's own and a protected answer's
    // at once: growing the map midway moves every entry.
    headers.reserve(12);
    let etag = file.etag(encoding);
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Some(vary) = vary {
        headers.insert(header::VARY, HeaderValue::from_static(vary));
    }
    if status == StatusCode::OK
        && none_match(
            header_str(request, header::IF_NONE_MATCH),
            etag.to_str().unwrap_or(""),
        )
    {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    headers.insert(header::CONTENT_TYPE, file.content_type.clone());
    if let Some(encoding) = encoding {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.as_str()),
        );
    }
    if status == StatusCode::OK {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let mut range = None;
    let mut answered = status;
    if wants_range {
        match parse_range(header_str(request, header::RANGE).unwrap_or(""), stored.size) {
            RangeRequest::Whole => {}
            RangeRequest::Part(part) => {
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes {}-{}/{}", part.start, part.end - 1, stored.size))?,
                );
                answered = StatusCode::PARTIAL_CONTENT;
                range = Some(part);
            }
            RangeRequest::Unsatisfiable => {
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{}", stored.size))?,
                );
                headers.remove(header::CONTENT_TYPE);
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                return Ok(response);
            }
        }
    }
    let length = range.as_ref().map_or(stored.size, |r| r.end - r.start);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    *response.status_mut() = answered;
    if method == Method::HEAD {
        return Ok(response);
    }
    *response.body_mut() = body_of(state, path, stored, range).await?;
    Ok(response)
}

async fn body_of(
    state: &Edge,
    path: &str,
    stored: &Stored,
    range: Option<Range<u64>>,
) -> anyhow::Result<Body> {
    if state.cache.fits_in_memory(stored.size) {
        let Some(bytes) = state.cache.bytes_of(state.blobs.as_ref(), stored).await? else {
            anyhow::bail!("blob {} of {path} is missing from the blob store", stored.key());
        };
        // `Content-Length` was said from the recorded size: bytes of another
        // length would run into the connection's next answer.
        if bytes.len() as u64 != stored.size {
            anyhow::bail!(
                "blob {} of {path} holds {} bytes where {} are recorded; the blob store was changed behind the controller",
                stored.key(),
                bytes.len(),
                stored.size
            );
        }
        let bytes = match range {
            Some(range) => bytes.slice(range.start as usize..range.end as usize),
            None => bytes,
        };
        return Ok(Body::from(bytes));
    }
    let key = stored.key();
    match state.blobs.get(&key, range).await? {
        Some(stream) => Ok(Body::from_stream(stream)),
        None => anyhow::bail!("blob {key} of {path} is missing from the blob store"),
    }
}

// The three parsers below are written by hand on purpose: every answer of
// the edge runs them, and the crates that do the job are slower. Timed over
// 5 million calls each, header lookup included (release build, 2 cores):
// `Range: bytes=100-199` takes 54-62 ns here, 87-92 ns with `headers::Range`
// and 154-183 ns with `http-range-header`; `If-None-Match` with one tag
// 49-58 ns here, 90-92 ns with `headers::IfNoneMatch`. `headers` 0.4 has no
// `Accept-Encoding` (110-117 ns here). The tables in the tests below pin
// their behaviour to RFC 9110.

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `If-None-Match` (weak comparison, as RFC 9110 asks for it).
fn none_match(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|value| {
        value
            .split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == etag || tag == "*")
    })
}

/// Whether `Accept-Encoding` allows `encoding` (by name or `*`, q > 0).
pub fn accepts(header: Option<&str>, encoding: Encoding) -> bool {
    let mut star = false;
    for item in header.unwrap_or("").split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case(encoding.as_str()) {
            return q > 0.0;
        }
        if coding == "*" {
            star = q > 0.0;
        }
    }
    star
}

#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, malformed, or several): send everything.
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// One `bytes=` range of a `size`-byte body.
pub fn parse_range(header: &str, size: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let parse = |text: &str| text.parse::<u64>().ok();
    match (start.is_empty(), end.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match parse(end) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part(size.saturating_sub(n)..size),
            None => RangeRequest::Whole,
        },
        // `a-`: from a to the end.
        (false, true) => match parse(start) {
            Some(a) if a < size => RangeRequest::Part(a..size),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        (false, false) => match (parse(start), parse(end)) {
            (Some(a), Some(b)) if a > b => RangeRequest::Whole,
            (Some(a), Some(_)) if a >= size => RangeRequest::Unsatisfiable,
            // `b` may be the largest number there is: its end saturates.
            (Some(a), Some(b)) => RangeRequest::Part(a..b.saturating_add(1).min(size)),
            _ => RangeRequest::Whole,
        },
        (true, true) => RangeRequest::Whole,
    }
}

pub fn is_html(path: &str) -> bool {
    path.ends_with(".html") || path.ends_with(".htm")
}

/// Whether a path names its content, so that what it serves can never
/// change and may be cached for a year (`immutable`). Guessing wrong the
/// other way is cheap (a browser asks again and gets a 304), guessing wrong
/// this way leaves a changed file stale for a year: only names the build
/// tools make from a content hash count.
///
/// - Folders whose every file is content-addressed by their tool:
///   Next.js `_next/static/`, SvelteKit `_app/immutable/`.
/// - A lowercase hex hash of 8 or more characters after the name (or of
///   16 or more as the whole name: webpack's `[hash][ext]`), as
///   webpack (`[contenthash]`, 20 by default; create-react-app 8), Hugo
///   (`main.<sha256>.css`), Parcel, Angular, Gatsby and jekyll-assets
///   write it: `main.3f2a9c1b.js`, `app-5d41402abc4b2a76.css`. It has
///   digits and letters, and a short one (under 16) is not just letters
///   then digits (or digits then letters): `cafe2024` and `beef1234`
///   are words, not hashes.
/// - Hugo's processed images, `<name>_hu<md5 hex>_<size>_<options>.jpg`.
/// - Vite's and Rollup's `[name]-[hash]` (Astro's `[name].[hash]`): eight
///   base64url characters (`A-Z a-z 0-9 _ -`, so a hash may even hold a
///   `-`) ending the name after a `-` or `.`: `index-BxE3k9aQ.js`,
///   `index-B-hxoZcc.css`. Eight such characters are also how people
///   name things (`hero-Banner01.webp`, `logo-2xRetina.png`,
///   `bg-800x600w.jpg`), so they count only when they look random: both
///   upper and lower case letters, not letters followed only by digits
///   (`Banner01`, `IMG00123`), and no four letters of one case in a row
///   (`Retina`, `Photo`, `HERO`: words). About one real hash in six fails
///   this and is revalidated; no word-like name passes.
///
/// Eleventy and Jekyll put no hash in their names; esbuild's upper-case
/// base32 hashes are revalidated too.
pub fn is_fingerprinted(path: &str) -> bool {
    if path.starts_with("_next/static/") || path.starts_with("_app/immutable/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.split_once('.').map_or(name, |(first, _)| first);
    let all_but_extension = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let hex = all_but_extension
        .split(['.', '-', '_', '~'])
        .enumerate()
        .any(|(index, token)| {
            let hugo_image = token
                .strip_prefix("hu")
                .is_some_and(|md5| md5.len() == 32 && is_hex_hash(md5));
            // The first token is the name, unless it is a long hash
            // itself (webpack's asset modules: `[hash][ext]`).
            (index > 0 || token.len() >= 16) && is_hex_hash(token) || index > 0 && hugo_image
        });
    hex || is_base64url_hash_suffix(all_but_extension) || is_base64url_hash_suffix(stem)
}

fn is_hex_hash(token: &str) -> bool {
    let bytes = token.as_bytes();
    if bytes.len() < 8 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let runs = 1 + bytes
        .windows(2)
        .filter(|pair| pair[0].is_ascii_digit() != pair[1].is_ascii_digit())
        .count();
    let mixed = bytes.iter().any(u8::is_ascii_digit) && bytes.iter().any(u8::is_ascii_alphabetic);
    mixed && (bytes.len() >= 16 || runs >= 3)
}

/// Whether `stem` ends in `-XXXXXXXX` or `.XXXXXXXX`, eight base64url
/// characters that look like a hash rather than a word (see
/// [`is_fingerprinted`]).
fn is_base64url_hash_suffix(stem: &str) -> bool {
    let bytes = stem.as_bytes();
    if bytes.len() < 10 {
        return false;
    }
    let (head, hash) = bytes.split_at(bytes.len() - 8);
    let separator = head[head.len() - 1];
    if !matches!(separator, b'-' | b'.')
        || !hash
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return false;
    }
    let both_cases = hash.iter().any(u8::is_ascii_uppercase) && hash.iter().any(u8::is_ascii_lowercase);
    let letters_then_digits = {
        let letters = hash.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        hash[letters..].iter().all(u8::is_ascii_digit)
    };
    let mut longest_same_case = 0;
    let mut run = 0;
    let mut previous: Option<bool> = None;
    for b in hash {
        let case = b.is_ascii_alphabetic().then(|| b.is_ascii_uppercase());
        run = match case {
            Some(upper) if previous == Some(upper) => run + 1,
            Some(_) => 1,
            None => 0,
        };
        previous = case;
        longest_same_case = longest_same_case.max(run);
    }
    both_cases && !letters_then_digits && longest_same_case < 4
}

pub fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    match mime.type_() {
        mime_guess::mime::TEXT => format!("{mime}; charset=utf-8"),
        _ if mime.subtype() == mime_guess::mime::JAVASCRIPT || mime.subtype() == mime_guess::mime::JSON => {
            format!("{mime}; charset=utf-8")
        }
        _ => mime.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_text_say_their_charset() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a/style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        use RangeRequest::*;
        let table = [
            ("bytes=0-4", 10, Part(0..5)),
            ("bytes=5-", 10, Part(5..10)),
            ("bytes=-3", 10, Part(7..10)),
            ("bytes=-30", 10, Part(0..10)),
            ("bytes=8-100", 10, Part(8..10)),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=5-2", 10, Whole),
            ("bytes=0-1,4-5", 10, Whole),
            ("items=0-1", 10, Whole),
            ("bytes=x-1", 10, Whole),
        ];
        for (header, size, expected) in table {
            assert_eq!(parse_range(header, size), expected, "{header} of {size}");
        }
    }

    /// Found by `fuzz_range_headers`: `last + 1` overflowed, which panics
    /// the request in a debug build and, wrapped to 0, made an inverted
    /// range in a release one.
    #[test]
    fn a_range_ending_at_the_largest_byte_number_is_served_to_the_end_instead_of_overflowing() {
        let largest = u64::MAX;
        assert_eq!(
            parse_range(&format!("bytes=0-{largest}"), 10),
            RangeRequest::Part(0..10)
        );
        assert_eq!(
            parse_range(&format!("bytes=3-{largest}"), 10),
            RangeRequest::Part(3..10)
        );
        assert_eq!(
            parse_range(&format!("bytes={largest}-{largest}"), 10),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn encodings_are_accepted_by_name_or_star_unless_q_is_zero() {
        assert!(accepts(Some("gzip, deflate, br"), Encoding::Brotli));
        assert!(accepts(Some("gzip;q=0.5"), Encoding::Gzip));
        assert!(!accepts(Some("gzip;q=0"), Encoding::Gzip));
        assert!(!accepts(Some("gzip"), Encoding::Brotli));
        assert!(accepts(Some("*"), Encoding::Brotli));
        assert!(!accepts(Some("*, br;q=0"), Encoding::Brotli));
        assert!(!accepts(None, Encoding::Gzip));
        assert!(!accepts(Some("identity"), Encoding::Gzip));
    }

    /// File names as the build tools write them (from their documentation
    /// and real build outputs), each with whether it names its content.
    #[test]
    fn only_names_carrying_a_content_hash_are_cached_as_immutable() {
        let table: &[(&str, &str, bool)] = &[
            // Hugo: `resources.Fingerprint` (SHA-256 by default), processed
            // images; everything else keeps its name.
            (
                "hugo",
                "css/main.min.3e5e0a4f1c6b9f8d7e2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e.css",
                true,
            ),
            ("hugo", "js/bundle.min.6b1f4bd5c1e3e41a52e4e0b7fbe2d3a9.js", true),
            (
                "hugo",
                "posts/trip/sunset_hu3d03a01dcc18bc5be0e67db3d8d209a6_70895_600x0_resize_q75_box.jpg",
                true,
            ),
            ("hugo", "posts/trip/sunset.jpg", false),
            ("hugo", "css/main.css", false),
            ("hugo", "images/hero-Banner01.webp", false),
            ("hugo", "fonts/Inter-Regular.woff2", false),
            ("hugo", "favicon-32x32.png", false),
            // Vite (Rollup): `assets/[name]-[hash]`, base64url, 8 characters.
            ("vite", "assets/index-BxE3k9aQ.js", true),
            ("vite", "assets/index-D8b4DHJx.css", true),
            ("vite", "assets/index-CAbHEk5E.js", true),
            ("vite", "assets/react-CHdo91hT.svg", true),
            ("vite", "assets/vendor-B_nzjSx9.js", true),
            ("vite", "assets/index-BaQW3Dz_.css", true),
            ("vite", "assets/index-B-hxoZcc.css", true),
            ("vite", "assets/hero-Banner01.webp", false),
            ("vite", "assets/logo-2xRetina.png", false),
            ("vite", "assets/bg-800x600w.jpg", false),
            ("vite", "assets/photo-IMG00123.jpg", false),
            ("vite", "assets/Inter-Variable.woff2", false),
            ("vite", "vite.svg", false),
            // Astro: `_astro/[name].[hash]`.
            ("astro", "_astro/index.Bx3kJ9aQ.css", true),
            ("astro", "_astro/hoisted.Cq7Lmf2N.js", true),
            // webpack: `[contenthash]` (20 hex by default; CRA takes 8).
            ("webpack", "main.7d3f1f8a1b2c3d4e5f60.js", true),
            ("webpack", "static/js/main.8b2c1e2a.js", true),
            ("webpack", "static/js/787.c4e7f8f2.chunk.js", true),
            ("webpack", "static/css/main.073c9b0a.css", true),
            (
                "webpack",
                "static/media/logo.6ce24c58023cc2f8fd88fe9d219db6c6.svg",
                true,
            ),
            ("webpack", "runtime~main.0a1b2c3d4e5f60718293.js", true),
            ("webpack", "app-3f0c1b2e4c5d6a7b8c9d.js", true),
            ("webpack", "3b7d0a7e9c1f2e4d5a6b.png", true),
            ("webpack", "main.js", false),
            ("webpack", "static/js/jquery-3.6.0.min.js", false),
            ("webpack", "bootstrap.bundle.min.js", false),
            // Next.js: everything under `_next/static` is content-addressed.
            ("next", "_next/static/chunks/webpack-0f1e2d3c4b5a6978.js", true),
            ("next", "_next/static/chunks/pages/_app-7a1c2b3d4e5f6a7b.js", true),
            ("next", "_next/static/css/a1b2c3d4e5f6a7b8.css", true),
            (
                "next",
                "_next/static/x0vTPjy-9cS_VpDWHR4Zv/_buildManifest.js",
                true,
            ),
            ("next", "_next/static/media/hero.6a1f2e3d.webp", true),
            ("next", "favicon.ico", false),
            ("next", "images/hero-Banner01.webp", false),
            // Jekyll: no hashes.
            ("jekyll", "assets/main.css", false),
            ("jekyll", "assets/minima-social-icons.svg", false),
            ("jekyll", "assets/images/hero-Banner01.webp", false),
            ("jekyll", "2024/01/15/welcome-to-jekyll.html", false),
            ("jekyll", "feed.xml", false),
            // Eleventy: no hashes (eleventy-img names by a hash first and
            // the width last; revalidated, which is always safe).
            ("eleventy", "css/index.css", false),
            ("eleventy", "img/hero-Banner01.webp", false),
            ("eleventy", "img/6dfd7ac6-600.webp", false),
            ("eleventy", "feed/feed.xml", false),
            // Names people write.
            ("people", "analytics-20240101.js", false),
            ("people", "photo_20240101_final.jpg", false),
            ("people", "menu-cafe2024.pdf", false),
            ("people", "deadbeefcafe.js", false),
            ("people", "version2release.js", false),
            ("people", "report-Q3Summary.pdf", false),
        ];
        for (tool, path, immutable) in table {
            assert_eq!(is_fingerprinted(path), *immutable, "{tool}: {path}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_star() {
        let tag = "\"abc\"";
        assert!(none_match(Some("\"abc\""), tag));
        assert!(none_match(Some("W/\"abc\""), tag));
        assert!(none_match(Some("\"x\", \"abc\""), tag));
        assert!(none_match(Some("*"), tag));
        assert!(!none_match(Some("\"abcd\""), tag));
        assert!(!none_match(None, tag));
    }
}
