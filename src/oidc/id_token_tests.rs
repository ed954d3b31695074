//! Every rule of OIDC Core §3.1.3.7 as tollgate applies it, with keys made
//! in-process.

use super::*;
use crate::oidc::jwks::{KeyCache, KeySet};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const ISS: &str = "https://op.test";
const CID: &str = "tollgate";
const NONCE: &str = "n-0S6_WzA2Mj";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct Signer {
    key: EncodingKey,
    jwk: serde_json::Value,
    alg: Algorithm,
}

fn es256(kid: &str) -> Signer {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("parse");
    let public = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    Signer {
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty":"EC","crv":"P-256","kid":kid,"use":"sig","x":b64(&public[1..33]),"y":b64(&public[33..65])}),
        alg: Algorithm::ES256,
    }
}

fn ed25519(kid: &str) -> Signer {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse");
    Signer {
        key: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty":"OKP","crv":"Ed25519","kid":kid,"x":b64(pair.public_key().as_ref())}),
        alg: Algorithm::EdDSA,
    }
}

fn now_s() -> i64 {
    crate::session::now()
}

fn claims() -> serde_json::Value {
    json!({"iss": ISS, "sub": "alice", "aud": CID, "exp": now_s() + 300, "iat": now_s(), "nonce": NONCE,
           "email": "alice@example.com", "groups": ["dev", "ops"], "realm_access": {"roles": ["admin"]}})
}

fn sign(s: &Signer, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut h = Header::new(s.alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &s.key).expect("sign")
}

fn validator() -> IdTokenValidator {
    IdTokenValidator {
        tenants: None,
        issuer: ISS.into(),
        client_id: CID.into(),
        algorithms: vec![
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ],
        leeway: Duration::from_secs(60),
        max_age: Some(Duration::from_secs(600)),
        trusted_audiences: Vec::new(),
        strict_audience: false,
        hmac_secret: None,
    }
}

fn cache(signers: &[&Signer]) -> KeyCache {
    let keys: Vec<_> = signers.iter().map(|s| s.jwk.clone()).collect();
    KeyCache::fixed(KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).expect("jwks"))
}

fn check(
    v: &IdTokenValidator,
    token: &str,
    keys: &KeyCache,
) -> Result<IdTokenClaims, IdTokenError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(v.validate(
        token,
        keys,
        Expect {
            nonce: Some(NONCE),
            ..Expect::default()
        },
    ))
}

fn with(mutate: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> serde_json::Value {
    let mut c = claims();
    if let Some(m) = c.as_object_mut() {
        mutate(m);
    }
    c
}

fn reject(c: serde_json::Value, expected: IdTokenError) {
    let k = es256("k1");
    assert_eq!(
        check(&validator(), &sign(&k, Some("k1"), &c), &cache(&[&k])).err(),
        Some(expected),
        "{c}"
    );
}

#[test]
fn valid_token_is_accepted_with_its_claims() {
    let k = es256("k1");
    let c = check(
        &validator(),
        &sign(&k, Some("k1"), &claims()),
        &cache(&[&k]),
    )
    .expect("valid");
    assert_eq!(c.subject(), "alice");
    assert_eq!(c.email.as_deref(), Some("alice@example.com"));
    assert_eq!(c.groups("groups"), vec!["dev", "ops"]);
    assert_eq!(c.groups("realm_access.roles"), vec!["admin"]);
}

#[test]
fn eddsa_is_accepted() {
    let k = ed25519("e1");
    check(
        &validator(),
        &sign(&k, Some("e1"), &claims()),
        &cache(&[&k]),
    )
    .expect("valid");
}

#[test]
fn token_without_kid_is_verified_against_candidate_keys() {
    let a = es256("a");
    let b = es256("b");
    check(&validator(), &sign(&b, None, &claims()), &cache(&[&a, &b])).expect("valid");
}

#[test]
fn alg_none_is_never_accepted() {
    let head = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(claims().to_string().as_bytes());
    for token in [format!("{head}.{body}."), format!("{head}.{body}")] {
        let k = es256("k1");
        assert_eq!(
            check(&validator(), &token, &cache(&[&k])).err(),
            Some(IdTokenError::AlgorithmNotAllowed("none".into()))
        );
    }
}

#[test]
fn algorithm_off_the_allow_list_is_refused() {
    let k = es256("k1");
    let mut v = validator();
    v.algorithms = vec![Algorithm::RS256];
    assert_eq!(
        check(&v, &sign(&k, Some("k1"), &claims()), &cache(&[&k])).err(),
        Some(IdTokenError::AlgorithmNotAllowed("ES256".into()))
    );
}

#[test]
fn hmac_needs_configuration_and_the_client_secret() {
    let secret = b"a-client-secret-of-reasonable-length";
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(secret),
    )
    .expect("sign");
    let keys = cache(&[]);
    assert!(matches!(
        check(&validator(), &token, &keys),
        Err(IdTokenError::AlgorithmNotAllowed(_))
    ));
    let mut v = validator();
    v.algorithms.push(Algorithm::HS256);
    v.hmac_secret = Some(secret.to_vec());
    check(&v, &token, &keys).expect("HS256 with the client secret");
    v.hmac_secret = Some(b"another-secret".to_vec());
    assert_eq!(
        check(&v, &token, &keys).err(),
        Some(IdTokenError::BadSignature)
    );
}

