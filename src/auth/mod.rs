//! The `/oauth2/*` endpoints: start a login, finish it at the callback, sign
//! out, and tell the caller who they are.

pub mod backchannel;
pub mod bearer;
pub mod failure;
pub mod profile;
pub mod redirect;
pub mod refresh;
pub mod verdicts;

use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};

use crate::gateway::state::{request_cookies, App};
use crate::oidc::id_token::Expect;
use crate::oidc::pkce::Pkce;
use crate::oidc::{random_token, Provider, TokenError};
use crate::pages::{self, ClientKind, Outcome, Rejection};
use crate::session::store::{Handle, Loaded, StoreError};
use crate::session::{now, LoginState, Session};
use crate::Body;

pub use failure::LoginFailure;
use profile::Profile;

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

/// Where a browser says a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    /// This origin, or the user's own navigation (`Sec-Fetch-Site: none`).
    Same,
    /// Another site (or a same-site sibling, which is another origin).
    Cross,
    /// No fetch metadata and no `Origin`: an old browser or not a browser.
    Unknown,
}

/// `Sec-Fetch-Site` when the browser sends it (all current ones do), else
/// `Origin` compared with tollgate's own.
fn request_site(headers: &http::HeaderMap, own: &url::Url) -> Site {
    if let Some(v) = headers.get("sec-fetch-site") {
        return match v.as_bytes() {
            b"same-origin" | b"none" => Site::Same,
            _ => Site::Cross,
        };
    }
    match headers.get(header::ORIGIN).map(|v| v.as_bytes()) {
        None => Site::Unknown,
        Some(o) if o == own.origin().ascii_serialization().as_bytes() => Site::Same,
        Some(_) => Site::Cross,
    }
}

/// The query parameters of a request, decoded once.
fn query_pairs(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
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

/// `/oauth2/start?rd=/path`: begin a login explicitly.
pub fn start(app: &App, parts: &Parts) -> Result<Handled, Rejection> {
    let pairs = query_pairs(parts);
    let rd = app.rules.redirects.or_root(param(&pairs, "rd"));
    login_redirect(app, rd)
}

/// The 302 to the provider's authorization endpoint, with a fresh state,
/// nonce and PKCE challenge, and the login cookie that remembers them.
pub fn login_redirect(app: &App, return_to: String) -> Result<Handled, Rejection> {
    let provider = app.provider().ok_or(Rejection::ProviderNotReady)?;
    let cfg = &app.config.provider;
    let state = random_token(32);
    let nonce = random_token(32);
    let pkce = cfg.pkce.then(Pkce::generate);

    let mut url = provider.metadata.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &cfg.client_id)
            .append_pair("redirect_uri", cfg.redirect_url.as_str())
            .append_pair("scope", &cfg.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce);
        if let Some(p) = &pkce {
            q.append_pair("code_challenge", &p.challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    let login = LoginState::new(state, nonce, pkce.map(|p| p.verifier), return_to);
    crate::telemetry::metrics::metrics().login("started", "");
    let mut resp = pages::redirect(url.as_str());
    append_cookies(
        &mut resp,
        app.login_cookies.begin(&app.sessions.codec, login),
    );
    Ok(Handled::new(resp, Outcome::LoginRedirect))
}

/// A refused callback: the rejection, and the login cookies to clear.
type CallbackError = (Rejection, Vec<String>);

/// `/oauth2/callback`: check the state before anything else, then redeem
/// the code and validate the ID token; only then is a session created.
pub async fn callback(app: &App, parts: &Parts) -> Result<Handled, CallbackError> {
    let pairs = query_pairs(parts);
    let state = param(&pairs, "state");
    let cookies = request_cookies(&parts.headers);
    // Whatever happens next, the login cookie for this state is spent, and
    // abandoned logins beyond the bound go too.
    let clear: Vec<String> = state
        .and_then(|s| app.login_cookies.removal(s))
        .into_iter()
        .chain(
            app.login_cookies
                .stale(&app.sessions.codec, cookies.pairs(), state),
        )
        .collect();
    let fail = |f: LoginFailure| (Rejection::LoginFailed(f), clear.clone());

    for name in ["state", "code", "iss", "error"] {
        if pairs.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(fail(LoginFailure::DuplicateParameter));
        }
    }
    let login = app
        .login_cookies
        .finish(&app.sessions.codec, state, |name| {
            cookies.get(name).map(str::to_string)
        })
        .map_err(|e| fail(e.into()))?;
    let provider = app
        .provider()
        .ok_or((Rejection::ProviderNotReady, clear.clone()))?;
    let code = authorization_code(app, &provider, &pairs).map_err(fail)?;
    let signed_in = redeem(app, &provider, code, &login).await.map_err(fail)?;
    let handle = Handle {
        present: app.sessions.cookies.present(&cookies),
        ..Handle::default()
    };
    let (session, set) = store_new_session(app, signed_in.session, &handle)
        .await
        .map_err(|r| (r, clear.clone()))?;
    // The return-to URL was checked when the login began; check again, it
    // costs nothing and the cookie could come from an older version.
    let mut resp = pages::redirect(&app.rules.redirects.or_root(Some(&login.return_to)));
    append_cookies(&mut resp, clear);
    append_cookies(&mut resp, set);
    crate::telemetry::metrics::metrics().login("completed", "");
    tracing::info!(
        target: "tollgate::audit",
        event = "login",
        user = %session.sub,
        email = session.email.as_deref().unwrap_or(""),
        provider_ms = signed_in.provider_time.as_secs_f64() * 1000.0,
        "login succeeded"
    );
    Ok(Handled {
        response: resp,
        outcome: Outcome::Login,
        user: Some(session.sub),
    })
}

/// The authorization response's `code`, once its `iss` (RFC 9207) and
/// `error` say it may be redeemed.
fn authorization_code<'p>(
    app: &App,
    provider: &Provider,
    pairs: &'p [(String, String)],
) -> Result<&'p str, LoginFailure> {
    match param(pairs, "iss") {
        Some(iss) if iss != app.config.provider.issuer => return Err(LoginFailure::IssuerMismatch),
        None if provider
            .metadata
            .authorization_response_iss_parameter_supported =>
        {
            return Err(LoginFailure::IssuerMissing)
        }
        _ => {}
    }
    if let Some(error) = param(pairs, "error") {
        return Err(LoginFailure::Provider(crate::oidc::token::sanitize(error)));
    }
    param(pairs, "code")
        .filter(|c| !c.is_empty())
        .ok_or(LoginFailure::MissingCode)
}

