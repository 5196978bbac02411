//! Logging set-up from `log.level` and `log.formatter`; `RUST_LOG`, when set, overrides the level.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// A limit of one warning per interval for a failure that can repeat many times a second.
pub struct WarningLimit {
    interval: Duration,
    /// The time of the last warning and the occurrences since then that were not warned about.
    state: Mutex<(Option<Instant>, u64)>,
}

impl WarningLimit {
    pub const fn new(interval: Duration) -> WarningLimit {
        WarningLimit { interval, state: Mutex::new((None, 0)) }
    }

    /// Counts one occurrence. Returns `Some` with the number of earlier occurrences that were not
    /// warned about when this one is due a warning, and `None` when it must stay silent.
    pub fn check(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (last, suppressed) = &mut *state;
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            *suppressed += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_limit_counts_suppressed() {
        let limit = WarningLimit::new(Duration::from_secs(3600));
        assert_eq!(limit.check(), Some(0));
        assert_eq!(limit.check(), None);
        assert_eq!(limit.check(), None);

        let limit = WarningLimit::new(Duration::ZERO);
        assert_eq!(limit.check(), Some(0));
        assert_eq!(limit.check(), Some(0));
    }
}
