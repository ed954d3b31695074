//! DPoP (RFC 9449): proofs that tie the provider's tokens to a key only
//! tollgate holds, so a leaked access or refresh token is useless alone.
//! Proofs go to the token endpoint (code exchange, refresh), PAR and the
//! userinfo endpoint; the server's `DPoP-Nonce` is remembered and a request
//! refused with `use_dpop_nonce` is sent once more with it.

use std::sync::Mutex;

use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use url::Url;

use super::client_auth::{ClientKey, CredentialError};
use super::settings::ClientKeyConfig;

/// The header a proof travels in, and the one a server's nonce comes in.
pub const HEADER: &str = "dpop";
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The OAuth error that asks for the nonce (RFC 9449 §8).
pub const USE_NONCE: &str = "use_dpop_nonce";

/// Most characters of a server nonce kept (it is echoed in every proof).
const MAX_NONCE: usize = 512;

/// tollgate's DPoP key and the latest nonce each server gave.
pub struct DpopKey {
    key: EncodingKey,
    header: Header,
    /// Latest nonce from the authorization server and from the resource
    /// server (userinfo), which may differ (RFC 9449 §8, §9).
    nonces: Mutex<[Option<String>; 2]>,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.header.alg)
            .finish_non_exhaustive()
    }
}

/// Which server a nonce belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Server {
    Authorization = 0,
    Resource = 1,
}

impl DpopKey {
    /// From a configured key, or a fresh P-256 key for this process.
    pub fn new(config: Option<&ClientKeyConfig>) -> Result<Self, CredentialError> {
        let generated;
        let config = match config {
            Some(c) => c,
            None => {
                let pem = super::client_auth::generate_pem(Algorithm::ES256)?;
                generated = ClientKeyConfig {
                    file: "(generated DPoP key)".into(),
                    pem: crate::secret::Secret::new(pem.into_bytes()),
                    algorithm: None,
                    kid: None,
                    certificate: None,
                };
                &generated
            }
        };
        let key = ClientKey::load(config)?;
        let (key, mut jwk, alg) = key.into_parts();
        // The public key only, in the header of every proof (§4.2).
        jwk.common.key_id = None;
        jwk.common.public_key_use = None;
        let mut header = Header::new(alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(Jwk { ..jwk });
        Ok(Self {
            key,
            header,
            nonces: Mutex::new([None, None]),
        })
    }

    /// A proof for one request (§4.2): `htu` without query or fragment,
    /// `ath` when presenting an access token (§4.3), the server's nonce
    /// when it gave one.
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
        server: Server,
    ) -> Result<String, CredentialError> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let mut claims = json!({
            "jti": super::random_token(16),
            "htm": method,
            "htu": htu.as_str(),
            "iat": crate::session::now(),
        });
        if let Some(at) = access_token {
            let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, at.as_bytes());
            claims["ath"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(hash)
                .into();
        }
        if let Some(n) = self.nonce(server) {
            claims["nonce"] = n.into();
        }
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|_| CredentialError::Sign)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.header.alg
    }

    fn nonce(&self, server: Server) -> Option<String> {
        self.nonces.lock().unwrap_or_else(|e| e.into_inner())[server as usize].clone()
    }

    /// Keeps the nonce a response carries. Returns whether it was new.
    pub fn remember(&self, headers: &http::HeaderMap, server: Server) -> bool {
        let Some(n) = headers
            .get(NONCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|n| {
                !n.is_empty() && n.len() <= MAX_NONCE && n.bytes().all(|b| b.is_ascii_graphic())
            })
        else {
            return false;
        };
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut nonces[server as usize];
        let new = slot.as_deref() != Some(n);
        *slot = Some(n.to_string());
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_carry_the_public_key_the_request_and_the_nonce() {
        let key = DpopKey::new(None).expect("key");
        let url = Url::parse("https://op.test/token?x=1#f").expect("url");
        let mut headers = http::HeaderMap::new();
        headers.insert(NONCE_HEADER, "n-1".parse().expect("value"));
        assert!(key.remember(&headers, Server::Authorization));
        assert!(!key.remember(&headers, Server::Authorization));
        let proof = key
            .proof("POST", &url, Some("token"), Server::Authorization)
            .expect("proof");
        let header = jsonwebtoken::decode_header(&proof).expect("header");
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = header.jwk.expect("jwk");
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &proof,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key"),
            &v,
        )
        .expect("verifies with the key in its header")
        .claims;
        assert_eq!(claims["htu"], "https://op.test/token");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["nonce"], "n-1");
        // RFC 9449 §4.3: ath = base64url(SHA-256("token")).
        assert_eq!(claims["ath"], "PEaenWxYddN6Q_NT1PiOYfz4EsZu7jRXRlpAsNpBU-A");
        assert!(jwk.common.key_id.is_none());
        // The resource server's nonce is its own.
        let rs = key
            .proof("GET", &url, None, Server::Resource)
            .expect("proof");
        let payload = rs.split('.').nth(1).expect("payload");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64");
        assert!(!String::from_utf8_lossy(&bytes).contains("nonce"));
    }
}
