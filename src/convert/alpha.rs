//! oauth2-proxy's alpha configuration (`--alpha-config`, YAML): read and
//! turned into the options of its legacy configuration that say the same,
//! so that one mapping converts both. What has no legacy form is reported,
//! by its place in the YAML (`providers[1]`, `injectRequestHeaders[2]`).
//!
//! The structure is oauth2-proxy's `AlphaOptions` (documentation,
//! "Alpha Configuration"): `upstreamConfig.upstreams`, `injectRequestHeaders`,
//! `injectResponseHeaders`, `server`, `metricsServer` and `providers`;
//! header values in both the squashed form (`claim:` beside `name`, before
//! v7.14) and the nested one (`claimSource:`, `secretSource:`).

use yaml_rust2::{Yaml, YamlLoader};

use super::source::{kind, split_commas, Kind, Options, Raw};
use super::ConvertError;

/// Reads the alpha YAML into legacy options.
pub(super) fn read(text: &str) -> Result<Options, ConvertError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| ConvertError::AlphaConfig {
        line: e.marker().line(),
        message: e.info().to_string(),
    })?;
    let mut out = Options::default();
    let Some(root) = docs.first() else {
        return Ok(out);
    };
    if root.as_hash().is_none() {
        return Err(ConvertError::AlphaConfig {
            line: 1,
            message: "the alpha configuration is not a mapping".into(),
        });
    }
    upstreams(&mut out, &root["upstreamConfig"]);
    headers(
        &mut out,
        &root["injectRequestHeaders"],
        REQUEST_HEADERS,
        "injectRequestHeaders",
    );
    headers(
        &mut out,
        &root["injectResponseHeaders"],
        RESPONSE_HEADERS,
        "injectResponseHeaders",
    );
    server(
        &mut out,
        &root["server"],
        "http_address",
        "https_address",
        "server",
    );
    server(
        &mut out,
        &root["metricsServer"],
        "metrics_address",
        "metrics_secure_address",
        "metricsServer",
    );
    providers(&mut out, &root["providers"]);
    if let Some(h) = root.as_hash() {
        for k in h.keys().filter_map(Yaml::as_str) {
            if !KNOWN_ROOT.contains(&k) {
                out.alpha.push((
                    k.to_string(),
                    "not part of oauth2-proxy's alpha configuration".into(),
                ));
            }
        }
    }
    Ok(out)
}

const KNOWN_ROOT: [&str; 6] = [
    "upstreamConfig",
    "injectRequestHeaders",
    "injectResponseHeaders",
    "server",
    "metricsServer",
    "providers",
];

/// A scalar as text (YAML reads `8080` and `true` as numbers and booleans).
fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Sets legacy option `key` from a YAML value, as its kind takes it.
fn set(out: &mut Options, key: &str, y: &Yaml) {
    let raw = match (kind(key), y) {
        (None, _) | (_, Yaml::BadValue | Yaml::Null) => return,
        (Some(Kind::Bool), Yaml::Boolean(b)) => Raw::Bool(*b),
        (Some(Kind::Bool), other) => match text(other).as_deref() {
            Some("true") => Raw::Bool(true),
            Some("false") => Raw::Bool(false),
            _ => return,
        },
        (Some(Kind::List), Yaml::Array(items)) => {
            Raw::List(items.iter().filter_map(text).collect())
        }
        (Some(Kind::List), other) => match text(other) {
            Some(t) => Raw::List(split_commas(&t)),
            None => return,
        },
        (Some(Kind::Text), other) => match text(other) {
            Some(t) => Raw::Text(t),
            None => return,
        },
    };
    out.values.insert(key.to_string(), raw);
}

