//! `provider.profile = "fapi2"`: the client side of the FAPI 2.0 Security
//! Profile (OpenID FAPI 2.0 Security Profile, §5.3 "Requirements for
//! Clients"), refused at load when the rest of the configuration does not
//! meet it. What the provider must offer is checked at discovery.

use jsonwebtoken::Algorithm;

use crate::config::{Check, ClientAuth, ProviderConfig};

/// The signature algorithms FAPI 2.0 allows (§5.4).
const FAPI_ALGORITHMS: [Algorithm; 3] = [Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];

pub(super) fn check(c: &mut Check<'_>, profile: &str, p: &ProviderConfig) {
    if profile != "fapi2" {
        c.fail(
            "provider.profile",
            format!("`{profile}` is not a profile tollgate knows (\"fapi2\")"),
        );
        return;
    }
    let key = "provider.profile";
    let client_auth_ok = matches!(
        p.client_auth,
        ClientAuth::PrivateKeyJwt
            | ClientAuth::ClientAssertionFile
            | ClientAuth::TlsClientAuth
            | ClientAuth::SelfSignedTlsClientAuth
    );
    if !client_auth_ok {
        c.fail("provider.client_auth", format!("is \"{}\", but FAPI 2.0 requires private_key_jwt or mutual TLS (tls_client_auth, self_signed_tls_client_auth)", p.client_auth.method()));
    }
    if !(p.dpop || p.client_auth.is_mtls()) {
        c.fail("provider.dpop", "must be true under FAPI 2.0 unless client_auth is mutual TLS: access tokens must be sender-constrained");
    }
    if !p.pkce {
        c.fail("provider.pkce", "must be true under FAPI 2.0 (PKCE S256)");
    }
    if let Some(bad) = p
        .id_token_algorithms
        .iter()
        .find(|a| !FAPI_ALGORITHMS.contains(a))
    {
        c.fail(
            "provider.id_token_algorithms",
            format!("{bad:?} is not allowed under FAPI 2.0 (PS256, ES256, EdDSA only)"),
        );
    }
    let keys = [
        (
            "provider.client_key_file",
            p.client_keys.as_ref().map(|(k, _)| k),
        ),
        ("provider.dpop_key_file", p.dpop_key.as_ref()),
    ];
    for (name, cfg) in keys {
        if let Some(alg) = cfg
            .and_then(|k| crate::oidc::client_auth::ClientKey::load(k).ok())
            .map(|k| k.algorithm())
        {
            if !FAPI_ALGORITHMS.contains(&alg) {
                c.fail(name, format!("signs {alg:?}, which FAPI 2.0 does not allow (PS256, ES256, EdDSA; set client_key_algorithm = \"PS256\" for an RSA key)"));
            }
        }
    }
    if !p.issuer.starts_with("https://") {
        c.fail(key, "FAPI 2.0 needs an https issuer");
    }
}
