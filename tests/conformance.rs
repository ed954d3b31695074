//! Relying-party conformance against a misbehaving provider
//! (`support::evil`): the OpenID Foundation's RP certification cases for
//! the code flow and the ID-token, key, login-flow, token-endpoint,
//! userinfo and refresh groups of `security-cases.md`, each through the
//! running tollgate binary.
//!
//! A rejected login must leave: a clean 4xx page, no session cookie, no
//! upstream request, no further provider call (the OIDF suite fails an RP
//! that calls userinfo after a bad ID token; here a bad authorization
//! response must not even reach the token endpoint), and exactly one log
//! line naming the failed check, with no token, code or secret in it.
//!
//! Every case prints one line `conformance <group> <id> pass|FAIL ...`;
//! each group's test fails if any case does.

// Case tables: one function per group until each case is a named test
// of its own (issue #13).
#![allow(clippy::too_many_lines)]

mod support;

use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use support::cases::Group;
use support::evil::*;
use support::*;

/// CA-02 of security-cases §5 (the AppAuth bug reports' vector): an id and
/// secret with `/`, space, `+`, `:` and `=`. The provider accepts only the
/// RFC 6749 §2.3.1 header, byte for byte.
const CID: &str = "1PpG/Q 1";
const SECRET: &str = "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=";
const BASIC: &str = "Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA==";
const APP: &str = "/app/x?y=1";

fn basic_client() -> Client<'static> {
    Client {
        check: ClientCheck::Basic(BASIC.into()),
        id: CID,
        secret: Some(SECRET),
        auth: "client_secret_basic",
    }
}

/// A provider that starts out behaving as `before` (what tollgate sees at
/// start-up: discovery, keys), and a tollgate for it with extra
/// `[provider]` keys. Waits for readiness when `ready`.
async fn world_full(client: Client<'_>, provider: &str, before: Behaviour, ready: bool) -> World {
    world_session(client, provider, "", before, ready).await
}

/// As [`world_full`], with extra `[session]` keys.
async fn world_session(
    client: Client<'_>,
    provider: &str,
    session: &str,
    before: Behaviour,
    ready: bool,
) -> World {
    let setup = WorldSetup {
        provider,
        session,
        before,
        not_ready: !ready,
        ..WorldSetup::default()
    };
    World::start(client, setup).await
}

async fn world(provider: &str, before: Behaviour) -> World {
    world_full(basic_client(), provider, before, true).await
}

// === driving a login ===

struct Attempt {
    callback: Page,
    /// Provider calls made while tollgate handled the callback.
    calls: Vec<Call>,
    upstream_before: usize,
    refused_before: usize,
}

/// Starts a login at tollgate, lets the provider answer, returns the
/// callback URL tollgate is sent back to (not yet visited).
async fn to_callback(w: &World, b: &mut Browser) -> String {
    let start = b.get(&w.tollgate.url(APP)).await;
    assert_eq!(start.status, 302, "no login redirect: {}", start.body);
    let authorize = start.location().expect("location").to_string();
    let at_op = b.get(&authorize).await;
    at_op
        .location()
        .expect("the provider redirects back")
        .to_string()
}

async fn visit_callback(w: &World, b: &mut Browser, url: &str) -> Attempt {
    let upstream_before = w.upstream.count();
    let calls_before = w.op.calls().len();
    let refused_before = w.tollgate.output.lines_with("login refused").len();
    let callback = b.get(url).await;
    let calls = w.op.calls()[calls_before..].to_vec();
    Attempt {
        callback,
        calls,
        upstream_before,
        refused_before,
    }
}

async fn attempt(w: &World, b: &mut Browser) -> Attempt {
    let url = to_callback(w, b).await;
    visit_callback(w, b, &url).await
}

#[derive(Clone, Copy, Debug)]
enum Then {
    /// Login completes and the upstream is reached as alice.
    Accept,
    /// 400 page, naming this check in the log.
    Reject(&'static str),
    /// This status (a provider outage or our misconfiguration, not a
    /// forged answer), naming this check.
    Fail(u16, &'static str),
}

fn sets_session(page: &Page) -> bool {
    page.set_cookies().iter().any(|c| {
        (c.starts_with("_tollgate=") || c.starts_with("_tollgate_0=")) && !c.contains("Max-Age=0")
    })
}

fn snippet(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Checks an attempt's outcome; `forbidden` are provider endpoints that
/// must not have been called after the failed check.
async fn judge(
    w: &World,
    b: &mut Browser,
    a: &Attempt,
    then: Then,
    forbidden: &[&str],
) -> Result<(), String> {
    let page = &a.callback;
    let (status, check) = match then {
        Then::Accept => {
            if page.status != 302 || !sets_session(page) {
                return Err(format!(
                    "expected a login, got {} {}",
                    page.status,
                    snippet(&page.body)
                ));
            }
            if !page.location().is_some_and(|l| l.ends_with(APP)) {
                return Err(format!("landed on {:?}", page.location()));
            }
            let app = b.get(&w.tollgate.url(APP)).await;
            if app.status != 200 {
                return Err(format!("app answered {}", app.status));
            }
            let seen = w.upstream.last();
            if seen.header("x-forwarded-user") != Some("alice") {
                return Err(format!(
                    "upstream user {:?}",
                    seen.header("x-forwarded-user")
                ));
            }
            return Ok(());
        }
        Then::Reject(check) => (400, check),
        Then::Fail(status, check) => (status, check),
    };
    if page.status != status {
        return Err(format!(
            "expected {status}, got {} {}",
            page.status,
            snippet(&page.body)
        ));
    }
    if sets_session(page) {
        return Err(format!(
            "a session cookie was set: {:?}",
            page.set_cookies()
        ));
    }
    if !page.body.contains("Sign-in failed") || page.body.contains("<script") {
        return Err(format!("not the clean error page: {}", snippet(&page.body)));
    }
    if w.upstream.count() != a.upstream_before {
        return Err("the upstream was called".into());
    }
    if let Some(c) = a
        .calls
        .iter()
        .find(|c| forbidden.contains(&c.endpoint.as_str()))
    {
        return Err(format!(
            "the provider's {} was called after the check",
            c.endpoint
        ));
    }
    let lines = w
        .tollgate
        .output
        .new_lines("login refused", a.refused_before);
    match lines.as_slice() {
        [line] if line.contains(check) => {
            for secret in ["eyJ", "code-", "at-", "rt-", SECRET] {
                if line.contains(secret) {
                    return Err(format!("the log line holds `{secret}`: {line}"));
                }
            }
            Ok(())
        }
        other => Err(format!(
            "expected one log line naming {check}, got {other:?}"
        )),
    }
}

struct Case {
    id: &'static str,
    what: &'static str,
    b: Behaviour,
    then: Then,
}

fn case(id: &'static str, what: &'static str, b: Behaviour, then: Then) -> Case {
    Case { id, what, b, then }
}

/// Runs login cases one after another on one world.
async fn run(report: &mut Report, w: &World, cases: Vec<Case>, forbidden: &[&str]) {
    for c in cases {
        w.op.set(c.b.clone());
        let mut b = Browser::new();
        let a = attempt(w, &mut b).await;
        let r = judge(w, &mut b, &a, c.then, forbidden).await;
        report.record(c.id, c.what, r);
    }
    w.op.set(Behaviour::default());
}

// === behaviour builders ===

type M = Map<String, Value>;

fn claims(f: impl Fn(&mut M) + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        claims: hook(f),
        ..Behaviour::default()
    }
}

fn header(f: impl Fn(&mut M) + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        header: hook(f),
        ..Behaviour::default()
    }
}

fn signed(sign: Sign) -> Behaviour {
    Behaviour {
        sign,
        ..Behaviour::default()
    }
}

fn id_token(f: impl Fn(&mut String) + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        id_token: hook(f),
        ..Behaviour::default()
    }
}

fn token(f: impl Fn(&mut M) + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        token: hook(f),
        ..Behaviour::default()
    }
}

fn token_raw(raw: Option<Raw>) -> Behaviour {
    Behaviour {
        token_raw: raw,
        ..Behaviour::default()
    }
}

fn authz(f: impl Fn(&mut Vec<(String, String)>) + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        authorize: hook(f),
        ..Behaviour::default()
    }
}

fn userinfo(f: impl Fn(&mut M) + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        userinfo: hook(f),
        ..Behaviour::default()
    }
}

fn jwks(f: impl Fn(&Keys) -> Value + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        jwks: Some(Arc::new(f)),
        ..Behaviour::default()
    }
}

fn set(m: &mut M, k: &str, v: Value) {
    m.insert(k.into(), v);
}

fn set_param(p: &mut Vec<(String, String)>, k: &str, v: &str) {
    p.retain(|(n, _)| n != k);
    p.push((k.into(), v.into()));
}

fn drop_param(p: &mut Vec<(String, String)>, k: &str) {
    p.retain(|(n, _)| n != k);
}

fn now() -> i64 {
    support::evil::now()
}

// === §1, §2: ID tokens ===

