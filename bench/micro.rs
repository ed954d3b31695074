//! Criterion micro-benchmarks for the pieces on the authenticated request
//! path: opening the session cookie (one chunk and four), rewriting the
//! request headers, verifying an ID token (RS256 and ES256), and evaluating
//! authorization rules.
//!
//! Run: `cargo bench --bench micro` (release profile). The side-by-side
//! load benchmark is `bench/run.sh`; these numbers say where a request's
//! CPU time goes, not how fast the whole hop is.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, HeaderValue, Method};

use tollgate::authz::Identity;
use tollgate::config::{self, Config, ConfigPath};
use tollgate::oidc::id_token::Expect;
use tollgate::oidc::jwks::{KeyCache, KeySet};
use tollgate::oidc::IdTokenValidator;
use tollgate::proxy::headers::{self, Forwarding, StripList};
use tollgate::session::{Codec, RequestCookies, Session, SessionCookies};

const ISSUER: &str = "https://op.bench";
const CLIENT_ID: &str = "tollgate";

/// A config like a user's: a few rules, so rule evaluation has real work.
fn config() -> Config {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:4180"
public_url = "https://app.example.com"
[upstream]
url = "http://127.0.0.1:8080"
[provider]
issuer = "{ISSUER}"
client_id = "{CLIENT_ID}"
client_secret = "bench-secret"
[session]
secret = "{secret}"
[authorization]
allowed_email_domains = ["example.com"]
[[authorization.rules]]
name = "admin"
paths = ["/admin"]
allow_groups = ["admins"]
[[authorization.rules]]
name = "reports"
path_regex = "/reports/[0-9]+(/.*)?"
methods = ["GET"]
allow_claims = {{ "realm_access.roles" = "reporter" }}
[[authorization.rules]]
name = "everyone"
paths = ["/"]
allow_any = true
"#,
        secret = "0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    let dir = std::env::temp_dir().join(format!("tollgate-micro-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path: PathBuf = dir.join("tollgate.toml");
    std::fs::write(&path, toml).expect("write bench config");
    let (config, _) =
        config::load(&ConfigPath::Named(path, "bench"), &[]).expect("bench config is valid");
    config
}

/// A session as a real login leaves it: tokens of realistic size, `groups`
/// groups.
fn session(groups: usize) -> Session {
    let token = |n: usize| "x".repeat(n);
    let mut claims = serde_json::Map::new();
    claims.insert(
        "realm_access".into(),
        serde_json::json!({"roles": ["reporter", "viewer"]}),
    );
    Session {
        sub: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: Some(true),
        name: Some("Alice Example".into()),
        preferred_username: Some("alice".into()),
        groups: (0..groups)
            .map(|i| format!("cn=group-{i:04},ou=groups,dc=example,dc=com"))
            .collect(),
        access_token: token(900),
        access_expires_at: Some(tollgate::session::now() + 3600),
        refresh_token: Some(token(300)),
        id_token: Some(token(1000)),
        sid: Some("sid-1".into()),
        claims,
        issued_at: tollgate::session::now(),
        expires_at: tollgate::session::now() + 86400,
        nonce: None,
        auth_time: None,
        provider: None,
    }
}

/// The request's `Cookie` header for a sealed session (name=value pairs
/// from the `Set-Cookie` values), plus an application cookie.
fn cookie_header(cookies: &SessionCookies, codec: &Codec, s: &Session) -> (String, usize) {
    let set = cookies.write(codec, s, &[]).expect("session fits");
    let mut pairs: Vec<&str> = set
        .iter()
        .map(|c| c.split(';').next().unwrap_or_default())
        .collect();
    pairs.push("app_pref=dark");
    (pairs.join("; "), set.len())
}

