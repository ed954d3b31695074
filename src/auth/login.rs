//! `/oauth2/start` and the login redirect every unauthenticated browser gets:
//! a fresh `state`, `nonce` and PKCE verifier in a login cookie, then the
//! provider's authorization endpoint.

use http::request::Parts;

use super::context::LoginCtx;
use super::failure::LoginFailure;
use crate::oidc::pkce::Pkce;
use crate::oidc::random_token;
use crate::pages::{self, Outcome, Rejection};
use crate::session::LoginState;

use super::handled::{append_cookies, param, query_pairs, Handled};

/// What a login link may pass on to the provider (OIDC Core §3.1.2.1).
#[derive(Debug, Default)]
pub struct Hints {
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
}

impl Hints {
    /// `login_hint` (at most 256 characters, no control characters) and
    /// `ui_locales` (at most 8 language tags of letters, digits and `-`)
    /// from `/oauth2/start`; anything else is a 400.
    fn from_query(pairs: &[(String, String)]) -> Result<Self, Rejection> {
        let login_hint = param(pairs, "login_hint").map(str::to_string);
        if login_hint.as_deref().is_some_and(|h| {
            h.is_empty() || h.chars().count() > 256 || h.chars().any(char::is_control)
        }) {
            return Err(Rejection::BadParameter("login_hint"));
        }
        let ui_locales = param(pairs, "ui_locales").map(str::to_string);
        let tag_ok = |t: &str| {
            (1..=35).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if ui_locales
            .as_deref()
            .is_some_and(|l| l.split(' ').count() > 8 || !l.split(' ').all(tag_ok))
        {
            return Err(Rejection::BadParameter("ui_locales"));
        }
        Ok(Self {
            login_hint,
            ui_locales,
        })
    }
}

/// `/oauth2/start?rd=/path` (also at oauth2-proxy's `/oauth2/sign_in`):
/// begin a login explicitly, with an optional `login_hint` and
/// `ui_locales` for the provider.
pub async fn start(ctx: &LoginCtx<'_>, parts: &Parts) -> Result<Handled, Rejection> {
    let pairs = query_pairs(parts);
    // oauth2-proxy's `X-Auth-Request-Redirect` when there is no `rd`; the
    // redirect policy judges either.
    let header = parts
        .headers
        .get("x-auth-request-redirect")
        .and_then(|v| v.to_str().ok());
    let rd = ctx.redirects.or_root(param(&pairs, "rd").or(header));
    let hints = Hints::from_query(&pairs)?;
    match param(&pairs, "provider") {
        Some(id) => {
            let ctx = ctx
                .for_provider(id)
                .ok_or(Rejection::BadParameter("provider"))?;
            login_redirect(&ctx, rd, &hints).await
        }
        None => match ctx.providers.offered(&host_of(ctx, &rd)).as_slice() {
            [only] => {
                let ctx = ctx
                    .for_provider(only.id())
                    .ok_or(Rejection::BadParameter("provider"))?;
                login_redirect(&ctx, rd, &hints).await
            }
            offered => Ok(Handled::new(
                pages::choose_provider(choices(offered, &rd, &hints)),
                Outcome::Chooser,
            )),
        },
    }
}

/// The host a login is for: `return_to`'s when it is absolute (forward
/// auth for another host), else tollgate's own.
fn host_of(ctx: &LoginCtx<'_>, return_to: &str) -> String {
    url::Url::parse(return_to)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .or_else(|| ctx.redirects.origin().host_str().map(str::to_string))
        .unwrap_or_default()
}

/// Where an unauthenticated browser goes to sign in and come back to
/// `return_to`: the provider, or with several the chooser (at tollgate's
/// public URL, which forward-auth callers may not share).
pub async fn sign_in(ctx: &LoginCtx<'_>, return_to: String) -> Result<Handled, Rejection> {
    if let [only] = ctx.providers.offered(&host_of(ctx, &return_to)).as_slice() {
        let ctx = ctx
            .for_provider(only.id())
            .ok_or(Rejection::ProviderNotReady)?;
        return login_redirect(&ctx, return_to, &Hints::default()).await;
    }
    let mut url = ctx.redirects.origin().clone();
    url.set_path("/oauth2/start");
    url.query_pairs_mut().clear().append_pair("rd", &return_to);
    Ok(Handled::new(
        pages::redirect(url.as_str()),
        Outcome::Chooser,
    ))
}

/// One login link per provider, keeping the return-to URL and the hints.
fn choices(
    offered: &[&crate::oidc::registry::Slot],
    rd: &str,
    hints: &Hints,
) -> Vec<(String, String)> {
    offered
        .iter()
        .map(|slot| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("provider", slot.id()).append_pair("rd", rd);
            if let Some(h) = &hints.login_hint {
                q.append_pair("login_hint", h);
            }
            if let Some(l) = &hints.ui_locales {
                q.append_pair("ui_locales", l);
            }
            (
                format!("/oauth2/start?{}", q.finish()),
                slot.settings.name.clone(),
            )
        })
        .collect()
}