async fn id_token_cases() -> Report {
    let w = world("", Behaviour::default()).await;
    let iss = w.op.issuer.clone();
    let i = |s: &str| format!("{iss}{s}");
    let (iss1, iss_slash, iss_upper) = (i("1"), i("/"), iss.replace("http://", "HTTP://"));
    let k1_pem = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/k1.pub.pem"),
    )
    .expect("pem");
    let previous_nonce: Arc<Mutex<String>> = Arc::default();
    let big = "a".repeat(200 * 1024);
    let pn = previous_nonce.clone();
    use Then::*;
    let cases = vec![
        case(
            "IDT-01",
            "valid RS256 token (OIDF oidcc-client-test)",
            Behaviour::default(),
            Accept,
        ),
        case(
            "IDT-02",
            "iss = issuer + \"1\" (OIDF -invalid-iss)",
            claims(move |m| set(m, "iss", json!(iss1))),
            Reject("id_token_iss"),
        ),
        case(
            "IDT-03",
            "iss absent",
            claims(|m| {
                m.remove("iss");
            }),
            Reject("id_token_iss"),
        ),
        case(
            "IDT-04a",
            "iss with a trailing slash",
            claims(move |m| set(m, "iss", json!(iss_slash))),
            Reject("id_token_iss"),
        ),
        case(
            "IDT-04b",
            "iss in another case",
            claims(move |m| set(m, "iss", json!(iss_upper))),
            Reject("id_token_iss"),
        ),
        case(
            "IDT-05",
            "aud absent (OIDF -missing-aud)",
            claims(|m| {
                m.remove("aud");
            }),
            Reject("id_token_aud"),
        ),
        case(
            "IDT-06",
            "aud = client_id + \"1\" (OIDF -invalid-aud)",
            claims(|m| set(m, "aud", json!(format!("{CID}1")))),
            Reject("id_token_aud"),
        ),
        case(
            "IDT-07",
            "aud as a one-element array",
            claims(|m| set(m, "aud", json!([CID]))),
            Accept,
        ),
        case(
            "IDT-08",
            "second audience without azp (FAPI invalid-secondary-aud)",
            claims(|m| set(m, "aud", json!([CID, format!("{CID}1")]))),
            Reject("id_token_azp"),
        ),
        case(
            "IDT-09",
            "second audience with azp = client_id (D-1 default)",
            claims(|m| {
                set(m, "aud", json!([CID, "other"]));
                set(m, "azp", json!(CID));
            }),
            Accept,
        ),
        case(
            "IDT-10",
            "azp of another client",
            claims(|m| set(m, "azp", json!("other"))),
            Reject("id_token_azp"),
        ),
        case(
            "IDT-11a",
            "aud a number",
            claims(|m| set(m, "aud", json!(12345))),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-11b",
            "aud an object",
            claims(|m| set(m, "aud", json!({"x": 1}))),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-11c",
            "aud an empty array",
            claims(|m| set(m, "aud", json!([]))),
            Reject("id_token_aud"),
        ),
        case(
            "IDT-11d",
            "aud [null]",
            claims(|m| set(m, "aud", json!([null]))),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-12",
            "sub absent (OIDF -missing-sub)",
            claims(|m| {
                m.remove("sub");
            }),
            Reject("id_token_sub"),
        ),
        case(
            "IDT-13a",
            "sub empty",
            claims(|m| set(m, "sub", json!(""))),
            Reject("id_token_sub"),
        ),
        case(
            "IDT-13b",
            "sub of 256 characters",
            claims(|m| set(m, "sub", json!("a".repeat(256)))),
            Reject("id_token_sub"),
        ),
        case(
            "IDT-13c",
            "sub a number",
            claims(|m| set(m, "sub", json!(42))),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-14",
            "exp absent (FAPI invalid-missing-exp)",
            claims(|m| {
                m.remove("exp");
            }),
            Reject("id_token_exp"),
        ),
        case(
            "IDT-15",
            "exp six minutes ago (FAPI invalid-expired-exp)",
            claims(|m| set(m, "exp", json!(now() - 360))),
            Reject("id_token_exp"),
        ),
        case(
            "IDT-16",
            "exp 30 s ago, inside the 60 s leeway",
            claims(|m| set(m, "exp", json!(now() - 30))),
            Accept,
        ),
        case(
            "IDT-17",
            "exp as a JSON string",
            claims(|m| set(m, "exp", json!("9999999999"))),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-18",
            "exp with a fraction",
            claims(|m| set(m, "exp", json!(now() as f64 + 300.5))),
            Accept,
        ),
        case(
            "IDT-19a",
            "exp 1e300 (no overflow)",
            claims(|m| set(m, "exp", json!(1e300))),
            Accept,
        ),
        case(
            "IDT-19b",
            "exp -2",
            claims(|m| set(m, "exp", json!(-2))),
            Reject("id_token_exp"),
        ),
        case(
            "IDT-20",
            "iat absent (OIDF -missing-iat)",
            claims(|m| {
                m.remove("iat");
            }),
            Reject("id_token_iat"),
        ),
        case(
            "IDT-21",
            "iat a day ahead",
            claims(|m| {
                set(m, "iat", json!(now() + 86400));
                set(m, "exp", json!(now() + 90000));
            }),
            Reject("id_token_iat"),
        ),
        case(
            "IDT-22",
            "iat a week ago (D-9: id_token_max_age 10 min)",
            claims(|m| set(m, "iat", json!(now() - 604_800))),
            Reject("id_token_iat"),
        ),
        case(
            "IDT-23",
            "nbf a day ahead",
            claims(|m| set(m, "nbf", json!(now() + 86400))),
            Reject("id_token_nbf"),
        ),
        case(
            "IDT-24",
            "nonce + \"1\" (OIDF -nonce-invalid)",
            claims(|m| {
                let n = m["nonce"].as_str().unwrap_or_default().to_string();
                set(m, "nonce", json!(format!("{n}1")));
            }),
            Reject("id_token_nonce"),
        ),
        case(
            "IDT-25",
            "nonce absent (FAPI invalid-missing-nonce)",
            claims(|m| {
                m.remove("nonce");
            }),
            Reject("id_token_nonce"),
        ),
        case(
            "IDT-26",
            "nonce of an earlier, completed login (replay)",
            claims(move |m| set(m, "nonce", json!(pn.lock().expect("lock").clone()))),
            Reject("id_token_nonce"),
        ),
        case(
            "IDT-27",
            "at_hash of another access token",
            claims(|m| set(m, "at_hash", json!("77QmUPtjPfzWtF2AnpK9RQ"))),
            Reject("id_token_at_hash"),
        ),
        case(
            "IDT-28",
            "no at_hash (code flow: optional)",
            Behaviour::default(),
            Accept,
        ),
        case(
            "IDT-33a",
            "alg none (OIDF -idtoken-sig-none, D-3)",
            signed(Sign::None),
            Reject("id_token_alg"),
        ),
        case(
            "IDT-33b",
            "alg none with typ JWT (FAPI invalid-null-alg)",
            Behaviour {
                sign: Sign::None,
                header: hook(|h| set(h, "typ", json!("JWT"))),
                ..Behaviour::default()
            },
            Reject("id_token_alg"),
        ),
        case(
            "IDT-34a",
            "RS256 signature bytes XOR 0x5A (OIDF -invalid-sig-rs256, D-4)",
            signed(Sign::Corrupt),
            Reject("id_token_signature"),
        ),
        case(
            "IDT-34b",
            "ES256 signature of random bytes (OIDF -invalid-sig-es256)",
            signed(Sign::EsSignature((0..64).map(|i| i as u8 ^ 0x5A).collect())),
            Reject("id_token_signature"),
        ),
        case(
            "IDT-34c",
            "HS256 keyed with the client secret (OIDF -invalid-sig-hs256, IDT-35)",
            signed(Sign::Hs256(SECRET.as_bytes().to_vec())),
            Reject("id_token_alg"),
        ),
        case(
            "IDT-36",
            "HS256 keyed with k1's public key PEM (algorithm confusion)",
            signed(Sign::Hs256(k1_pem)),
            Reject("id_token_alg"),
        ),
        case(
            "IDT-40",
            "valid ES256 by the published e1",
            signed(Sign::Key("e1")),
            Accept,
        ),
        case(
            "IDT-41",
            "ES256 signature DER-encoded instead of R||S",
            signed(Sign::EsDer),
            Reject("id_token_signature"),
        ),
        case(
            "IDT-42",
            "ES256 signature of 64 zero bytes (CVE-2022-21449 class)",
            signed(Sign::EsSignature(vec![0; 64])),
            Reject("id_token_signature"),
        ),
        case(
            "IDT-44",
            "unknown crit header",
            header(|h| set(h, "crit", json!(["urn:example:x"]))),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-45a",
            "jku to another key set, signed by an unpublished key",
            Behaviour {
                sign: Sign::Key("k3"),
                header: hook(|h| set(h, "jku", json!("http://127.0.0.1:9/evil-jwks"))),
                ..Behaviour::default()
            },
            Reject("id_token_key"),
        ),
        case(
            "IDT-46a",
            "typ at+jwt (an access token)",
            header(|h| set(h, "typ", json!("at+jwt"))),
            Reject("id_token_typ"),
        ),
        case(
            "IDT-46b",
            "typ logout+jwt (a logout token)",
            header(|h| set(h, "typ", json!("logout+jwt"))),
            Reject("id_token_typ"),
        ),
        case(
            "IDT-47",
            "duplicate iss member",
            Behaviour {
                payload: hook(|p: &mut String| {
                    *p = p.replacen('{', "{\"iss\":\"https://evil.test\",", 1)
                }),
                ..Behaviour::default()
            },
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-48a",
            "four dot-separated parts",
            id_token(|t| t.push_str(".x")),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-48b",
            "base64 padding in the header",
            id_token(|t| *t = t.replacen('.', "=.", 1)),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-48c",
            "JWS JSON serialization",
            id_token(|t| {
                let p: Vec<&str> = t.split('.').collect();
                *t = json!({"protected": p[0], "payload": p[1], "signature": p[2]}).to_string();
            }),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-48d",
            "leading whitespace",
            id_token(|t| t.insert(0, ' ')),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-49",
            "a JWE (five parts) while no encryption is configured",
            id_token(|t| {
                *t = format!(
                    "{}.AAAA.AAAA.AAAA.AAAA",
                    b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)
                );
            }),
            Reject("id_token_alg"),
        ),
        case(
            "IDT-50",
            "a 270 KB ID token",
            claims(move |m| set(m, "name", json!(big))),
            Reject("id_token_malformed"),
        ),
        case(
            "IDT-51",
            "email_verified as the string \"true\"",
            claims(|m| {
                set(m, "email", json!("alice@op.test"));
                set(m, "email_verified", json!("true"));
            }),
            Accept,
        ),
    ];
    let mut report = Report::new("conformance id_token");
    for c in cases {
        if c.id == "IDT-26" {
            // The nonce of the most recent (completed) login.
            let last = w.op.last("authorize").and_then(|c| c.param("nonce"));
            *previous_nonce.lock().expect("lock") = last.expect("an earlier login");
        }
        w.op.set(c.b.clone());
        let mut b = Browser::new();
        let a = attempt(&w, &mut b).await;
        let mut r = judge(&w, &mut b, &a, c.then, &["userinfo"]).await;
        if c.id.starts_with("IDT-45") && w.op.calls().iter().any(|c| c.endpoint == "evil-jwks") {
            r = Err("a key set named in the token was fetched".into());
        }
        report.record(c.id, c.what, r);
    }
    report
}

/// Algorithm and audience policy that needs its own configuration.
async fn id_token_policy_cases() -> Report {
    use Then::*;
    let mut report = Report::new("conformance id_token_policy");

    // IDT-40: ES256 is refused when the allow-list holds only RS256.
    let w = world("id_token_algorithms = [\"RS256\"]", Behaviour::default()).await;
    run(
        &mut report,
        &w,
        vec![
            case(
                "IDT-40b",
                "valid ES256 while only RS256 is allowed",
                signed(Sign::Key("e1")),
                Reject("id_token_alg"),
            ),
            case(
                "IDT-40c",
                "valid RS256 while only RS256 is allowed",
                Behaviour::default(),
                Accept,
            ),
        ],
        &["userinfo"],
    )
    .await;
    drop(w);

    // D-1 strict: extra audiences must be trusted by name.
    let w = world(
        "strict_audience = true\ntrusted_audiences = [\"api\"]",
        Behaviour::default(),
    )
    .await;
    run(
        &mut report,
        &w,
        vec![
            case(
                "IDT-09s",
                "strict: unlisted second audience with azp",
                claims(|m| {
                    set(m, "aud", json!([CID, "other"]));
                    set(m, "azp", json!(CID));
                }),
                Reject("id_token_aud"),
            ),
            case(
                "IDT-09t",
                "strict: trusted second audience with azp",
                claims(|m| {
                    set(m, "aud", json!([CID, "api"]));
                    set(m, "azp", json!(CID));
                }),
                Accept,
            ),
        ],
        &["userinfo"],
    )
    .await;
    drop(w);

    // IDT-16 with no leeway.
    let w = world("clock_skew = \"0s\"", Behaviour::default()).await;
    run(
        &mut report,
        &w,
        vec![case(
            "IDT-16b",
            "exp 30 s ago with clock_skew 0",
            claims(|m| set(m, "exp", json!(now() - 30))),
            Reject("id_token_exp"),
        )],
        &["userinfo"],
    )
    .await;
    drop(w);

    // HS256 configured (OIDC Core §10.1): keyed with the client secret.
    let oct = json!({"kty": "oct", "kid": "k1", "k": b64(b"attacker-chosen-key-0123456789abcdef")});
    let w = world(
        "id_token_algorithms = [\"RS256\", \"HS256\"]",
        jwks(move |k| json!({"keys": [k.k1.jwk(), oct]})),
    )
    .await;
    run(
        &mut report,
        &w,
        vec![
            case(
                "IDT-37",
                "HS256 keyed with the client secret, configured",
                signed(Sign::Hs256(SECRET.as_bytes().to_vec())),
                Accept,
            ),
            case(
                "IDT-38",
                "HS256 with a second audience (and azp)",
                Behaviour {
                    sign: Sign::Hs256(SECRET.as_bytes().to_vec()),
                    claims: hook(|m| {
                        set(m, "aud", json!([CID, "other"]));
                        set(m, "azp", json!(CID));
                    }),
                    ..Behaviour::default()
                },
                Reject("id_token_aud"),
            ),
            case(
                "KEY-10",
                "HS256 keyed with an oct key the JWKS publishes as k1",
                Behaviour {
                    sign: Sign::Hs256(b"attacker-chosen-key-0123456789abcdef".to_vec()),
                    header: hook(|h| set(h, "kid", json!("k1"))),
                    ..Behaviour::default()
                },
                Reject("id_token_signature"),
            ),
        ],
        &["userinfo"],
    )
    .await;
    report
}