#[test]
fn tampered_signature_is_refused() {
    let k = es256("k1");
    let token = sign(&k, Some("k1"), &claims());
    let (rest, sig) = token.rsplit_once('.').expect("jws");
    let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .expect("sig");
    for b in &mut raw {
        *b ^= 0x5a;
    }
    let forged = format!("{rest}.{}", b64(&raw));
    assert_eq!(
        check(&validator(), &forged, &cache(&[&k])).err(),
        Some(IdTokenError::BadSignature)
    );
}

#[test]
fn token_signed_by_an_unpublished_key_is_refused() {
    let published = es256("k1");
    let attacker = es256("k1");
    assert_eq!(
        check(
            &validator(),
            &sign(&attacker, Some("k1"), &claims()),
            &cache(&[&published])
        )
        .err(),
        Some(IdTokenError::BadSignature)
    );
    assert_eq!(
        check(
            &validator(),
            &sign(&attacker, Some("k2"), &claims()),
            &cache(&[&published])
        )
        .err(),
        Some(IdTokenError::UnknownKey(Some("k2".into())))
    );
}

#[test]
fn claims_in_the_payload_cannot_change_the_checks() {
    // A body that changes when re-encoded must not verify.
    let k = es256("k1");
    let token = sign(&k, Some("k1"), &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let evil = b64(with(|m| {
        m.insert("sub".into(), json!("admin"));
    })
    .to_string()
    .as_bytes());
    let forged = format!("{}.{}.{}", parts[0], evil, parts[2]);
    assert_eq!(
        check(&validator(), &forged, &cache(&[&k])).err(),
        Some(IdTokenError::BadSignature)
    );
}

#[test]
fn issuer_must_match_exactly() {
    reject(
        with(|m| {
            m.insert("iss".into(), json!("https://op.test1"));
        }),
        IdTokenError::Issuer,
    );
    reject(
        with(|m| {
            m.insert("iss".into(), json!("https://op.test/"));
        }),
        IdTokenError::Issuer,
    );
    reject(
        with(|m| {
            m.remove("iss");
        }),
        IdTokenError::Issuer,
    );
}

#[test]
fn audience_must_contain_the_client() {
    reject(
        with(|m| {
            m.insert("aud".into(), json!("tollgate1"));
        }),
        IdTokenError::Audience,
    );
    reject(
        with(|m| {
            m.remove("aud");
        }),
        IdTokenError::Audience,
    );
    reject(
        with(|m| {
            m.insert("aud".into(), json!(["other"]));
        }),
        IdTokenError::Audience,
    );
}

#[test]
fn several_audiences_need_azp_equal_to_the_client() {
    reject(
        with(|m| {
            m.insert("aud".into(), json!([CID, "tollgate1"]));
        }),
        IdTokenError::MissingAzp,
    );
    reject(
        with(|m| {
            m.insert("aud".into(), json!([CID, "tollgate1"]));
            m.insert("azp".into(), json!("tollgate1"));
        }),
        IdTokenError::Azp,
    );
    let k = es256("k1");
    let ok = with(|m| {
        m.insert("aud".into(), json!([CID, "tollgate1"]));
        m.insert("azp".into(), json!(CID));
    });
    check(&validator(), &sign(&k, Some("k1"), &ok), &cache(&[&k])).expect("azp = client id");
    let array_of_one = with(|m| {
        m.insert("aud".into(), json!([CID]));
    });
    check(
        &validator(),
        &sign(&k, Some("k1"), &array_of_one),
        &cache(&[&k]),
    )
    .expect("aud as array");
}

#[test]
fn azp_when_present_must_be_the_client() {
    reject(
        with(|m| {
            m.insert("azp".into(), json!("random_azp_value_abcdefghij"));
        }),
        IdTokenError::Azp,
    );
}

#[test]
fn expiry_is_enforced_with_the_clock_skew() {
    reject(
        with(|m| {
            m.insert("exp".into(), json!(now_s() - 360));
        }),
        IdTokenError::Expired,
    );
    reject(
        with(|m| {
            m.remove("exp");
        }),
        IdTokenError::Expired,
    );
    let k = es256("k1");
    let within = with(|m| {
        m.insert("exp".into(), json!(now_s() - 10));
    });
    check(&validator(), &sign(&k, Some("k1"), &within), &cache(&[&k])).expect("within 60 s skew");
}

#[test]
fn iat_is_required_and_not_in_the_future() {
    reject(
        with(|m| {
            m.remove("iat");
        }),
        IdTokenError::MissingIat,
    );
    reject(
        with(|m| {
            m.insert("iat".into(), json!(now_s() + 3600));
        }),
        IdTokenError::IssuedInFuture,
    );
}

#[test]
fn nbf_in_the_future_is_refused() {
    reject(
        with(|m| {
            m.insert("nbf".into(), json!(now_s() + 3600));
        }),
        IdTokenError::NotYetValid,
    );
    let k = es256("k1");
    let past = with(|m| {
        m.insert("nbf".into(), json!(now_s() - 10));
    });
    check(&validator(), &sign(&k, Some("k1"), &past), &cache(&[&k])).expect("nbf in the past");
}

#[test]
fn subject_is_required() {
    reject(
        with(|m| {
            m.remove("sub");
        }),
        IdTokenError::MissingSub,
    );
    reject(
        with(|m| {
            m.insert("sub".into(), json!(""));
        }),
        IdTokenError::MissingSub,
    );
}

#[test]
fn nonce_must_match() {
    reject(
        with(|m| {
            m.remove("nonce");
        }),
        IdTokenError::MissingNonce,
    );
    reject(
        with(|m| {
            m.insert("nonce".into(), json!(format!("{NONCE}1")));
        }),
        IdTokenError::NonceMismatch,
    );
}

#[test]
fn refreshed_token_keeps_the_subject() {
    let k = es256("k1");
    let token = sign(
        &k,
        Some("k1"),
        &with(|m| {
            m.insert("sub".into(), json!("mallory"));
        }),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(validator().validate(
        &token,
        &cache(&[&k]),
        Expect {
            subject: Some("alice"),
            ..Expect::default()
        },
    ));
    assert_eq!(r.err(), Some(IdTokenError::SubjectChanged));
}

#[test]
fn unusable_keys_in_the_set_are_ignored() {
    let k = es256("k1");
    let jwks = json!({"keys": [
        {"kty":"AKP","alg":"ML-DSA-9999","kid":"unusable-pq-sig-key","pub":"xx"},
        {"kty":"OIDF-CONFORMANCE-UNSUPPORTED","kid":"x"},
        k.jwk.clone(),
    ]});
    let keys = KeyCache::fixed(KeySet::parse(jwks.to_string().as_bytes()).expect("jwks"));
    check(&validator(), &sign(&k, Some("k1"), &claims()), &keys).expect("valid");
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let k = es256("k1");
    for t in [
        "",
        "a",
        "a.b",
        "a.b.c",
        "....",
        "eyJhbGciOiJFUzI1NiJ9.!!!.sig",
        "eyJhbGciOiJFUzI1NiIsImNyaXQiOlsiYiJdLCJiIjoxfQ.e30.c2ln",
    ] {
        assert!(check(&validator(), t, &cache(&[&k])).is_err(), "{t}");
    }
}
