//! ID tokens and logout tokens. The first byte picks the mode:
//! - even: the rest is a compact JWS, verified against a fixed key set (no
//!   input can carry a valid signature, so none may be accepted);
//! - odd: the rest is `header \0 claims` JSON, signed with the HS256 key the
//!   validator is configured with, so the claim checks themselves are
//!   fuzzed: whatever is accepted must satisfy them.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use tollgate::oidc::id_token::{Expect, IdTokenValidator};
use tollgate::oidc::jwks::{KeyCache, KeySet};

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0123456789";

struct Fixture {
    rt: tokio::runtime::Runtime,
    v: IdTokenValidator,
    keys: KeyCache,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let jwks = include_bytes!("../../bench/data/rs256-test-jwks.json");
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            v: IdTokenValidator {
                issuer: "https://op.test".into(),
                client_id: "tollgate".into(),
                algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::HS256],
                leeway: Duration::from_secs(60),
                max_age: Some(Duration::from_secs(600)),
                trusted_audiences: Vec::new(),
                strict_audience: false,
                hmac_secret: Some(SECRET.to_vec()),
            },
            keys: KeyCache::fixed(KeySet::parse(jwks).expect("jwks")),
        }
    })
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn hs256(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let expect = Expect {
        nonce: Some("n-0S6_WzA2Mj"),
        ..Expect::default()
    };
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let r = f.rt.block_on(f.v.validate(token, &f.keys, expect));
        if let Ok(c) = r {
            // Only an HS256 token could pass, and the fuzzer does not know
            // the key.
            panic!("accepted a token the fuzzer could not sign: {:?}", c.sub);
        }
        let _ = f.rt.block_on(tollgate::oidc::logout_token::validate(&f.v, token, &f.keys));
    } else {
        let mut parts = rest.splitn(2, |&b| b == 0);
        let (Some(header), Some(claims)) = (parts.next(), parts.next()) else {
            return;
        };
        let token = hs256(header, claims);
        if let Ok(c) = f.rt.block_on(f.v.validate(&token, &f.keys, expect)) {
            assert_eq!(c.iss.as_deref(), Some("https://op.test"));
            assert!(!c.subject().is_empty());
            assert_eq!(c.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
        }
        let _ = f.rt.block_on(tollgate::oidc::logout_token::validate(&f.v, &token, &f.keys));
    }
});