// === §3: keys and discovery ===

/// A login, then the provider's keys change (`after`), then another login:
/// both accepted, the second at the cost of exactly one key-set fetch.
async fn relogin_after(after: Behaviour) -> Result<(), String> {
    let w = world("", Behaviour::default()).await;
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let first = judge(&w, &mut b, &a, Then::Accept, &["userinfo"]).await;
    let fetched = w.op.count("jwks");
    w.op.set(after);
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let r = first.and(judge(&w, &mut b, &a, Then::Accept, &["userinfo"]).await);
    match w.op.count("jwks") - fetched {
        1 => r,
        n if r.is_ok() => Err(format!("{n} key-set fetches for one change of keys")),
        _ => r,
    }
}

/// A login on a fresh world whose provider started as `before` and answers
/// this login as `during`.
async fn fresh_login(
    report: &mut Report,
    id: &'static str,
    what: &'static str,
    before: Behaviour,
    during: Behaviour,
    then: Then,
) -> World {
    let keep_jwks = before.jwks.clone();
    let w = world("", before).await;
    // The key set stays as it was at start-up unless `during` changes it.
    w.op.set(Behaviour {
        jwks: during.jwks.clone().or(keep_jwks),
        ..during
    });
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let r = judge(&w, &mut b, &a, then, &["userinfo"]).await;
    report.record(id, what, r);
    w
}

fn without_kid() -> Option<Hook<M>> {
    hook(|h: &mut M| {
        h.remove("kid");
    })
}

fn with_jwks(keys: impl Fn(&Keys) -> Vec<Value> + Send + Sync + 'static) -> Behaviour {
    jwks(move |k| json!({ "keys": keys(k) }))
}

fn with_member(jwk: Value, k: &str, v: Value) -> Value {
    let mut j = jwk;
    if let Some(m) = j.as_object_mut() {
        m.insert(k.into(), v);
    }
    j
}

async fn key_cases() -> Report {
    use Then::*;
    let mut report = Report::new("conformance keys");
    let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[7u8; 32])});
    let k256 = json!({"kty": "EC", "crv": "secp256k1", "x": b64(&[1u8; 32]), "y": b64(&[2u8; 32])});

    let (o, k) = (okp.clone(), k256.clone());
    fresh_login(
        &mut report,
        "KEY-01",
        "no kid, one key per type (OIDF -kid-absent-single-jwks)",
        with_jwks(move |k1| vec![k1.k1.bare.clone(), k1.e1.bare.clone(), k.clone(), o.clone()]),
        Behaviour {
            header: without_kid(),
            ..Behaviour::default()
        },
        Accept,
    )
    .await;
    let o = okp.clone();
    fresh_login(
        &mut report,
        "KEY-02",
        "no kid, three RSA keys (OIDF -kid-absent-multiple-jwks, D-2)",
        with_jwks(move |k| {
            vec![
                k.k2.bare.clone(),
                k.k3.bare.clone(),
                k.k1.bare.clone(),
                k.e1.bare.clone(),
                o.clone(),
            ]
        }),
        Behaviour {
            header: without_kid(),
            ..Behaviour::default()
        },
        Accept,
    )
    .await;

    // KEY-03: rotation after a first login (OIDF -signing-key-rotation).
    let r = relogin_after(Behaviour {
        sign: Sign::Key("k2"),
        ..with_jwks(|k| vec![k.k2.jwk()])
    })
    .await;
    report.record(
        "KEY-03",
        "keys rotated after the first login: one refetch",
        r,
    );

    // KEY-03b: the key replaced under the same kid, as a provider that
    // makes its keys anew at each start does after a restart.
    let r = relogin_after(Behaviour {
        sign: Sign::Key("k2"),
        header: hook(|h: &mut M| {
            h.insert("kid".into(), json!("k1"));
        }),
        ..with_jwks(|k| {
            let mut j = k.k2.jwk();
            j["kid"] = json!("k1");
            vec![j]
        })
    })
    .await;
    report.record(
        "KEY-03b",
        "key replaced under the same kid (provider restarted with new keys): one refetch",
        r,
    );

    fresh_login(
        &mut report,
        "KEY-04",
        "first token signed by a never-seen key (OIDF -signing-key-rotation-just-before-signing)",
        Behaviour::default(),
        Behaviour {
            sign: Sign::Key("k2"),
            ..with_jwks(|k| vec![k.k1.jwk(), k.k2.jwk()])
        },
        Accept,
    )
    .await;

    // KEY-05 and KEY-06: unknown kids cost one refetch, then none.
    let w = world("", Behaviour::default()).await;
    let fetched = w.op.count("jwks");
    w.op.set(Behaviour {
        sign: Sign::Key("k3"),
        header: hook(|h| set(h, "kid", json!("nope"))),
        ..Behaviour::default()
    });
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let mut r = judge(&w, &mut b, &a, Reject("id_token_key"), &["userinfo"]).await;
    if r.is_ok() && w.op.count("jwks") != fetched + 1 {
        r = Err(format!(
            "{} refetches for one unknown kid",
            w.op.count("jwks") - fetched
        ));
    }
    report.record(
        "KEY-05",
        "unknown kid, unpublished key: rejected after exactly one refetch",
        r,
    );
    let fetched = w.op.count("jwks");
    let mut r = Ok(());
    for _ in 0..10 {
        let kid = random_hex();
        w.op.set(Behaviour {
            sign: Sign::Key("k3"),
            header: hook(move |h| set(h, "kid", json!(kid))),
            ..Behaviour::default()
        });
        let mut b = Browser::new();
        let a = attempt(&w, &mut b).await;
        r = r.and(judge(&w, &mut b, &a, Reject("id_token_key"), &["userinfo"]).await);
    }
    // ID tokens come from the token endpoint, so an unknown kid there means
    // a rotation: each gets its one refetch, never more. (Tokens anyone can
    // send, bearer and logout, are throttled: tests/hardening.rs.)
    if r.is_ok() && w.op.count("jwks") - fetched != 10 {
        r = Err(format!(
            "{} refetches for 10 unknown kids",
            w.op.count("jwks") - fetched
        ));
    }
    report.record(
        "KEY-06",
        "a stream of unknown kids in ID tokens: one refetch each",
        r,
    );
    w.op.set(Behaviour {
        sign: Sign::Key("k2"),
        header: hook(|h| set(h, "kid", json!("k1"))),
        ..Behaviour::default()
    });
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let r = judge(&w, &mut b, &a, Reject("id_token_signature"), &["userinfo"]).await;
    report.record(
        "KEY-07",
        "kid k1 (published) but signed by unpublished k2 (FAPI invalid-alternate-alg)",
        r,
    );
    drop(w);

    fresh_login(&mut report, "KEY-08", "unparseable and unknown keys in the set are ignored (OIDF -ignores-unparseable-key-in-jwks)",
        with_jwks(|k| vec![
            json!({"kty":"AKP","alg":"ML-DSA-9999","kid":"unusable-pq-sig-key","use":"sig","pub":"Z0FOY29uZm9ybWFuY2UtdGVzdC1wbGFjZWhvbGRlci1wdWJsaWMta2V5"}),
            json!({"kty":"OIDF-CONFORMANCE-UNSUPPORTED","alg":"OIDF-CONFORMANCE-UNSUPPORTED","kid":"unusable-unknown-sig-key","use":"sig"}),
            k.k1.jwk(),
        ]),
        Behaviour::default(), Accept).await;
    fresh_login(
        &mut report,
        "KEY-09a",
        "the only k1 is an encryption key (use: enc)",
        with_jwks(|k| vec![with_member(k.k1.jwk(), "use", json!("enc"))]),
        Behaviour::default(),
        Reject("id_token_key"),
    )
    .await;
    fresh_login(
        &mut report,
        "KEY-09b",
        "k1 published for RS384, token RS256",
        with_jwks(|k| vec![with_member(k.k1.jwk(), "alg", json!("RS384"))]),
        Behaviour::default(),
        Reject("id_token_key"),
    )
    .await;
    fresh_login(
        &mut report,
        "KEY-09c",
        "k1 with key_ops [encrypt]",
        with_jwks(|k| {
            let mut j = k.k1.jwk();
            if let Some(m) = j.as_object_mut() {
                m.remove("use");
                m.insert("key_ops".into(), json!(["encrypt"]));
            }
            vec![j]
        }),
        Behaviour::default(),
        Reject("id_token_key"),
    )
    .await;
    fresh_login(
        &mut report,
        "IDT-43",
        "RS256 by a published 1024-bit RSA key",
        with_jwks(|k| vec![k.k1.jwk(), k.weak.jwk()]),
        signed(Sign::Key("weak")),
        Reject("id_token_signature"),
    )
    .await;
    fresh_login(
        &mut report,
        "KEY-11",
        "RSA and EC keys share kid k1",
        with_jwks(|k| vec![with_member(k.e1.jwk(), "kid", json!("k1")), k.k1.jwk()]),
        Behaviour::default(),
        Accept,
    )
    .await;

    let path = format!("jwks-{}", random_hex());
    let p = path.clone();
    let w = fresh_login(
        &mut report,
        "KEY-12",
        "jwks_uri with a random suffix (OIDF -discovery-jwks-uri-keys)",
        Behaviour {
            metadata: hook(move |m: &mut M| {
                let i = m["issuer"].as_str().unwrap_or_default().to_string();
                set(m, "jwks_uri", json!(format!("{i}/{p}")));
            }),
            ..Behaviour::default()
        },
        Behaviour::default(),
        Accept,
    )
    .await;
    if w.op.count(&path) == 0 || w.op.count("jwks") != 0 {
        report.record(
            "KEY-12b",
            "keys fetched from the discovered jwks_uri only",
            Err("wrong key-set URL used".into()),
        );
    }
    drop(w);

    // KEY-17: the key set breaks after start-up; cached keys keep working.
    let w = world("", Behaviour::default()).await;
    let mut r = Ok(());
    for (what, raw) in [
        ("500", Raw::new(500, "text/plain", "down")),
        ("HTML", Raw::new(200, "text/html", "<html>")),
        (
            "2 MiB",
            Raw::new(200, "application/json", "[".repeat(2 << 20)),
        ),
    ] {
        w.op.set(Behaviour {
            jwks_raw: raw.clone(),
            sign: Sign::Key("k2"),
            ..Behaviour::default()
        });
        let mut b = Browser::new();
        let a = attempt(&w, &mut b).await;
        r = r.and(
            judge(&w, &mut b, &a, Reject("id_token_key"), &["userinfo"])
                .await
                .map_err(|e| format!("{what}: {e}")),
        );
        w.op.set(Behaviour {
            jwks_raw: raw,
            ..Behaviour::default()
        });
        let mut b = Browser::new();
        let a = attempt(&w, &mut b).await;
        r = r.and(
            judge(&w, &mut b, &a, Accept, &[])
                .await
                .map_err(|e| format!("{what}: {e}")),
        );
    }
    report.record(
        "KEY-17",
        "key set answering 500, HTML or 2 MiB: cached keys still verify, unknown keys refused",
        r,
    );
    drop(w);

    fresh_login(
        &mut report,
        "KEY-19/20",
        "unknown metadata members; an authorization endpoint with a query",
        Behaviour {
            metadata: hook(|m: &mut M| {
                let i = m["issuer"].as_str().unwrap_or_default().to_string();
                set(
                    m,
                    "authorization_endpoint",
                    json!(format!("{i}/authorize?tenant=a")),
                );
                set(m, "x_vendor", json!({"anything": [1, 2]}));
            }),
            ..Behaviour::default()
        },
        Behaviour::default(),
        Accept,
    )
    .await;

    // KEY-13..16: metadata tollgate must refuse; it stays unready and says why.
    let cases: Vec<(&str, &str, Hook<M>, &str)> = vec![
        (
            "KEY-13",
            "metadata issuer + INVALID (OIDF -discovery-issuer-mismatch)",
            Arc::new(|m: &mut M| {
                let i = m["issuer"].as_str().unwrap_or_default().to_string();
                set(m, "issuer", json!(format!("{i}INVALID")));
            }),
            "must be identical",
        ),
        (
            "KEY-14",
            "metadata issuer with a trailing slash",
            Arc::new(|m: &mut M| {
                let i = m["issuer"].as_str().unwrap_or_default().to_string();
                set(m, "issuer", json!(format!("{i}/")));
            }),
            "must be identical",
        ),
        (
            "KEY-15",
            "plain-http token endpoint off loopback",
            Arc::new(|m: &mut M| set(m, "token_endpoint", json!("http://op.example/token"))),
            "must use https",
        ),
        (
            "KEY-16a",
            "provider signs only with none",
            Arc::new(|m: &mut M| set(m, "id_token_signing_alg_values_supported", json!(["none"]))),
            "none of which",
        ),
        (
            "KEY-16b",
            "provider signs only with HS256 while RS256 is expected",
            Arc::new(|m: &mut M| set(m, "id_token_signing_alg_values_supported", json!(["HS256"]))),
            "none of which",
        ),
    ];
    for (id, what, h, says) in cases {
        let w = world_full(
            basic_client(),
            "",
            Behaviour {
                metadata: Some(h),
                ..Behaviour::default()
            },
            false,
        )
        .await;
        let r = if !w.tollgate.output.has(says) {
            Err(format!("no log line saying `{says}`"))
        } else {
            let ready = reqwest::get(w.tollgate.url("/readyz"))
                .await
                .map(|r| r.status().as_u16())
                .ok();
            let mut b = Browser::new();
            let page = b.get(&w.tollgate.url(APP)).await;
            if ready != Some(503) {
                Err(format!("readyz {ready:?}"))
            } else if page.status != 503
                || w.op.count("authorize") + w.op.count("token") > 0
                || w.upstream.count() > 0
            {
                Err(format!(
                    "a request got {} while the provider is refused",
                    page.status
                ))
            } else {
                Ok(())
            }
        };
        report.record(id, what, r);
    }
    report
}

