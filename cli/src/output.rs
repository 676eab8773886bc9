//! Human output: tables and short forms of the API's fields. `--json`
//! bypasses all of this and prints the API's JSON.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

/// Prints a value as pretty JSON (what `--json` prints).
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A table with the given columns, one row per item.
pub fn print_table<const N: usize>(headers: [&str; N], items: &[Value], row: impl Fn(&Value) -> [String; N]) {
    if items.is_empty() {
        println!("(none)");
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(headers);
    for item in items {
        table.add_row(row(item));
    }
    println!("{table}");
}

/// Two columns, field and value, for `show` commands.
pub fn print_fields(fields: &[(&str, String)]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    for (name, value) in fields {
        table.add_row([name.to_string(), value.clone()]);
    }
    println!("{table}");
}

/// A field as text: strings bare, null and absent as `-`.
pub fn text(value: &Value, field: &str) -> String {
    match value.get(field) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// A commit id shortened as git does.
pub fn short_sha(value: &Value, field: &str) -> String {
    match value.get(field).and_then(Value::as_str) {
        Some("") | None => "-".to_owned(),
        Some(sha) => sha.chars().take(10).collect(),
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut size = n as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// A time the API gives in Unix milliseconds, as RFC 3339 (UTC); `-` when absent.
pub fn date(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_i64)
        .map(|millis| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis.max(0) as u64);
            humantime::format_rfc3339_seconds(at).to_string()
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// A time the API gives (Unix milliseconds, or seconds for older fields)
/// as how long ago it was.
pub fn ago(value: &Value, field: &str) -> String {
    let Some(at) = value.get(field).and_then(Value::as_i64) else {
        return "-".to_owned();
    };
    let at_millis = if at > 100_000_000_000 { at } else { at * 1000 };
    let now_millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let seconds = (now_millis - at_millis).max(0) / 1000;
    relative(seconds)
}

fn relative(seconds: i64) -> String {
    match seconds {
        0..=59 => format!("{seconds}s ago"),
        60..=3599 => format!("{}m ago", seconds / 60),
        3600..=86_399 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_read_as_people_expect() {
        let build = json!({"branch": "main", "pr_number": null, "labels": ["a", "b"], "n": 3,
                           "commit_sha": "0123456789abcdef0123456789abcdef01234567"});
        assert_eq!(text(&build, "branch"), "main");
        assert_eq!(text(&build, "pr_number"), "-");
        assert_eq!(text(&build, "missing"), "-");
        assert_eq!(text(&build, "labels"), "a, b");
        assert_eq!(text(&build, "n"), "3");
        assert_eq!(short_sha(&build, "commit_sha"), "0123456789");
    }

    #[test]
    fn sizes_and_ages_are_short() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(relative(5), "5s ago");
        assert_eq!(relative(125), "2m ago");
        assert_eq!(relative(7200), "2h ago");
        assert_eq!(relative(200_000), "2d ago");
    }
}
