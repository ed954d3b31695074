//! The session cookie as a browser could send it: any `Cookie` header,
//! including chunked session cookies (`_tollgate_0`, `_tollgate_1`, ...) and
//! login-state cookies. Opening must never panic, and must never yield a
//! session from bytes that were not sealed with the key.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tollgate::config::{Secret, SessionConfig};
use tollgate::session::login::LoginCookies;
use tollgate::session::{Codec, RequestCookies, SessionCookies};

struct Fixture {
    codec: Codec,
    cookies: SessionCookies,
    login: LoginCookies,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let secret = Secret::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let config = SessionConfig::cookie_store(
            vec![secret.clone()],
            "_tollgate",
            Duration::from_secs(3600),
            true,
        );
        Fixture {
            codec: Codec::new(&[secret]),
            cookies: SessionCookies::new(&config),
            login: LoginCookies::new("_tollgate", "/oauth2/callback", true),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    // One header, or several `Cookie` lines split at newlines (HTTP/2
    // clients send one line per cookie).
    let cookies = RequestCookies::parse(header.split('\n'));
    let found = f.cookies.read(&f.codec, &cookies);
    // The fuzzer cannot forge AES-GCM: no input may open to a session.
    assert!(found.session.is_none(), "a session opened from forged bytes");
    let (ticket, _, _) = f.cookies.read_ticket(&f.codec, &cookies);
    assert!(ticket.is_none(), "a ticket opened from forged bytes");
    let _ = f.cookies.clear(&found.present);
    // The login-state cookie for whatever state the input names.
    for name in cookies.names() {
        if let Some(state) = name.strip_prefix("_tollgate_login_") {
            let r = f
                .login
                .finish(&f.codec, Some(state), |n| cookies.get(n).map(str::to_string));
            assert!(r.is_err(), "a login state opened from forged bytes");
        }
    }
});