// === §4: the authorization request and response ===

async fn login_flow_cases() -> Report {
    use Then::*;
    let mut report = Report::new("conformance login_flow");
    let w = world("", Behaviour::default()).await;
    let iss = w.op.issuer.clone();
    let (iss1, iss_upper, iss_slash) = (
        format!("{iss}1"),
        iss.replace("http://", "HTTP://"),
        format!("{iss}/"),
    );
    let no_token = &["token", "userinfo"];
    run(
        &mut report,
        &w,
        vec![
            case(
                "AZ-03",
                "no state (FAPI ...-invalid-missing-state-fails)",
                authz(|p| drop_param(p, "state")),
                Reject("state_missing"),
            ),
            case(
                "AZ-04",
                "state + \"1\" (FAPI ...-invalid-state-fails)",
                authz(|p| {
                    let s = p
                        .iter()
                        .find(|(k, _)| k == "state")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    set_param(p, "state", &format!("{s}1"));
                }),
                Reject("state_mismatch"),
            ),
            case(
                "AZ-07a",
                "code twice",
                authz(|p| p.push(("code".into(), "other".into()))),
                Reject("duplicate_parameter"),
            ),
            case(
                "AZ-07b",
                "state twice",
                authz(|p| {
                    let s = p.iter().find(|(k, _)| k == "state").cloned();
                    if let Some(s) = s {
                        p.push(s);
                    }
                }),
                Reject("duplicate_parameter"),
            ),
            case(
                "AZ-08",
                "iss = issuer + \"1\" (FAPI invalid-authorization-response-iss)",
                authz(move |p| set_param(p, "iss", &iss1)),
                Reject("iss_mismatch"),
            ),
            case(
                "AZ-09",
                "iss absent though promised (FAPI remove-authorization-response-iss)",
                authz(|p| drop_param(p, "iss")),
                Reject("iss_missing"),
            ),
            case(
                "AZ-10a",
                "iss in another case",
                authz(move |p| set_param(p, "iss", &iss_upper)),
                Reject("iss_mismatch"),
            ),
            case(
                "AZ-10b",
                "iss with a trailing slash",
                authz(move |p| set_param(p, "iss", &iss_slash)),
                Reject("iss_mismatch"),
            ),
            case(
                "AZ-12",
                "error=access_denied with a script in error_description",
                authz(|p| {
                    drop_param(p, "code");
                    p.push(("error".into(), "access_denied".into()));
                    p.push((
                        "error_description".into(),
                        "<script>alert(1)</script>".into(),
                    ));
                }),
                Reject("provider_error"),
            ),
            case(
                "AZ-13",
                "an error response with another transaction's state",
                authz(|p| {
                    drop_param(p, "code");
                    set_param(p, "state", "not-our-state");
                    p.push(("error".into(), "access_denied".into()));
                }),
                Reject("login_cookie_missing"),
            ),
            case(
                "AZ-17",
                "code-flow callback also carrying id_token and access_token (ignored)",
                authz(|p| {
                    p.push((
                        "id_token".into(),
                        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.".into(),
                    ));
                    p.push(("access_token".into(), "forged".into()));
                }),
                Accept,
            ),
            case(
                "AZ-18a",
                "a 10 KiB state",
                authz(|p| set_param(p, "state", &"A".repeat(10 * 1024))),
                Reject("login_cookie_missing"),
            ),
            case(
                "AZ-18b",
                "state = NUL",
                authz(|p| set_param(p, "state", "\0")),
                Reject("login_cookie_missing"),
            ),
            case(
                "AZ-18c",
                "state = ../../x",
                authz(|p| set_param(p, "state", "../../x")),
                Reject("login_cookie_missing"),
            ),
            case(
                "AZ-19",
                "neither code nor error",
                authz(|p| drop_param(p, "code")),
                Reject("code_missing"),
            ),
        ],
        no_token,
    )
    .await;

    // AZ-01, AZ-21: what tollgate sends.
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let mut r = judge(&w, &mut b, &a, Accept, &[]).await;
    let authz_call = w.op.last("authorize").expect("authorize");
    let token_call = w.op.last("token").expect("token");
    let p = |k: &str| authz_call.param(k).unwrap_or_default();
    let verifier = token_call.param("code_verifier").unwrap_or_default();
    let unreserved = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
    };
    let expected_redirect = w.tollgate.url("/oauth2/callback");
    for (ok, what) in [
        (p("response_type") == "code", "response_type=code"),
        (p("client_id") == CID, "client_id"),
        (
            p("redirect_uri") == expected_redirect,
            "redirect_uri from the config",
        ),
        (
            p("scope").split(' ').any(|s| s == "openid"),
            "scope holds openid",
        ),
        (
            p("state").len() >= 22 && p("nonce").len() >= 22,
            "state and nonce of at least 128 bits",
        ),
        (
            p("code_challenge_method") == "S256" && p("code_challenge").len() == 43,
            "S256 challenge",
        ),
        (
            (43..=128).contains(&verifier.len()) && unreserved(&verifier),
            "verifier of 43-128 unreserved characters",
        ),
        (
            !authz_call.query.contains(&verifier),
            "verifier never in a URL",
        ),
        (
            token_call.param("redirect_uri").as_deref() == Some(expected_redirect.as_str()),
            "token request redirect_uri identical",
        ),
    ] {
        if !ok && r.is_ok() {
            r = Err(what.to_string());
        }
    }
    report.record(
        "AZ-01/21",
        "authorization and token requests carry exactly the protocol values",
        r,
    );

    // AZ-02: 50 logins, all values distinct.
    let mut seen = std::collections::HashSet::new();
    let mut b = Browser::new();
    for _ in 0..50 {
        let start = b.get(&w.tollgate.url("/oauth2/start?rd=/")).await;
        let u = url::Url::parse(start.location().unwrap_or_default()).expect("url");
        for (k, v) in u.query_pairs() {
            if matches!(k.as_ref(), "state" | "nonce" | "code_challenge") {
                seen.insert(v.into_owned());
            }
        }
    }
    report.record(
        "AZ-02",
        "50 logins: 150 distinct state, nonce and challenge values",
        if seen.len() == 150 {
            Ok(())
        } else {
            Err(format!("{} distinct", seen.len()))
        },
    );

    // AZ-22: the login-state cookie, and many logins in parallel tabs.
    let start = b.get(&w.tollgate.url("/oauth2/start?rd=/")).await;
    let login_cookie = start
        .set_cookies()
        .into_iter()
        .find(|c| c.contains("_login_"))
        .unwrap_or_default();
    let max_age_ok = login_cookie
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|v| v <= 600);
    let lc = login_cookie.to_ascii_lowercase();
    // One of the 51 logins completes; its callback prunes the others.
    let at_op = b.get(start.location().unwrap_or_default()).await;
    let callback = b.get(at_op.location().unwrap_or_default()).await;
    let alive = b
        .cookie_names()
        .iter()
        .filter(|n| n.contains("_login_"))
        .count();
    let max_age_ok = max_age_ok && callback.status == 302;
    report.record(
        "AZ-22",
        "login cookie HttpOnly, SameSite=Lax, Max-Age <= 600; parallel logins bounded",
        if lc.contains("httponly") && lc.contains("samesite=lax") && max_age_ok && alive <= 10 {
            Ok(())
        } else {
            Err(format!(
                "{login_cookie}; {alive} alive after 51 logins and one callback"
            ))
        },
    );

    // AZ-05: login CSRF. The attacker's own callback in the victim's browser.
    let mut victim = Browser::new();
    let a = attempt(&w, &mut victim).await;
    let mut r = judge(&w, &mut victim, &a, Accept, &[]).await;
    let before = victim.cookie("_tollgate");
    let mut attacker = Browser::new();
    let planted = to_callback(&w, &mut attacker).await;
    let a = visit_callback(&w, &mut victim, &planted).await;
    r = r.and(
        judge(
            &w,
            &mut victim,
            &a,
            Reject("login_cookie_missing"),
            no_token,
        )
        .await,
    );
    if r.is_ok() && victim.cookie("_tollgate") != before {
        r = Err("the victim's session changed".into());
    }
    report.record(
        "AZ-05",
        "login CSRF: another browser's callback is refused, the session is untouched",
        r,
    );

    // AZ-06: the same callback twice.
    let mut b = Browser::new();
    let url = to_callback(&w, &mut b).await;
    let a = visit_callback(&w, &mut b, &url).await;
    let mut r = judge(&w, &mut b, &a, Accept, &[]).await;
    let a = visit_callback(&w, &mut b, &url).await;
    r = r.and(judge(&w, &mut b, &a, Reject("login_cookie_missing"), no_token).await);
    report.record(
        "AZ-06",
        "a callback replayed: refused, no second token request",
        r,
    );

    // AZ-14: code injection. The attacker's code, minted for the
    // attacker's PKCE challenge, in the victim's callback.
    let mut attacker = Browser::new();
    let stolen = to_callback(&w, &mut attacker).await;
    let code = url::Url::parse(&stolen)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    w.op.set(authz(move |p| set_param(p, "code", &code)));
    let mut victim = Browser::new();
    let a = attempt(&w, &mut victim).await;
    w.op.set(Behaviour::default());
    let r = judge(&w, &mut victim, &a, Reject("code_refused"), &["userinfo"]).await;
    report.record("AZ-14", "code injection: a code bound to another PKCE verifier is refused by the provider, no session", r);

    // AZ-20, AZ-24: the Host header and query parameters cannot steer the request.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = client
        .get(w.tollgate.url("/oauth2/start?prompt=none&redirect_uri=https://evil.test/cb&scope=openid%20admin&state=x&nonce=y&client_id=evil&response_type=token&code_challenge_method=plain"))
        .header("host", "evil.test")
        .send()
        .await
        .expect("start");
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let q: Vec<(String, String)> = url::Url::parse(&loc)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let one = |k: &str, v: &str| {
        q.iter().filter(|(n, _)| n == k).count() == 1 && q.iter().any(|(n, x)| n == k && x == v)
    };
    let r = if one("redirect_uri", &expected_redirect)
        && one("client_id", CID)
        && one("response_type", "code")
        && one("code_challenge_method", "S256")
        && !q.iter().any(|(k, v)| {
            (k == "state" && v == "x")
                || (k == "nonce" && v == "y")
                || k == "prompt"
                || v.contains("admin")
        }) {
        Ok(())
    } else {
        Err(loc)
    };
    report.record(
        "AZ-20/24",
        "Host: evil.test and protocol parameters in /oauth2/start change nothing",
        r,
    );

    // AZ-26, AZ-27: requests that cannot follow a redirect get 401.
    let mut r = Ok(());
    let before = w.upstream.count();
    for (what, hs) in [
        (
            "Accept: application/json",
            vec![("accept", "application/json")],
        ),
        (
            "X-Requested-With",
            vec![("accept", "*/*"), ("x-requested-with", "XMLHttpRequest")],
        ),
    ] {
        let mut req = client
            .post(w.tollgate.url("/app/form"))
            .body("x".repeat(2048));
        for (k, v) in hs {
            req = req.header(k, v);
        }
        let s = req.send().await.map(|r| r.status().as_u16()).ok();
        if s != Some(401) {
            r = Err(format!("{what}: {s:?}"));
        }
    }
    let s = client
        .post(w.tollgate.url("/app/form"))
        .header("accept", "text/html")
        .body("x".repeat(2048))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok();
    if s != Some(302) {
        r = Err(format!("browser POST: {s:?}"));
    }
    if w.upstream.count() != before {
        r = Err("the upstream saw an unauthenticated request".into());
    }
    report.record(
        "AZ-26/27",
        "unauthenticated POST: API callers 401, browsers 302, upstream untouched",
        r,
    );
    drop(w);

    // AZ-11: a provider that does not promise `iss`.
    let w = world(
        "",
        Behaviour {
            metadata: hook(|m: &mut M| {
                m.remove("authorization_response_iss_parameter_supported");
            }),
            ..Behaviour::default()
        },
    )
    .await;
    let wrong = format!("{}1", w.op.issuer);
    run(
        &mut report,
        &w,
        vec![
            case(
                "AZ-11a",
                "no iss, none promised",
                authz(|p| drop_param(p, "iss")),
                Accept,
            ),
            case(
                "AZ-11b",
                "a wrong iss, none promised",
                authz(move |p| set_param(p, "iss", &wrong)),
                Reject("iss_mismatch"),
            ),
        ],
        no_token,
    )
    .await;
    drop(w);

    // AZ-25: PKCE even when the provider does not list S256.
    let w = world(
        "",
        Behaviour {
            metadata: hook(|m: &mut M| {
                m.remove("code_challenge_methods_supported");
            }),
            ..Behaviour::default()
        },
    )
    .await;
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let mut r = judge(&w, &mut b, &a, Accept, &[]).await;
    if w.op
        .last("authorize")
        .and_then(|c| c.param("code_challenge_method"))
        .as_deref()
        != Some("S256")
    {
        r = Err("no S256 challenge".into());
    }
    report.record(
        "AZ-25",
        "metadata without code_challenge_methods_supported: S256 still sent",
        r,
    );
    report
}

