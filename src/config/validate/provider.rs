//! `[provider]`.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use crate::config::raw::RawProvider;
use crate::config::{Check, ClientAuth, ProviderConfig, Secret, CALLBACK_PATH};
use crate::oidc::client_auth::ClientKey;
use crate::oidc::preset::ProviderKind;
use crate::oidc::settings::{AssertionAudience, ClientKeyConfig, LoginOptions};

/// `None` when a required value is missing or invalid (reported).
pub(super) fn check(
    c: &mut Check<'_>,
    p: &RawProvider,
    public_url: Option<&Url>,
) -> Option<ProviderConfig> {
    let (issuer, client_id, client_auth, client_secret) = client(c, p);
    let (client_keys, client_assertion_file) = credentials(c, p, client_auth);
    let client_assertion_audience = assertion_audience(c, p);
    let kind = provider_kind(c, p);
    let mut login = login_options(c, p);
    if kind == ProviderKind::Google {
        google_parameters(p, &mut login);
    }
    let tls_client_identity = tls_identity(c, p, client_auth);
    let dpop_key = dpop_key(c, p);
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
    let provider_timeout = call_limits(c, p);
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
    let (allowed_tenants, graph_url) = entra(c, p, kind);
    let id = provider_id(c, p);
    let config = ProviderConfig {
        hosts: host_patterns(c, p),
        name: display_name(p, kind, &issuer),
        id,
        kind,
        hosted_domains: p
            .hosted_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        allowed_tenants,
        graph_url: graph_url?,
        issuer,
        client_id,
        client_secret: client_secret.map(Secret::new),
        client_auth,
        client_keys,
        client_assertion_file,
        tls_client_identity,
        client_assertion_audience,
        // FAPI 2.0 pushes every authorization request.
        pushed_authorization: p.pushed_authorization || p.profile.as_deref() == Some("fapi2"),
        fapi2: p.profile.as_deref() == Some("fapi2"),
        dpop: p.dpop,
        dpop_key,
        login,
        scopes: scopes(p, kind),
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
        max_concurrent_calls: p.max_concurrent_calls,
        ca_file: provider_ca,
    };
    if let Some(profile) = &p.profile {
        super::profile::check(c, profile, &config);
    }
    Some(config)
}

/// `provider.timeout` (returned) and `provider.max_concurrent_calls`: what
/// bounds the calls to a slow provider.
fn call_limits(c: &mut Check<'_>, p: &RawProvider) -> Duration {
    let timeout = c.duration("provider.timeout", &p.timeout);
    if timeout.is_zero() {
        c.fail("provider.timeout", "must be more than zero");
    }
    if p.max_concurrent_calls == 0 {
        c.fail("provider.max_concurrent_calls", "must be at least 1");
    }
    timeout
}

/// `provider.id`: `default` for `[provider]` unless set; required in
/// `[[providers]]`. Short and plain: it travels in every session cookie.
fn provider_id(c: &mut Check<'_>, p: &RawProvider) -> String {
    let id = match (&p.id, &c.entry) {
        (Some(id), _) => id.clone(),
        (None, None) => return "default".into(),
        (None, Some(_)) => {
            c.fail("provider.id", "is required in [[providers]]");
            return String::new();
        }
    };
    let plain = id.len() <= 32
        && id.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !plain {
        c.fail(
            "provider.id",
            format!("`{id}` must be 1 to 32 lowercase letters, digits, `-` or `_`, starting with a letter or digit"),
        );
    }
    id
}

/// `provider.hosts`: host names, or `*.` and a host name; no port.
fn host_patterns(c: &mut Check<'_>, p: &RawProvider) -> Vec<String> {
    let mut out = Vec::new();
    for (i, h) in p.hosts.iter().enumerate() {
        match crate::proxy::host::host_pattern(h) {
            Some(pattern) => out.push(pattern),
            None => c.fail(
                &format!("provider.hosts[{i}]"),
                format!("`{h}` is not a host name like \"app.example.com\" or \"*.example.com\" (no port, no scheme)"),
            ),
        }
    }
    out
}