/// The 302 to the provider's authorization endpoint, with a fresh state,
/// nonce and PKCE challenge, and the login cookie that remembers them.
/// With pushed authorization requests (RFC 9126) the parameters go to the
/// provider first and the browser carries only `client_id` and
/// `request_uri`.
#[tracing::instrument(target = "tollgate::trace", name = "login", skip_all)]
pub async fn login_redirect(
    ctx: &LoginCtx<'_>,
    return_to: String,
    hints: &Hints,
) -> Result<Handled, Rejection> {
    let provider = ctx
        .provider
        .current
        .clone()
        .ok_or(Rejection::ProviderNotReady)?;
    let cfg = ctx.provider.settings;
    let state = random_token(32);
    let nonce = random_token(32);
    let pkce = cfg.pkce.then(Pkce::generate);
    let scope = cfg.scopes.join(" ");
    let redirect_uri = ctx.redirect_uri();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", cfg.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_ref()),
        ("scope", scope.as_str()),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
    ];
    if let Some(p) = &pkce {
        params.push(("code_challenge", p.challenge.as_str()));
        params.push(("code_challenge_method", "S256"));
    }
    let options = &cfg.login;
    let max_age = options.max_age.map(|m| m.as_secs().to_string());
    let acr_values = options.acr_values.join(" ");
    let optional = [
        ("prompt", options.prompt.as_deref()),
        ("max_age", max_age.as_deref()),
        (
            "acr_values",
            Some(acr_values.as_str()).filter(|a| !a.is_empty()),
        ),
        ("login_hint", hints.login_hint.as_deref()),
        ("ui_locales", hints.ui_locales.as_deref()),
    ];
    params.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    if options.form_post {
        params.push(("response_mode", "form_post"));
    }
    params.extend(options.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut url = provider.metadata.authorization_endpoint.clone();
    match &provider.push_endpoint {
        Some(endpoint) => {
            let pushed = provider.tokens.push(endpoint, params).await.map_err(|e| {
                let f = match e {
                    crate::oidc::TokenError::Busy => LoginFailure::ProviderBusy,
                    _ => LoginFailure::Pushed,
                };
                crate::telemetry::metrics::metrics().login("failed", f.check());
                tracing::warn!(target: "tollgate::audit", event = "login_failed", check = f.check(), reason = %e, "pushed authorization request failed");
                Rejection::LoginFailed(f)
            })?;
            url.query_pairs_mut()
                .append_pair("client_id", &cfg.client_id)
                .append_pair("request_uri", &pushed.request_uri);
        }
        None => {
            url.query_pairs_mut().extend_pairs(params);
        }
    }
    let mut login = LoginState::new(state, nonce, pkce.map(|p| p.verifier), return_to);
    login.provider = crate::session::Session::provider_field(&cfg.id);
    crate::telemetry::metrics::metrics().login("started", "");
    let mut resp = pages::redirect(url.as_str());
    append_cookies(
        &mut resp,
        ctx.login_cookies.begin(&ctx.sessions.codec, login),
    );
    Ok(Handled::new(resp, Outcome::LoginRedirect))
}
