//! The session cookie as a browser could send it. The first byte picks
//! the mode:
//! - even: the rest is any `Cookie` header, including chunked session
//!   cookies (`_tollgate_0`, `_tollgate_1`, ...) and login-state cookies.
//!   Opening must never panic, and must never yield a session (the fuzzer
//!   cannot forge AES-GCM).
//! - odd: a real sealed session (big enough to need chunks) is re-split at
//!   fuzzer-chosen points, its chunks reordered, dropped or duplicated and
//!   bytes flipped. It may open only when the reassembled value is exactly
//!   the sealed one.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tollgate::config::{Secret, SessionConfig};
use tollgate::session::login::LoginCookies;
use tollgate::session::{Codec, RequestCookies, Session, SessionCookies};

struct Fixture {
    codec: Codec,
    cookies: SessionCookies,
    login: LoginCookies,
    /// A valid sealed session, as one string, and its chunk count.
    sealed: String,
    chunks: usize,
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
        let codec = Codec::new(&[secret]);
        let cookies = SessionCookies::new(&config);
        let session = Session {
            sub: "alice".into(),
            groups: (0..400).map(|i| format!("group-{i}")).collect(),
            access_token: "at".into(),
            issued_at: tollgate::session::now(),
            expires_at: tollgate::session::now() + 86_400 * 365,
            ..Session::default()
        };
        let set = cookies.write(&codec, &session, &[]).expect("fits");
        let values: Vec<String> = set
            .iter()
            .filter_map(|c| {
                let pair = c.split(';').next()?;
                Some(pair.split_once('=')?.1.to_string())
            })
            .collect();
        Fixture {
            codec,
            cookies,
            login: LoginCookies::new("_tollgate", "/oauth2/callback", true),
            sealed: values.concat(),
            chunks: values.len(),
        }
    })
}

/// Mode odd: re-chunk and damage a real sealed session.
fn rechunk(f: &Fixture, data: &[u8]) {
    assert!(f.chunks > 1, "the fixture session should need chunks");
    let sealed = f.sealed.as_bytes();
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 20) + 1;
    let (cuts, edits) = rest.split_at(rest.len().min(2 * n));
    // Chunk boundaries: sorted cut points into the sealed value.
    let mut points: Vec<usize> = cuts
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])) % (sealed.len() + 1))
        .collect();
    points.push(0);
    points.push(sealed.len());
    points.sort_unstable();
    let mut pieces: Vec<Vec<u8>> = points.windows(2).map(|w| sealed[w[0]..w[1]].to_vec()).collect();
    // Edits, three bytes each: an operation and a position.
    for e in edits.chunks(3) {
        let (op, pos) = (e[0], usize::from(*e.get(1).unwrap_or(&0)) | (usize::from(*e.get(2).unwrap_or(&0)) << 8));
        if pieces.is_empty() {
            break;
        }
        let i = pos % pieces.len();
        match op % 4 {
            0 => {
                let p = &mut pieces[i];
                if !p.is_empty() {
                    let j = pos % p.len();
                    p[j] ^= 1 << (op % 8);
                }
            }
            1 => {
                let len = pieces.len();
                pieces.swap(i, (i + 1) % len);
            }
            2 => {
                pieces.remove(i);
            }
            _ => {
                let d = pieces[i].clone();
                pieces.insert(i, d);
            }
        }
    }
    let header: String = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| format!("_tollgate_{i}={}", String::from_utf8_lossy(p)))
        .collect::<Vec<_>>()
        .join("; ");
    let cookies = RequestCookies::parse([header.as_bytes()]);
    let found = f.cookies.read(&f.codec, &cookies);
    // tollgate reads `_0`, `_1`, ... up to MAX_CHUNKS; later ones are not
    // part of the value.
    let read = pieces.len().min(tollgate::session::cookies::MAX_CHUNKS);
    let joined: Vec<u8> = pieces[..read].concat();
    if found.session.is_some() {
        assert!(joined == sealed, "a changed cookie opened ({} pieces)", pieces.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        rechunk(f, data);
        return;
    }
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    // One header, or several `Cookie` lines split at newlines (HTTP/2
    // clients send one line per cookie).
    let cookies = RequestCookies::parse(header.split('\n').map(str::as_bytes));
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