/// `provider.name`, or the preset's name, or the issuer's host.
fn display_name(p: &RawProvider, kind: ProviderKind, issuer: &str) -> String {
    if let Some(n) = p.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    match kind {
        ProviderKind::Github => "GitHub".into(),
        ProviderKind::Google => "Google".into(),
        ProviderKind::Entra => "Microsoft".into(),
        ProviderKind::Gitlab => "GitLab".into(),
        ProviderKind::Keycloak | ProviderKind::Oidc => Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| issuer.to_string()),
    }
}

/// Who tollgate is at the provider: issuer, client id, client
/// authentication and secret, PKCE and scopes.
fn client(c: &mut Check<'_>, p: &RawProvider) -> (String, String, ClientAuth, Option<Vec<u8>>) {
    let default_issuer = match (ProviderKind::parse(&p.kind), &p.tenant) {
        (Some(ProviderKind::Entra), Some(t)) => {
            Some(format!("https://login.microsoftonline.com/{t}/v2.0"))
        }
        (kind, _) => kind
            .and_then(ProviderKind::default_issuer)
            .map(str::to_string),
    };
    let issuer = match (&p.issuer, default_issuer) {
        (None, Some(d)) => d,
        _ => c.required("provider.issuer", &p.issuer).to_string(),
    };
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
    // GitHub takes the secret in the form body; everyone else, by RFC 6749
    // §2.3.1, must take HTTP Basic.
    let github = ProviderKind::parse(&p.kind) == Some(ProviderKind::Github);
    let method = p.client_auth.as_deref().unwrap_or(if github {
        "client_secret_post"
    } else {
        "client_secret_basic"
    });
    let client_auth = match method {
        "client_secret_basic" => ClientAuth::ClientSecretBasic,
        "client_secret_post" => ClientAuth::ClientSecretPost,
        "client_secret_jwt" => ClientAuth::ClientSecretJwt,
        "private_key_jwt" => ClientAuth::PrivateKeyJwt,
        "client_assertion_file" => ClientAuth::ClientAssertionFile,
        "tls_client_auth" => ClientAuth::TlsClientAuth,
        "self_signed_tls_client_auth" => ClientAuth::SelfSignedTlsClientAuth,
        "none" => ClientAuth::None,
        other => {
            c.fail("provider.client_auth", format!("`{other}` is not one of \"client_secret_basic\", \"client_secret_post\", \"client_secret_jwt\", \"private_key_jwt\", \"client_assertion_file\", \"tls_client_auth\", \"self_signed_tls_client_auth\", \"none\""));
            ClientAuth::ClientSecretBasic
        }
    };
    let client_secret = c.secret(
        "provider.client_secret",
        &p.client_secret,
        &p.client_secret_file,
    );
    match (&client_secret, client_auth) {
        (
            None,
            ClientAuth::ClientSecretBasic
            | ClientAuth::ClientSecretPost
            | ClientAuth::ClientSecretJwt,
        ) => c.fail(
            "provider.client_secret",
            format!(
                "is required with client_auth = \"{method}\" (or set `provider.client_secret_file`)"
            ),
        ),
        (Some(s), _) if s.is_empty() => c.fail("provider.client_secret", "is empty"),
        // RFC 7518 §3.2: an HS256 key of at least 32 bytes.
        (Some(s), ClientAuth::ClientSecretJwt) if s.len() < 32 => c.fail(
            "provider.client_secret",
            format!("is {} bytes, but client_secret_jwt signs HS256 with it, which needs at least 32 (RFC 7518 §3.2)", s.len()),
        ),
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
    if !github && !p.scopes.iter().any(|s| s == "openid") {
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

/// The credential of `private_key_jwt` (keys, read and checked here) or
/// `client_assertion_file` (only its path: it is read on each use).
fn credentials(
    c: &mut Check<'_>,
    p: &RawProvider,
    auth: ClientAuth,
) -> (
    Option<(ClientKeyConfig, Vec<ClientKeyConfig>)>,
    Option<std::path::PathBuf>,
) {
    let keys = match (&p.client_key_file, auth) {
        (Some(file), ClientAuth::PrivateKeyJwt) => {
            let algorithm = p.client_key_algorithm.as_deref().and_then(|a| match a.parse::<Algorithm>() {
                Ok(alg) if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => Some(alg),
                _ => {
                    c.fail("provider.client_key_algorithm", format!("`{a}` is not one of RS256/384/512, PS256/384/512, ES256, ES384, EdDSA"));
                    None
                }
            });
            let certificate = p
                .client_key_certificate_file
                .as_ref()
                .and_then(|f| first_certificate(c, f));
            let signing = key_file(
                c,
                "provider.client_key_file",
                file,
                algorithm,
                p.client_key_id.clone(),
            )
            .map(|k| ClientKeyConfig { certificate, ..k });
            let extra: Vec<ClientKeyConfig> = p
                .client_extra_key_files
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    key_file(
                        c,
                        &format!("provider.client_extra_key_files[{i}]"),
                        f,
                        None,
                        None,
                    )
                })
                .collect();
            signing.map(|s| (s, extra))
        }
        (None, ClientAuth::PrivateKeyJwt) => {
            c.fail("provider.client_key_file", "is required with client_auth = \"private_key_jwt\" (`tollgate generate-key` writes one)");
            None
        }
        (Some(_), _) => {
            c.fail(
                "provider.client_key_file",
                "is only used with client_auth = \"private_key_jwt\"",
            );
            None
        }
        (None, _) => None,
    };
    if auth != ClientAuth::PrivateKeyJwt {
        let set = [
            (
                "provider.client_key_algorithm",
                p.client_key_algorithm.is_some(),
            ),
            ("provider.client_key_id", p.client_key_id.is_some()),
            (
                "provider.client_key_certificate_file",
                p.client_key_certificate_file.is_some(),
            ),
            (
                "provider.client_extra_key_files",
                !p.client_extra_key_files.is_empty(),
            ),
        ];
        for (key, _) in set.iter().filter(|(_, on)| *on) {
            c.fail(key, "is only used with client_auth = \"private_key_jwt\"");
        }
    }
    let assertion_file = match (&p.client_assertion_file, auth) {
        (Some(f), ClientAuth::ClientAssertionFile) => {
            // Read now to catch a wrong path early; it is read again on
            // every use, as its writer rotates it.
            if let Err(e) = std::fs::metadata(f) {
                c.fail(
                    "provider.client_assertion_file",
                    format!("cannot read `{f}`: {e}"),
                );
            }
            Some(std::path::PathBuf::from(f))
        }
        (None, ClientAuth::ClientAssertionFile) => {
            c.fail(
                "provider.client_assertion_file",
                "is required with client_auth = \"client_assertion_file\"",
            );
            None
        }
        (Some(_), _) => {
            c.fail(
                "provider.client_assertion_file",
                "is only used with client_auth = \"client_assertion_file\"",
            );
            None
        }
        (None, _) => None,
    };
    (keys, assertion_file)
}

/// The DER of the first certificate in a PEM file.
fn first_certificate(c: &mut Check<'_>, file: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let key = "provider.client_key_certificate_file";
    let pem = c.pem_certs(key, file)?;
    match CertificateDer::pem_slice_iter(&pem).next() {
        Some(Ok(der)) => Some(der.to_vec()),
        _ => {
            c.fail(key, format!("`{file}` holds no PEM CERTIFICATE"));
            None
        }
    }
}

/// One PEM private key file, loaded and checked against its algorithm.
fn key_file(
    c: &mut Check<'_>,
    key: &str,
    file: &str,
    algorithm: Option<Algorithm>,
    kid: Option<String>,
) -> Option<ClientKeyConfig> {
    let pem = match super::super::read_file(file) {
        Ok(p) => p,
        Err(e) => {
            c.fail(key, format!("cannot read `{file}`: {e}"));
            return None;
        }
    };
    let config = ClientKeyConfig {
        file: file.to_string(),
        pem: Secret::new(pem),
        algorithm,
        kid,
        certificate: None,
    };
    match ClientKey::load(&config) {
        Ok(_) => Some(config),
        Err(e) => {
            c.fail(key, e.to_string());
            None
        }
    }
}

/// `provider.scopes`; GitHub's own when the OpenID default was left: the
/// profile, the email addresses, the organisations and teams.
fn scopes(p: &RawProvider, kind: ProviderKind) -> Vec<String> {
    let oidc_default = ["openid", "email", "profile"];
    if kind == ProviderKind::Github && p.scopes.iter().map(String::as_str).eq(oidc_default) {
        return ["read:user", "user:email", "read:org"]
            .map(String::from)
            .to_vec();
    }
    p.scopes.clone()
}

/// `provider.dpop_key_file`, only with `provider.dpop`.
fn dpop_key(c: &mut Check<'_>, p: &RawProvider) -> Option<ClientKeyConfig> {
    match (&p.dpop_key_file, p.dpop) {
        (Some(f), true) => key_file(c, "provider.dpop_key_file", f, None, None),
        (Some(_), false) => {
            c.fail(
                "provider.dpop_key_file",
                "is only used with `provider.dpop = true`",
            );
            None
        }
        (None, _) => None,
    }
}

/// `provider.kind`, and the keys only one kind uses.
fn provider_kind(c: &mut Check<'_>, p: &RawProvider) -> ProviderKind {
    let kind = match ProviderKind::parse(&p.kind) {
        Some(k) => k,
        None => {
            c.fail(
                "provider.kind",
                format!(
                    "`{}` is not one of \"oidc\", \"github\", \"entra\", \"google\", \"gitlab\", \"keycloak\"",
                    p.kind
                ),
            );
            ProviderKind::Oidc
        }
    };
    if !p.hosted_domains.is_empty() && kind != ProviderKind::Google {
        c.fail(
            "provider.hosted_domains",
            "is only used with kind = \"google\"",
        );
    }
    for (i, d) in p.hosted_domains.iter().enumerate() {
        if d.is_empty()
            || !d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            c.fail(
                &format!("provider.hosted_domains[{i}]"),
                "must be a domain name such as \"example.com\"",
            );
        }
    }
    kind
}

