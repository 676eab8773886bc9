//! Which images builds may use and when they are pulled: the runner's
//! policy, the same whatever engine runs the containers.

/// When to pull an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Use the engine's copy when there is one; images tagged `latest` (or
    /// untagged) are pulled every time, as their tag moves.
    #[default]
    IfNotPresent,
    Always,
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "if-not-present" => Ok(PullPolicy::IfNotPresent),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "`{other}` is not a pull policy; use if-not-present, always or never"
            )),
        }
    }
}

/// `image` with its tag spelled out (`node` is `node:latest`).
pub fn full_image_ref(image: &str) -> String {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || name.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// Whether `image` names the moving `latest` tag.
pub fn is_latest(image: &str) -> bool {
    !image.contains('@') && full_image_ref(image).ends_with(":latest")
}

/// Whether `image` matches one of `patterns` (`*` matches anything,
/// including `/`). An empty list allows every image.
pub fn image_allowed(image: &str, patterns: &[String]) -> bool {
    let full = full_image_ref(image);
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| wildcard_match(p, image) || wildcard_match(p, &full))
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_matched_against_the_allow_list_with_their_tag_spelled_out() {
        let allowed = vec!["jamstack/*".to_owned(), "node:*".to_owned()];
        assert!(image_allowed("jamstack/busybox:1", &allowed));
        assert!(image_allowed("node:20-slim", &allowed));
        assert!(image_allowed("node", &allowed), "node is node:latest");
        assert!(!image_allowed("evil/node:20", &allowed));
        assert!(!image_allowed("nodejs:20", &allowed));
        assert!(image_allowed("anything:1", &[]));
        assert!(image_allowed("a/b:1", &["*".to_owned()]));
    }

    #[test]
    fn latest_means_the_tag_latest_or_no_tag_at_all() {
        assert!(is_latest("node"));
        assert!(is_latest("node:latest"));
        assert!(is_latest("registry:5000/team/node"));
        assert!(!is_latest("registry:5000/team/node:20"));
        assert!(!is_latest("node@sha256:abcd"));
        assert_eq!(full_image_ref("registry:5000/x"), "registry:5000/x:latest");
    }
}
