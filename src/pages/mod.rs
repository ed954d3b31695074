//! Every response tollgate makes up itself (errors, status pages) is built
//! here, from a typed [`Rejection`]: the one place errors become HTTP.
//! Browsers get a small HTML page, API clients JSON. Nothing a client or the
//! provider sent is echoed unescaped.

pub mod branding;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::auth::failure::LoginFailure;
use crate::proxy::ForwardError;
use crate::session::store::StoreError;
use crate::Body;

/// Whether the client is a page navigation (HTML, redirects) or an API
/// client (JSON, status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Browser,
    Api,
    /// `content-type: application/grpc…`: answered as gRPC (HTTP 200 with
    /// `grpc-status`), never with a page or a redirect.
    Grpc,
}

/// Whether `haystack` contains `needle` (lower-case ASCII), ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

impl ClientKind {
    /// Requests that are clearly not page navigations: `Accept` naming JSON
    /// but not HTML, `X-Requested-With: XMLHttpRequest`, `Sec-Fetch-Mode:
    /// cors`. Anything else, `Accept: */*` included, is a browser.
    pub fn of(headers: &http::HeaderMap) -> Self {
        let grpc = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if grpc {
            return ClientKind::Grpc;
        }
        let has = |name: header::HeaderName, pred: &dyn Fn(&str) -> bool| {
            headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().map(pred).unwrap_or(false))
        };
        let xhr = has(header::HeaderName::from_static("x-requested-with"), &|v| {
            v.eq_ignore_ascii_case("xmlhttprequest")
        });
        let cors = has(header::HeaderName::from_static("sec-fetch-mode"), &|v| {
            v.eq_ignore_ascii_case("cors")
        });
        // Media types are case-insensitive (RFC 9110 §8.3.1); compared
        // in place, since this runs on every request.
        let accept = || headers.get_all(header::ACCEPT).iter().map(|v| v.as_bytes());
        let json = accept().any(|a| {
            contains_ignore_case(a, b"application/json") || contains_ignore_case(a, b"+json")
        });
        let html = accept().any(|a| contains_ignore_case(a, b"text/html"));
        if xhr || cors || (json && !html) {
            ClientKind::Api
        } else {
            ClientKind::Browser
        }
    }

    /// For an answer that is never a page: JSON, or gRPC for gRPC clients.
    pub fn machine(self) -> Self {
        match self {
            ClientKind::Grpc => ClientKind::Grpc,
            _ => ClientKind::Api,
        }
    }
}

/// What tollgate did with a request: the `outcome` of the access log and
/// of `tollgate_requests_total` (docs/metrics.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded with a session cookie.
    Proxied,
    /// Forwarded with a bearer token.
    ProxiedBearer,
    /// Forwarded without authentication (a public route).
    Public,
    /// A 401 (API clients, forward-auth without a session).
    Unauthorized,
    /// A 403 from the rules, or a cross-site request refused.
    Forbidden,
    /// Sent to the provider to log in.
    LoginRedirect,
    /// Shown the sign-in chooser (several providers).
    Chooser,
    /// A login completed.
    Login,
    /// A login refused at the callback.
    LoginFailed,
    SignOut,
    /// The "Sign out?" page for a sign-out not proven same-origin.
    SignOutConfirm,
    SignedOut,
    Userinfo,
    Jwks,
    /// Forward-auth allowed the request (202).
    AuthAllowed,
    BackchannelLogout,
    BackchannelRefused,
    /// `/healthz`, `/readyz`.
    Probe,
    /// The upstream failed or timed out (502, 504).
    UpstreamError,
    /// Any other refusal or failure (4xx, 5xx).
    Error,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::ProxiedBearer => "proxied_bearer",
            Outcome::Chooser => "chooser",
            Outcome::Public => "public",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::LoginRedirect => "login_redirect",
            Outcome::Login => "login",
            Outcome::LoginFailed => "login_failed",
            Outcome::SignOut => "sign_out",
            Outcome::SignOutConfirm => "sign_out_confirm",
            Outcome::SignedOut => "signed_out",
            Outcome::Userinfo => "userinfo",
            Outcome::Jwks => "jwks",
            Outcome::AuthAllowed => "auth_allowed",
            Outcome::BackchannelLogout => "backchannel_logout",
            Outcome::BackchannelRefused => "backchannel_refused",
            Outcome::Probe => "probe",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Error => "error",
        }
    }
}

