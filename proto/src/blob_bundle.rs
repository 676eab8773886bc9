//! Many small blobs in one request: the body of `POST …/blob-bundles`.
//!
//! A deploy is mostly small files, and one request per file costs more
//! than the file: the request, its authentication, a database statement and
//! a trip to the disk each. A bundle carries up to [`MAX_BUNDLE_BLOBS`]
//! blobs of at most [`MAX_BUNDLED_BLOB`] bytes each, [`MAX_BUNDLE_BYTES`] in
//! all; the controller verifies every hash, stores them together and records
//! them in one statement. Larger blobs still go one by one
//! (`PUT …/blobs/{sha256}`), streamed.
//!
//! The body is a sequence of frames, each a header line and the blob's
//! bytes:
//!
//! ```text
//! <SHA-256, 64 lowercase hex digits> <size in decimal>\n<size bytes>
//! ```

use std::fmt;
use std::ops::Range;

/// The body's media type.
pub const CONTENT_TYPE: &str = "application/vnd.jamstack.blob-bundle";

/// The largest bundle body, frame headers included.
pub const MAX_BUNDLE_BYTES: usize = 8 * 1024 * 1024;

/// The largest blob sent in a bundle; larger ones go on their own.
pub const MAX_BUNDLED_BLOB: u64 = 256 * 1024;

/// The most blobs in one bundle.
pub const MAX_BUNDLE_BLOBS: usize = 1024;

/// The longest header line: the hash, a space, the size, the newline.
const MAX_HEADER: usize = 64 + 1 + 20 + 1;

/// The bytes a blob of `size` bytes takes in a bundle.
pub fn frame_len(size: u64) -> usize {
    64 + 1 + size.to_string().len() + 1 + size as usize
}

/// Appends one blob's frame to `body`.
pub fn push_frame(body: &mut Vec<u8>, sha256: &str, bytes: &[u8]) {
    body.extend_from_slice(sha256.as_bytes());
    body.push(b' ');
    body.extend_from_slice(bytes.len().to_string().as_bytes());
    body.push(b'\n');
    body.extend_from_slice(bytes);
}

/// One blob of a bundle: its declared hash and where its bytes are in the
/// body (so the receiver can slice them without copying).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub sha256: String,
    pub bytes: Range<usize>,
}

/// Why a bundle could not be read: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleError {
    /// The blob's place in the bundle, from 1.
    pub frame: usize,
    /// Its header's offset in the body.
    pub offset: usize,
    pub problem: String,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "blob {} of the bundle (at byte {}): {}",
            self.frame, self.offset, self.problem
        )
    }
}

impl std::error::Error for BundleError {}

/// The frames of a bundle body, checked: each header well formed, each
/// blob within [`MAX_BUNDLED_BLOB`] and the body, at most
/// [`MAX_BUNDLE_BLOBS`] of them. Hashes are not verified here.
pub fn parse(body: &[u8]) -> Result<Vec<Frame>, BundleError> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let error = |problem: String| BundleError {
            frame: frames.len() + 1,
            offset: at,
            problem,
        };
        if frames.len() == MAX_BUNDLE_BLOBS {
            return Err(error(format!(
                "a bundle holds at most {MAX_BUNDLE_BLOBS} blobs; send the rest in another"
            )));
        }
        let window = &body[at..body.len().min(at + MAX_HEADER)];
        let Some(newline) = window.iter().position(|b| *b == b'\n') else {
            return Err(error(
                "no header line `<sha256> <size>` ending in a newline".to_owned(),
            ));
        };
        let header = std::str::from_utf8(&window[..newline])
            .map_err(|_| error("the header line is not text".to_owned()))?;
        let (sha256, size) = header
            .split_once(' ')
            .ok_or_else(|| error(format!("the header `{header}` is not `<sha256> <size>`")))?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(error(format!("`{sha256}` is not a lowercase hex SHA-256")));
        }
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error(format!("the size `{size}` is not a decimal number")));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| error(format!("the size `{size}` is too large")))?;
        if size > MAX_BUNDLED_BLOB {
            return Err(error(format!(
                "{size} bytes is over the {MAX_BUNDLED_BLOB} a bundled blob may have; upload it on its own"
            )));
        }
        let start = at + newline + 1;
        let end = start + size as usize;
        if end > body.len() {
            return Err(error(format!(
                "{size} bytes were announced and {} follow",
                body.len() - start
            )));
        }
        frames.push(Frame {
            sha256: sha256.to_owned(),
            bytes: start..end,
        });
        at = end;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    #[test]
    fn frames_pushed_are_read_back_in_order_with_their_bytes() {
        let mut body = Vec::new();
        push_frame(&mut body, &hash(1), b"first");
        push_frame(&mut body, &hash(2), b"");
        push_frame(&mut body, &hash(3), b"line\nbreaks\n");
        assert_eq!(body.len(), frame_len(5) + frame_len(0) + frame_len(12));
        let frames = parse(&body).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].sha256, hash(1));
        assert_eq!(&body[frames[0].bytes.clone()], b"first");
        assert_eq!(&body[frames[1].bytes.clone()], b"");
        assert_eq!(&body[frames[2].bytes.clone()], b"line\nbreaks\n");
        assert_eq!(parse(b"").unwrap(), Vec::new());
    }

    #[test]
    fn a_malformed_bundle_is_refused_naming_the_blob_and_the_offset() {
        let mut body = Vec::new();
        push_frame(&mut body, &hash(1), b"ok");
        let second = body.len();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                format!("{} 10\nshort", hash(2)).into_bytes(),
                "10 bytes were announced and 5 follow",
            ),
            (
                format!("{} x1\n", hash(2)).into_bytes(),
                "is not a decimal number",
            ),
            (
                format!("{} +1\na", hash(2)).into_bytes(),
                "is not a decimal number",
            ),
            (format!("{}\n", hash(2)).into_bytes(), "is not `<sha256> <size>`"),
            (
                format!("{} 1\na", "AB".repeat(32)).into_bytes(),
                "not a lowercase hex SHA-256",
            ),
            (format!("{} 1", hash(2)).into_bytes(), "no header line"),
            (
                format!("{} {}\n", hash(2), MAX_BUNDLED_BLOB + 1).into_bytes(),
                "upload it on its own",
            ),
            (
                format!("{} 99999999999999999999999\n", hash(2)).into_bytes(),
                "no header line",
            ),
        ];
        for (tail, expected) in cases {
            let mut bad = body.clone();
            bad.extend_from_slice(&tail);
            let error = parse(&bad).unwrap_err();
            assert_eq!((error.frame, error.offset), (2, second), "{error}");
            assert!(error.to_string().contains(expected), "{error}");
            assert!(
                error.to_string().starts_with("blob 2 of the bundle (at byte "),
                "{error}"
            );
        }
    }

    #[test]
    fn a_bundle_of_too_many_blobs_is_refused() {
        let mut body = Vec::new();
        for _ in 0..=MAX_BUNDLE_BLOBS {
            push_frame(&mut body, &hash(7), b"x");
        }
        let error = parse(&body).unwrap_err();
        assert_eq!(error.frame, MAX_BUNDLE_BLOBS + 1);
        assert!(error.problem.contains("at most 1024 blobs"), "{error}");
    }
}
