//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6) and client authentication
//! (RFC 6749 §2.3.1).

use serde::Deserialize;
use url::Url;

use std::sync::Arc;

use super::client_auth::{ClientAuthenticator, CredentialError};
use super::dpop::{DpopKey, Server};

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
    /// tollgate could not make its own client credential.
    #[error("client authentication: {0}")]
    Credential(#[from] CredentialError),
    /// `provider.max_concurrent_calls` calls were already waiting for the
    /// provider: refused at once rather than piling up behind them.
    #[error("too many calls are already waiting for the provider")]
    Busy,
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
    auth: ClientAuthenticator,
    /// DPoP proofs on token, PAR and userinfo requests, when configured.
    pub dpop: Option<Arc<DpopKey>>,
    /// GitHub answers refusals with 200 and an OAuth error body; from
    /// anyone else that is an invalid response.
    pub errors_with_200: bool,
    /// `provider.max_concurrent_calls`: permits for authenticated calls in
    /// flight (token, PAR, revocation, introspection).
    calls: Arc<tokio::sync::Semaphore>,
}

/// A pushed authorization request's answer (RFC 9126 §2.2).
#[derive(Deserialize)]
pub struct Pushed {
    pub request_uri: String,
}

impl TokenClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: Url,
        auth: ClientAuthenticator,
        dpop: Option<Arc<DpopKey>>,
        max_calls: usize,
    ) -> Self {
        Self {
            http,
            endpoint,
            auth,
            dpop,
            errors_with_200: false,
            calls: Arc::new(tokio::sync::Semaphore::new(max_calls.max(1))),
        }
    }

    /// A slot for one call, or [`TokenError::Busy`] at once when all are
    /// taken: a slow or dead provider then costs a bounded number of
    /// waiting tasks, and every other caller fails fast.
    fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, TokenError> {
        self.calls.try_acquire().map_err(|_| {
            crate::telemetry::metrics::metrics().provider_busy.inc();
            TokenError::Busy
        })
    }

    /// The userinfo answer for `access_token` of `token_type` (`Bearer`,
    /// or `DPoP` with a proof, once more with the server's nonce if it
    /// asks for one).
    pub async fn userinfo(
        &self,
        endpoint: &Url,
        access_token: &str,
        token_type: &str,
        subject: &str,
    ) -> Result<super::userinfo::UserInfo, super::userinfo::UserInfoError> {
        use super::userinfo::{fetch, Presented, UserInfoError};
        let dpop = self
            .dpop
            .as_ref()
            .filter(|_| token_type.eq_ignore_ascii_case("dpop"));
        for attempt in 0..2 {
            let proof = match dpop {
                Some(k) => Some(
                    k.proof("GET", endpoint, Some(access_token), Server::Resource)
                        .map_err(|_| UserInfoError::Invalid)?,
                ),
                None => None,
            };
            let presented = Presented {
                access_token,
                proof: proof.as_deref(),
            };
            match fetch(&self.http, endpoint, &presented, subject).await {
                Err(UserInfoError::Challenge(headers)) => match dpop {
                    Some(k) if attempt == 0 && k.remember(&headers, Server::Resource) => {}
                    _ => return Err(UserInfoError::Status(401)),
                },
                other => return other,
            }
        }
        Err(UserInfoError::Status(401))
    }

    /// Pushes an authorization request (RFC 9126 §2.1) with this client's
    /// authentication; the answer's `request_uri` stands for it.
    pub async fn push(
        &self,
        endpoint: &Url,
        params: Vec<(&str, &str)>,
    ) -> Result<Pushed, TokenError> {
        let _slot = self.slot()?;
        let started = std::time::Instant::now();
        let result = self.push_once(endpoint, params).await;
        crate::telemetry::metrics::metrics().observe_provider("par", started.elapsed());
        result
    }

    async fn push_once(
        &self,
        endpoint: &Url,
        params: Vec<(&str, &str)>,
    ) -> Result<Pushed, TokenError> {
        let pushed: Pushed = self.exchange(endpoint, params).await?;
        // It travels in the browser's URL: only visible ASCII, bounded.
        if pushed.request_uri.is_empty()
            || pushed.request_uri.len() > 2048
            || !pushed.request_uri.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(TokenError::Invalid("unusable request_uri".into()));
        }
        Ok(pushed)
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
            .await?
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
            .await?
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
        let _slot = self.slot()?;
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
        let _slot = self.slot()?;
        let started = std::time::Instant::now();
        let result = self.introspect_once(endpoint, token).await;
        crate::telemetry::metrics::metrics().observe_provider("introspection", started.elapsed());
        result
    }

    /// A POST to a provider endpoint with this client's authentication.
    async fn authenticated(
        &self,
        endpoint: &Url,
        mut form: Vec<(&str, &str)>,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        let proof = self.auth.proof(endpoint).await?;
        let mut req = crate::telemetry::trace::outgoing(
            self.http
                .post(endpoint.clone())
                .header(http::header::ACCEPT, "application/json"),
        );
        if let Some(h) = &proof.authorization {
            req = req.header(http::header::AUTHORIZATION, h);
        }
        // A pushed request already names the client.
        let named = form.iter().any(|(k, _)| *k == "client_id");
        form.extend(
            proof
                .fields
                .iter()
                .filter(|(k, _)| !(named && *k == "client_id"))
                .map(|(k, v)| (*k, v.as_str())),
        );
        Ok(req.form(&form))
    }

    async fn post(&self, form: Vec<(&str, &str)>) -> Result<TokenResponse, TokenError> {
        let _slot = self.slot()?;
        let started = std::time::Instant::now();
        let result = self.post_once(form).await;
        crate::telemetry::metrics::metrics().observe_provider("token", started.elapsed());
        result
    }

    /// An authenticated POST whose success is a JSON document `T`; a
    /// failure is the OAuth error or the status. With DPoP, a proof goes
    /// along, and a `use_dpop_nonce` refusal is retried once with the
    /// server's nonce (RFC 9449 §8).
    async fn exchange<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Url,
        form: Vec<(&str, &str)>,
    ) -> Result<T, TokenError> {
        for attempt in 0..2 {
            let mut req = self.authenticated(endpoint, form.clone()).await?;
            if let Some(k) = &self.dpop {
                req = req.header(
                    super::dpop::HEADER,
                    k.proof("POST", endpoint, None, Server::Authorization)?,
                );
            }
            let resp = req.send().await.map_err(TokenError::Unreachable)?;
            let status = resp.status();
            let fresh_nonce = self
                .dpop
                .as_ref()
                .is_some_and(|k| k.remember(resp.headers(), Server::Authorization));
            let body = super::read_limited(resp)
                .await
                .map_err(TokenError::Unreachable)?;
            if status.is_success() && !(self.errors_with_200 && has_error_field(&body)) {
                return serde_json::from_slice(&body)
                    .map_err(|e| TokenError::Invalid(json_error(&e)));
            }
            let status = if status.is_success() {
                400
            } else {
                status.as_u16()
            };
            match refusal(status, &body) {
                TokenError::Refused { error, .. }
                    if attempt == 0 && fresh_nonce && error == super::dpop::USE_NONCE => {}
                other => return Err(other),
            }
        }
        Err(TokenError::Refused {
            error: super::dpop::USE_NONCE.into(),
            status: 400,
        })
    }

    async fn post_once(&self, form: Vec<(&str, &str)>) -> Result<TokenResponse, TokenError> {
        let tokens: TokenResponse = self.exchange(&self.endpoint, form).await?;
        // RFC 6749 §5.1: token_type is case-insensitive. `DPoP` only when
        // tollgate sent a proof (RFC 9449 §5).
        let dpop = self.dpop.is_some() && tokens.token_type.eq_ignore_ascii_case("dpop");
        if !tokens.token_type.eq_ignore_ascii_case("bearer") && !dpop {
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

/// Whether a JSON body carries an OAuth `error` (RFC 6749 §5.2).
fn has_error_field(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorResponse>(body).is_ok()
}

/// An unsuccessful answer: the OAuth error code when there is one
/// (RFC 6749 §5.2), the status otherwise.
fn refusal(status: u16, body: &[u8]) -> TokenError {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => TokenError::Refused {
            error: sanitize(&e.error),
            status,
        },
        Err(_) => TokenError::Status(status),
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
