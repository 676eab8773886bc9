//! How a duration is written for people, the same on both sides: in the
//! runner's build log and errors and on the controller's dashboard.

use std::time::Duration;

/// `87ms`, `1.23s`, `2m05s`: short, precise where it matters, and without
/// spaces, so a `Timings: fetch 5ms, build 1.20s` line splits on them.
pub fn format_duration(d: Duration) -> String {
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_milliseconds_seconds_or_minutes() {
        let table = [
            (Duration::from_millis(87), "87ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_millis(1234), "1.23s"),
            (Duration::from_millis(59_990), "59.99s"),
            (Duration::from_secs(125), "2m05s"),
            (Duration::from_secs(3600), "60m00s"),
        ];
        for (duration, text) in table {
            assert_eq!(format_duration(duration), text, "{duration:?}");
        }
    }
}
