//! OpenTelemetry tracing: tollgate exports OTLP over HTTP/protobuf to the
//! endpoint `OTEL_EXPORTER_OTLP_ENDPOINT` names. The receiver here is an
//! in-process HTTP server that decodes what arrives with the OTLP
//! protobuf definitions (`opentelemetry-proto`), as a collector's
//! `otlphttp` receiver does (`POST /v1/traces`,
//! `application/x-protobuf`). Checked: the span tree of one login against
//! the real provider, and a request's W3C `traceparent` continued to the
//! upstream with tollgate's span as the parent.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::*;

/// Collects every span exported to it, with its resource's service name.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let spans: Arc<Mutex<Vec<(String, Span)>>> = Arc::default();
        let store = spans.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let body = req.into_body().collect().await?.to_bytes();
                                if path == "/v1/traces" {
                                    receive(&store, &body);
                                }
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().expect("lock").clone()
    }

    /// Waits until a span that `pred` accepts has arrived (the exporter
    /// sends in batches).
    async fn wait_for(&self, what: &str, pred: impl Fn(&Span) -> bool) -> Span {
        let start = Instant::now();
        loop {
            if let Some((_, s)) = self.spans().into_iter().find(|(_, s)| pred(s)) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no span {what}; got {:?}",
                self.spans()
                    .iter()
                    .map(|(_, s)| &s.name)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request span (`GET`) for `path`.
    async fn request(&self, path: &str) -> Span {
        self.wait_for(path, |s| {
            s.name == "GET" && attr(s, "url.path").as_deref() == Some(path)
        })
        .await
    }
}

fn receive(store: &Mutex<Vec<(String, Span)>>, body: &[u8]) {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut store = store.lock().expect("lock");
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .and_then(|a| a.value.as_ref())
            .map(value_text)
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                store.push((service.clone(), span));
            }
        }
    }
}

fn value_text(v: &opentelemetry_proto::tonic::common::v1::AnyValue) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .map(value_text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn traced_world(receiver: &Receiver) -> (Idp, Upstream, Tollgate) {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let up = upstream.url();
    let setup = Setup::basic(port, &idp, &up);
    let endpoint = receiver.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    let mut tollgate = Tollgate::spawn_with(&setup.toml(), port, &env);
    tollgate.wait_ready().await;
    (idp, upstream, tollgate)
}

/// One login, as spans: the callback request (a server span) holds the
/// `callback` span, which holds the `token_exchange` client span; the
/// first request's `login` span sits in its request span. All of
/// service `tollgate`, one trace per request.
#[tokio::test]
async fn one_login_is_exported_as_a_span_tree() {
    let receiver = Receiver::start().await;
    let (_idp, _upstream, tollgate) = traced_world(&receiver).await;
    let mut b = Browser::new();
    let page = b.login(&tollgate.url("/inbox"), "alice").await;
    assert_eq!(page.status, 200, "{}", page.body);

    let callback_request = receiver.request("/oauth2/callback").await;
    // Children end (and are exported) before their parent.
    let spans = receiver.spans();
    let by_name = |n: &str| {
        spans
            .iter()
            .filter(|(_, s)| s.name == n)
            .map(|(_, s)| s.clone())
            .collect::<Vec<_>>()
    };
    let callback = by_name("callback").pop().expect("a callback span");
    let exchange = by_name("token_exchange")
        .pop()
        .expect("a token_exchange span");
    let login = by_name("login").pop().expect("a login span");
    assert_eq!(callback.parent_span_id, callback_request.span_id);
    assert_eq!(callback.trace_id, callback_request.trace_id);
    assert_eq!(exchange.parent_span_id, callback.span_id);
    assert_eq!(exchange.kind, 3, "token_exchange is a client span");
    assert_eq!(callback_request.kind, 2, "a request is a server span");
    assert_eq!(
        attr(&callback_request, "http.response.status_code").as_deref(),
        Some("302")
    );
    let first_request = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.span_id == login.parent_span_id)
        .expect("the login span's parent");
    assert_eq!(attr(first_request, "url.path").as_deref(), Some("/inbox"));
    assert!(spans.iter().all(|(service, _)| service == "tollgate"));
}

/// A request with a W3C `traceparent` is continued: tollgate's request
/// span has the client's span as parent, the upstream receives the same
/// trace id with tollgate's `upstream` span as parent, and the access log
/// line carries the trace id.
#[tokio::test]
async fn a_traceparent_is_continued_to_the_upstream() {
    let receiver = Receiver::start().await;
    let (_idp, upstream, tollgate) = traced_world(&receiver).await;
    let mut b = Browser::new();
    assert_eq!(b.login(&tollgate.url("/"), "alice").await.status, 200);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let page = b
        .request(
            reqwest::Method::GET,
            &tollgate.url("/traced"),
            None,
            &[("traceparent", &format!("00-{trace}-{client_span}-01"))],
        )
        .await;
    assert_eq!(page.status, 200);
    let seen = upstream.last();
    let tp = seen.header("traceparent").expect("traceparent upstream");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[1], trace, "the same trace");
    assert_ne!(parts[2], client_span, "tollgate's span is the parent");

    let request = receiver.request("/traced").await;
    assert_eq!(hex(&request.trace_id), trace);
    assert_eq!(hex(&request.parent_span_id), client_span);
    let up = receiver
        .wait_for("upstream", |s| hex(&s.span_id) == parts[2])
        .await;
    assert_eq!(
        up.name, "upstream",
        "the upstream's parent is the upstream span"
    );
    assert_eq!(
        attr(&up, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(up.parent_span_id, request.span_id);
    assert!(
        tollgate.output.has(&format!("trace_id=\"{trace}\"")),
        "{}",
        tollgate.output.text()
    );
}
