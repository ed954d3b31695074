//! Logging. Only tollgate's own events are logged at the configured level;
//! dependencies (hyper, reqwest, rustls) stay at `warn`, because their debug
//! output can contain headers, and tollgate never logs tokens, secrets or
//! cookies at any level.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

pub mod metrics;

tokio::task_local! {
    /// The request id of the request being handled (for pages and logs).
    pub static REQUEST_ID: String;
}

/// The current request's id, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// The client's `X-Request-Id` when it is a sane token (1–128 of
/// `A-Za-z0-9._:-`), or a fresh random one.
pub fn choose_request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| crate::oidc::random_token(12))
}

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
