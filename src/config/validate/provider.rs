//! `[provider]`.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use crate::config::raw::RawProvider;
use crate::config::{Check, ClientAuth, ProviderConfig, Secret, CALLBACK_PATH};

/// `None` when a required value is missing or invalid (reported).
pub(super) fn check(
    c: &mut Check<'_>,
    p: &RawProvider,
    public_url: Option<&Url>,
) -> Option<ProviderConfig> {
    let (issuer, client_id, client_auth, client_secret) = client(c, p);
    let id_token_algorithms = id_token_algorithms(c, p, client_secret.as_deref());
    let clock_skew = c.duration("provider.clock_skew", &p.clock_skew);
    if clock_skew > Duration::from_secs(300) {
        c.fail("provider.clock_skew", "must be at most 300s");
    }
    let id_token_max_age = c.duration("provider.id_token_max_age", &p.id_token_max_age);
    let id_token_max_age = (!id_token_max_age.is_zero()).then_some(id_token_max_age);
    for (i, a) in p.trusted_audiences.iter().enumerate() {
        if a.is_empty() {
            c.fail(
                &format!("provider.trusted_audiences[{i}]"),
                "must not be empty",
            );
        }
    }
    let provider_timeout = c.duration("provider.timeout", &p.timeout);
    if provider_timeout.is_zero() {
        c.fail("provider.timeout", "must be more than zero");
    }
    let redirect_url = match (&p.redirect_url, public_url) {
        (Some(r), _) => c.url("provider.redirect_url", r),
        (None, Some(base)) => base.join(CALLBACK_PATH).ok(),
        (None, None) => None,
    };
    if let Some(r) = &redirect_url {
        if r.path() != CALLBACK_PATH {
            c.fail(
                "provider.redirect_url",
                format!("must end in {CALLBACK_PATH}, the path tollgate serves the callback on"),
            );
        }
    }
    let post_logout_redirect_url = match (&p.post_logout_redirect_url, public_url) {
        (Some(r), _) => c.url("provider.post_logout_redirect_url", r),
        (None, Some(base)) => Some(base.clone()),
        (None, None) => None,
    };
    let provider_ca = p
        .ca_file
        .as_ref()
        .and_then(|path| c.pem_certs("provider.ca_file", path));
    if p.groups_claim.is_empty() {
        c.fail("provider.groups_claim", "must not be empty");
    }
    Some(ProviderConfig {
        issuer,
        client_id,
        client_secret: client_secret.map(Secret::new),
        client_auth,
        scopes: p.scopes.clone(),
        redirect_url: redirect_url?,
        post_logout_redirect_url: post_logout_redirect_url?,
        pkce: p.pkce,
        id_token_algorithms,
        clock_skew,
        id_token_max_age,
        trusted_audiences: p.trusted_audiences.clone(),
        strict_audience: p.strict_audience,
        groups_claim: p.groups_claim.clone(),
        fetch_userinfo: p.fetch_userinfo,
        timeout: provider_timeout,
        ca_file: provider_ca,
    })
}

/// Who tollgate is at the provider: issuer, client id, client
/// authentication and secret, PKCE and scopes.
fn client(c: &mut Check<'_>, p: &RawProvider) -> (String, String, ClientAuth, Option<Vec<u8>>) {
    let issuer = c.required("provider.issuer", &p.issuer).to_string();
    if !issuer.is_empty() {
        if let Some(u) = c.url("provider.issuer", &issuer) {
            if u.query().is_some() || u.fragment().is_some() {
                c.fail(
                    "provider.issuer",
                    "must not have a query or fragment (OIDC Discovery §3)",
                );
            }
        }
    }
    let client_id = c.required("provider.client_id", &p.client_id).to_string();
    let client_auth = match p.client_auth.as_str() {
        "client_secret_basic" => ClientAuth::ClientSecretBasic,
        "client_secret_post" => ClientAuth::ClientSecretPost,
        "none" => ClientAuth::None,
        other => {
            c.fail("provider.client_auth", format!("`{other}` is not one of \"client_secret_basic\", \"client_secret_post\", \"none\""));
            ClientAuth::ClientSecretBasic
        }
    };
    let client_secret = c.secret(
        "provider.client_secret",
        &p.client_secret,
        &p.client_secret_file,
    );
    match (&client_secret, client_auth) {
        (None, ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost) => c.fail(
            "provider.client_secret",
            format!(
                "is required with client_auth = \"{}\" (or set `provider.client_secret_file`)",
                p.client_auth
            ),
        ),
        (Some(s), _) if s.is_empty() => c.fail("provider.client_secret", "is empty"),
        // RFC 6749 Appendix A says VSCHAR, yet Appendix B's own example
        // encodes `£` and `€`: non-ASCII secrets exist, and the Basic
        // encoding carries them. Control characters never belong in one
        // (a trailing newline from a secret file is the usual culprit).
        (Some(s), _) if std::str::from_utf8(s).is_err() => {
            c.fail("provider.client_secret", "is not valid UTF-8")
        }
        (Some(s), _) if String::from_utf8_lossy(s).chars().any(char::is_control) => c.fail(
            "provider.client_secret",
            "contains a control character (a trailing newline in the secret file?)",
        ),
        _ => {}
    }
    if client_auth == ClientAuth::None && !p.pkce {
        c.fail(
            "provider.pkce",
            "a public client (client_auth = \"none\") must use PKCE",
        );
    }
    if !p.scopes.iter().any(|s| s == "openid") {
        c.fail("provider.scopes", "must include \"openid\"");
    }
    if let Some(bad) = p.scopes.iter().find(|s| {
        s.is_empty()
            || s.chars()
                .any(|ch| ch == ' ' || ch == '"' || ch == '\\' || ch.is_control())
    }) {
        c.fail(
            "provider.scopes",
            format!("`{bad}` is not a valid scope token (RFC 6749 §3.3)"),
        );
    }
    (issuer, client_id, client_auth, client_secret)
}

/// `provider.id_token_algorithms`; HS* need a long enough client secret.
fn id_token_algorithms(
    c: &mut Check<'_>,
    p: &RawProvider,
    client_secret: Option<&[u8]>,
) -> Vec<Algorithm> {
    let mut id_token_algorithms = Vec::new();
    if p.id_token_algorithms.is_empty() {
        c.fail(
            "provider.id_token_algorithms",
            "must name at least one algorithm",
        );
    }
    for name in &p.id_token_algorithms {
        match name.parse::<Algorithm>() {
            Ok(a) => {
                if matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) && client_secret.is_none() {
                    c.fail("provider.id_token_algorithms", format!("{name} needs a client secret (HMAC ID tokens are keyed with it)"));
                }
                // RFC 7518 §3.2: an HMAC key at least as long as the hash.
                let min = match a {
                    Algorithm::HS256 => 32,
                    Algorithm::HS384 => 48,
                    Algorithm::HS512 => 64,
                    _ => 0,
                };
                if let Some(secret) = client_secret.filter(|s| s.len() < min) {
                    c.fail("provider.client_secret", format!("is {} bytes, but {name} ID tokens need a key of at least {min} bytes (RFC 7518 §3.2)", secret.len()));
                }
                id_token_algorithms.push(a);
            }
            Err(_) => c.fail(
                "provider.id_token_algorithms",
                format!("`{name}` is not a supported algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512; \"none\" is never accepted)"),
            ),
        }
    }
    id_token_algorithms
}
