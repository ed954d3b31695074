//! Prometheus metrics, served in the text format on their own listener
//! (`[metrics] listen`), never on the proxied port.
//!
//! One process-wide registry: the request path, the provider client and the
//! session store all record into it, and threading a handle through every
//! layer would buy nothing but noise.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// What tollgate did: proxied, login_redirect, unauthorized, forbidden,
    /// public, error, ... (a fixed set of words).
    pub outcome: &'static str,
    /// 2xx, 3xx, 4xx, 5xx.
    pub class: &'static str,
    /// The status code, as oauth2-proxy's metrics have it.
    pub code: u16,
    /// GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or other.
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    /// started, completed, failed.
    pub stage: &'static str,
    /// For failures: the failed check; "" otherwise.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// discovery, jwks, token, userinfo, introspection, revocation.
    pub endpoint: &'static str,
}

fn counter(r: &mut Registry, name: &str, help: &str) -> Counter {
    let c = Counter::default();
    r.register(name, help, c.clone());
    c
}

fn histogram(r: &mut Registry, name: &str, help: &str) -> Histogram {
    let h = latency_histogram();
    r.register(name, help, h.clone());
    h
}

fn family<L>(r: &mut Registry, name: &str, help: &str) -> Family<L, Counter>
where
    L: prometheus_client::encoding::EncodeLabelSet
        + Clone
        + std::hash::Hash
        + Eq
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let f = Family::<L, Counter>::default();
    r.register(name, help, f.clone());
    f
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub logins: Family<LoginLabels, Counter>,
    pub refreshes: Family<ResultLabels, Counter>,
    pub provider_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    pub store_errors: Counter,
    pub open_connections: Gauge,
    pub backchannel_logouts: Family<ResultLabels, Counter>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub forward_auth_untrusted: Counter,
    pub connections_refused: Family<ReasonLabels, Counter>,
    pub revocation_fallbacks: Family<ReasonLabels, Counter>,
    pub upstream_busy: Counter,
    pub provider_busy: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// max_connections, max_connections_per_client; subject, everyone.
    pub reason: &'static str,
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("tollgate");
        Self {
            requests: family(&mut r, "requests", "Requests answered, by outcome, status class, status code and method"),
            request_duration: histogram(&mut r, "request_duration_seconds", "Time from request head to response head, tollgate and upstream together"),
            upstream_duration: histogram(&mut r, "upstream_duration_seconds", "Time the upstream took to send its response head"),
            logins: family(&mut r, "logins", "Logins started, completed, and failed by the check that failed"),
            refreshes: family(&mut r, "token_refreshes", "Access-token refreshes at the provider, by result"),
            provider_duration: {
                let f = Family::<EndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                    latency_histogram as fn() -> Histogram,
                );
                r.register("provider_request_duration_seconds", "Calls to the identity provider, by endpoint", f.clone());
                f
            },
            store_errors: counter(&mut r, "session_store_errors", "Session store (Redis) operations that failed"),
            open_connections: {
                let g = Gauge::default();
                r.register("open_connections", "Client connections open now", g.clone());
                g
            },
            backchannel_logouts: family(&mut r, "backchannel_logouts", "Back-channel logout requests, by result"),
            config_reloads: family(&mut r, "config_reloads", "Configuration reloads, by result (ok, failed)"),
            forward_auth_untrusted: counter(
                &mut r,
                "forward_auth_untrusted",
                "Forward-auth requests from a peer outside server.trusted_proxies (the original \
                 path is unknown, so public routes are not consulted and rules decide as for any path)",
            ),
            connections_refused: family(&mut r, "connections_refused", "Connections closed at accept, by the limit they hit"),
            revocation_fallbacks: family(
                &mut r,
                "revocation_fallbacks",
                "Cookie-store logouts remembered more broadly than asked, by how: subject (every \
                 session of the user until now), everyone (the memory was full of live entries)",
            ),
            upstream_busy: counter(
                &mut r,
                "upstream_busy",
                "Requests answered 503 because upstream.max_in_flight requests were already waiting \
                 for the upstream and no slot freed within upstream.queue_timeout",
            ),
            provider_busy: counter(
                &mut r,
                "provider_busy",
                "Calls to the identity provider refused at once because \
                 provider.max_concurrent_calls calls were already in flight",
            ),
            registry: r,
        }
    }

    /// The text exposition.
    /// tollgate's metrics, then the `process_*` ones (no prefix).
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let mut process = Registry::default();
        process.register_collector(Box::new(super::process::ProcessCollector));
        let written = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &process))
            .and_then(|()| encode_eof(&mut out));
        if written.is_err() {
            out.clear();
        }
        out
    }

    pub fn observe_provider(&self, endpoint: &'static str, took: Duration) {
        self.provider_duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(took.as_secs_f64());
    }

    pub fn login(&self, stage: &'static str, reason: &'static str) {
        self.logins
            .get_or_create(&LoginLabels { stage, reason })
            .inc();
    }

    pub fn request(
        &self,
        outcome: &'static str,
        method: &http::Method,
        status: u16,
        took: Duration,
    ) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            http::Method::OPTIONS => "OPTIONS",
            // Anything else would let clients mint label values.
            _ => "other",
        };
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                outcome,
                class,
                code: status,
                method,
            })
            .inc();
        self.request_duration.observe(took.as_secs_f64());
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposition_uses_prometheus_names() {
        let m = super::metrics();
        m.request(
            "proxied",
            &http::Method::GET,
            200,
            std::time::Duration::from_millis(3),
        );
        m.login("failed", "state_mismatch");
        let text = m.encode();
        for name in [
            "tollgate_requests_total{outcome=\"proxied\",class=\"2xx\",code=\"200\",method=\"GET\"}",
            "process_resident_memory_bytes",
            "tollgate_request_duration_seconds_bucket",
            "tollgate_logins_total{stage=\"failed\",reason=\"state_mismatch\"}",
            "tollgate_open_connections",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
