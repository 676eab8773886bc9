//! Log output for both programs: text for people, or JSON (one object per
//! line) for log collectors. `RUST_LOG` chooses what is logged either way.

/// How log lines are written (`--log-format`, `JAMSTACK_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, the
    /// event's fields at the top level, and `span` / `spans` with the
    /// fields of the spans it happened in (such as `build_id`).
    Json,
}

/// Installs the process's log subscriber. `default_filter` applies when
/// `RUST_LOG` is unset.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
