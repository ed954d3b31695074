//! What every `/oauth2/*` handler shares: the [`Handled`] result, the query
//! helpers, and setting cookies on a response. A leaf of `auth`.

use http::request::Parts;
use http::{header, HeaderValue, Response};

use crate::pages::{ClientKind, Outcome, Rejection};
use crate::session::store::{Loaded, SessionStore};
use crate::session::RequestCookies;
use crate::Body;

/// What a handler produced, with what the access log needs to know.
pub struct Handled {
    pub response: Response<Body>,
    pub outcome: Outcome,
    pub user: Option<String>,
}

impl Handled {
    pub fn new(response: Response<Body>, outcome: Outcome) -> Self {
        Self {
            response,
            outcome,
            user: None,
        }
    }
}

/// The query parameters of a request, decoded once.
pub(crate) fn query_pairs(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn append_cookies(resp: &mut Response<Body>, cookies: impl IntoIterator<Item = String>) {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// Turns a failed request into the page for its client kind, with any
/// cookies the failure must still clear.
pub fn rescue(rejection: Rejection, kind: ClientKind, clear: Vec<String>) -> Response<Body> {
    let mut resp = rejection.respond(kind);
    append_cookies(&mut resp, clear);
    resp
}

/// The session a request carries; an unreachable store is a 503.
pub async fn load_session(
    sessions: &SessionStore,
    headers: &http::HeaderMap,
) -> Result<Loaded, Rejection> {
    sessions
        .load(&RequestCookies::of(headers))
        .await
        .map_err(|e| {
            crate::telemetry::metrics::metrics().store_errors.inc();
            tracing::warn!(error = %e, "session store failed");
            Rejection::SessionStoreUnavailable
        })
}

/// The pairs of an `application/x-www-form-urlencoded` body of at most
/// `max` bytes.
pub async fn form_pairs(
    parts: &http::request::Parts,
    body: hyper::body::Incoming,
    max: usize,
) -> Result<Vec<(String, String)>, &'static str> {
    use http_body_util::{BodyExt, Limited};
    let is_form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err("expected an application/x-www-form-urlencoded body");
    }
    let bytes = match Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err("unreadable or oversized body"),
    };
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}
