//! Post-login and post-logout targets (`rd`, `X-Auth-Request-Redirect`).
//! Whatever is accepted must, as a browser resolves it against the origin,
//! land on the origin or an allowed host over https, and carry nothing that
//! could split a header.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::auth::redirect::RedirectPolicy;
use url::Url;

fn policy() -> &'static RedirectPolicy {
    static P: OnceLock<RedirectPolicy> = OnceLock::new();
    P.get_or_init(|| {
        let origin = Url::parse("https://app.test/").expect("origin");
        RedirectPolicy::new(origin, &[".app.test".to_string(), "other.test".to_string()])
            .expect("policy")
    })
}

fn allowed(host: &str) -> bool {
    host == "app.test" || host.ends_with(".app.test") || host == "other.test"
}

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let p = policy();
    let Some(ok) = p.safe_target(target) else {
        return;
    };
    assert!(
        !ok.bytes().any(|b| b.is_ascii_control() || b == b'\\'),
        "accepted a target with a control byte or backslash: {ok:?}"
    );
    // What a browser does with the Location header.
    let resolved = p.origin().join(ok).expect("an accepted target must resolve");
    assert_eq!(resolved.scheme(), "https", "{ok:?} -> {resolved}");
    let host = resolved.host_str().unwrap_or_default();
    assert!(allowed(host), "{ok:?} -> {resolved}");
    assert!(resolved.username().is_empty() && resolved.password().is_none(), "{ok:?}");
    if ok.starts_with('/') {
        assert!(!ok.starts_with("//"), "{ok:?}");
        assert_eq!(host, "app.test", "{ok:?} -> {resolved}");
    }
});