/// Why a request was not served normally.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("authentication required")]
    Unauthenticated,
    #[error("login failed: {0}")]
    LoginFailed(#[from] LoginFailure),
    #[error("the identity provider is not available yet")]
    ProviderNotReady,
    #[error("the upstream service could not be reached")]
    BadGateway,
    #[error("the upstream service did not answer in time")]
    GatewayTimeout,
    /// `upstream.max_in_flight` reached: shed rather than queue more.
    #[error("the upstream service is busy")]
    UpstreamBusy,
    #[error("cross-site request refused")]
    CrossSite,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("shutting down")]
    ShuttingDown,
    #[error("the session store is unavailable")]
    SessionStoreUnavailable,
    #[error("the session could not be renewed")]
    RefreshUnavailable,
    #[error("denied by the authorization rules")]
    Forbidden { user: String },
    #[error("malformed request path")]
    BadPath,
    #[error("malformed Host header")]
    BadHost,
    /// No `[[upstreams]]` entry serves the request's host (and path).
    #[error("no upstream serves this host")]
    UnknownHost,
    /// A header that may appear once appeared several times (RFC 9110
    /// §5.3: `Authorization` is not a list).
    #[error("repeated {0} header")]
    RepeatedHeader(&'static str),
    #[error("invalid bearer token")]
    InvalidToken,
    /// A query parameter tollgate passes on is malformed or too long.
    #[error("malformed {0} parameter")]
    BadParameter(&'static str),
}

impl From<ForwardError> for Rejection {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::BadTarget => Rejection::BadPath,
            ForwardError::Timeout => Rejection::GatewayTimeout,
            ForwardError::Upstream(_) => Rejection::BadGateway,
            ForwardError::Busy => Rejection::UpstreamBusy,
        }
    }
}

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge(_) => Rejection::LoginFailed(LoginFailure::SessionTooLarge),
            StoreError::Unavailable(_) => Rejection::SessionStoreUnavailable,
        }
    }
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthenticated => StatusCode::UNAUTHORIZED,
            Rejection::LoginFailed(f) => f.status(),
            Rejection::ProviderNotReady
            | Rejection::ShuttingDown
            | Rejection::SessionStoreUnavailable
            | Rejection::RefreshUnavailable
            | Rejection::UpstreamBusy => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Forbidden { .. } => StatusCode::FORBIDDEN,
            Rejection::BadPath
            | Rejection::BadHost
            | Rejection::RepeatedHeader(_)
            | Rejection::BadParameter(_) => StatusCode::BAD_REQUEST,
            Rejection::InvalidToken => StatusCode::UNAUTHORIZED,
            Rejection::BadGateway => StatusCode::BAD_GATEWAY,
            Rejection::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Rejection::CrossSite => StatusCode::FORBIDDEN,
            Rejection::NotFound => StatusCode::NOT_FOUND,
            // RFC 9110 §15.5.20: this server does not serve that host.
            Rejection::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// A stable machine-readable code for JSON bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Unauthenticated => "unauthorized",
            Rejection::LoginFailed(_) => "login_failed",
            Rejection::ProviderNotReady => "provider_unavailable",
            Rejection::BadGateway => "bad_gateway",
            Rejection::GatewayTimeout => "gateway_timeout",
            Rejection::UpstreamBusy => "upstream_busy",
            Rejection::CrossSite => "cross_site_request",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::SessionStoreUnavailable => "session_store_unavailable",
            Rejection::RefreshUnavailable => "refresh_unavailable",
            Rejection::Forbidden { .. } => "forbidden",
            Rejection::BadPath => "bad_path",
            Rejection::BadHost => "bad_host",
            Rejection::UnknownHost => "unknown_host",
            Rejection::RepeatedHeader(_) => "repeated_header",
            Rejection::InvalidToken => "invalid_token",
            Rejection::BadParameter(_) => "bad_parameter",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Rejection::Unauthenticated => "Sign-in required",
            Rejection::LoginFailed(_) => "Sign-in failed",
            Rejection::ProviderNotReady => "Sign-in is unavailable",
            Rejection::BadGateway => "Service unavailable",
            Rejection::GatewayTimeout => "Service timed out",
            Rejection::UpstreamBusy => "Service busy",
            Rejection::CrossSite => "Request refused",
            Rejection::NotFound | Rejection::UnknownHost => "Not found",
            Rejection::MethodNotAllowed => "Method not allowed",
            Rejection::ShuttingDown => "Restarting",
            Rejection::SessionStoreUnavailable | Rejection::RefreshUnavailable => {
                "Temporarily unavailable"
            }
            Rejection::Forbidden { .. } => "Access denied",
            Rejection::BadPath
            | Rejection::BadHost
            | Rejection::RepeatedHeader(_)
            | Rejection::BadParameter(_) => "Bad request",
            Rejection::InvalidToken => "Invalid token",
        }
    }

    /// Text for people. Derived from our own error types only, never from
    /// raw client or provider input.
    fn detail(&self) -> String {
        match self {
            Rejection::Unauthenticated => "This request needs a signed-in session.".into(),
            Rejection::LoginFailed(LoginFailure::Provider(code)) => {
                format!("The identity provider did not sign you in (it answered `{code}`).")
            }
            Rejection::LoginFailed(f) => f.user_message().to_string(),
            Rejection::ProviderNotReady => {
                "The identity provider could not be reached. Try again in a moment.".into()
            }
            Rejection::BadGateway => "The application behind this sign-in is not answering.".into(),
            Rejection::GatewayTimeout => {
                "The application behind this sign-in took too long to answer.".into()
            }
            Rejection::UpstreamBusy => {
                "The application behind this sign-in is busy. Try again in a moment.".into()
            }
            Rejection::CrossSite => "This action must be started from this site.".into(),
            Rejection::NotFound => "There is nothing here.".into(),
            Rejection::UnknownHost => "No site is configured for this host name.".into(),
            Rejection::MethodNotAllowed => "This endpoint does not take that method.".into(),
            Rejection::ShuttingDown => "This instance is shutting down. Try again.".into(),
            Rejection::SessionStoreUnavailable => "Sessions cannot be read right now. Try again in a moment.".into(),
            Rejection::RefreshUnavailable => "Your session could not be renewed because the identity provider is not answering. Try again in a moment.".into(),
            Rejection::Forbidden { user } => {
                format!("You are signed in as {user}, but not allowed to see this page. Sign out to sign in as someone else.")
            }
            Rejection::BadPath => "The request path is malformed (encoded slashes, double encoding or control characters).".into(),
            Rejection::BadHost => "The Host header is missing, repeated or malformed.".into(),
            Rejection::RepeatedHeader(name) => format!("The {name} header appears more than once."),
            Rejection::InvalidToken => "The bearer token is invalid, expired, or not meant for this service.".into(),
            Rejection::BadParameter(name) => format!("The {name} parameter is empty, too long or malformed."),
        }
    }

    /// The way forward the page offers.
    fn link(&self) -> Link {
        match self {
            Rejection::Unauthenticated | Rejection::LoginFailed(_) => Link::SignIn,
            Rejection::Forbidden { .. } => Link::SignOut,
            _ => Link::Home,
        }
    }

    /// The gRPC status for this rejection (gRPC status codes, "HTTP to gRPC
    /// status code mapping" in the gRPC documentation).
    fn grpc_status(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "16",             // UNAUTHENTICATED
            403 => "7",              // PERMISSION_DENIED
            400 => "3",              // INVALID_ARGUMENT
            404 | 405 | 421 => "12", // UNIMPLEMENTED
            502..=504 => "14",       // UNAVAILABLE (503: also when busy)
            _ => "13",               // INTERNAL
        }
    }

    /// A Trailers-Only gRPC answer: HTTP 200, `grpc-status` and
    /// `grpc-message` in the headers, no body (gRPC over HTTP/2 protocol).
    fn grpc(&self) -> Response<Body> {
        let mut resp = base(StatusCode::OK, "application/grpc", Bytes::new());
        let message: String = percent_encoding::utf8_percent_encode(
            &self.detail(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let h = resp.headers_mut();
        h.insert("grpc-status", HeaderValue::from_static(self.grpc_status()));
        if let Ok(v) = HeaderValue::from_str(&message) {
            h.insert("grpc-message", v);
        }
        resp
    }

    pub fn respond(&self, kind: ClientKind) -> Response<Body> {
        if kind == ClientKind::Grpc {
            return self.grpc();
        }
        let status = self.status();
        let mut resp = match kind {
            ClientKind::Api => {
                let body = serde_json::json!({
                    "error": self.code(),
                    "message": self.detail(),
                    "request_id": crate::telemetry::request_id(),
                });
                json(status, &body)
            }
            ClientKind::Browser | ClientKind::Grpc => html(
                status,
                self.code(),
                self.title(),
                &self.detail(),
                self.link(),
            ),
        };
        if matches!(
            self,
            Rejection::ProviderNotReady
                | Rejection::ShuttingDown
                | Rejection::SessionStoreUnavailable
                | Rejection::RefreshUnavailable
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if matches!(self, Rejection::UpstreamBusy) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Rejection::Unauthenticated) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, Rejection::InvalidToken) {
            // RFC 6750 §3.1.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        resp
    }
}

/// Headers every generated response carries.
fn base(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    base(status, "application/json", Bytes::from(value.to_string()))
}

/// An empty response with a status (forward-auth answers).
pub fn status(status: StatusCode) -> Response<Body> {
    base(status, "text/plain; charset=utf-8", Bytes::new())
}

/// A plain-text response (probes).
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    base(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

/// An empty redirect with `Location`.
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = base(StatusCode::FOUND, "text/plain; charset=utf-8", Bytes::new());
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    resp
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The one link a page offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    SignIn,
    SignOut,
    Home,
    /// A sign-out button (a POST form) that returns to this target.
    ConfirmSignOut(String),
    /// One sign-in link per provider: (href, name).
    Providers(Vec<(String, String)>),
}

/// The sign-in chooser: one link per provider, each a login with it that
/// returns to the same place. `choices`: (href, provider name).
pub fn choose_provider(choices: Vec<(String, String)>) -> Response<Body> {
    html(
        StatusCode::OK,
        "choose_provider",
        "Sign in",
        "Choose how to sign in.",
        Link::Providers(choices),
    )
}

/// Asks before signing out: a GET to `/oauth2/sign_out` that cannot be
/// shown to come from this site (an `<img>` on another site, an old
/// browser) gets this page, whose button POSTs from our own origin.
pub fn confirm_sign_out(rd: &str) -> Response<Body> {
    html(
        StatusCode::OK,
        "confirm_sign_out",
        "Sign out?",
        "Do you want to sign out?",
        Link::ConfirmSignOut(rd.to_string()),
    )
}

/// `/oauth2/signed_out` while a session is still valid (the page was
/// opened directly, or the sign-out went to another site's session): it
/// says so instead of claiming otherwise.
pub fn still_signed_in(user: &str) -> Response<Body> {
    html(
        StatusCode::OK,
        "still_signed_in",
        "Still signed in",
        &format!("You are still signed in as {user}."),
        Link::ConfirmSignOut("/oauth2/signed_out".into()),
    )
}

/// The page `/oauth2/signed_out` shows (a `post_logout_redirect_url` target).
pub fn signed_out() -> Response<Body> {
    html(
        StatusCode::OK,
        "signed_out",
        "Signed out",
        "You are signed out. Close the browser to be sure no one else uses this session.",
        Link::SignIn,
    )
}

/// A page: the configured template (`pages.template_file`), or the
/// built-in one; `code` says which page it is.
fn html(status: StatusCode, code: &str, title: &str, detail: &str, link: Link) -> Response<Body> {
    let look = branding::current();
    let brand = &look.brand;
    let page = match look
        .template
        .as_ref()
        .map(|t| render(t, brand, status, code, title, detail, &link))
    {
        Some(Ok(page)) => page,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "pages.template_file failed to render; showing the built-in page");
            builtin(brand, status, title, detail, link)
        }
        None => builtin(brand, status, title, detail, link),
    };
    let mut resp = base(status, "text/html; charset=utf-8", Bytes::from(page));
    if let Ok(csp) = HeaderValue::from_str(&brand.csp()) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

