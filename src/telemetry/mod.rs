//! Logging. Only tollgate's own events are logged at the configured level;
//! dependencies (hyper, reqwest, rustls) stay at `warn`, because their debug
//! output can contain headers, and tollgate never logs tokens, secrets or
//! cookies at any level.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

pub fn init(config: &LogConfig) {
    let filter = EnvFilter::new(format!("warn,tollgate={}", config.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(true);
    let result = if config.json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    if result.is_err() {
        // Already initialised (tests): keep the existing subscriber.
    }
}
