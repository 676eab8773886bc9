//! Secret masking: every secret value is replaced by [`MASK`] before a byte
//! of the build log (or a failure message) leaves the runner.
//!
//! A multi-line secret (a PEM key, say) is masked line by line, since the
//! log is cut into lines before it is masked; lines shorter than
//! [`MIN_SECRET_LEN`] are not masked, or common words and numbers would
//! vanish from every log. Callers that must let out the start of a text
//! whose end may still grow hold back [`Masker::open_tail`] and use
//! [`Masker::mask_prefix`], which never cuts a secret in two.

use aho_corasick::{AhoCorasick, MatchKind};
use std::borrow::Cow;

/// What a secret becomes in the log.
pub const MASK: &str = "***";

/// Secret values (or lines of them) shorter than this are not masked.
pub const MIN_SECRET_LEN: usize = 6;

#[derive(Debug, Clone, Default)]
pub struct Masker {
    matcher: Option<AhoCorasick>,
    patterns: Vec<Vec<u8>>,
    longest: usize,
}

impl Masker {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<&str> = secrets
            .into_iter()
            .flat_map(|secret| secret.split('\n'))
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .filter(|line| line.len() >= MIN_SECRET_LEN)
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        if patterns.is_empty() {
            return Masker::default();
        }
        let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("secret patterns are plain strings");
        Masker {
            matcher: Some(matcher),
            patterns: patterns.iter().map(|p| p.as_bytes().to_vec()).collect(),
            longest,
        }
    }

    /// How many bytes at the end of `text` could be the start of a secret
    /// whose end has not come yet: a writer must hold them back.
    pub fn open_tail(&self, text: &[u8]) -> usize {
        self.patterns
            .iter()
            .filter_map(|secret| {
                (1..secret.len().min(text.len() + 1))
                    .rev()
                    .find(|&k| text.ends_with(&secret[..k]))
            })
            .max()
            .unwrap_or(0)
    }

    /// The length of the longest masked value: a writer that holds back
    /// this many bytes less one never lets out the start of a secret whose
    /// end it has not seen.
    pub fn longest(&self) -> usize {
        self.longest
    }

    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    pub fn mask<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        match &self.matcher {
            Some(matcher) if matcher.is_match(text) => {
                let mut out = Vec::with_capacity(text.len());
                matcher.replace_all_with_bytes(text, &mut out, |_, _, out| {
                    out.extend_from_slice(MASK.as_bytes());
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(text),
        }
    }

    pub fn mask_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.mask(text.as_bytes())).into_owned()
    }

    /// Masks the first `split` bytes of `text`, or a little more when a
    /// secret straddles `split`: returns the masked bytes and how many bytes
    /// of `text` they stand for. A secret that starts before the returned
    /// length is wholly inside it, provided the caller kept at least
    /// [`Masker::longest`] − 1 bytes after `split`.
    pub fn mask_prefix<'t>(&self, text: &'t [u8], split: usize) -> (Cow<'t, [u8]>, usize) {
        let mut split = split.min(text.len());
        if let Some(matcher) = &self.matcher
            && let Some(straddling) = matcher
                .find_iter(text)
                .find(|m| m.start() < split && m.end() > split)
        {
            split = straddling.end();
        }
        (self.mask(&text[..split]), split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(masker: &Masker, text: &str) -> String {
        String::from_utf8(masker.mask(text.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn every_occurrence_of_a_secret_is_masked_and_short_values_are_left_alone() {
        let masker = Masker::new(["hunter2-pass", "abc"]);
        assert_eq!(
            masked(&masker, "pw=hunter2-pass; again hunter2-pass; abc"),
            "pw=***; again ***; abc"
        );
        assert!(Masker::new(["short"]).is_empty());
    }

    #[test]
    fn the_longest_of_overlapping_secrets_wins() {
        let masker = Masker::new(["secret-one", "secret-one-two"]);
        assert_eq!(masked(&masker, "[secret-one-two]"), "[***]");
    }

    #[test]
    fn multi_line_secrets_are_masked_line_by_line() {
        let key = "-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----";
        let masker = Masker::new([key]);
        for line in ["MIIEvQIBADANBgkq", "hkiG9w0BAQEFAASC", "-----BEGIN KEY-----"] {
            assert_eq!(masked(&masker, &format!("> {line}")), "> ***");
        }
    }

    #[test]
    fn the_open_tail_is_what_could_still_become_a_secret() {
        let masker = Masker::new(["0123456789", "abcdef"]);
        assert_eq!(masker.open_tail(b"Password: "), 0);
        assert_eq!(masker.open_tail(b"token 01234"), 5);
        assert_eq!(masker.open_tail(b"x abcde"), 5);
        assert_eq!(masker.open_tail(b"0123456789"), 0, "a whole secret is not open");
        assert_eq!(Masker::default().open_tail(b"anything"), 0);
    }

    #[test]
    fn a_prefix_never_ends_inside_a_secret() {
        let masker = Masker::new(["0123456789"]);
        let text = b"abc0123456789xyz";
        // A split inside the secret moves to its end.
        let (out, used) = masker.mask_prefix(text, 6);
        assert_eq!((&out[..], used), (&b"abc***"[..], 13));
        // A split before it leaves it whole for later.
        let (out, used) = masker.mask_prefix(text, 3);
        assert_eq!((&out[..], used), (&b"abc"[..], 3));
    }
}
