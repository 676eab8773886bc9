//! Answering with a file: which representation (`Accept-Encoding`), whether
//! the client's copy is current (`If-None-Match`), which bytes (`Range`),
//! how long it may be cached (`Cache-Control`), and from where (the memory
//! cache for small files, a stream from the blob store for the rest).

use super::index::{Stored, StoredFile};
use crate::deploys::compress::Encoding;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use std::ops::Range;

/// `Cache-Control` of what may change on the next publish: caches keep it
/// but ask every time (cheap, with the ETag).
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";
/// `Cache-Control` of what never changes: permalinks and fingerprinted files.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One answer with a file.
#[derive(Debug)]
pub struct FileAnswer<'a> {
    pub path: &'a str,
    pub file: &'a StoredFile,
    pub status: StatusCode,
    /// Served on a permalink hostname.
    pub permalink: bool,
}

pub async fn file_response(
    state: &AppState,
    answer: FileAnswer<'_>,
    method: &Method,
    request: &HeaderMap,
) -> anyhow::Result<Response> {
    let FileAnswer {
        path,
        file,
        status,
        permalink,
    } = answer;
    let original = &file.original;
    let wants_range = status == StatusCode::OK
        && request.contains_key(header::RANGE)
        && header_str(request, header::IF_RANGE).is_none_or(|tag| tag.as_bytes() == original.etag.as_bytes());
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
    let cache_control = if status == StatusCode::OK && (permalink || file.immutable_name) {
        IMMUTABLE
    } else {
        REVALIDATE
    };

    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(header::ETAG, stored.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if file.compressible {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if status == StatusCode::OK
        && none_match(
            header_str(request, header::IF_NONE_MATCH),
            stored.etag.to_str().unwrap_or(""),
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
    state: &AppState,
    path: &str,
    stored: &Stored,
    range: Option<Range<u64>>,
) -> anyhow::Result<Body> {
    if state.edge.fits_in_memory(stored.size) {
        let Some(bytes) = state.edge.bytes_of(state.blobs.as_ref(), stored).await? else {
            anyhow::bail!("blob {} of {path} is missing from the blob store", stored.key);
        };
        // `Content-Length` was said from the recorded size: bytes of another
        // length would run into the connection's next answer.
        if bytes.len() as u64 != stored.size {
            anyhow::bail!(
                "blob {} of {path} holds {} bytes where {} are recorded; the blob store was changed behind the controller",
                stored.key,
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
    match state.blobs.get(&stored.key, range).await? {
        Some(stream) => Ok(Body::from_stream(stream)),
        None => anyhow::bail!("blob {} of {path} is missing from the blob store", stored.key),
    }
}

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
            (Some(a), Some(b)) => RangeRequest::Part(a..(b + 1).min(size)),
            _ => RangeRequest::Whole,
        },
        (true, true) => RangeRequest::Whole,
    }
}

pub fn is_html(path: &str) -> bool {
    path.ends_with(".html") || path.ends_with(".htm")
}

/// Whether a file name carries a content hash, as bundlers write them:
/// `app.3f2a9c1b.js`, `main-5d41402abc4b2a76.css`, `index-BxK3d9aQ.js`.
/// Such a name never changes content, so it is cached as immutable.
pub fn is_fingerprinted(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    stem.split(['.', '-', '_']).skip(1).any(|token| {
        let hex = token.len() >= 8
            && token.bytes().all(|b| b.is_ascii_hexdigit())
            && token.bytes().any(|b| b.is_ascii_digit())
            && token.bytes().any(|b| b.is_ascii_alphabetic());
        let base64 = (8..=24).contains(&token.len())
            && token.bytes().all(|b| b.is_ascii_alphanumeric())
            && token.bytes().any(|b| b.is_ascii_digit())
            && token.bytes().any(|b| b.is_ascii_uppercase())
            && token.bytes().any(|b| b.is_ascii_lowercase());
        hex || base64
    })
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

    #[test]
    fn fingerprinted_names_are_told_from_ordinary_ones() {
        for yes in [
            "assets/app.3f2a9c1b.js",
            "main-5d41402abc4b2a76.css",
            "index-BxK3d9aQ.js",
            "chunk.a1b2c3d4e5.js",
            "_next/static/chunks/webpack-0f1e2d3c4b5a6978.js",
        ] {
            assert!(is_fingerprinted(yes), "{yes}");
        }
        for no in [
            "app.js",
            "jquery-3.6.0.min.js",
            "analytics-20240101.js",
            "version2release.js",
            "deadbeefcafe.js",
            "bootstrap-bundle.css",
            "photo_20240101_final.jpg",
        ] {
            assert!(!is_fingerprinted(no), "{no}");
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
