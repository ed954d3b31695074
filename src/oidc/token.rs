//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6) and client authentication
//! (RFC 6749 §2.3.1).

use base64::Engine as _;
use serde::Deserialize;
use url::Url;

use super::settings::{ClientAuth, ProviderConfig};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(reqwest::Error),
    /// An OAuth error response (RFC 6749 §5.2), e.g. `invalid_grant`.
    #[error("token endpoint refused the request: {error}")]
    Refused { error: String, status: u16 },
    #[error("token endpoint answered HTTP {0} without an OAuth error")]
    Status(u16),
    #[error("token endpoint response is not valid: {0}")]
    Invalid(String),
}

/// A successful token response. `Debug` leaves the tokens out.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .finish()
    }
}

/// Some providers send `expires_in` as a string.
fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        U(u64),
        F(f64),
        S(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::U(u)) => Some(u),
        Some(N::F(f)) if f >= 0.0 => Some(f as u64),
        Some(N::S(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// Client for one provider's token endpoint.
#[derive(Debug)]
pub struct TokenClient {
    http: reqwest::Client,
    endpoint: Url,
    client_id: String,
    secret: Option<Secret>,
    auth: ClientAuth,
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1: the
/// id and secret are form-urlencoded (Appendix B) before being joined, so a
/// secret holding `:`, `%`, `+`, `&` or a space survives the trip.
pub fn basic_authorization(client_id: &str, secret: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {creds}")
}

impl TokenClient {
    pub fn new(http: reqwest::Client, endpoint: Url, config: &ProviderConfig) -> Self {
        Self {
            http,
            endpoint,
            client_id: config.client_id.clone(),
            secret: config.client_secret.clone(),
            auth: config.client_auth,
        }
    }

    /// Redeems an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        self.post(form).await
    }

    /// Uses a refresh token (RFC 6749 §6).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, TokenError> {
        self.post(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Revokes a refresh token (RFC 7009) at `endpoint`, with the same
    /// client authentication. Success is any 200; providers answer 200 for
    /// unknown tokens too (§2.2).
    async fn revoke_once(&self, endpoint: &Url, refresh_token: &str) -> Result<(), TokenError> {
        let form = vec![
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ];
        let resp = self
            .authenticated(endpoint, form)
            .send()
            .await
            .map_err(TokenError::Unreachable)?;
        match resp.status().as_u16() {
            200 => Ok(()),
            s => Err(TokenError::Status(s)),
        }
    }

    /// Asks the provider about a token (RFC 7662).
    async fn introspect_once(
        &self,
        endpoint: &Url,
        token: &str,
    ) -> Result<serde_json::Value, TokenError> {
        let resp = self
            .authenticated(
                endpoint,
                vec![("token", token), ("token_type_hint", "access_token")],
            )
            .send()
            .await
            .map_err(TokenError::Unreachable)?;
        let status = resp.status().as_u16();
        let body = super::read_limited(resp)
            .await
            .map_err(TokenError::Unreachable)?;
        if status != 200 {
            return Err(TokenError::Status(status));
        }
        serde_json::from_slice(&body).map_err(|e| TokenError::Invalid(json_error(&e)))
    }

    /// Revokes a refresh token (RFC 7009) at `endpoint`, with the same
    /// client authentication. Success is any 200; providers answer 200 for
    /// unknown tokens too (§2.2).
    pub async fn revoke(&self, endpoint: &Url, refresh_token: &str) -> Result<(), TokenError> {
        let started = std::time::Instant::now();
        let result = self.revoke_once(endpoint, refresh_token).await;
        crate::telemetry::metrics::metrics().observe_provider("revocation", started.elapsed());
        result
    }

    /// Asks the provider about a token (RFC 7662).
    pub async fn introspect(
        &self,
        endpoint: &Url,
        token: &str,
    ) -> Result<serde_json::Value, TokenError> {
        let started = std::time::Instant::now();
        let result = self.introspect_once(endpoint, token).await;
        crate::telemetry::metrics::metrics().observe_provider("introspection", started.elapsed());
        result
    }

    /// A POST to a provider endpoint with this client's authentication.
    fn authenticated<'a>(
        &'a self,
        endpoint: &Url,
        mut form: Vec<(&'a str, &'a str)>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(endpoint.clone())
            .header(http::header::ACCEPT, "application/json");
        let secret = self
            .secret
            .as_ref()
            .map(Secret::expose_str)
            .unwrap_or_default();
        match self.auth {
            ClientAuth::ClientSecretBasic => {
                req = req.header(
                    http::header::AUTHORIZATION,
                    basic_authorization(&self.client_id, secret),
                );
            }
            ClientAuth::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret));
            }
            ClientAuth::None => form.push(("client_id", &self.client_id)),
        }
        req.form(&form)
    }

    async fn post(&self, form: Vec<(&str, &str)>) -> Result<TokenResponse, TokenError> {
        let started = std::time::Instant::now();
        let result = self.post_once(form).await;
        crate::telemetry::metrics::metrics().observe_provider("token", started.elapsed());
        result
    }

    async fn post_once(&self, form: Vec<(&str, &str)>) -> Result<TokenResponse, TokenError> {
        let resp = self
            .authenticated(&self.endpoint, form)
            .send()
            .await
            .map_err(TokenError::Unreachable)?;
        let status = resp.status();
        let body = super::read_limited(resp)
            .await
            .map_err(TokenError::Unreachable)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorResponse>(&body) {
                Ok(e) => TokenError::Refused {
                    error: sanitize(&e.error),
                    status: status.as_u16(),
                },
                Err(_) => TokenError::Status(status.as_u16()),
            });
        }
        let tokens: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| TokenError::Invalid(json_error(&e)))?;
        // RFC 6749 §5.1: token_type is case-insensitive.
        if !tokens.token_type.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Invalid(format!(
                "unsupported token_type `{}`",
                sanitize(&tokens.token_type)
            )));
        }
        if tokens.access_token.is_empty() {
            return Err(TokenError::Invalid("empty access_token".into()));
        }
        // It is forwarded in a header: only visible ASCII (RFC 6750 §2.1's
        // b64token is narrower still, but providers differ).
        if !tokens.access_token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Invalid(
                "access_token holds bytes a header cannot carry".into(),
            ));
        }
        Ok(tokens)
    }
}