/// A login the provider completed: the new session, and the time spent
/// waiting for the provider (reported apart from our own work).
struct SignedIn {
    session: Session,
    provider_time: std::time::Duration,
}

/// Redeems the code, validates the ID token, completes the profile from
/// userinfo when the ID token has no email, and makes the session.
async fn redeem(
    app: &App,
    provider: &Provider,
    code: &str,
    login: &LoginState,
) -> Result<SignedIn, LoginFailure> {
    let waited = std::time::Instant::now();
    let tokens = provider
        .tokens
        .exchange_code(
            code,
            app.config.provider.redirect_url.as_str(),
            login.verifier.as_deref(),
        )
        .await
        .map_err(|e| match e {
            TokenError::Refused { error, .. } if error == "invalid_client" => {
                LoginFailure::ClientAuth
            }
            TokenError::Refused { error, .. } => LoginFailure::CodeRefused(error),
            TokenError::Invalid(why) => LoginFailure::TokenResponse(why),
            other => {
                tracing::warn!(error = %other, "token endpoint failed during login");
                LoginFailure::TokenEndpoint
            }
        })?;
    let mut provider_time = waited.elapsed();
    let id_token = tokens.id_token.as_deref().ok_or(LoginFailure::NoIdToken)?;
    let expect = Expect {
        nonce: Some(&login.nonce),
        access_token: Some(&tokens.access_token),
        ..Expect::default()
    };
    let claims = app
        .validator
        .validate(id_token, &provider.keys, expect)
        .await?;
    let mut profile = Profile::of(app, &claims);
    if app.config.provider.fetch_userinfo && profile.email.is_none() {
        if let Some(endpoint) = &provider.metadata.userinfo_endpoint {
            let waited = std::time::Instant::now();
            let info =
                login_userinfo(app, endpoint, &tokens.access_token, claims.subject()).await?;
            provider_time += waited.elapsed();
            profile.complete(app, info);
        }
    }
    let issued_at = now();
    let mut session = Session {
        sub: claims.subject().to_string(),
        access_token: tokens.access_token.clone(),
        access_expires_at: tokens
            .expires_in
            .map(|s| issued_at.saturating_add(s as i64)),
        refresh_token: tokens.refresh_token.clone(),
        id_token: Some(id_token.to_string()),
        sid: claims.sid.clone(),
        issued_at,
        expires_at: issued_at.saturating_add(app.config.session.lifetime.as_secs() as i64),
        nonce: claims.nonce.clone(),
        auth_time: claims.auth_time.map(|t| t as i64),
        ..Session::default()
    };
    profile.fill(&mut session);
    Ok(SignedIn {
        session,
        provider_time,
    })
}

/// The userinfo answer for a login (OIDC Core §5.3), its `sub` checked.
async fn login_userinfo(
    app: &App,
    endpoint: &url::Url,
    access_token: &str,
    subject: &str,
) -> Result<crate::oidc::userinfo::UserInfo, LoginFailure> {
    use crate::oidc::userinfo::{fetch, UserInfoError};
    fetch(&app.http, endpoint, access_token, subject)
        .await
        .map_err(|e| match e {
            e @ (UserInfoError::SubjectMismatch | UserInfoError::Invalid) => {
                LoginFailure::UserInfoRefused(e)
            }
            other => {
                tracing::warn!(error = %other, "userinfo failed during login");
                LoginFailure::UserInfo
            }
        })
}