/// Entra ID: the tenant allow-list a multi-tenant authority needs, and
/// the Graph URL for group overage.
fn entra(
    c: &mut Check<'_>,
    p: &RawProvider,
    kind: ProviderKind,
) -> (Option<Vec<String>>, Option<Url>) {
    let graph_url = c.url("provider.graph_url", &p.graph_url);
    if kind != ProviderKind::Entra {
        for (key, set) in [
            ("provider.tenant", p.tenant.is_some()),
            ("provider.allowed_tenants", !p.allowed_tenants.is_empty()),
        ] {
            if set {
                c.fail(key, "is only used with kind = \"entra\"");
            }
        }
        return (None, graph_url);
    }
    let multi = p
        .issuer
        .as_deref()
        .map(|i| {
            i.contains("/common/") || i.contains("/organizations/") || i.contains("/consumers/")
        })
        .unwrap_or_else(|| {
            p.tenant
                .as_deref()
                .is_some_and(crate::oidc::preset::entra_multi_tenant)
        });
    if p.tenant.is_none() && p.issuer.is_none() {
        c.fail("provider.tenant", "is required with kind = \"entra\": the directory (tenant) id, or \"organizations\" for any work account");
    }
    match (multi, p.allowed_tenants.is_empty()) {
        (true, true) => {
            c.fail("provider.allowed_tenants", "is required with a multi-tenant authority: the tenant ids whose users may sign in (or [\"*\"] for any)");
            (None, graph_url)
        }
        (true, false) => (Some(p.allowed_tenants.clone()), graph_url),
        (false, false) => {
            c.fail("provider.allowed_tenants", "is only used with a multi-tenant authority (tenant = \"organizations\", \"common\" or \"consumers\")");
            (None, graph_url)
        }
        (false, true) => (None, graph_url),
    }
}