/// `upstreamConfig.upstreams`: each becomes a legacy `--upstream` (the
/// `path` it serves written into the URL, as the legacy form has it); the
/// per-upstream switches become the global ones when every upstream agrees.
fn upstreams(out: &mut Options, config: &Yaml) {
    if config["proxyRawPath"].as_bool() == Some(true) {
        out.alpha.push((
            "upstreamConfig.proxyRawPath".into(),
            "tollgate always forwards the one normalized path it judged".into(),
        ));
    }
    let Some(list) = config["upstreams"].as_vec() else {
        return;
    };
    let mut urls = Vec::new();
    for (i, u) in list.iter().enumerate() {
        let uri = u["uri"].as_str().unwrap_or_default();
        let path = u["path"].as_str().unwrap_or("/");
        if u["static"].as_bool() == Some(true) {
            urls.push(format!(
                "static://{}",
                u["staticCode"].as_i64().unwrap_or(200)
            ));
            continue;
        }
        if u["rewriteTarget"].as_str().is_some() {
            out.alpha.push((
                format!("upstreamConfig.upstreams[{i}].rewriteTarget"),
                "path rewriting is not supported: the upstream gets the path as requested".into(),
            ));
        }
        match url::Url::parse(uri) {
            Ok(mut url) if matches!(url.scheme(), "http" | "https") => {
                url.set_path(path);
                urls.push(url.to_string());
            }
            Ok(_) => urls.push(format!("{uri}#{path}")),
            Err(_) => out.alpha.push((
                format!("upstreamConfig.upstreams[{i}].uri"),
                "not a URL".into(),
            )),
        }
    }
    out.values.insert("upstreams".into(), Raw::List(urls));
    for (field, key) in [
        ("passHostHeader", "pass_host_header"),
        ("proxyWebSockets", "proxy_websockets"),
        ("insecureSkipTLSVerify", "ssl_upstream_insecure_skip_verify"),
        ("timeout", "upstream_timeout"),
        ("flushInterval", "flush_interval"),
        ("disableKeepAlives", "disable_keep_alives"),
    ] {
        // An upstream that leaves a field out has oauth2-proxy's default.
        let default = alpha_default(field);
        let given = list.iter().any(|u| !u[field].is_badvalue());
        let values: Vec<&Yaml> = list
            .iter()
            .map(|u| {
                if u[field].is_badvalue() {
                    &default
                } else {
                    &u[field]
                }
            })
            .collect();
        match values.first() {
            _ if !given => {}
            Some(first) if values.iter().all(|v| v == first) => set(out, key, first),
            Some(_) => out.alpha.push((
                format!("upstreamConfig.upstreams[].{field}"),
                "differs between upstreams: tollgate has one setting for all".into(),
            )),
            None => {}
        }
    }
}

/// oauth2-proxy's default for an upstream field left out.
fn alpha_default(field: &str) -> Yaml {
    match field {
        "passHostHeader" | "proxyWebSockets" => Yaml::Boolean(true),
        "insecureSkipTLSVerify" | "disableKeepAlives" => Yaml::Boolean(false),
        "timeout" => Yaml::String("30s".into()),
        "flushInterval" => Yaml::String("1s".into()),
        _ => Yaml::Null,
    }
}

/// The headers oauth2-proxy's legacy switches inject, by header name and
/// claim: the switch that says the same.
const REQUEST_HEADERS: &[(&str, &str, &str)] = &[
    ("x-forwarded-user", "user", "pass_user_headers"),
    ("x-forwarded-email", "email", "pass_user_headers"),
    ("x-forwarded-groups", "groups", "pass_user_headers"),
    (
        "x-forwarded-preferred-username",
        "preferred_username",
        "pass_user_headers",
    ),
    (
        "x-forwarded-access-token",
        "access_token",
        "pass_access_token",
    ),
    ("authorization", "id_token", "pass_authorization_header"),
];

const RESPONSE_HEADERS: &[(&str, &str, &str)] = &[
    ("x-auth-request-user", "user", "set_xauthrequest"),
    ("x-auth-request-email", "email", "set_xauthrequest"),
    ("x-auth-request-groups", "groups", "set_xauthrequest"),
    (
        "x-auth-request-preferred-username",
        "preferred_username",
        "set_xauthrequest",
    ),
    (
        "x-auth-request-access-token",
        "access_token",
        "set_xauthrequest",
    ),
    ("authorization", "id_token", "set_authorization_header"),
];

/// The claim a header's first value takes, in either form.
fn claim(value: &Yaml) -> Option<&str> {
    value["claimSource"]["claim"]
        .as_str()
        .or_else(|| value["claim"].as_str())
}