/// A JSON error without the text serde_json quotes from the input (an
/// "invalid type: string \"…\"" message could carry a token into a log).
fn json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
    };
    let msg = e.to_string();
    // Keep serde's own words up to the first quote: "missing field
    // `access_token`", "duplicate field `access_token`", "invalid type:
    // integer" are useful and carry no input.
    let head: String = msg
        .split('"')
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    format!(
        "{what}: {} (line {}, column {})",
        head.trim_end_matches([',', ' ']),
        e.line(),
        e.column()
    )
}

/// OAuth error codes are `%x20-21 / %x23-5B / %x5D-7E` (RFC 6749 §5.2);
/// anything else from the provider is not echoed into logs or pages.
pub fn sanitize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_urlencodes_id_and_secret() {
        // id "my-app", secret "s3:cr%t+&= x" → "my-app:s3%3Acr%25t%2B%26%3D+x"
        let header = basic_authorization("my-app", "s3:cr%t+&= x");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("utf8"),
            "my-app:s3%3Acr%25t%2B%26%3D+x"
        );
    }

    #[test]
    fn json_errors_never_quote_the_input() {
        let e = serde_json::from_str::<TokenResponse>(
            r#"{"access_token":"SECRET-TOKEN","token_type":7}"#,
        )
        .expect_err("error");
        let text = json_error(&e);
        assert!(!text.contains("SECRET"), "{text}");
        let e = serde_json::from_str::<TokenResponse>(
            r#"{"token_type":"Bearer","access_token":["SECRET"]}"#,
        )
        .expect_err("error");
        assert!(!json_error(&e).contains("SECRET"));
        let e =
            serde_json::from_str::<TokenResponse>(r#"{"token_type":"Bearer"}"#).expect_err("error");
        assert!(
            json_error(&e).contains("missing field `access_token`"),
            "{}",
            json_error(&e)
        );
    }

    #[test]
    fn basic_auth_plain_secret_is_unchanged() {
        assert_eq!(
            basic_authorization("client", "secret"),
            "Basic Y2xpZW50OnNlY3JldA=="
        );
    }

    /// The client-authentication vectors CA-01..CA-17 (RFC 6749 §2.3.1 and
    /// Appendix B): id, secret, the exact header, and the header a client
    /// that forgot to encode would send (which must differ wherever
    /// encoding changes anything).
    const VECTORS: &[(&str, &str, &str, &str, &str)] = &[
        ("CA-01", "s6BhdRkqt3", "gX1fBat3bV", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"),
        ("CA-02", "1PpG/Q 1", "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=",
            "Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA==",
            "Basic MVBwRy9RIDE6ei90WjlWd0ZacUFwbUlRK1pIMUk1cExrL3VCNHVkOlgyLzhiTCt3ZkZUdDFyRnc9"),
        ("CA-03", "tollgate", " %&+\u{a3}\u{20ac}", "Basic dG9sbGdhdGU6KyUyNSUyNiUyQiVDMiVBMyVFMiU4MiVBQw==", "Basic dG9sbGdhdGU6ICUmK8Kj4oKs"),
        ("CA-04", "tollgate", "a:b", "Basic dG9sbGdhdGU6YSUzQWI=", "Basic dG9sbGdhdGU6YTpi"),
        ("CA-05", "tollgate:1", "secret", "Basic dG9sbGdhdGUlM0ExOnNlY3JldA==", "Basic dG9sbGdhdGU6MTpzZWNyZXQ="),
        ("CA-06", "tollgate", "100%", "Basic dG9sbGdhdGU6MTAwJTI1", "Basic dG9sbGdhdGU6MTAwJQ=="),
        ("CA-07", "tollgate", "%41", "Basic dG9sbGdhdGU6JTI1NDE=", "Basic dG9sbGdhdGU6JTQx"),
        ("CA-08", "tollgate", "a+b", "Basic dG9sbGdhdGU6YSUyQmI=", "Basic dG9sbGdhdGU6YSti"),
        ("CA-09", "tollgate", "a b", "Basic dG9sbGdhdGU6YSti", "Basic dG9sbGdhdGU6YSBi"),
        ("CA-10", "tollgate", "p\u{e4}ssw\u{f6}rd", "Basic dG9sbGdhdGU6cCVDMyVBNHNzdyVDMyVCNnJk", "Basic dG9sbGdhdGU6cMOkc3N3w7ZyZA=="),
        ("CA-11", "tollgate", "s\u{e9}cr\u{e9}t\u{20ac}", "Basic dG9sbGdhdGU6cyVDMyVBOWNyJUMzJUE5dCVFMiU4MiVBQw==", "Basic dG9sbGdhdGU6c8OpY3LDqXTigqw="),
        ("CA-12", "tollgate", "\u{1f511}key", "Basic dG9sbGdhdGU6JUYwJTlGJTk0JTkxa2V5", "Basic dG9sbGdhdGU68J+UkWtleQ=="),
        ("CA-13", "tollgate", "e\u{301}", "Basic dG9sbGdhdGU6ZSVDQyU4MQ==", "Basic dG9sbGdhdGU6ZcyB"),
        ("CA-14", "tollgate", "p@ss/w=rd?&#", "Basic dG9sbGdhdGU6cCU0MHNzJTJGdyUzRHJkJTNGJTI2JTIz", "Basic dG9sbGdhdGU6cEBzcy93PXJkPyYj"),
        ("CA-15", "tollgate", "!'()*~", "Basic dG9sbGdhdGU6JTIxJTI3JTI4JTI5KiU3RQ==", "Basic dG9sbGdhdGU6IScoKSp+"),
        ("CA-16", "tollgate", "a\"b'c<d>", "Basic dG9sbGdhdGU6YSUyMmIlMjdjJTNDZCUzRQ==", "Basic dG9sbGdhdGU6YSJiJ2M8ZD4="),
        ("CA-17", "my client", "p@ss:w0rd!", "Basic bXkrY2xpZW50OnAlNDBzcyUzQXcwcmQlMjE=", "Basic bXkgY2xpZW50OnBAc3M6dzByZCE="),
    ];

    #[test]
    fn client_authentication_vectors_give_exactly_the_expected_header() {
        let b64 = base64::engine::general_purpose::STANDARD;
        for (case, id, secret, exact, unencoded) in VECTORS {
            let header = basic_authorization(id, secret);
            assert_eq!(&header, exact, "{case}: id {id:?}, secret {secret:?}");
            // The vector's own "forgot to encode" header is what a naive
            // client sends; ours differs wherever encoding changes a byte.
            let naive = format!("Basic {}", b64.encode(format!("{id}:{secret}")));
            assert_eq!(&naive, unencoded, "{case}: the table's un-encoded header");
            if *case != "CA-01" {
                assert_ne!(&header, unencoded, "{case}: sent without encoding");
            }
            // A conforming server splits at the one raw ':' and decodes both
            // halves back to exactly what was configured.
            let decoded = b64
                .decode(header.trim_start_matches("Basic "))
                .expect("base64");
            let decoded = String::from_utf8(decoded).expect("utf8");
            let (user, pass) = decoded.split_once(':').expect("one separator");
            let undo = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            assert_eq!(
                (undo(user), undo(pass)),
                (id.to_string(), secret.to_string()),
                "{case}"
            );
        }
    }

    #[test]
    fn oauth_error_codes_are_sanitized() {
        assert_eq!(sanitize("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize("<script>x</script>"), "scriptxscript");
    }

    #[test]
    fn expires_in_as_string_is_accepted() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"a","token_type":"bearer","expires_in":"300"}"#,
        )
        .expect("parse");
        assert_eq!(t.expires_in, Some(300));
    }
}
