//! `/oauth2/callback`: the state is checked before anything else, then the
//! code is redeemed and the ID token validated; only then is a session made.

use http::request::Parts;

use super::context::LoginCtx;
use crate::oidc::id_token::Expect;
use crate::oidc::{Provider, TokenError};
use crate::pages::{self, Outcome, Rejection};
use crate::session::store::{Handle, StoreError};
use crate::session::{now, LoginState, Session, DEFAULT_PROVIDER};

use super::failure::LoginFailure;
use super::handled::{append_cookies, param, Handled};
use super::profile::Profile;
use crate::session::RequestCookies;

/// A refused callback: the rejection, and the login cookies to clear.
type CallbackError = (Rejection, Vec<String>);

/// `/oauth2/callback`: check the state before anything else, then redeem
/// the code and validate the ID token; only then is a session created.
/// `pairs`: the authorization response, from the query, or from the body
/// of a `response_mode=form_post` POST.
#[tracing::instrument(target = "tollgate::trace", name = "callback", skip_all)]
pub async fn callback(
    ctx: &LoginCtx<'_>,
    parts: &Parts,
    pairs: &[(String, String)],
) -> Result<Handled, CallbackError> {
    let state = param(pairs, "state");
    let cookies = RequestCookies::of(&parts.headers);
    // Whatever happens next, the login cookie for this state is spent, and
    // abandoned logins beyond the bound go too.
    let clear: Vec<String> = state
        .and_then(|s| ctx.login_cookies.removal(s))
        .into_iter()
        .chain(
            ctx.login_cookies
                .stale(&ctx.sessions.codec, cookies.pairs(), state),
        )
        .collect();
    let fail = |f: LoginFailure| (Rejection::LoginFailed(f), clear.clone());

    for name in ["state", "code", "iss", "error"] {
        if pairs.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(fail(LoginFailure::DuplicateParameter));
        }
    }
    let login = ctx
        .login_cookies
        .finish(&ctx.sessions.codec, state, |name| {
            cookies.get(name).map(str::to_string)
        })
        .map_err(|e| fail(e.into()))?;
    // Only the provider the login went to may finish it: another's answer
    // (a mix-up, RFC 9700 §4.4) fails its `iss` check and its code.
    let ctx = &ctx
        .for_provider(login.provider.as_deref().unwrap_or(DEFAULT_PROVIDER))
        .ok_or_else(|| fail(LoginFailure::UnknownProvider))?;
    let provider = ctx
        .provider
        .current
        .clone()
        .ok_or((Rejection::ProviderNotReady, clear.clone()))?;
    let code = authorization_code(ctx, &provider, pairs).map_err(fail)?;
    let signed_in = redeem(ctx, &provider, code, &login).await.map_err(fail)?;
    let handle = Handle {
        present: ctx.sessions.cookies.present(&cookies),
        ..Handle::default()
    };
    let (session, set) = store_new_session(ctx, signed_in.session, &handle)
        .await
        .map_err(|r| (r, clear.clone()))?;
    // The return-to URL was checked when the login began; check again, it
    // costs nothing and the cookie could come from an older version.
    let mut resp = pages::redirect(&ctx.redirects.or_root(Some(&login.return_to)));
    append_cookies(&mut resp, clear);
    append_cookies(&mut resp, set);
    crate::telemetry::metrics::metrics().login("completed", "");
    tracing::info!(
        target: "tollgate::audit",
        event = "login",
        user = %session.sub,
        email = session.email.as_deref().unwrap_or(""),
        provider_ms = signed_in.provider_time.as_micros() as f64 / 1000.0,
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
    ctx: &LoginCtx<'_>,
    provider: &Provider,
    pairs: &'p [(String, String)],
) -> Result<&'p str, LoginFailure> {
    match param(pairs, "iss") {
        Some(iss) if iss != ctx.provider.settings.issuer => {
            return Err(LoginFailure::IssuerMismatch)
        }
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
    ctx: &LoginCtx<'_>,
    provider: &Provider,
    code: &str,
    login: &LoginState,
) -> Result<SignedIn, LoginFailure> {
    let waited = std::time::Instant::now();
    let tokens = exchange(ctx, provider, code, login).await?;
    if let Some(gh) = &provider.github {
        return github_session(ctx, gh, tokens, waited).await;
    }
    let mut provider_time = waited.elapsed();
    let id_token = tokens.id_token.as_deref().ok_or(LoginFailure::NoIdToken)?;
    let options = &ctx.provider.settings.login;
    let expect = Expect {
        nonce: Some(&login.nonce),
        access_token: Some(&tokens.access_token),
        max_auth_age: options.max_age,
        acr_values: &options.acr_values,
        ..Expect::default()
    };
    let claims = ctx
        .provider
        .validator
        .validate(id_token, &provider.keys, expect)
        .await?;
    let mut profile = Profile::of(&ctx.claims, &claims);
    check_hosted_domain(ctx.provider.settings, &claims)?;
    if ctx.claims.kind.groups_overflowed(&claims.other) {
        let settings = ctx.provider.settings;
        let groups = crate::oidc::graph::member_groups(
            ctx.provider.http,
            &settings.graph_url,
            &tokens.access_token,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "Entra ID group overage: the groups could not be read from Microsoft Graph");
            LoginFailure::UserInfo
        })?;
        profile.add_listed_groups(groups);
    }
    if ctx.claims.kind.wants_access_token_roles(&claims.other) {
        let roles = super::profile::access_token_claims(
            &ctx.provider,
            &provider.keys,
            &tokens.access_token,
            claims.subject(),
        )
        .await;
        if let Some(roles) = roles {
            profile.add_groups(&ctx.claims, &roles);
        }
    }
    if ctx.provider.settings.fetch_userinfo && profile.email.is_none() {
        if let Some(endpoint) = &provider.metadata.userinfo_endpoint {
            let waited = std::time::Instant::now();
            let info = login_userinfo(provider, endpoint, &tokens, claims.subject()).await?;
            provider_time += waited.elapsed();
            profile.complete(&ctx.claims, info);
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
        expires_at: issued_at.saturating_add(ctx.session.lifetime.as_secs() as i64),
        nonce: claims.nonce.clone(),
        auth_time: claims.auth_time.map(|t| t as i64),
        provider: Session::provider_field(&ctx.provider.settings.id),
        ..Session::default()
    };
    profile.fill(&mut session);
    Ok(SignedIn {
        session,
        provider_time,
    })
}

