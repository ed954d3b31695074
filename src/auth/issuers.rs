//! Issuers besides the provider whose JWT access tokens are accepted
//! (`[[authorization.bearer_issuers]]`, oauth2-proxy's `extra_jwt_issuers`):
//! each is discovered, and its keys loaded, the first time a token naming
//! it arrives. A failed discovery is not remembered: the next token tries
//! again.

use std::sync::Arc;

use base64::Engine as _;

use super::settings::BearerIssuer;
use crate::oidc::KeyCache;

/// One issuer and, once discovered, its keys.
pub struct IssuerKeys {
    pub issuer: BearerIssuer,
    keys: tokio::sync::OnceCell<Arc<KeyCache>>,
}

impl IssuerKeys {
    /// Its keys, discovering the issuer first if need be.
    pub async fn keys(&self, http: &reqwest::Client) -> Option<Arc<KeyCache>> {
        let issuer = &self.issuer.issuer;
        let found = self
            .keys
            .get_or_try_init(|| async {
                let md = crate::oidc::discovery::fetch(http, issuer, issuer).await?;
                let keys = Arc::new(KeyCache::new(http.clone(), md.jwks_uri));
                keys.refresh().await?;
                Ok::<_, crate::oidc::ProviderError>(keys)
            })
            .await;
        match found {
            Ok(k) => Some(k.clone()),
            Err(e) => {
                tracing::warn!(%issuer, error = %e, "bearer token issuer discovery failed");
                None
            }
        }
    }
}

/// Every extra issuer.
#[derive(Default)]
pub struct ExtraIssuers(Vec<IssuerKeys>);

impl ExtraIssuers {
    pub fn new(issuers: &[BearerIssuer]) -> Self {
        Self(
            issuers
                .iter()
                .map(|i| IssuerKeys {
                    issuer: i.clone(),
                    keys: tokio::sync::OnceCell::new(),
                })
                .collect(),
        )
    }

    /// The extra issuer a token says it comes from (its unverified `iss`;
    /// the signature is then checked with that issuer's keys only).
    pub fn of_token(&self, token: &str) -> Option<&IssuerKeys> {
        if self.0.is_empty() {
            return None;
        }
        let iss = unverified_issuer(token)?;
        self.0.iter().find(|i| i.issuer.issuer == iss)
    }
}

/// A JWT's `iss`, unverified: only to pick whose keys then verify it.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: String,
    }
    serde_json::from_slice::<Iss>(&bytes).ok().map(|i| i.iss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_names_its_issuer() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!("e30.{}.sig", b64.encode(r#"{"iss":"https://b.test"}"#));
        let extra = ExtraIssuers::new(&[BearerIssuer {
            issuer: "https://b.test".into(),
            audiences: vec!["api".into()],
        }]);
        assert!(extra.of_token(&token).is_some());
        let other = format!("e30.{}.sig", b64.encode(r#"{"iss":"https://c.test"}"#));
        assert!(extra.of_token(&other).is_none());
        assert!(extra.of_token("not-a-jwt").is_none());
    }
}
