//! OpenTelemetry tracing, configured by the standard `OTEL_*` variables:
//! on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, exporting OTLP over HTTP/protobuf.
//!
//! Spans are `tracing` spans with the target [`TARGET`], which the log
//! output never shows and which cost nothing while tracing is off. A
//! request continues the W3C `traceparent`/`tracestate` it came with, and
//! the upstream and the provider receive tollgate's own span as parent.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span meant for tracing (and only for it).
pub const TARGET: &str = "tollgate::trace";

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: only then are requests traced.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{var}=`{value}` is not supported: tollgate exports OTLP over http/protobuf")]
    Protocol { var: &'static str, value: String },
    #[error("cannot start the OTLP exporter: {0}")]
    Exporter(String),
}

/// The exporter while tracing is on; dropping it flushes what is queued.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Drop for Tracing {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Tracing as the environment asks, and the tracer for the subscriber
/// ([`super::init`]): `None` when no OTLP endpoint is set,
/// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
pub fn from_env() -> Result<Option<(Tracing, opentelemetry_sdk::trace::Tracer)>, TraceError> {
    let endpoint =
        var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if endpoint.is_none() || disabled {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        match var(name) {
            Some(p) if p != "http/protobuf" => {
                return Err(TraceError::Protocol {
                    var: name,
                    value: p,
                })
            }
            Some(_) => break,
            None => {}
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(Client::new().map_err(|e| TraceError::Exporter(e.to_string()))?)
        .build()
        .map_err(|e| TraceError::Exporter(e.to_string()))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if var("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("tollgate");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("tollgate");
    ON.store(true, Ordering::Relaxed);
    Ok(Some((Tracing { provider }, tracer)))
}

/// Makes `span` continue the trace a request's `traceparent` names.
pub fn continue_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Sets `traceparent` (and `tracestate`) to `span`'s, replacing any the
/// client sent.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeadersMut(headers));
}

/// A provider request sent with the current span as parent (tracing on).
pub fn outgoing(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !on() {
        return req;
    }
    let mut headers = http::HeaderMap::new();
    inject(&tracing::Span::current(), &mut headers);
    req.headers(headers)
}

/// `span`'s trace id (32 hex digits), for log lines.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// OTLP requests over tollgate's own HTTP client (reqwest, rustls), run
/// on a runtime of their own: the batch exporter calls from its own
/// thread, and exporting never takes a request worker's time.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl Client {
    fn new() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("tollgate-otlp".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        // OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT, milliseconds (10 s default):
        // the exporter leaves it to the HTTP client.
        let timeout = var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(10_000);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(timeout))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            http,
            runtime: handle,
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        // Built and sent on the exporter's runtime: reqwest needs one (its
        // timeout timer), and the batch processor's thread has none.
        let http = self.http.clone();
        let (parts, body) = request.into_parts();
        let answer = self
            .runtime
            .spawn(async move {
                let mut req = http.request(parts.method, parts.uri.to_string());
                for (k, v) in &parts.headers {
                    req = req.header(k, v);
                }
                let resp = req.body(body).send().await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await??;
        let (status, body) = answer;
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        Ok(out)
    }
}