/// Redeems the code, each refusal named by what it says about the login.
#[tracing::instrument(
    target = "tollgate::trace",
    name = "token_exchange",
    skip_all,
    fields(otel.kind = "client")
)]
async fn exchange(
    ctx: &LoginCtx<'_>,
    provider: &Provider,
    code: &str,
    login: &LoginState,
) -> Result<crate::oidc::TokenResponse, LoginFailure> {
    provider
        .tokens
        .exchange_code(code, ctx.redirect_uri().as_ref(), login.verifier.as_deref())
        .await
        .map_err(|e| match e {
            TokenError::Refused { error, .. } if error == "invalid_client" => {
                LoginFailure::ClientAuth
            }
            TokenError::Credential(e) => {
                tracing::error!(error = %e, "tollgate cannot authenticate itself to the provider");
                LoginFailure::ClientAuth
            }
            TokenError::Refused { error, .. } => LoginFailure::CodeRefused(error),
            TokenError::Busy => LoginFailure::ProviderBusy,
            TokenError::Invalid(why) => LoginFailure::TokenResponse(why),
            other => {
                tracing::warn!(error = %other, "token endpoint failed during login");
                LoginFailure::TokenEndpoint
            }
        })
}

/// GitHub: no ID token; who signed in is what its API says for the
/// access token (the numeric id as subject, the verified primary email,
/// organisations and teams as groups).
async fn github_session(
    ctx: &LoginCtx<'_>,
    gh: &crate::oidc::github::Github,
    tokens: crate::oidc::TokenResponse,
    waited: std::time::Instant,
) -> Result<SignedIn, LoginFailure> {
    let user = crate::oidc::github::user(ctx.provider.http, gh, &tokens.access_token)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the GitHub API could not say who signed in");
            LoginFailure::UserInfo
        })?;
    let issued_at = now();
    let session = Session {
        sub: user.id,
        access_token: tokens.access_token,
        access_expires_at: tokens
            .expires_in
            .map(|s| issued_at.saturating_add(s as i64)),
        refresh_token: tokens.refresh_token,
        issued_at,
        expires_at: issued_at.saturating_add(ctx.session.lifetime.as_secs() as i64),
        email_verified: user.email.as_ref().map(|_| true),
        email: user.email,
        name: user.name,
        preferred_username: Some(user.login),
        groups: user.groups,
        provider: Session::provider_field(&ctx.provider.settings.id),
        ..Session::default()
    };
    Ok(SignedIn {
        session,
        provider_time: waited.elapsed(),
    })
}

/// Google: the user must belong to one of `provider.hosted_domains` (the
/// `hd` claim; OpenID Connect at Google, "hd" parameter).
fn check_hosted_domain(
    cfg: &crate::oidc::settings::ProviderConfig,
    claims: &crate::oidc::IdTokenClaims,
) -> Result<(), LoginFailure> {
    if cfg.hosted_domains.is_empty() {
        return Ok(());
    }
    let hd = claims.other.get("hd").and_then(serde_json::Value::as_str);
    match hd {
        Some(d) if cfg.hosted_domains.iter().any(|h| h.eq_ignore_ascii_case(d)) => Ok(()),
        _ => Err(LoginFailure::HostedDomain),
    }
}

/// The userinfo answer for a login (OIDC Core §5.3), its `sub` checked.
async fn login_userinfo(
    provider: &Provider,
    endpoint: &url::Url,
    tokens: &crate::oidc::TokenResponse,
    subject: &str,
) -> Result<crate::oidc::userinfo::UserInfo, LoginFailure> {
    use crate::oidc::userinfo::UserInfoError;
    provider
        .tokens
        .userinfo(endpoint, &tokens.access_token, &tokens.token_type, subject)
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
    ctx: &LoginCtx<'_>,
    mut session: Session,
    handle: &Handle,
) -> Result<(Session, Vec<String>), Rejection> {
    match ctx.sessions.save(&session, handle).await {
        Ok(c) => Ok((session, c)),
        Err(StoreError::TooLarge(e)) => {
            // The ID token is kept only as a logout hint; give it up before
            // giving up the login.
            tracing::warn!(user = %session.sub, error = %e, "session too large; dropping the ID token (logout will not send id_token_hint)");
            session.id_token = None;
            match ctx.sessions.save(&session, handle).await {
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