// === §5, §6: client authentication and the token endpoint ===

async fn token_endpoint_cases() -> Report {
    use Then::*;
    let mut report = Report::new("conformance token_endpoint");
    let w = world("", Behaviour::default()).await;
    let stolen = format!("{}/stolen", w.op.issuer);
    let huge = format!("{{\"access_token\":\"{}\"}}", "a".repeat(20 << 20));
    let ui = &["userinfo"];
    run(
        &mut report,
        &w,
        vec![
            case(
                "TE-04",
                "401 invalid_client (operator error with a hint, no retry)",
                token_raw(Raw::new(
                    401,
                    "application/json",
                    r#"{"error":"invalid_client"}"#,
                )),
                Fail(502, "client_auth"),
            ),
            case(
                "TE-05",
                "307 to another host (not followed)",
                token_raw(Raw::redirect(307, stolen)),
                Fail(502, "token_endpoint"),
            ),
            case(
                "TE-07",
                "200 text/html",
                token_raw(Raw::new(200, "text/html", "<html>")),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-08a",
                "200 with an OAuth error body",
                token_raw(Raw::new(
                    200,
                    "application/json",
                    r#"{"error":"invalid_grant"}"#,
                )),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-08b",
                "400 invalid_grant with a script in error_description",
                token_raw(Raw::new(
                    400,
                    "application/json",
                    r#"{"error":"invalid_grant","error_description":"<script>alert(1)</script>"}"#,
                )),
                Reject("code_refused"),
            ),
            case(
                "TE-09",
                "no id_token although openid was asked",
                token(|m| {
                    m.remove("id_token");
                }),
                Reject("id_token_missing"),
            ),
            case(
                "TE-10",
                "no access_token",
                token(|m| {
                    m.remove("access_token");
                }),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-11",
                "token_type bEARER",
                token(|m| set(m, "token_type", json!("bEARER"))),
                Accept,
            ),
            case(
                "TE-12a",
                "token_type missing",
                token(|m| {
                    m.remove("token_type");
                }),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-12b",
                "token_type mac",
                token(|m| set(m, "token_type", json!("mac"))),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-12c",
                "token_type N_A",
                token(|m| set(m, "token_type", json!("N_A"))),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-12d",
                "token_type DPoP, not requested",
                token(|m| set(m, "token_type", json!("DPoP"))),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-13",
                "no expires_in (FAPI token-endpoint-response-without-expires_in)",
                token(|m| {
                    m.remove("expires_in");
                }),
                Accept,
            ),
            case(
                "TE-14a",
                "expires_in 0",
                token(|m| set(m, "expires_in", json!(0))),
                Accept,
            ),
            case(
                "TE-14b",
                "expires_in -1",
                token(|m| set(m, "expires_in", json!(-1))),
                Accept,
            ),
            case(
                "TE-14c",
                "expires_in \"3600\" (D-7)",
                token(|m| set(m, "expires_in", json!("3600"))),
                Accept,
            ),
            case(
                "TE-14d",
                "expires_in 1e12",
                token(|m| set(m, "expires_in", json!(1e12))),
                Accept,
            ),
            case(
                "TE-14e",
                "expires_in \"abc\"",
                token(|m| set(m, "expires_in", json!("abc"))),
                Accept,
            ),
            case(
                "TE-15a",
                "access_token with CR LF",
                token(|m| set(m, "access_token", json!("abc\r\nX-Admin: 1"))),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-15b",
                "access_token with NUL",
                token(|m| set(m, "access_token", json!("abc\u{0}def"))),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-15c",
                "access_token with a space and DEL",
                token(|m| set(m, "access_token", json!("abc def\u{7f}"))),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-16a",
                "unknown members",
                token(|m| set(m, "x", json!({"y": 1}))),
                Accept,
            ),
            case(
                "TE-16b",
                "access_token twice",
                Behaviour {
                    token_json: hook(|s: &mut String| {
                        *s = s.replacen('{', "{\"access_token\":\"other\",", 1)
                    }),
                    ..Behaviour::default()
                },
                Reject("token_response_invalid"),
            ),
            case(
                "TE-17a",
                "a 20 MiB response (read up to 1 MiB, then refused)",
                token_raw(Raw::new(200, "application/json", huge)),
                Reject("token_response_invalid"),
            ),
            case(
                "TE-18",
                "granted scope narrower than asked",
                token(|m| set(m, "scope", json!("openid"))),
                Accept,
            ),
        ],
        ui,
    )
    .await;
    let redirected = w.op.count("stolen");
    report.record(
        "TE-05b",
        "nothing reached the redirect target",
        if redirected == 0 {
            Ok(())
        } else {
            Err(format!("{redirected} requests followed the redirect"))
        },
    );
    let hint = w.tollgate.output.has("client_secret_post");
    report.record(
        "TE-04b",
        "invalid_client logs a hint about the client authentication method",
        if hint {
            Ok(())
        } else {
            Err("no hint in the log".into())
        },
    );

    // TE-01: one authentication method, byte for byte.
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let mut r = judge(&w, &mut b, &a, Accept, &[]).await;
    let t = w.op.last("token").expect("token call");
    if r.is_ok() && (t.header("authorization") != Some(BASIC) || t.param("client_secret").is_some())
    {
        r = Err(format!("{:?}", t.header("authorization")));
    }
    report.record(
        "TE-01",
        "exactly one method: the RFC 6749 §2.3.1 Basic header, no secret in the body",
        r,
    );
    drop(w);

    // TE-17b: a token endpoint that never answers.
    let w = world("timeout = \"1s\"", token_raw(Raw::stall())).await;
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let r = judge(&w, &mut b, &a, Fail(502, "token_endpoint"), &["userinfo"]).await;
    report.record(
        "TE-17b",
        "a token endpoint that never answers: bounded by provider.timeout",
        r,
    );
    drop(w);

    // TE-02: client_secret_post with the CA-02 credentials: encoded once.
    let w = world_full(
        Client {
            check: ClientCheck::Post(SECRET.into()),
            id: CID,
            secret: Some(SECRET),
            auth: "client_secret_post",
        },
        "",
        Behaviour::default(),
        true,
    )
    .await;
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let mut r = judge(&w, &mut b, &a, Accept, &[]).await;
    let t = w.op.last("token").expect("token call");
    if r.is_ok()
        && !(t.body.contains("client_id=1PpG%2FQ+1")
            && t.body.contains(
                "client_secret=z%2FtZ9VwFZqApmIQ%2BZH1I5pLk%2FuB4ud%3AX2%2F8bL%2BwfFTt1rFw%3D",
            )
            && !t.body.contains("%25"))
    {
        r = Err(t.body.clone());
    }
    report.record(
        "TE-02",
        "client_secret_post: id and secret form-encoded once, no Authorization header",
        r,
    );
    drop(w);

    // TE-03: a public client.
    let w = world_full(
        Client {
            check: ClientCheck::Public,
            id: CID,
            secret: None,
            auth: "none",
        },
        "",
        Behaviour::default(),
        true,
    )
    .await;
    let mut b = Browser::new();
    let a = attempt(&w, &mut b).await;
    let mut r = judge(&w, &mut b, &a, Accept, &[]).await;
    let t = w.op.last("token").expect("token call");
    if r.is_ok() && (t.param("code_verifier").is_none() || t.param("client_secret").is_some()) {
        r = Err(t.body.clone());
    }
    report.record(
        "TE-03",
        "public client: client_id and code_verifier, no secret",
        r,
    );
    report
}

