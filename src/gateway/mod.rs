//! The request path, top to bottom, and the one place a request's outcome
//! is logged and counted:
//!
//! 1. [`App::handle`] (here): a request id, then the route, then one
//!    access-log line and the request metrics;
//! 2. [`router`]: the `Host` check, probes, the `/oauth2/*` table,
//!    everything else to [`forward`];
//! 3. [`gate`]: who is asking (bearer token | session cookie → refresh →
//!    [`gate::Principal`]), or the login redirect / 401; then the
//!    authorization rules (403);
//! 4. [`forward`]: the judged target, header hygiene, the upstream;
//!    [`forward_auth`] answers an ingress's question instead.
//!
//! Every failure is a [`crate::pages::Rejection`] turned into a response by
//! `Rejection::respond`.

pub mod forward;
pub mod forward_auth;
pub mod gate;
pub mod router;
pub mod state;

use std::net::SocketAddr;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;

pub use state::{App, AppError, Pending};

use crate::auth;
use crate::telemetry::{self, metrics::metrics};
use crate::Body;

impl App {
    /// Handles one request: a request id, the route, the access-log line
    /// and the request metrics.
    pub async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // The path only: queries carry codes and states.
        let path = req.uri().path().to_string();
        let id = telemetry::choose_request_id(req.headers());
        let id_header = http::HeaderValue::from_str(&id).ok();
        if let Some(v) = &id_header {
            req.headers_mut().insert("x-request-id", v.clone());
        }
        let (mut handled, trace_id) = if telemetry::trace::on() {
            self.traced(req, peer, &id).await
        } else {
            let route = telemetry::REQUEST_ID.scope(id.clone(), self.route(req, peer));
            (route.await, None)
        };
        if let Some(v) = id_header {
            handled.response.headers_mut().insert("x-request-id", v);
        }
        let status = handled.response.status().as_u16();
        let took = started.elapsed();
        metrics().request(handled.outcome.as_str(), &method, status, took);
        telemetry::access::write(&telemetry::access::Line {
            method: &method,
            path: &path,
            status,
            took,
            user: handled.user.as_deref().unwrap_or("-"),
            outcome: handled.outcome.as_str(),
            request_id: &id,
            trace_id: trace_id.as_deref(),
        });
        handled.response
    }

    /// [`App::route`] in a server span (tracing on) that continues the
    /// client's `traceparent`; the span's trace id for the access log.
    async fn traced(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        id: &str,
    ) -> (auth::Handled, Option<String>) {
        use tracing::Instrument;
        let span = tracing::info_span!(
            target: "tollgate::trace",
            "request",
            otel.name = %req.method(),
            otel.kind = "server",
            http.request.method = %req.method(),
            url.path = %req.uri().path(),
            http.response.status_code = tracing::field::Empty,
            tollgate.outcome = tracing::field::Empty,
            tollgate.request_id = %id,
        );
        telemetry::trace::continue_from(&span, req.headers());
        let trace_id = telemetry::trace::trace_id(&span);
        let route = telemetry::REQUEST_ID.scope(id.to_string(), self.route(req, peer));
        let handled = route.instrument(span.clone()).await;
        span.record(
            "http.response.status_code",
            handled.response.status().as_u16(),
        );
        span.record("tollgate.outcome", handled.outcome.as_str());
        (handled, trace_id)
    }
}