/// Saves a new login's session (a new session, and server-side a new
/// ticket); returns it with the cookies to set.
async fn store_new_session(
    app: &App,
    mut session: Session,
    handle: &Handle,
) -> Result<(Session, Vec<String>), Rejection> {
    match app.sessions.save(&session, handle).await {
        Ok(c) => Ok((session, c)),
        Err(StoreError::TooLarge(e)) => {
            // The ID token is kept only as a logout hint; give it up before
            // giving up the login.
            tracing::warn!(user = %session.sub, error = %e, "session too large; dropping the ID token (logout will not send id_token_hint)");
            session.id_token = None;
            match app.sessions.save(&session, handle).await {
                Ok(c) => Ok((session, c)),
                Err(_) => Err(Rejection::LoginFailed(LoginFailure::SessionTooLarge)),
            }
        }
        Err(e @ StoreError::Unavailable(_)) => {
            tracing::warn!(error = %e, "could not store the new session");
            Err(Rejection::SessionStoreUnavailable)
        }
    }
}

/// `/oauth2/sign_out?rd=/path`: delete the session (the server-side record
/// and every cookie), revoke its refresh token where the provider allows
/// (RFC 7009), then end the provider session when it publishes an
/// `end_session_endpoint`.
pub async fn sign_out(app: &App, parts: &Parts) -> Result<Handled, Rejection> {
    let pairs = query_pairs(parts);
    let rd = app.rules.redirects.or_root(param(&pairs, "rd"));
    // A page on another site must not be able to sign the user out (CSRF,
    // security-cases D-8): a cross-site POST is refused; a GET that is not
    // shown to be same-origin asks first, with a button that POSTs from here.
    match (
        parts.method == http::Method::POST,
        request_site(&parts.headers, app.rules.redirects.origin()),
    ) {
        (_, Site::Same) | (true, Site::Unknown) => {}
        (false, Site::Unknown) if !app.config.session.confirm_sign_out => {}
        (true, Site::Cross) => return Err(Rejection::CrossSite),
        (false, _) => {
            return Ok(Handled::new(
                pages::confirm_sign_out(&rd),
                Outcome::SignOutConfirm,
            ))
        }
    }
    // With the store down the browser's cookies are still cleared: the
    // user asked to leave, and the record expires by itself.
    let (session, cleared) = match app.load_session(&parts.headers).await {
        Ok(Loaded { session, handle }) => {
            let cleared = match app.sessions.delete(&handle, session.as_ref()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete the server-side session at sign-out");
                    app.sessions.cookies.clear(&handle.present)
                }
            };
            (session, cleared)
        }
        Err(_) => {
            let present = app
                .sessions
                .cookies
                .present(&request_cookies(&parts.headers));
            (None, app.sessions.cookies.clear(&present))
        }
    };

    let provider = app.provider();
    if let (Some(p), Some(rt)) = (
        &provider,
        session.as_ref().and_then(|s| s.refresh_token.as_deref()),
    ) {
        if let Some(endpoint) = &p.metadata.revocation_endpoint {
            if let Err(e) = p.tokens.revoke(endpoint, rt).await {
                tracing::warn!(error = %e, "revoking the refresh token at sign-out failed");
            }
        }
    }
    let location = match provider.and_then(|p| p.metadata.end_session_endpoint.clone()) {
        Some(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(hint) = session.as_ref().and_then(|s| s.id_token.as_deref()) {
                    q.append_pair("id_token_hint", hint);
                }
                q.append_pair("client_id", &app.config.provider.client_id)
                    .append_pair(
                        "post_logout_redirect_uri",
                        app.config.provider.post_logout_redirect_url.as_str(),
                    );
            }
            url.to_string()
        }
        None => rd,
    };
    let user = session.as_ref().map(|s| s.sub.clone());
    if let Some(u) = &user {
        tracing::info!(target: "tollgate::audit", event = "logout", user = %u, "signed out");
    }
    let mut resp = pages::redirect(&location);
    append_cookies(&mut resp, cleared);
    Ok(Handled {
        response: resp,
        outcome: Outcome::SignOut,
        user,
    })
}

/// `/oauth2/userinfo`: the session's identity as JSON (oauth2-proxy's shape).
pub async fn userinfo(app: &App, parts: &Parts) -> Result<Handled, Rejection> {
    let session = app
        .load_session(&parts.headers)
        .await?
        .session
        .ok_or(Rejection::Unauthenticated)?;
    let body = serde_json::json!({
        "user": session.sub,
        "email": session.email,
        "preferredUsername": session.preferred_username,
        "groups": session.groups,
    });
    Ok(Handled {
        response: pages::json(StatusCode::OK, &body),
        outcome: Outcome::Userinfo,
        user: Some(session.sub),
    })
}

/// Turns a failed request into the page for its client kind, with any
/// cookies the failure must still clear.
pub fn rescue(rejection: Rejection, kind: ClientKind, clear: Vec<String>) -> Response<Body> {
    let mut resp = rejection.respond(kind);
    append_cookies(&mut resp, clear);
    resp
}