fn cookie_open(c: &mut Criterion) {
    let config = config();
    let cookies = SessionCookies::new(&config.session);
    let codec = Codec::new(&config.session.secrets);
    let mut group = c.benchmark_group("session_cookie_open");
    for (label, groups) in [("1_chunk", 0), ("4_chunks", 200)] {
        let (header, chunks) = cookie_header(&cookies, &codec, &session(groups));
        let expected = if label == "1_chunk" { 1 } else { 4 };
        assert_eq!(
            chunks, expected,
            "{label}: the session should take {expected} cookies"
        );
        // Every request after the first: the opened-session cache answers.
        group.bench_function(format!("{label}/cached"), |b| {
            b.iter(|| {
                let parsed = RequestCookies::parse([black_box(header.as_bytes())]);
                let found = cookies.read(&codec, &parsed);
                assert!(found.session.is_some());
                found
            })
        });
        // The first request with a cookie (or one the cache has evicted):
        // base64, AES-GCM and JSON.
        group.bench_function(format!("{label}/first"), |b| {
            b.iter_batched(
                || SessionCookies::new(&config.session),
                |fresh| {
                    let parsed = RequestCookies::parse([black_box(header.as_bytes())]);
                    let found = fresh.read(&codec, &parsed);
                    assert!(found.session.is_some());
                    (found, fresh)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn browser_headers(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut add = |k: &'static str, v: &str| {
        h.append(k, HeaderValue::from_str(v).expect("header value"));
    };
    add("host", "app.example.com");
    add("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36");
    add(
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    );
    add("accept-language", "en-GB,en;q=0.9");
    add("accept-encoding", "gzip, deflate, br");
    add("connection", "keep-alive");
    add("cookie", cookie);
    add("x-forwarded-user", "mallory");
    add("x-auth-request_email", "mallory@evil.test");
    add("sec-fetch-site", "same-origin");
    h
}

fn header_rewrite(c: &mut Criterion) {
    let config = config();
    let cookies = SessionCookies::new(&config.session);
    let codec = Codec::new(&config.session.secrets);
    let s = session(3);
    let (cookie, _) = cookie_header(&cookies, &codec, &s);
    let strip = StripList::new(&config.upstream);
    let template = browser_headers(&cookie);
    c.bench_function("header_rewrite", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |h| {
                headers::prepare_request(
                    h,
                    false,
                    &strip,
                    &cookies,
                    &config.upstream,
                    &Forwarding {
                        peer: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
                        trusted: false,
                        proto: "https",
                        port: 443,
                        session: Some(&s),
                        assertion: None,
                    },
                );
                assert!(!h.contains_key("x-auth-request_email"));
            },
            BatchSize::SmallInput,
        )
    });
}

fn id_token_claims() -> serde_json::Value {
    let now = tollgate::session::now();
    serde_json::json!({
        "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "exp": now + 3600, "iat": now,
        "nonce": "n-0S6_WzA2Mj", "email": "alice@example.com", "email_verified": true,
        "groups": ["dev", "ops"], "sid": "sid-1"
    })
}

fn id_token_verify(c: &mut Criterion) {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let validator = IdTokenValidator {
        tenants: None,
        issuer: ISSUER.into(),
        client_id: CLIENT_ID.into(),
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway: std::time::Duration::from_secs(60),
        max_age: Some(std::time::Duration::from_secs(600)),
        trusted_audiences: Vec::new(),
        strict_audience: false,
        hmac_secret: None,
    };

    // RS256: a fixed 2048-bit test key (bench/data), the provider default.
    let rsa = EncodingKey::from_rsa_der(include_bytes!("data/rs256-test-key.der"));
    let mut rsa_header = Header::new(Algorithm::RS256);
    rsa_header.kid = Some("bench-rs".into());
    let rs_token = jsonwebtoken::encode(&rsa_header, &id_token_claims(), &rsa).expect("sign");
    let mut jwks: serde_json::Value =
        serde_json::from_slice(include_bytes!("data/rs256-test-jwks.json")).expect("jwks");

    // ES256: a key made now.
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::Engine as _;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pkcs8");
    let public = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    jwks["keys"]
        .as_array_mut()
        .expect("keys")
        .push(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "bench-ec", "use": "sig",
            "x": b64(&public[1..33]), "y": b64(&public[33..65])
        }));
    let mut ec_header = Header::new(Algorithm::ES256);
    ec_header.kid = Some("bench-ec".into());
    let es_token = jsonwebtoken::encode(
        &ec_header,
        &id_token_claims(),
        &EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .expect("sign");

    let keys = KeyCache::fixed(KeySet::parse(jwks.to_string().as_bytes()).expect("key set"));
    let mut group = c.benchmark_group("id_token_verify");
    for (label, token) in [("RS256", &rs_token), ("ES256", &es_token)] {
        group.bench_function(label, |b| {
            b.iter(|| {
                rt.block_on(validator.validate(
                    black_box(token),
                    &keys,
                    Expect {
                        nonce: Some("n-0S6_WzA2Mj"),
                        ..Expect::default()
                    },
                ))
                .expect("valid token")
            })
        });
    }
    group.finish();
}

fn rule_evaluation(c: &mut Criterion) {
    let config = config();
    let s = session(3);
    let who = Identity {
        provider: Some(s.provider_id()),
        email: s.email.as_deref(),
        email_verified: s.email_verified,
        groups: &s.groups,
        claims: &s.claims,
    };
    let rules = tollgate::gateway::state::Rules::new(&config).expect("rules");
    let policy = &rules.policy;
    let mut group = c.benchmark_group("rule_evaluation");
    for (label, path) in [
        ("first_rule_prefix", "/admin/users"),
        ("second_rule_regex", "/reports/42/summary"),
        ("last_rule", "/home"),
    ] {
        group.bench_function(label, |b| {
            b.iter(|| policy.decide(&who, &Method::GET, black_box(path)))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    cookie_open,
    header_rewrite,
    id_token_verify,
    rule_evaluation
);
criterion_main!(benches);