/// The page from `pages.template_file`: every value HTML-escaped by the
/// template engine (see docs/configuration.md for what a template gets).
fn render(
    env: &minijinja::Environment<'static>,
    brand: &branding::Branding,
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    link: &Link,
) -> Result<String, minijinja::Error> {
    use minijinja::context;
    let (kind, href) = match link {
        Link::SignIn => ("sign_in", Some("/oauth2/start?rd=%2F".to_string())),
        Link::SignOut => ("sign_out", Some("/oauth2/sign_out".to_string())),
        Link::Home => ("home", Some("/".to_string())),
        Link::ConfirmSignOut(rd) => (
            "confirm_sign_out",
            Some(format!(
                "/oauth2/sign_out?rd={}",
                form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            )),
        ),
        Link::Providers(_) => ("choose_provider", None),
    };
    let providers: Vec<minijinja::Value> = match link {
        Link::Providers(choices) => choices
            .iter()
            .map(|(href, name)| context! { href => href, name => name })
            .collect(),
        _ => Vec::new(),
    };
    env.get_template(branding::TEMPLATE)?.render(context! {
        status => status.as_u16(),
        code => code,
        title => title,
        detail => detail,
        action => context! { kind => kind, href => href, providers => providers },
        product_name => &brand.product_name,
        logo_url => &brand.logo_url,
        accent_color => &brand.accent_color,
        support_url => &brand.support_url,
        request_id => crate::telemetry::request_id(),
    })
}