/// CA-01..CA-17 end to end: for each vector, a provider that accepts only
/// the exact RFC 6749 §2.3.1 header, and one login through tollgate.
async fn client_authentication_vectors_end_to_end() -> Report {
    let vectors: &[(&str, &str, &str, &str)] = &[
        (
            "CA-01",
            "s6BhdRkqt3",
            "gX1fBat3bV",
            "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW",
        ),
        (
            "CA-02",
            "1PpG/Q 1",
            "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=",
            BASIC,
        ),
        (
            "CA-03",
            "tollgate",
            " %&+£€",
            "Basic dG9sbGdhdGU6KyUyNSUyNiUyQiVDMiVBMyVFMiU4MiVBQw==",
        ),
        ("CA-04", "tollgate", "a:b", "Basic dG9sbGdhdGU6YSUzQWI="),
        (
            "CA-05",
            "tollgate:1",
            "secret",
            "Basic dG9sbGdhdGUlM0ExOnNlY3JldA==",
        ),
        ("CA-06", "tollgate", "100%", "Basic dG9sbGdhdGU6MTAwJTI1"),
        ("CA-07", "tollgate", "%41", "Basic dG9sbGdhdGU6JTI1NDE="),
        ("CA-08", "tollgate", "a+b", "Basic dG9sbGdhdGU6YSUyQmI="),
        ("CA-09", "tollgate", "a b", "Basic dG9sbGdhdGU6YSti"),
        (
            "CA-10",
            "tollgate",
            "pässwörd",
            "Basic dG9sbGdhdGU6cCVDMyVBNHNzdyVDMyVCNnJk",
        ),
        (
            "CA-11",
            "tollgate",
            "sécrét€",
            "Basic dG9sbGdhdGU6cyVDMyVBOWNyJUMzJUE5dCVFMiU4MiVBQw==",
        ),
        (
            "CA-12",
            "tollgate",
            "\u{1F511}key",
            "Basic dG9sbGdhdGU6JUYwJTlGJTk0JTkxa2V5",
        ),
        (
            "CA-13",
            "tollgate",
            "e\u{301}",
            "Basic dG9sbGdhdGU6ZSVDQyU4MQ==",
        ),
        (
            "CA-14",
            "tollgate",
            "p@ss/w=rd?&#",
            "Basic dG9sbGdhdGU6cCU0MHNzJTJGdyUzRHJkJTNGJTI2JTIz",
        ),
        (
            "CA-15",
            "tollgate",
            "!'()*~",
            "Basic dG9sbGdhdGU6JTIxJTI3JTI4JTI5KiU3RQ==",
        ),
        (
            "CA-16",
            "tollgate",
            "a\"b'c<d>",
            "Basic dG9sbGdhdGU6YSUyMmIlMjdjJTNDZCUzRQ==",
        ),
        (
            "CA-17",
            "my client",
            "p@ss:w0rd!",
            "Basic bXkrY2xpZW50OnAlNDBzcyUzQXcwcmQlMjE=",
        ),
    ];
    let mut report = Report::new("conformance client_auth");
    for (id, client_id, secret, header) in vectors {
        let w = world_full(
            Client {
                check: ClientCheck::Basic(header.to_string()),
                id: client_id,
                secret: Some(secret),
                auth: "client_secret_basic",
            },
            "",
            Behaviour::default(),
            true,
        )
        .await;
        let mut b = Browser::new();
        let a = attempt(&w, &mut b).await;
        let r = judge(&w, &mut b, &a, Then::Accept, &[]).await;
        report.record(
            id,
            "the provider accepts only the exact header; login succeeds",
            r,
        );
    }
    report
}

// === §7: userinfo ===

