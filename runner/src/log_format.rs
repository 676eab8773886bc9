//! The stored form of a build log: whole lines, each stamped with its time
//! and stream, secrets masked, long lines cut and the whole log capped.
//!
//! ```text
//! 2025-05-01T12:00:00.123Z sys ==> Running `npm run build` in node:20
//! 2025-05-01T12:00:01.456Z out > site@1.0.0 build
//! 2025-05-01T12:00:02.789Z err warning: browserslist is old
//! ```
//!
//! [`LogFormatter`] turns the build's output, chunk by chunk, into such
//! lines. Its memory is bounded whatever the build prints: at most one
//! partial line per stream, each at most [`LogLimits::line_bytes`] plus the
//! longest secret. Output past the per-build limit is counted and dropped;
//! a notice says so at once, and the build goes on. Lines from the runner
//! itself (`sys`) are never dropped.

use crate::masking::Masker;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The build's standard output.
    Out,
    /// The build's standard error.
    Err,
    /// The runner.
    Sys,
}

impl Stream {
    pub fn tag(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
            Stream::Sys => "sys",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// The longest stored line; the rest of a longer line is dropped.
    pub line_bytes: usize,
    /// The most build output stored for one build.
    pub build_bytes: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            line_bytes: 1024 * 1024,
            build_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A partial line that has waited this long is stored as it is, so a
/// prompt or a progress bar without a newline still shows.
pub const PARTIAL_LINE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Partial {
    buf: Vec<u8>,
    /// When the line's first byte came (for its time stamp and its age).
    since: Option<(SystemTime, Instant)>,
    /// Bytes dropped from the current line since it passed the line limit.
    cut: Option<u64>,
}

#[derive(Debug)]
pub struct LogFormatter {
    masker: Arc<Masker>,
    limits: LogLimits,
    out: Partial,
    err: Partial,
    stored: u64,
    over_limit: bool,
    dropped_bytes: u64,
    dropped_lines: u64,
}

impl LogFormatter {
    pub fn new(masker: Arc<Masker>, limits: LogLimits) -> Self {
        LogFormatter {
            masker,
            limits,
            out: Partial::default(),
            err: Partial::default(),
            stored: 0,
            over_limit: false,
            dropped_bytes: 0,
            dropped_lines: 0,
        }
    }

    /// Bytes held back at the end of a partial line in case they start a
    /// secret whose end has not come yet.
    fn hold(&self) -> usize {
        self.masker.longest().saturating_sub(1)
    }

    /// Takes a chunk of a stream's output (`Sys` chunks are whole lines).
    pub fn push(&mut self, stream: Stream, mut data: &[u8], at: SystemTime, out: &mut BytesMut) {
        if stream == Stream::Sys {
            let text = String::from_utf8_lossy(data);
            for line in text.trim_end_matches('\n').split('\n') {
                let masked = self.masker.mask(line.as_bytes()).into_owned();
                write_line(out, at, Stream::Sys, &masked);
            }
            return;
        }
        let limit = self.limits.line_bytes + self.hold();
        while !data.is_empty() {
            let partial = self.partial(stream);
            if let Some(cut) = partial.cut.as_mut() {
                match memchr::memchr(b'\n', data) {
                    Some(end) => {
                        let dropped = *cut + end as u64;
                        partial.cut = None;
                        data = &data[end + 1..];
                        self.sys_note(
                            out,
                            at,
                            &format!(
                                "the line above was longer than {}; {dropped} bytes of it were not stored",
                                mib(self.limits.line_bytes as u64)
                            ),
                        );
                    }
                    None => {
                        *cut += data.len() as u64;
                        data = &[];
                    }
                }
                continue;
            }
            if partial.since.is_none() {
                partial.since = Some((at, Instant::now()));
            }
            let room = limit.saturating_sub(partial.buf.len()).max(1);
            let window = &data[..data.len().min(room)];
            if let Some(end) = memchr::memchr(b'\n', window) {
                partial.buf.extend_from_slice(&window[..end]);
                data = &data[end + 1..];
                let (line, since) = take(partial);
                let masked = self.masker.mask(&line).into_owned();
                self.store(out, since, stream, &masked);
                continue;
            }
            partial.buf.extend_from_slice(window);
            data = &data[window.len()..];
            if partial.buf.len() >= limit {
                // Store the line's first part (never half a secret) and drop
                // the rest of it as it comes.
                let line_bytes = self.limits.line_bytes;
                let masker = self.masker.clone();
                let partial = self.partial(stream);
                let (line, since) = take(partial);
                let (masked, used) = masker.mask_prefix(&line, line_bytes);
                let masked = masked.into_owned();
                self.partial(stream).cut = Some((line.len() - used) as u64);
                self.store(out, since, stream, &masked);
            }
        }
    }

    /// Stores partial lines that have waited [`PARTIAL_LINE_AFTER`], less the
    /// tail that might be the start of a secret.
    pub fn flush_waiting(&mut self, out: &mut BytesMut) {
        for stream in [Stream::Out, Stream::Err] {
            let masker = self.masker.clone();
            let partial = self.partial(stream);
            let Some((since, arrived)) = partial.since else {
                continue;
            };
            let hold = masker.open_tail(&partial.buf);
            if arrived.elapsed() < PARTIAL_LINE_AFTER || partial.buf.len() <= hold {
                continue;
            }
            let split = partial.buf.len() - hold;
            let (masked, used) = masker.mask_prefix(&partial.buf, split);
            let masked = masked.into_owned();
            partial.buf.drain(..used);
            partial.since = (!partial.buf.is_empty()).then(|| (SystemTime::now(), Instant::now()));
            self.store(out, since, stream, &masked);
        }
    }

    /// Stores what is left at the end of the build, and says how much
    /// output was not stored.
    pub fn finish(&mut self, at: SystemTime, out: &mut BytesMut) {
        for stream in [Stream::Out, Stream::Err] {
            let partial = self.partial(stream);
            if let Some(dropped) = partial.cut.take() {
                self.sys_note(
                    out,
                    at,
                    &format!(
                        "the line above was longer than {}; {dropped} bytes of it were not stored",
                        mib(self.limits.line_bytes as u64)
                    ),
                );
            } else if partial.since.is_some() {
                let (line, since) = take(partial);
                let masked = self.masker.mask(&line).into_owned();
                self.store(out, since, stream, &masked);
            }
        }
        if self.over_limit {
            let note = format!(
                "{} bytes of output in {} lines were not stored: the log limit is {} per build",
                self.dropped_bytes,
                self.dropped_lines,
                mib(self.limits.build_bytes)
            );
            self.sys_note(out, at, &note);
        }
    }

    /// How many bytes of build output were stored.
    pub fn stored(&self) -> u64 {
        self.stored
    }

    fn partial(&mut self, stream: Stream) -> &mut Partial {
        match stream {
            Stream::Err => &mut self.err,
            _ => &mut self.out,
        }
    }

    fn store(&mut self, out: &mut BytesMut, at: SystemTime, stream: Stream, masked: &[u8]) {
        if self.over_limit {
            self.dropped_bytes += masked.len() as u64 + 1;
            self.dropped_lines += 1;
            return;
        }
        let len = LINE_PREFIX + masked.len() as u64 + 1;
        if self.stored + len > self.limits.build_bytes {
            self.over_limit = true;
            self.dropped_bytes += masked.len() as u64 + 1;
            self.dropped_lines += 1;
            let note = format!(
                "the build's output passed the log limit of {}; the rest is not stored (the build goes on)",
                mib(self.limits.build_bytes)
            );
            self.sys_note(out, at, &note);
            return;
        }
        self.stored += len;
        write_line(out, at, stream, masked);
    }

    fn sys_note(&mut self, out: &mut BytesMut, at: SystemTime, note: &str) {
        write_line(out, at, Stream::Sys, format!("\x1b[33m{note}\x1b[0m").as_bytes());
    }
}

/// `2025-05-01T12:00:00.123Z out ` is this long.
const LINE_PREFIX: u64 = 29;

fn take(partial: &mut Partial) -> (Vec<u8>, SystemTime) {
    let since = partial.since.take().map_or_else(SystemTime::now, |(at, _)| at);
    (std::mem::take(&mut partial.buf), since)
}

fn write_line(out: &mut BytesMut, at: SystemTime, stream: Stream, text: &[u8]) {
    out.extend_from_slice(humantime::format_rfc3339_millis(at).to_string().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(stream.tag().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(text);
    out.extend_from_slice(b"\n");
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatter(secrets: &[&str], limits: LogLimits) -> LogFormatter {
        LogFormatter::new(Arc::new(Masker::new(secrets.iter().copied())), limits)
    }

    /// The stored lines without their time stamps.
    fn lines(out: &BytesMut) -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|line| {
                assert_eq!(&line[23..25], "Z ", "a time stamp starts the line: {line}");
                line[25..].to_owned()
            })
            .collect()
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn lines_carry_their_stream_and_keep_colours() {
        let mut f = formatter(&[], LogLimits::default());
        let mut out = BytesMut::new();
        f.push(Stream::Out, b"one\n\x1b[32mtwo\x1b[0m\npart", now(), &mut out);
        f.push(Stream::Err, b"oops\n", now(), &mut out);
        f.push(Stream::Out, b"ial\n", now(), &mut out);
        f.push(Stream::Sys, b"==> hello\n", now(), &mut out);
        assert_eq!(
            lines(&out),
            [
                "out one",
                "out \x1b[32mtwo\x1b[0m",
                "err oops",
                "out partial",
                "sys ==> hello"
            ]
        );
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.starts_with("20") && text.as_bytes()[10] == b'T', "{text}");
    }

    #[test]
    fn a_secret_split_across_chunks_is_masked() {
        let mut f = formatter(&["s3cr3t-value"], LogLimits::default());
        let mut out = BytesMut::new();
        for chunk in ["token: s3c", "r3t-va", "lue and more\n"] {
            f.push(Stream::Out, chunk.as_bytes(), now(), &mut out);
        }
        f.finish(now(), &mut out);
        assert_eq!(lines(&out), ["out token: *** and more"]);
    }

    #[test]
    fn a_partial_line_that_waits_is_stored_without_half_a_secret() {
        let mut f = formatter(&["s3cr3t-value"], LogLimits::default());
        let mut out = BytesMut::new();
        f.push(Stream::Out, b"Waiting for s3cr3t", now(), &mut out);
        f.out.since = Some((now(), Instant::now() - PARTIAL_LINE_AFTER));
        f.flush_waiting(&mut out);
        f.push(Stream::Out, b"-value\n", now(), &mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(lines(&out).concat(), "out Waiting for out ***");

        // A prompt that cannot be the start of a secret shows whole.
        let mut out = BytesMut::new();
        f.push(Stream::Err, b"Password: ", now(), &mut out);
        f.err.since = Some((now(), Instant::now() - PARTIAL_LINE_AFTER));
        f.flush_waiting(&mut out);
        assert_eq!(lines(&out), ["err Password: "]);
    }

    #[test]
    fn long_lines_are_cut_and_the_cut_is_reported() {
        let limits = LogLimits {
            line_bytes: 10,
            build_bytes: 1 << 20,
        };
        let mut f = formatter(&[], limits);
        let mut out = BytesMut::new();
        f.push(Stream::Out, b"0123456789abcdef", now(), &mut out);
        f.push(Stream::Out, b"ghij\nnext\n", now(), &mut out);
        let lines = lines(&out);
        assert_eq!(lines[0], "out 0123456789");
        assert!(lines[1].contains("10 bytes of it were not stored"), "{lines:?}");
        assert_eq!(lines[2], "out next");
    }

    #[test]
    fn output_past_the_build_limit_is_dropped_with_a_notice_and_a_count() {
        let limits = LogLimits {
            line_bytes: 1024,
            build_bytes: 200,
        };
        let mut f = formatter(&[], limits);
        let mut out = BytesMut::new();
        for i in 0..100 {
            f.push(Stream::Out, format!("line {i}\n").as_bytes(), now(), &mut out);
        }
        f.push(Stream::Sys, b"==> Build succeeded\n", now(), &mut out);
        f.finish(now(), &mut out);
        let lines = lines(&out);
        assert!(out.len() < 600, "{}", out.len());
        let notice = lines
            .iter()
            .position(|l| l.contains("passed the log limit"))
            .unwrap();
        assert_eq!(notice, 5, "{lines:?}");
        assert!(lines.iter().any(|l| l == "sys ==> Build succeeded"));
        assert!(
            lines.last().unwrap().contains("in 95 lines were not stored"),
            "{lines:?}"
        );
    }
}
