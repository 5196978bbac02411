//! Logging set-up from `log.level` and `log.formatter`; `RUST_LOG`, when set, overrides the level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormatter};

/// Installs the global subscriber. Logs go to standard error, coloured only on a terminal.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("warn,containerd_registry={}", config.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.formatter {
        LogFormatter::Text => builder.init(),
        LogFormatter::Json => builder.json().init(),
    }
}