/// Google: `hd` for the hosted domains (one names it, several ask for any
/// Workspace account; the `hd` claim is checked either way), and a refresh
/// token, which Google gives only with `access_type=offline` and a consent
/// prompt (unless `provider.prompt` says otherwise).
fn google_parameters(p: &RawProvider, login: &mut LoginOptions) {
    match p.hosted_domains.as_slice() {
        [] => {}
        [one] => login.extra.push(("hd".into(), one.to_ascii_lowercase())),
        _ => login.extra.push(("hd".into(), "*".into())),
    }
    login.extra.push(("access_type".into(), "offline".into()));
    if login.prompt.is_none() {
        login.prompt = Some("consent".into());
    }
}

/// Parameters tollgate itself sets on the authorization request; a static
/// extra parameter may not replace them.
const OWN_PARAMETERS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request_uri",
    "request",
    "prompt",
    "max_age",
    "acr_values",
    "login_hint",
    "ui_locales",
    "response_mode",
];

/// `provider.prompt`, `max_age`, `acr_values`, `extra_authorize_params`.
fn login_options(c: &mut Check<'_>, p: &RawProvider) -> LoginOptions {
    if let Some(prompt) = &p.prompt {
        let values: Vec<&str> = prompt.split(' ').collect();
        let known = values.iter().all(|v| {
            matches!(
                *v,
                "none" | "login" | "consent" | "select_account" | "create"
            )
        });
        if !known || (values.len() > 1 && values.contains(&"none")) {
            c.fail("provider.prompt", format!("`{prompt}` is not \"login\", \"consent\", \"select_account\", \"create\", several of them separated by spaces, or \"none\" alone (OIDC Core §3.1.2.1)"));
        }
    }
    let max_age = p
        .max_age
        .as_ref()
        .map(|m| c.duration("provider.max_age", m));
    for (i, a) in p.acr_values.iter().enumerate() {
        if a.is_empty() || a.contains(' ') || a.chars().any(char::is_control) {
            c.fail(
                &format!("provider.acr_values[{i}]"),
                "must be one non-empty value without spaces",
            );
        }
    }
    for (name, value) in &p.extra_authorize_params {
        let key = format!("provider.extra_authorize_params.{name}");
        if OWN_PARAMETERS.contains(&name.as_str()) {
            c.fail(
                &key,
                "is set by tollgate itself (or by its own key) and cannot be replaced",
            );
        } else if name.is_empty() || value.chars().any(char::is_control) {
            c.fail(
                &key,
                "must have a name and a value without control characters",
            );
        }
    }
    let form_post = match p.response_mode.as_str() {
        "query" => false,
        "form_post" => true,
        other => {
            c.fail(
                "provider.response_mode",
                format!("`{other}` is not \"query\" or \"form_post\""),
            );
            false
        }
    };
    LoginOptions {
        form_post,
        prompt: p.prompt.clone(),
        max_age,
        acr_values: p.acr_values.clone(),
        extra: p
            .extra_authorize_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The certificate and key of mutual-TLS client authentication, as one
/// PEM (what the HTTP client takes), checked here.
fn tls_identity(c: &mut Check<'_>, p: &RawProvider, auth: ClientAuth) -> Option<Secret> {
    let files = (&p.tls_client_certificate_file, &p.tls_client_key_file);
    if !auth.is_mtls() {
        for (key, set) in [
            ("provider.tls_client_certificate_file", files.0.is_some()),
            ("provider.tls_client_key_file", files.1.is_some()),
        ] {
            if set {
                c.fail(key, "is only used with client_auth = \"tls_client_auth\" or \"self_signed_tls_client_auth\"");
            }
        }
        return None;
    }
    let (Some(cert), Some(key)) = files else {
        c.fail(
            "provider.tls_client_certificate_file",
            format!(
                "and `provider.tls_client_key_file` are required with client_auth = \"{}\"",
                auth.method()
            ),
        );
        return None;
    };
    let cert_pem = c.pem_certs("provider.tls_client_certificate_file", cert)?;
    let key_pem = match super::super::read_file(key) {
        Ok(k) => k,
        Err(e) => {
            c.fail(
                "provider.tls_client_key_file",
                format!("cannot read `{key}`: {e}"),
            );
            return None;
        }
    };
    let mut pem = cert_pem;
    pem.push(b'\n');
    pem.extend_from_slice(&key_pem);
    match reqwest::Identity::from_pem(&pem) {
        Ok(_) => Some(Secret::new(pem)),
        Err(_) => {
            c.fail(
                "provider.tls_client_key_file",
                format!("`{key}` is not a PEM private key for the certificate in `{cert}`"),
            );
            None
        }
    }
}

/// `provider.client_assertion_audience`.
fn assertion_audience(c: &mut Check<'_>, p: &RawProvider) -> AssertionAudience {
    match p.client_assertion_audience.as_str() {
        "token_endpoint" => AssertionAudience::TokenEndpoint,
        "endpoint" => AssertionAudience::Endpoint,
        "issuer" => AssertionAudience::Issuer,
        other => match c.url("provider.client_assertion_audience", other) {
            Some(u) => AssertionAudience::Url(u.to_string()),
            None => AssertionAudience::TokenEndpoint,
        },
    }
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
