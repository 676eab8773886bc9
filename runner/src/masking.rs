//! Secret masking: every secret value is replaced by [`MASK`] before a byte
//! of the build log (or a failure message) leaves the runner.
//!
//! A multi-line secret (a PEM key, say) is masked line by line, since the
//! log is cut into lines before it is masked; lines shorter than
//! [`MIN_SECRET_LEN`] are not masked, or common words and numbers would
//! vanish from every log. Callers that must let out the start of a text
//! whose end may still grow hold back [`Masker::open_tail`] and use
//! [`Masker::mask_prefix`], which never cuts a secret in two.
//!
//! A build controls its output, so a secret may come split by terminal
//! escape sequences (`se\x1b[0mcret`), which a log viewer hides: matching
//! is done on the text with them taken out, and a match masks the whole
//! span it covers in the output, escapes inside it included.

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
        if memchr::memchr(ESC, text).is_some() {
            // Counted on what a reader sees, then held back from where that
            // part starts in `text`, escapes after it included.
            let (visible, origin) = without_escapes(text);
            return match self.open_tail(&visible) {
                0 => 0,
                open => text.len() - origin[visible.len() - open],
            };
        }
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
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(text);
        };
        if memchr::memchr(ESC, text).is_none() {
            if !matcher.is_match(text) {
                return Cow::Borrowed(text);
            }
            let mut out = Vec::with_capacity(text.len());
            matcher.replace_all_with_bytes(text, &mut out, |_, _, out| {
                out.extend_from_slice(MASK.as_bytes());
                true
            });
            return Cow::Owned(out);
        }
        let spans = self.secret_spans(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            out.extend_from_slice(&text[at..start]);
            out.extend_from_slice(MASK.as_bytes());
            at = end;
        }
        out.extend_from_slice(&text[at..]);
        Cow::Owned(out)
    }

    /// Where the secrets are in `text`, as (start, end) byte ranges of
    /// `text`, in order and apart, found with its escape sequences taken
    /// out; a range covers the escapes inside the secret.
    fn secret_spans(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let Some(matcher) = &self.matcher else {
            return Vec::new();
        };
        let (visible, origin) = without_escapes(text);
        matcher
            .find_iter(&visible)
            .map(|m| (origin[m.start()], origin[m.end() - 1] + 1))
            .collect()
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
        if let Some(&(_, end)) = self
            .secret_spans(text)
            .iter()
            .find(|&&(start, end)| start < split && end > split)
        {
            split = end;
        }
        (self.mask(&text[..split]), split)
    }
}

const ESC: u8 = 0x1b;

/// `text` without its terminal escape sequences (CSI `ESC [ … final`, OSC
/// `ESC ] … BEL` or `ESC ] … ESC \\`, and two-byte `ESC x`; one cut off at
/// the end is taken out to the end), and for each byte left, where it was
/// in `text`.
fn without_escapes(text: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut visible = Vec::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != ESC {
            visible.push(text[i]);
            origin.push(i);
            i += 1;
            continue;
        }
        i += 1;
        match text.get(i) {
            Some(b'[') => {
                i += 1;
                // Parameters and intermediates, then one final byte.
                while i < text.len() && (0x20..0x40).contains(&text[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                i += 1;
                while i < text.len() {
                    if text[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if text[i] == ESC && text.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => i += 1,
            None => {}
        }
    }
    (visible, origin)
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

    #[test]
    fn a_secret_split_by_ansi_escapes_is_masked() {
        let masker = Masker::new(["secret-value"]);
        assert_eq!(
            masked(&masker, "pw=se\x1b[0mcret-\x1b[1;31mvalue!"),
            "pw=***!",
            "the escapes inside the secret go with it"
        );
        assert_eq!(
            masked(
                &masker,
                "\x1b[32mok\x1b[0m secret\x1b]0;title\x07-value \x1b[1mbold\x1b[0m"
            ),
            "\x1b[32mok\x1b[0m *** \x1b[1mbold\x1b[0m",
            "escapes outside a secret are kept"
        );
        assert_eq!(
            masked(&masker, "\x1b[31mnothing here\x1b[0m"),
            "\x1b[31mnothing here\x1b[0m"
        );
    }

    #[test]
    fn a_partial_line_holds_back_a_secret_start_even_behind_an_escape() {
        let masker = Masker::new(["0123456789"]);
        let text = b"log 0123\x1b[0m";
        assert_eq!(masker.open_tail(text), text.len() - 4);
        let (out, used) = masker.mask_prefix(b"a 01\x1b[0m23456789 b", 3);
        assert_eq!((&out[..], used), (&b"a ***"[..], 16));
    }
}
