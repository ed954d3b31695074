//! OpenID Provider discovery (OIDC Discovery 1.0 §4).

use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    #[serde(default)]
    pub introspection_endpoint: Option<Url>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9207 §3: when true, every authorization response must carry `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Absent means `client_secret_basic` only (OIDC Discovery §3).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9126 §5.
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<Url>,
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.1: the provider takes DPoP proofs signed with these.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 8705 §5: where a mutual-TLS client sends its requests.
    #[serde(default)]
    pub mtls_endpoint_aliases: Option<MtlsAliases>,
}

/// The endpoints a provider serves mutual-TLS clients on (RFC 8705 §5).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MtlsAliases {
    #[serde(default)]
    pub token_endpoint: Option<Url>,
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    #[serde(default)]
    pub introspection_endpoint: Option<Url>,
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<Url>,
}

impl ProviderMetadata {
    /// The metadata of a provider without discovery (GitHub): its two
    /// endpoints; the JWKS URL is never fetched.
    pub fn fixed(issuer: String, authorization_endpoint: Url, token_endpoint: Url) -> Self {
        Self {
            issuer,
            jwks_uri: token_endpoint.clone(),
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint: None,
            end_session_endpoint: None,
            revocation_endpoint: None,
            introspection_endpoint: None,
            code_challenge_methods_supported: None,
            id_token_signing_alg_values_supported: None,
            authorization_response_iss_parameter_supported: false,
            token_endpoint_auth_methods_supported: None,
            pushed_authorization_request_endpoint: None,
            require_pushed_authorization_requests: false,
            dpop_signing_alg_values_supported: None,
            mtls_endpoint_aliases: None,
        }
    }

    /// For a mutual-TLS client: every endpoint with an alias is used by
    /// its alias.
    pub fn use_mtls_aliases(&mut self) {
        let Some(a) = self.mtls_endpoint_aliases.clone() else {
            return;
        };
        if let Some(t) = a.token_endpoint {
            self.token_endpoint = t;
        }
        let optional = [
            (&mut self.revocation_endpoint, a.revocation_endpoint),
            (&mut self.introspection_endpoint, a.introspection_endpoint),
            (&mut self.userinfo_endpoint, a.userinfo_endpoint),
            (
                &mut self.pushed_authorization_request_endpoint,
                a.pushed_authorization_request_endpoint,
            ),
        ];
        for (slot, alias) in optional {
            if alias.is_some() {
                *slot = alias;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Get(#[from] super::FetchError),
    #[error("`{0}` is not a URL")]
    NotAUrl(String),
    #[error("{url} is not valid provider metadata: {source}")]
    Parse {
        url: String,
        source: serde_json::Error,
    },
    #[error("provider metadata names issuer `{found}`, but the configured issuer is `{expected}`; they must be identical (OIDC Discovery §4.3)")]
    IssuerMismatch { expected: String, found: String },
    #[error("provider endpoint `{0}` must use https (http only on loopback)")]
    InsecureEndpoint(String),
    #[error("`provider.client_auth` is \"{method}\", but the provider accepts only {offered:?} at its token endpoint (token_endpoint_auth_methods_supported)")]
    ClientAuthNotOffered {
        method: &'static str,
        offered: Vec<String>,
    },
    #[error("`provider.pushed_authorization` is on, but the provider has no pushed_authorization_request_endpoint (RFC 9126)")]
    NoPushEndpoint,
    #[error("`provider.profile` is \"fapi2\", but the provider {0} (FAPI 2.0 Security Profile)")]
    NotFapi2(&'static str),
    #[error("`provider.dpop` is on, but the provider takes DPoP proofs only signed with {offered:?} (dpop_signing_alg_values_supported), not {alg}; tokens would not be bound")]
    DpopNotOffered { alg: String, offered: Vec<String> },
    #[error("the provider signs ID tokens only with {offered:?}, none of which `provider.id_token_algorithms` allows ({allowed:?})")]
    NoCommonAlgorithm {
        offered: Vec<String>,
        allowed: Vec<String>,
    },
}

/// Refuses a provider that says it signs ID tokens only with algorithms
/// the allow-list does not hold (`none`, or HS256 while RS256 is expected):
/// every login would fail, so readiness says why instead.
pub fn check_algorithms(
    md: &ProviderMetadata,
    allowed: &[jsonwebtoken::Algorithm],
) -> Result<(), DiscoveryError> {
    let Some(offered) = &md.id_token_signing_alg_values_supported else {
        return Ok(());
    };
    let usable = offered.iter().any(|name| {
        name.parse::<jsonwebtoken::Algorithm>()
            .is_ok_and(|a| allowed.contains(&a))
    });
    if usable {
        return Ok(());
    }
    Err(DiscoveryError::NoCommonAlgorithm {
        offered: offered
            .iter()
            .take(8)
            .map(|s| super::token::sanitize(s))
            .collect(),
        allowed: allowed.iter().map(|a| format!("{a:?}")).collect(),
    })
}

/// Refuses a client authentication method the provider says it does not
/// take: every login would fail with `invalid_client`. Providers that do
/// not list their methods are given the benefit of the doubt.
pub fn check_client_auth(
    md: &ProviderMetadata,
    auth: super::settings::ClientAuth,
) -> Result<(), DiscoveryError> {
    let method = auth.method();
    match &md.token_endpoint_auth_methods_supported {
        Some(offered) if !offered.iter().any(|m| m == method) => {
            Err(DiscoveryError::ClientAuthNotOffered {
                method,
                offered: offered
                    .iter()
                    .take(8)
                    .map(|s| super::token::sanitize(s))
                    .collect(),
            })
        }
        _ => Ok(()),
    }
}

/// What FAPI 2.0 needs of the provider, beyond the PAR endpoint and the
/// client authentication method checked elsewhere.
pub fn check_fapi2(md: &ProviderMetadata) -> Result<(), DiscoveryError> {
    if !md.authorization_response_iss_parameter_supported {
        return Err(DiscoveryError::NotFapi2(
            "does not promise the RFC 9207 `iss` parameter (authorization_response_iss_parameter_supported)",
        ));
    }
    if let Some(methods) = &md.code_challenge_methods_supported {
        if !methods.iter().any(|m| m == "S256") {
            return Err(DiscoveryError::NotFapi2("does not list PKCE S256"));
        }
    }
    if !md.token_endpoint.scheme().eq_ignore_ascii_case("https") {
        return Err(DiscoveryError::NotFapi2(
            "serves its token endpoint without TLS",
        ));
    }
    Ok(())
}

/// Refuses DPoP with a provider that does not take proofs signed with
/// `alg`: it would hand out unbound tokens without saying so.
pub fn check_dpop(
    md: &ProviderMetadata,
    alg: Option<jsonwebtoken::Algorithm>,
) -> Result<(), DiscoveryError> {
    let Some(alg) = alg else {
        return Ok(());
    };
    let name = format!("{alg:?}");
    let offered = md
        .dpop_signing_alg_values_supported
        .clone()
        .unwrap_or_default();
    if offered.contains(&name) {
        return Ok(());
    }
    Err(DiscoveryError::DpopNotOffered {
        alg: name,
        offered: offered
            .iter()
            .take(8)
            .map(|s| super::token::sanitize(s))
            .collect(),
    })
}

/// Where authorization requests are pushed (RFC 9126): when configured, or
/// when the provider requires it. `None`: the browser carries them.
pub fn push_endpoint(
    md: &ProviderMetadata,
    configured: bool,
) -> Result<Option<Url>, DiscoveryError> {
    if !configured && !md.require_pushed_authorization_requests {
        return Ok(None);
    }
    md.pushed_authorization_request_endpoint
        .clone()
        .map(Some)
        .ok_or(DiscoveryError::NoPushEndpoint)
}

/// `issuer` + `/.well-known/openid-configuration`, without a doubled slash.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

async fn fetch_once(
    http: &reqwest::Client,
    issuer: &str,
    expected: &str,
) -> Result<ProviderMetadata, DiscoveryError> {
    let url = discovery_url(issuer);
    let parsed = url::Url::parse(&url).map_err(|_| DiscoveryError::NotAUrl(url.clone()))?;
    let body = super::get_document(http, &parsed).await?;
    parse(expected, &url, &body)
}

/// Fetches and checks the provider's metadata at `issuer`, whose own
/// `issuer` must be `expected` exactly (the same, except for a multi-tenant
/// Entra ID authority, whose metadata names the `{tenantid}` template).
pub async fn fetch(
    http: &reqwest::Client,
    issuer: &str,
    expected: &str,
) -> Result<ProviderMetadata, DiscoveryError> {
    let started = std::time::Instant::now();
    let result = fetch_once(http, issuer, expected).await;
    crate::telemetry::metrics::metrics().observe_provider("discovery", started.elapsed());
    result
}

/// Parses and checks metadata: the issuer must match exactly, and every
/// endpoint must be as secure as the issuer rules demand.
pub fn parse(issuer: &str, url: &str, body: &[u8]) -> Result<ProviderMetadata, DiscoveryError> {
    let md: ProviderMetadata =
        serde_json::from_slice(body).map_err(|source| DiscoveryError::Parse {
            url: url.to_string(),
            source,
        })?;
    if md.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found: md.issuer,
        });
    }
    let endpoints = [
        Some(&md.authorization_endpoint),
        Some(&md.token_endpoint),
        Some(&md.jwks_uri),
        md.userinfo_endpoint.as_ref(),
        md.end_session_endpoint.as_ref(),
        md.revocation_endpoint.as_ref(),
        md.introspection_endpoint.as_ref(),
        md.pushed_authorization_request_endpoint.as_ref(),
    ];
    let aliases = md.mtls_endpoint_aliases.clone().unwrap_or_default();
    let aliased = [
        aliases.token_endpoint.as_ref(),
        aliases.revocation_endpoint.as_ref(),
        aliases.introspection_endpoint.as_ref(),
        aliases.userinfo_endpoint.as_ref(),
        aliases.pushed_authorization_request_endpoint.as_ref(),
    ];
    let endpoints = endpoints.into_iter().chain(aliased);
    for e in endpoints.flatten() {
        if !secure(e) {
            return Err(DiscoveryError::InsecureEndpoint(e.to_string()));
        }
    }
    Ok(md)
}

fn secure(u: &Url) -> bool {
    match u.scheme() {
        "https" => true,
        "http" => match u.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(issuer: &str, token: &str) -> Vec<u8> {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": "https://op.test/auth",
            "token_endpoint": token,
            "jwks_uri": "https://op.test/jwks",
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn issuer_must_match_exactly() {
        assert!(parse(
            "https://op.test",
            "u",
            &doc("https://op.test", "https://op.test/token")
        )
        .is_ok());
        for other in [
            "https://op.test/",
            "https://op.testINVALID",
            "https://OP.test",
        ] {
            assert!(matches!(
                parse("https://op.test", "u", &doc(other, "https://op.test/token")),
                Err(DiscoveryError::IssuerMismatch { .. })
            ));
        }
    }

    #[test]
    fn plain_http_endpoints_are_refused_off_loopback() {
        assert!(matches!(
            parse(
                "https://op.test",
                "u",
                &doc("https://op.test", "http://op.test/token")
            ),
            Err(DiscoveryError::InsecureEndpoint(_))
        ));
    }

    #[test]
    fn fapi2_needs_iss_s256_and_tls_of_the_provider() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&doc("https://op.test", "https://op.test/token")).expect("json");
        let md = |v: &serde_json::Value| {
            parse("https://op.test", "u", v.to_string().as_bytes()).expect("md")
        };
        assert!(matches!(
            check_fapi2(&md(&v)),
            Err(DiscoveryError::NotFapi2(_))
        ));
        v["authorization_response_iss_parameter_supported"] = true.into();
        assert!(check_fapi2(&md(&v)).is_ok());
        v["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        assert!(matches!(
            check_fapi2(&md(&v)),
            Err(DiscoveryError::NotFapi2(_))
        ));
    }

    #[test]
    fn dpop_needs_the_keys_algorithm_listed() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&doc("https://op.test", "https://op.test/token")).expect("json");
        let md = |v: &serde_json::Value| {
            parse("https://op.test", "u", v.to_string().as_bytes()).expect("md")
        };
        let es256 = Some(jsonwebtoken::Algorithm::ES256);
        assert!(check_dpop(&md(&v), es256).is_err());
        v["dpop_signing_alg_values_supported"] = serde_json::json!(["ES256", "EdDSA"]);
        assert!(check_dpop(&md(&v), es256).is_ok());
        assert!(check_dpop(&md(&v), Some(jsonwebtoken::Algorithm::PS256)).is_err());
        assert!(check_dpop(&md(&v), None).is_ok());
    }

    #[test]
    fn discovery_url_has_no_double_slash() {
        assert_eq!(
            discovery_url("https://op.test/"),
            "https://op.test/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://op.test/realms/x"),
            "https://op.test/realms/x/.well-known/openid-configuration"
        );
    }
}