/// The built-in page.
fn builtin(
    brand: &branding::Branding,
    status: StatusCode,
    title: &str,
    detail: &str,
    link: Link,
) -> String {
    let action = match link {
        Link::SignIn => {
            r#"<p><a class="button" href="/oauth2/start?rd=%2F">Sign in</a></p>"#.to_string()
        }
        Link::SignOut => {
            r#"<p><a class="button" href="/oauth2/sign_out">Sign out</a></p>"#.to_string()
        }
        Link::Home => r#"<p><a href="/">Back to the start page</a></p>"#.to_string(),
        Link::ConfirmSignOut(rd) => format!(
            r#"<form method="post" action="/oauth2/sign_out?rd={}"><button type="submit">Sign out</button></form>"#,
            escape(&form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>())
        ),
        Link::Providers(choices) => {
            let items: String = choices
                .iter()
                .map(|(href, name)| {
                    format!(
                        r#"<li><a class="button" href="{}">Sign in with {}</a></li>"#,
                        escape(href),
                        escape(name)
                    )
                })
                .collect();
            format!(r#"<ul class="providers" aria-label="Identity providers">{items}</ul>"#)
        }
    };
    let product = escape(&brand.product_name);
    let logo = brand
        .logo_url
        .as_deref()
        .map(|l| format!(r#"<img src="{}" alt="" height="32">"#, escape(l)))
        .unwrap_or_default();
    let header = if product.is_empty() && logo.is_empty() {
        String::new()
    } else {
        format!(r#"<header>{logo}<span>{product}</span></header>"#)
    };
    let help = brand
        .support_url
        .as_deref()
        .map(|u| format!(r#" &middot; <a href="{}">Get help</a>"#, escape(u)))
        .unwrap_or_default();
    let page_title = if product.is_empty() {
        escape(title)
    } else {
        format!("{} &middot; {product}", escape(title))
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{page_title}</title>
<style>:root{{--accent:{accent};--fg:#1d1d1f;--muted:#5f6368;--bg:#fff;--card:#f6f7f9}}
@media (prefers-color-scheme:dark){{:root{{--fg:#e8eaed;--muted:#a8adb4;--bg:#17181a;--card:#222326}}}}
body{{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:var(--bg);color:var(--fg)}}
main{{max-width:34rem;margin:10vh auto;padding:2rem;background:var(--card);border-radius:12px}}
header{{display:flex;align-items:center;gap:.6rem;font-weight:600;margin-bottom:1rem}}
h1{{font-size:1.5rem;margin:0 0 .5rem}}a{{color:var(--accent)}}
.button,button{{display:inline-block;background:var(--accent);color:#fff;border:0;border-radius:8px;padding:.6rem 1.2rem;font:inherit;text-decoration:none;cursor:pointer}}
.button:focus-visible,button:focus-visible,a:focus-visible{{outline:3px solid var(--fg);outline-offset:2px}}
.providers{{list-style:none;padding:0;margin:0;display:grid;gap:.6rem}}.providers .button{{display:block;text-align:center}}
footer{{color:var(--muted);font-size:.85rem;margin-top:1.5rem}}</style></head>
<body><main>{header}<h1>{title}</h1><p>{detail}</p>{action}
<footer>HTTP {code} &middot; tollgate{request}{help}</footer></main></body></html>
"#,
        accent = brand.accent_color,
        title = escape(title),
        detail = escape(detail),
        code = status.as_u16(),
        request = crate::telemetry::request_id()
            .map(|id| format!(" &middot; request {}", escape(&id)))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_template_gets_every_value_escaped() {
        let src = "<h1>{{ title }}</h1><p>{{ detail }}</p>{{ code }} {{ status }} \
                   {{ action.kind }} {{ action.href }}\
                   {% for p in action.providers %}[{{ p.name }}|{{ p.href }}]{% endfor %}";
        let env = branding::compile(src).expect("compiles");
        let brand = branding::Branding::default();
        let out = render(
            &env,
            &brand,
            StatusCode::FORBIDDEN,
            "forbidden",
            "Access <denied>",
            "You & \"me\"",
            &Link::SignOut,
        )
        .expect("renders");
        assert!(out.contains("<h1>Access &lt;denied&gt;</h1>"), "{out}");
        assert!(out.contains("You &amp; &quot;me&quot;"), "{out}");
        // MiniJinja escapes `/` too; browsers read `&#x2f;` as `/`.
        assert!(
            out.contains("forbidden 403 sign_out &#x2f;oauth2&#x2f;sign_out"),
            "{out}"
        );
        let choices = vec![(
            "/oauth2/start?provider=a&rd=%2F".to_string(),
            "<b>A</b>".to_string(),
        )];
        let out = render(
            &env,
            &brand,
            StatusCode::OK,
            "choose_provider",
            "Sign in",
            "",
            &Link::Providers(choices),
        )
        .expect("renders");
        assert!(
            out.contains(
                "[&lt;b&gt;A&lt;&#x2f;b&gt;|&#x2f;oauth2&#x2f;start?provider=a&amp;rd=%2F]"
            ),
            "{out}"
        );
        assert!(branding::compile("{% if %}").is_err());
    }

    fn kind(pairs: &[(&'static str, &'static str)]) -> ClientKind {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        ClientKind::of(&h)
    }

    #[test]
    fn pages_carry_the_configured_look_and_allow_only_the_logo_origin() {
        branding::set(branding::Branding {
            product_name: "Acme <Portal>".into(),
            logo_url: Some("https://cdn.example.com/logo.svg".into()),
            accent_color: "#c00".into(),
            support_url: Some("mailto:help@example.com".into()),
            template: None,
        });
        let resp = signed_out();
        branding::set(branding::Branding::default());
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp")
            .to_string();
        assert!(csp.contains("img-src https://cdn.example.com"), "{csp}");
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        let body = match resp.into_body() {
            Either::Right(full) => {
                let bytes = page_bytes(full);
                String::from_utf8(bytes).expect("utf8")
            }
            Either::Left(_) => panic!("a generated page"),
        };
        assert!(body.contains("Acme &lt;Portal&gt;"), "escaped product name");
        assert!(body.contains("--accent:#c00") && body.contains("prefers-color-scheme:dark"));
        assert!(body.contains(r#"href="mailto:help@example.com">Get help"#));
        assert!(body.contains("<main>") && body.contains(r#"lang="en""#));
        assert!(branding::is_color("#0a58ca") && !branding::is_color("red;}body{x"));
        assert!(!branding::is_safe_link("javascript:alert(1)", true));
        assert!(!branding::is_safe_link("//evil.test/x", false));
        assert!(branding::is_safe_link("/static/logo.png", false));
    }

    /// The bytes of a generated page's body.
    fn page_bytes(full: http_body_util::Full<Bytes>) -> Vec<u8> {
        use http_body_util::BodyExt as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        rt.block_on(full.collect())
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn api_requests_are_recognised() {
        assert_eq!(kind(&[("accept", "application/json")]), ClientKind::Api);
        assert_eq!(
            kind(&[("x-requested-with", "XMLHttpRequest")]),
            ClientKind::Api
        );
        assert_eq!(kind(&[("sec-fetch-mode", "cors")]), ClientKind::Api);
    }

    #[test]
    fn everything_else_is_a_browser() {
        assert_eq!(kind(&[]), ClientKind::Browser);
        assert_eq!(kind(&[("accept", "*/*")]), ClientKind::Browser);
        assert_eq!(
            kind(&[("accept", "text/html,application/json")]),
            ClientKind::Browser
        );
        assert_eq!(kind(&[("sec-fetch-mode", "navigate")]), ClientKind::Browser);
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