async fn userinfo_cases() -> Report {
    use Then::*;
    let mut report = Report::new("conformance userinfo");
    let w = world("", Behaviour::default()).await;
    let claims_url = format!("{}/claims", w.op.issuer);
    let raw = |r: Option<Raw>| Behaviour {
        userinfo_raw: r,
        ..Behaviour::default()
    };
    let jwt = w.op.jwt(
        |_| {},
        json!({"sub": "alice", "email": "alice@op.test"})
            .as_object()
            .expect("map"),
        &Sign::K1,
    );
    run(
        &mut report,
        &w,
        vec![
            case(
                "UI-01",
                "userinfo sub + \"invalid\" (OIDF -userinfo-invalid-sub)",
                userinfo(|m| set(m, "sub", json!("aliceinvalid"))),
                Reject("userinfo_sub"),
            ),
            case(
                "UI-03a",
                "a JSON array",
                raw(Raw::new(200, "application/json", r#"[{"sub":"alice"}]"#)),
                Reject("userinfo_invalid"),
            ),
            case(
                "UI-03b",
                "a JSON string",
                raw(Raw::new(200, "application/json", r#""alice""#)),
                Reject("userinfo_invalid"),
            ),
            case(
                "UI-03c",
                "HTML",
                raw(Raw::new(200, "text/html", "<html>alice</html>")),
                Reject("userinfo_invalid"),
            ),
            case(
                "UI-04",
                "a signed userinfo JWT while none is configured",
                raw(Raw::new(200, "application/jwt", jwt)),
                Reject("userinfo_invalid"),
            ),
            case(
                "UI-05",
                "aggregated and distributed claims (sources not fetched)",
                userinfo(move |m| {
                    set(m, "_claim_names", json!({"credit_score": "src1"}));
                    set(
                        m,
                        "_claim_sources",
                        json!({"src1": {"endpoint": claims_url, "access_token": "x"}}),
                    );
                }),
                Accept,
            ),
            case(
                "UI-06",
                "401 invalid_token",
                raw(Raw::new(
                    401,
                    "application/json",
                    r#"{"error":"invalid_token"}"#,
                )),
                Fail(502, "userinfo"),
            ),
            case(
                "UI-07",
                "no sub",
                userinfo(|m| {
                    m.remove("sub");
                }),
                Reject("userinfo_invalid"),
            ),
            case(
                "UI-08",
                "other email, iss and aud: identity stays the ID token's",
                userinfo(|m| {
                    set(m, "email", json!("mallory@op.test"));
                    set(m, "iss", json!("https://evil.test"));
                    set(m, "aud", json!("evil"));
                }),
                Accept,
            ),
        ],
        &[],
    )
    .await;
    let fetched = w.op.count("claims");
    report.record(
        "UI-05b",
        "no distributed-claims endpoint fetched",
        if fetched == 0 {
            Ok(())
        } else {
            Err(format!("{fetched} fetches"))
        },
    );
    let u = w.op.last("userinfo").expect("userinfo call");
    report.record(
        "UI-02",
        "the access token only in Authorization: Bearer",
        if u.header("authorization")
            .is_some_and(|h| h.starts_with("Bearer "))
            && u.query.is_empty()
            && u.body.is_empty()
        {
            Ok(())
        } else {
            Err(format!("{u:?}"))
        },
    );
    report
}

// === §8: refresh ===

#[derive(Clone, Copy, Debug)]
enum After {
    /// A refresh happened and the upstream got the new access token.
    Refreshed,
    /// The new tokens were not used; the current access token (still valid)
    /// was forwarded.
    Kept,
    /// The session ended: cookie cleared, browser sent to log in again.
    Ended,
    /// 503: the access token expired and could not be refreshed.
    Unavailable,
}

fn refresh_calls(w: &World) -> usize {
    w.op.calls()
        .iter()
        .filter(|c| {
            c.endpoint == "token" && c.param("grant_type").as_deref() == Some("refresh_token")
        })
        .count()
}

/// Logs in with access tokens that live `ttl` seconds (less than
/// `refresh_before`, so every request refreshes); returns the browser and
/// the access token the upstream saw last.
async fn logged_in(w: &World, ttl: i64) -> (Browser, String) {
    w.op.set(Behaviour {
        expires_in: Some(ttl),
        ..Behaviour::default()
    });
    let mut b = Browser::new();
    let a = attempt(w, &mut b).await;
    judge(w, &mut b, &a, Then::Accept, &[])
        .await
        .expect("login");
    let at = w
        .upstream
        .last()
        .header("x-forwarded-access-token")
        .unwrap_or_default()
        .to_string();
    (b, at)
}

async fn after_refresh(
    w: &World,
    b: &mut Browser,
    before_at: &str,
    after: After,
) -> Result<(), String> {
    let calls = refresh_calls(w);
    let seen = w.upstream.count();
    let page = b.get(&w.tollgate.url(APP)).await;
    let made = refresh_calls(w) - calls;
    let upstream_at = || {
        w.upstream
            .last()
            .header("x-forwarded-access-token")
            .unwrap_or_default()
            .to_string()
    };
    match after {
        After::Refreshed if page.status == 200 && made == 1 && upstream_at() != before_at => Ok(()),
        After::Kept if page.status == 200 && made == 1 && upstream_at() == before_at => Ok(()),
        After::Ended => {
            let cleared = page
                .set_cookies()
                .iter()
                .any(|c| c.starts_with("_tollgate") && c.contains("Max-Age=0"));
            let again = b.get(&w.tollgate.url(APP)).await;
            if page.status == 302 && cleared && w.upstream.count() == seen && again.status == 302 {
                Ok(())
            } else {
                Err(format!(
                    "{} (cleared: {cleared}), then {}",
                    page.status, again.status
                ))
            }
        }
        After::Unavailable if page.status == 503 && w.upstream.count() == seen => Ok(()),
        _ => Err(format!(
            "{after:?} expected; got {} after {made} refresh calls, upstream {} -> {}",
            page.status,
            seen,
            w.upstream.count()
        )),
    }
}

fn refreshing(f: impl Fn(&mut M) + Send + Sync + 'static) -> Behaviour {
    Behaviour {
        refresh_claims: hook(f),
        expires_in: Some(30),
        ..Behaviour::default()
    }
}

async fn refresh_cases() -> Report {
    let mut report = Report::new("conformance refresh");
    let mut w = world("", Behaviour::default()).await;
    let iss1 = format!("{}1", w.op.issuer);
    let ok = || Behaviour {
        expires_in: Some(30),
        ..Behaviour::default()
    };
    let cases: Vec<(&str, &str, Behaviour, After)> = vec![
        (
            "RF-07",
            "no id_token in the refresh response (OIDC Core §12.2)",
            Behaviour {
                refresh_token: hook(|m: &mut M| {
                    m.remove("id_token");
                }),
                expires_in: Some(30),
                ..Behaviour::default()
            },
            After::Refreshed,
        ),
        (
            "RF-05",
            "400 invalid_grant: the session ends",
            Behaviour {
                refresh_raw: Raw::new(400, "application/json", r#"{"error":"invalid_grant"}"#),
                ..Behaviour::default()
            },
            After::Ended,
        ),
        (
            "RF-06a",
            "500 while the access token is still valid: kept",
            Behaviour {
                refresh_raw: Raw::new(500, "text/plain", "down"),
                ..Behaviour::default()
            },
            After::Kept,
        ),
        (
            "RF-08",
            "refreshed iss + \"1\" (OIDF -refresh-token-invalid-issuer)",
            refreshing(move |m| set(m, "iss", json!(iss1))),
            After::Ended,
        ),
        (
            "RF-09",
            "refreshed sub + \"1\" (OIDF -refresh-token-invalid-sub)",
            refreshing(|m| set(m, "sub", json!("alice1"))),
            After::Ended,
        ),
        (
            "RF-10",
            "refreshed aud + \"1\" (OIDF -refresh-token-invalid-aud)",
            refreshing(|m| set(m, "aud", json!(format!("{CID}1")))),
            After::Ended,
        ),
        (
            "RF-11",
            "refreshed token gains a foreign azp (OIDF -refresh-token-invalid-azp)",
            refreshing(|m| set(m, "azp", json!("random_azp_value_aB3dE5fG7h"))),
            After::Ended,
        ),
        (
            "RF-12a",
            "refreshed auth_time changed",
            refreshing(|m| set(m, "auth_time", json!(now() + 100))),
            After::Ended,
        ),
        (
            "RF-12b",
            "refreshed nonce present and different",
            refreshing(|m| set(m, "nonce", json!("another-nonce"))),
            After::Ended,
        ),
        (
            "RF-13a",
            "refreshed ID token with a bad signature",
            Behaviour {
                refresh_sign: Some(Sign::Corrupt),
                expires_in: Some(30),
                ..Behaviour::default()
            },
            After::Ended,
        ),
        (
            "RF-13b",
            "refreshed ID token expired",
            refreshing(|m| set(m, "exp", json!(now() - 360))),
            After::Ended,
        ),
        (
            "RF-17",
            "refresh answered with token_type DPoP (not requested): new tokens unused",
            Behaviour {
                refresh_token: hook(|m: &mut M| set(m, "token_type", json!("DPoP"))),
                expires_in: Some(30),
                ..Behaviour::default()
            },
            After::Kept,
        ),
    ];
    for (id, what, defect, after) in cases {
        let (mut b, at) = logged_in(&w, 30).await;
        w.op.set(defect);
        let r = after_refresh(&w, &mut b, &at, after).await;
        report.record(id, what, r);
        w.op.set(ok());
    }

    // RF-01, RF-03, RF-14, RF-15: a refresh, then another with the rotated token.
    let (mut b, at) = logged_in(&w, 30).await;
    let mut r = after_refresh(&w, &mut b, &at, After::Refreshed).await;
    let call =
        w.op.calls()
            .into_iter()
            .rev()
            .find(|c| c.param("grant_type").as_deref() == Some("refresh_token"))
            .expect("refresh call");
    if r.is_ok() && (call.header("authorization") != Some(BASIC) || call.param("scope").is_some()) {
        r = Err(format!(
            "refresh request: {:?} {}",
            call.header("authorization"),
            call.body
        ));
    }
    report.record(
        "RF-01/14/15",
        "refresh: new access token upstream; same client authentication, no scope widening",
        r,
    );
    let at = w
        .upstream
        .last()
        .header("x-forwarded-access-token")
        .unwrap_or_default()
        .to_string();
    let r = after_refresh(&w, &mut b, &at, After::Refreshed).await;
    report.record(
        "RF-03",
        "the rotated refresh token is used next (the old one is revoked at the provider)",
        r,
    );

    // RF-04: no new refresh token: the old one stays. The next refresh
    // must send it again; a restart forgets the in-process reuse of the
    // last result, so that next refresh reaches the provider.
    w.op.set(Behaviour {
        refresh_token: hook(|m: &mut M| {
            m.remove("refresh_token");
        }),
        expires_in: Some(30),
        ..Behaviour::default()
    });
    let at = w
        .upstream
        .last()
        .header("x-forwarded-access-token")
        .unwrap_or_default()
        .to_string();
    let mut r = after_refresh(&w, &mut b, &at, After::Refreshed).await;
    let sent = w.op.last("token").and_then(|c| c.param("refresh_token"));
    w.op.set(ok());
    w.restart().await;
    let at = w
        .upstream
        .last()
        .header("x-forwarded-access-token")
        .unwrap_or_default()
        .to_string();
    r = r.and(after_refresh(&w, &mut b, &at, After::Refreshed).await);
    if r.is_ok() && w.op.last("token").and_then(|c| c.param("refresh_token")) != sent {
        r = Err("the second refresh did not send the kept refresh token".into());
    }
    report.record(
        "RF-04",
        "a refresh response without refresh_token keeps the old one",
        r,
    );

    // RF-12c/d: a refreshed nonce equal to the login's, or none: accepted.
    let (mut b, at) = logged_in(&w, 30).await;
    let nonce =
        w.op.last("authorize")
            .and_then(|c| c.param("nonce"))
            .unwrap_or_default();
    w.op.set(refreshing(move |m| set(m, "nonce", json!(nonce))));
    let r = after_refresh(&w, &mut b, &at, After::Refreshed).await;
    report.record("RF-12c", "refreshed nonce equal to the login's", r);

    // RF-06b: the access token has expired and the provider is down.
    let (mut b, at) = logged_in(&w, 0).await;
    w.op.set(Behaviour {
        refresh_raw: Raw::new(500, "text/plain", "down"),
        ..Behaviour::default()
    });
    let mut r = after_refresh(&w, &mut b, &at, After::Unavailable).await;
    w.op.set(ok());
    r = r.and(after_refresh(&w, &mut b, &at, After::Refreshed).await);
    report.record("RF-06b", "provider down with the access token expired: 503, never the expired token; the session survives", r);

    // RF-02: concurrent requests of one session share one refresh.
    let (b, _) = logged_in(&w, 30).await;
    let cookies = b.cookie_header(&w.tollgate.url(APP));
    let calls = refresh_calls(&w);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let requests = (0..20).map(|_| {
        client
            .get(w.tollgate.url(APP))
            .header("cookie", cookies.clone())
            .header("accept", "text/html")
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.map(|r| r.status().as_u16()).unwrap_or(0))
        .collect();
    let made = refresh_calls(&w) - calls;
    report.record(
        "RF-02",
        "20 concurrent requests on one expiring session: one refresh",
        if made == 1 && statuses.iter().all(|s| *s == 200) {
            Ok(())
        } else {
            Err(format!("{made} refreshes, {statuses:?}"))
        },
    );
    report
}

// === §9: back-channel logout ===

const BC_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn logout_claims(w: &World, f: impl FnOnce(&mut M)) -> M {
    let t = now();
    let mut m = json!({
        "iss": w.op.issuer, "sub": "alice", "aud": CID, "jti": random_hex(), "sid": w.op.last_sid(),
        "events": {BC_EVENT: {}}, "iat": t, "exp": t + 120, "ignored_claim": "ignored",
    })
    .as_object()
    .cloned()
    .expect("map");
    f(&mut m);
    m
}

fn logout_token(w: &World, f: impl FnOnce(&mut M), sign: Sign) -> String {
    w.op.jwt(
        |h| set(h, "typ", json!("logout+jwt")),
        &logout_claims(w, f),
        &sign,
    )
}

async fn post_logout(w: &World, body: &str, content_type: &str) -> (u16, Option<String>) {
    let r = reqwest::Client::new()
        .post(w.tollgate.url("/oauth2/backchannel_logout"))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let cc = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status().as_u16(), cc)
}

fn form(token: &str) -> String {
    format!(
        "logout_token={}&ignored_parameter=The+POST+body+MAY+contain+other+values",
        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    )
}

async fn still_signed_in(w: &World, b: &mut Browser) -> bool {
    b.get(&w.tollgate.url(APP)).await.status == 200
}

type Body = Box<dyn Fn(&World) -> String>;

fn body(f: impl Fn(&World) -> String + 'static) -> Body {
    Box::new(f)
}

/// A logout token for the session that logged in last, changed by `f`.
fn token_for(f: impl Fn(&mut M) + 'static, sign: Sign) -> Body {
    body(move |w| form(&logout_token(w, &f, sign.clone())))
}

async fn backchannel_group(report: &mut Report, w: &World) {
    const FORM: &str = "application/x-www-form-urlencoded";

    // BCL-13: replay.
    let (mut b, _) = logged_in(w, 300).await;
    let token = form(&logout_token(w, |_| {}, Sign::K1));
    let first = post_logout(w, &token, FORM).await.0;
    let (mut b2, _) = logged_in(w, 300).await;
    let second = post_logout(w, &token, FORM).await.0;
    let r = if first == 200
        && second == 400
        && !still_signed_in(w, &mut b).await
        && still_signed_in(w, &mut b2).await
    {
        Ok(())
    } else {
        Err(format!("{first} then {second}"))
    };
    report.record(
        "BCL-13",
        "the same logout token twice: the second refused, no effect",
        r,
    );

    // BCL-15c/d: GET, and a JSON body.
    let get = reqwest::get(w.tollgate.url("/oauth2/backchannel_logout"))
        .await
        .map(|r| r.status().as_u16())
        .ok();
    let json_body = post_logout(
        w,
        &json!({"logout_token": logout_token(w, |_| {}, Sign::K1)}).to_string(),
        "application/json",
    )
    .await
    .0;
    report.record(
        "BCL-15c/d",
        "GET is 405, a JSON body 400",
        if get == Some(405) && json_body == 400 {
            Ok(())
        } else {
            Err(format!("{get:?} {json_body}"))
        },
    );

    // (id, what, body, expected status, session ends). The sub-only case
    // comes last: it ends every session of alice issued up to that second.
    let cases: Vec<(&str, &str, Body, u16, bool)> = vec![
        ("BCL-02", "alg none", token_for(|_| {}, Sign::None), 400, false),
        ("BCL-03", "ES256 while only RS256 is allowed", token_for(|_| {}, Sign::Key("e1")), 400, false),
        ("BCL-04", "no events", token_for(|m| { m.remove("events"); }, Sign::K1), 400, false),
        ("BCL-05", "the wrong event", token_for(|m| set(m, "events", json!({"http://schemas.openid.net/event/foobar": {}})), Sign::K1), 400, false),
        ("BCL-06", "a nonce", token_for(|m| set(m, "nonce", json!("logout_tokens_must_not_contain_a_nonce")), Sign::K1), 400, false),
        ("BCL-07", "aud + INVALID", token_for(|m| set(m, "aud", json!(format!("{CID}INVALID"))), Sign::K1), 400, false),
        ("BCL-08", "iss + INVALID", token_for(|m| { let i = m["iss"].as_str().unwrap_or_default().to_string(); set(m, "iss", json!(format!("{i}INVALID"))); }, Sign::K1), 400, false),
        ("BCL-09", "signature XOR 0x5A", token_for(|_| {}, Sign::Corrupt), 400, false),
        ("BCL-10a", "no iat", token_for(|m| { m.remove("iat"); }, Sign::K1), 400, false),
        ("BCL-10b", "no jti", token_for(|m| { m.remove("jti"); }, Sign::K1), 400, false),
        ("BCL-11a", "no exp", token_for(|m| { m.remove("exp"); }, Sign::K1), 400, false),
        ("BCL-11b", "exp six minutes ago", token_for(|m| set(m, "exp", json!(now() - 360)), Sign::K1), 400, false),
        ("BCL-12", "neither sub nor sid", token_for(|m| { m.remove("sub"); m.remove("sid"); }, Sign::K1), 400, false),
        ("BCL-14", "an ID token posted as a logout token", body(|w| form(&w.op.jwt(|_| {}, &logout_claims(w, |m| { m.remove("events"); set(m, "nonce", json!("n")); }), &Sign::K1))), 400, false),
        ("BCL-15a", "logout_token twice", body(|w| format!("{}&{}", form(&logout_token(w, |_| {}, Sign::K1)), form(&logout_token(w, |_| {}, Sign::K1)))), 400, false),
        ("BCL-15b", "no logout_token", body(|_| "ignored_parameter=x".to_string()), 400, false),
        ("BCL-16", "a valid token for an unknown sid (D-5)", token_for(|m| set(m, "sid", json!("sid-unknown")), Sign::K1), 200, false),
        ("BCL-18", "alice's sid with sub bob", token_for(|m| set(m, "sub", json!("bob")), Sign::K1), 200, false),
        ("BCL-20", "a 1 MiB body", body(|_| form(&"a".repeat(1 << 20))), 400, false),
        ("BCL-01", "a valid logout token with an unknown claim and parameter (OIDF -rp-backchannel-rpinitlogout)", token_for(|_| {}, Sign::K1), 200, true),
        ("BCL-17", "sub only, no sid: every session of the subject ends", token_for(|m| { m.remove("sid"); }, Sign::K1), 200, true),
    ];
    for (id, what, make, status, ends) in cases {
        let (mut b, _) = logged_in(w, 300).await;
        let (got, cc) = post_logout(w, &make(w), FORM).await;
        let signed_in = still_signed_in(w, &mut b).await;
        let r = if got != status {
            Err(format!("status {got}, expected {status}"))
        } else if cc.as_deref() != Some("no-store") {
            Err(format!("Cache-Control {cc:?}"))
        } else if signed_in == ends {
            Err(format!(
                "session {}",
                if signed_in { "still valid" } else { "ended" }
            ))
        } else {
            Ok(())
        };
        report.record(id, what, r);
    }
}

async fn backchannel_logout_cases_redis_store() -> Report {
    let redis = Redis::start().await;
    let session = format!(
        "store = \"redis\"\n[session.redis]\nurl = \"{}\"",
        redis.url()
    );
    let w = world_session(
        basic_client(),
        "id_token_algorithms = [\"RS256\"]",
        &session,
        Behaviour::default(),
        true,
    )
    .await;
    let mut report = Report::new("conformance backchannel_redis");
    backchannel_group(&mut report, &w).await;
    report
}

/// The same back-channel cases with sessions in cookies only: the ended
/// sessions are remembered in the process (D-6, one replica).
async fn backchannel_logout_cases_cookie_store() -> Report {
    let w = world("id_token_algorithms = [\"RS256\"]", Behaviour::default()).await;
    let mut report = Report::new("conformance backchannel_cookie");
    backchannel_group(&mut report, &w).await;
    report
}

/// CK-07 / LO-10 in cookie mode: a cookie copied before sign-out no longer
/// authenticates, even while its refresh token would still work.
async fn copied_cookie_cases() -> Report {
    let mut report = Report::new("conformance sign_out");
    let w = world("", Behaviour::default()).await;
    let (mut b, _) = logged_in(&w, 300).await;
    let copy = b.cookie("_tollgate").expect("session cookie");
    let out = b.sign_out(&w.tollgate.url("/oauth2/sign_out")).await;
    let before = w.upstream.count();
    let mut thief = Browser::new();
    thief.set_cookie("_tollgate", &copy);
    let page = thief.get(&w.tollgate.url(APP)).await;
    let reached = w.upstream.count() != before;
    // A new login of the same user is a new session.
    let (mut again, _) = logged_in(&w, 300).await;
    let fresh = again.get(&w.tollgate.url(APP)).await.status;
    let r = if out.status != 302 {
        Err(format!("sign-out answered {}", out.status))
    } else if page.status != 302 || !page.location().is_some_and(|l| l.starts_with(&w.op.issuer)) {
        Err(format!(
            "the copy must lead to a login, got {}: {}",
            page.status, page.body
        ))
    } else if reached {
        Err("the copy reached the upstream".into())
    } else if fresh != 200 {
        Err(format!("a new login answered {fresh}"))
    } else {
        Ok(())
    };
    report.record(
        "CK-07",
        "a cookie copied before sign-out is refused after it (LO-10, cookie store)",
        r,
    );
    report
}

// === §9.2: RP-initiated logout ===

async fn rp_initiated_logout_cases() -> Report {
    let mut report = Report::new("conformance logout");
    let w = world("", Behaviour::default()).await;

    // LO-01: local session ended first, then the provider's end-session
    // endpoint with the exact parameters; the refresh token revoked.
    let (mut b, _) = logged_in(&w, 300).await;
    let out = b
        .sign_out(&w.tollgate.url("/oauth2/sign_out?rd=/bye"))
        .await;
    let loc = out.location().unwrap_or_default().to_string();
    let q: Vec<(String, String)> = url::Url::parse(&loc)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let has = |k: &str| q.iter().any(|(n, _)| n == k);
    let cleared = out
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("_tollgate=") && c.contains("Max-Age=0"));
    let revoke = w.op.last("revoke");
    let r = if out.status == 302
        && loc.starts_with(&format!("{}/end_session?", w.op.issuer))
        && has("id_token_hint")
        && q.iter().any(|(k, v)| k == "client_id" && v == CID)
        && q.iter().any(|(k, v)| {
            k == "post_logout_redirect_uri" && v == &format!("{}/", w.tollgate.url(""))
        })
        && cleared
        && revoke.as_ref().is_some_and(|c| {
            c.header("authorization") == Some(BASIC)
                && c.param("token_type_hint").as_deref() == Some("refresh_token")
        }) {
        Ok(())
    } else {
        Err(format!(
            "{} {loc} cleared={cleared} revoke={:?}",
            out.status,
            revoke.map(|c| c.body)
        ))
    };
    report.record("LO-01", "sign-out: cookie cleared, refresh token revoked (RFC 7009), end_session with id_token_hint, client_id, post_logout_redirect_uri", r);
    let again = b.get(&w.tollgate.url(APP)).await;
    report.record(
        "LO-10",
        "after sign-out the browser must log in again",
        if again.status == 302 {
            Ok(())
        } else {
            Err(format!("{}", again.status))
        },
    );

    // LO-04/05: the provider returns to the post-logout URL with a foreign
    // state, or none: a page, no redirect loop, no session.
    for (id, url) in [("LO-04", "/?state=S_INVALID"), ("LO-05", "/")] {
        let page = Browser::new().get(&w.tollgate.url(url)).await;
        let r =
            if page.status == 302 && page.location().is_some_and(|l| l.starts_with(&w.op.issuer)) {
                Ok(())
            } else {
                Err(format!("{}", page.status))
            };
        report.record(id, "return from the provider with a wrong or no state: an ordinary unauthenticated request", r);
    }
    drop(w);

    // LO-02/03: no end_session_endpoint, and a hostile rd.
    let w = world(
        "",
        Behaviour {
            metadata: hook(|m: &mut M| {
                m.remove("end_session_endpoint");
                m.remove("revocation_endpoint");
            }),
            ..Behaviour::default()
        },
    )
    .await;
    let mut r = Ok(());
    for (rd, expected) in [
        ("/bye", "/bye"),
        ("//evil.test", "/"),
        ("/%5Cevil.test", "/"),
        ("https://evil.test/", "/"),
    ] {
        let (mut b, _) = logged_in(&w, 300).await;
        let out = b
            .sign_out(&w.tollgate.url(&format!(
                "/oauth2/sign_out?rd={}",
                form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            )))
            .await;
        if out.status != 302 || out.location() != Some(expected) {
            r = Err(format!("rd {rd}: {} {:?}", out.status, out.location()));
        }
        if b.get(&w.tollgate.url(APP)).await.status != 302 {
            r = Err(format!("rd {rd}: still signed in"));
        }
    }
    report.record(
        "LO-02/03",
        "no end-session endpoint: local sign-out, then only a safe rd (else /)",
        r,
    );
    report
}

/// Every group, its cases named `<group>::<ID>` (see `support::cases`).
fn main() -> std::process::ExitCode {
    macro_rules! group {
        ($name:literal, [$($id:literal),*], $run:ident) => {
            Group {
                name: $name,
                ids: &[$($id),*],
                run: || Box::pin($run()),
            }
        };
    }
    support::cases::main(&[
        group!("id_token", ["IDT"], id_token_cases),
        group!("id_token_policy", ["IDT", "KEY-10"], id_token_policy_cases),
        group!("keys", ["KEY", "IDT-43"], key_cases),
        group!("login_flow", ["AZ"], login_flow_cases),
        group!("token_endpoint", ["TE"], token_endpoint_cases),
        group!(
            "client_auth",
            ["CA"],
            client_authentication_vectors_end_to_end
        ),
        group!("userinfo", ["UI"], userinfo_cases),
        group!("refresh", ["RF"], refresh_cases),
        group!(
            "backchannel_redis",
            ["BCL"],
            backchannel_logout_cases_redis_store
        ),
        group!(
            "backchannel_cookie",
            ["BCL"],
            backchannel_logout_cases_cookie_store
        ),
        group!("sign_out", ["CK-07", "LO-10"], copied_cookie_cases),
        group!("logout", ["LO"], rp_initiated_logout_cases),
    ])
}
