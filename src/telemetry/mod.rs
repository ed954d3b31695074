//! Logging. Only tollgate's own events are logged at the configured level;
//! dependencies (hyper, reqwest, rustls) stay at `warn`, because their debug
//! output can contain headers, and tollgate never logs tokens, secrets or
//! cookies at any level. Tracing ([`trace`]) rides on the same
//! subscriber, with spans of its own that the log never shows.

use tracing_subscriber::EnvFilter;

use settings::LogConfig;

pub mod access;
pub mod metrics;
pub mod process;
pub mod settings;
pub mod trace;

tokio::task_local! {
    /// The request id of the request being handled (for pages and logs).
    pub static REQUEST_ID: String;
}

/// The current request's id, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// The client's `X-Request-Id` when it is a sane token (1–128 of
/// `A-Za-z0-9._:-`), or a fresh one.
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
        .unwrap_or_else(new_request_id)
}

/// A request id unique across processes and restarts: a random prefix drawn
/// once per process, then a counter. Ids correlate log lines; they are not
/// secrets, so they need no randomness per request (which cost a CSPRNG
/// call on every request).
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| crate::oidc::random_token(9));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{n:x}")
}

/// Keeps the log writer thread alive; dropping it flushes what is queued.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Lines queued for the writer thread before a logging request waits.
const LOG_QUEUE_LINES: usize = 8 * 1024;

/// Installs the subscriber. Lines are formatted where the event happens and
/// written by a thread of their own, in batches: a request never waits for
/// stdout (a slow pipe, a full disk buffer), and a busy proxy makes one
/// `write` per batch rather than one per access-log line. Nothing is dropped:
/// when the queue is full, logging waits. Keep the guard until exit.
pub fn init(config: &LogConfig, tracer: Option<opentelemetry_sdk::trace::Tracer>) -> LogGuard {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    // Trace spans are for the exporter only.
    let filter = EnvFilter::new(format!(
        "warn,tollgate={},{}=off",
        config.level,
        trace::TARGET
    ));
    // BufWriter: the writer thread flushes whenever its queue runs empty, so
    // lines leave at once when idle and in large writes under load.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("tollgate-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    access::install(writer.clone(), config.json, &config.level);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(true);
    let fmt = if config.json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    } else {
        fmt.with_ansi(false).boxed()
    };
    let traces = tracer.map(|t| {
        tracing_opentelemetry::layer().with_tracer(t).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(trace::TARGET, tracing::Level::TRACE),
        )
    });
    // Already initialised (tests): keep the existing subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(traces)
        .try_init();
    guard
}