fn headers(out: &mut Options, list: &Yaml, known: &[(&str, &str, &str)], place: &str) {
    let Some(list) = list.as_vec() else {
        return;
    };
    for (i, h) in list.iter().enumerate() {
        let name = h["name"].as_str().unwrap_or_default().to_ascii_lowercase();
        let claim = h["values"].as_vec().and_then(|v| v.first()).and_then(claim);
        let switch = known
            .iter()
            .find(|(header, c, _)| *header == name && Some(*c) == claim)
            .map(|(_, _, switch)| *switch);
        match switch {
            Some(key) => {
                out.values.insert(key.to_string(), Raw::Bool(true));
            }
            None => out.alpha.push((
                format!("{place}[{i}]"),
                "a header of your own: tollgate sends claims as headers with [headers] (\"X-Name\" = \"claim\"); secrets and basic auth are not injected".into(),
            )),
        }
    }
}

fn server(out: &mut Options, s: &Yaml, plain: &str, secure: &str, place: &str) {
    set(out, plain, &s["BindAddress"]);
    set(out, secure, &s["SecureBindAddress"]);
    if !s["TLS"].is_badvalue() {
        out.alpha.push((
            format!("{place}.TLS"),
            "set server.tls.cert_file and key_file (PEM files) by hand".into(),
        ));
    }
}

/// The first provider; more are reported (tollgate's `[[providers]]`
/// takes them, written by hand).
fn providers(out: &mut Options, list: &Yaml) {
    let Some(list) = list.as_vec() else {
        return;
    };
    for i in 1..list.len() {
        out.alpha.push((
            format!("providers[{i}]"),
            "only the first provider is converted: add the others as [[providers]] entries".into(),
        ));
    }
    let Some(p) = list.first() else {
        return;
    };
    for (field, key) in [
        ("provider", "provider"),
        ("name", "provider_display_name"),
        ("clientID", "client_id"),
        ("clientSecret", "client_secret"),
        ("clientSecretFile", "client_secret_file"),
        ("scope", "scope"),
        ("allowedGroups", "allowed_groups"),
        ("code_challenge_method", "code_challenge_method"),
        ("codeChallengeMethod", "code_challenge_method"),
        ("loginURL", "login_url"),
        ("redeemURL", "redeem_url"),
        ("profileURL", "profile_url"),
        ("validateURL", "validate_url"),
        ("caFiles", "provider_ca_files"),
        ("backendLogoutURL", "backend_logout_url"),
    ] {
        set(out, key, &p[field]);
    }
    let oidc = &p["oidcConfig"];
    for (field, key) in [
        ("issuerURL", "oidc_issuer_url"),
        ("jwksURL", "oidc_jwks_url"),
        ("emailClaim", "oidc_email_claim"),
        ("groupsClaim", "oidc_groups_claim"),
        ("userIDClaim", "user_id_claim"),
        ("audienceClaims", "oidc_audience_claims"),
        ("extraAudiences", "oidc_extra_audiences"),
        ("skipDiscovery", "skip_oidc_discovery"),
        ("insecureSkipNonce", "insecure_oidc_skip_nonce"),
        (
            "insecureAllowUnverifiedEmail",
            "insecure_oidc_allow_unverified_email",
        ),
        (
            "insecureSkipIssuerVerification",
            "insecure_oidc_skip_issuer_verification",
        ),
    ] {
        set(out, key, &oidc[field]);
    }
    for (section, field, key) in [
        ("keycloakConfig", "groups", "keycloak_groups"),
        ("azureConfig", "tenant", "azure_tenant"),
        ("githubConfig", "org", "github_org"),
        ("githubConfig", "team", "github_team"),
        ("githubConfig", "repo", "github_repo"),
        ("githubConfig", "users", "github_users"),
        ("gitlabConfig", "group", "gitlab_groups"),
        ("googleConfig", "groups", "google_groups"),
    ] {
        set(out, key, &p[section][field]);
    }
    if !p["loginURLParameters"].is_badvalue() {
        out.alpha.push((
            "providers[0].loginURLParameters".into(),
            "set provider.extra_authorize_params (fixed values) or pass login_hint to /oauth2/start".into(),
        ));
    }
}
