//! Request paths into deploy paths, refusing any that could escape a deploy.

use percent_encoding::percent_decode_str;

/// Decodes a request path into a path inside a deploy, without its leading
/// `/`. `None` for anything that is not plainly inside the deploy: `..` or
/// `.` segments (also when percent-encoded), backslashes, NUL and other
/// control characters, invalid UTF-8. Repeated slashes collapse.
pub fn decode(raw: &str) -> Option<String> {
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.chars().any(|c| c == '\\' || c.is_control()) {
        return None;
    }
    let trailing_slash = decoded.ends_with('/');
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" => {}
            "." | ".." => return None,
            s => segments.push(s),
        }
    }
    let mut path = segments.join("/");
    if trailing_slash && !path.is_empty() {
        path.push('/');
    }
    Some(path)
}

/// Encodes a deploy path for a `Location` header; the rules write their
/// targets with the same encoding.
pub use jamstack_rules::encode_path as encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_request_path_escapes_the_deploy() {
        for raw in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/secret",
            "/%2E%2E%2Fsecret",
            "/a/%2e/b",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/a%00b",
            "/%ff",
        ] {
            assert_eq!(decode(raw), None, "{raw}");
        }
    }

    #[test]
    fn ordinary_paths_decode() {
        assert_eq!(decode("/").as_deref(), Some(""));
        assert_eq!(decode("/about/").as_deref(), Some("about/"));
        assert_eq!(decode("//a///b.html").as_deref(), Some("a/b.html"));
        assert_eq!(
            decode("/caf%C3%A9%20menu.html").as_deref(),
            Some("café menu.html")
        );
        assert_eq!(encode("café menu"), "caf%C3%A9%20menu");
    }
}
