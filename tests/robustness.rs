//! HTTP robustness against the running binary (security-cases §13, §11,
//! §14): request smuggling, limits, slow clients, malformed hosts and
//! headers, HTTP/2 oddities. Raw bytes over TCP, because a well-behaved
//! client library would refuse to send most of them.
//!
//! In every case no smuggled request reaches the upstream, `/admin/` is
//! never served without a session, and tollgate keeps serving.

// Case tables: one function per group until each case is a named test
// of its own (issue #13).
#![allow(clippy::too_many_lines)]

mod support;

use std::time::{Duration, Instant};

use support::cases::Group;
use support::evil::{sign_in, Client, ClientCheck, World, WorldSetup};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BASIC: &str = "Basic dG9sbGdhdGU6c2VjcmV0LXNlY3JldC1zZWNyZXQ=";

async fn world() -> World {
    let client = Client {
        check: ClientCheck::Basic(BASIC.into()),
        id: "tollgate",
        secret: Some("secret-secret-secret"),
        auth: "client_secret_basic",
    };
    let setup = WorldSetup {
        extra: "[[routes.public]]\npath = \"/public/.*\"\n",
        server: "header_read_timeout = \"1s\"",
        ..WorldSetup::default()
    };
    World::start(client, setup).await
}

/// The upstream saw only requests for `allowed` paths since `before`, and
/// none carrying both Content-Length and Transfer-Encoding.
fn upstream_clean(w: &World, before: usize, allowed: &[&str]) -> Result<(), String> {
    for s in w.upstream.seen().iter().skip(before) {
        let path = s.path.split('?').next().unwrap_or_default();
        if !allowed.contains(&path) {
            return Err(format!("the upstream saw {} {}", s.method, s.path));
        }
        if s.header("content-length").is_some() && s.header("transfer-encoding").is_some() {
            return Err("the upstream saw both Content-Length and Transfer-Encoding".into());
        }
    }
    Ok(())
}

/// Sends `req`; the answer must be one of `want` (or the connection closed
/// without an answer when `want` holds 0), with no upstream request beyond
/// `allowed` paths.
async fn expect(w: &World, req: &[u8], want: &[u16], allowed: &[&str]) -> Result<(), String> {
    let before = w.upstream.count();
    let text = raw(w.tollgate.port, req).await;
    let got = statuses(&text);
    let first = got.first().copied().unwrap_or(0);
    if !want.contains(&first) {
        return Err(format!(
            "answered {got:?}, expected one of {want:?}: {}",
            text.lines().next().unwrap_or_default()
        ));
    }
    upstream_clean(w, before, allowed)
}

async fn http1_smuggling_and_malformed_requests_are_refused() -> Report {
    let w = world().await;
    let mut r = Report::new("robustness");
    let none: &[&str] = &[];
    let public: &[&str] = &["/public/x"];
    let hidden = "GET /admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let smuggle_body = format!("{:x}\r\n{hidden}\r\n0\r\n\r\n", hidden.len());
    // (id, what, request, acceptable answers, paths the upstream may see)
    type RawCase<'a> = (&'a str, &'a str, String, &'a [u16], &'a [&'a str]);
    let cases: Vec<RawCase<'_>> = vec![
        ("HTTP-01", "Content-Length with Transfer-Encoding (CL.TE)",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nG".into(), &[200, 400], public),
        ("HTTP-02", "Transfer-Encoding with Content-Length (TE.CL), a request hidden in the body",
            format!("POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{smuggle_body}"), &[200, 400], public),
        ("HTTP-03a", "Transfer-Encoding: xchunked",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\nConnection: close\r\n\r\n0\r\n\r\n".into(), &[400, 501], none),
        ("HTTP-03b", "space before the colon of Transfer-Encoding",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".into(), &[400], none),
        ("HTTP-03c", "chunked, then a second Transfer-Encoding: identity",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nConnection: close\r\n\r\n0\r\n\r\n".into(), &[400, 501], none),
        ("HTTP-03d", "Transfer-Encoding: chunked, identity",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n0\r\n\r\n".into(), &[400, 501], none),
        ("HTTP-03e", "Transfer-Encoding with a vertical tab",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding:\x0bchunked\r\nConnection: close\r\n\r\n0\r\n\r\n".into(), &[400, 501], none),
        ("HTTP-03f", "Transfer-Encoding: \"chunked\"",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: \"chunked\"\r\nConnection: close\r\n\r\n0\r\n\r\n".into(), &[400, 501], none),
        ("HTTP-04a", "two Content-Length values",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!".into(), &[400], none),
        ("HTTP-04b", "Content-Length: +5",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: +5\r\nConnection: close\r\n\r\nhello".into(), &[400], none),
        ("HTTP-04c", "Content-Length: 0x5",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0x5\r\nConnection: close\r\n\r\nhello".into(), &[400], none),
        ("HTTP-04d", "Content-Length: -1",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: -1\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-04e", "Content-Length: 5 6",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5 6\r\nConnection: close\r\n\r\nhello".into(), &[400], none),
        ("HTTP-04f", "a Content-Length of 20 digits",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 99999999999999999999\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-05a", "a chunk size that overflows 64 bits",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n".into(), &[0, 200, 400, 502], public),
        ("HTTP-05b", "a bare LF in the chunk framing",
            "POST /public/x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\nx\n0\n\n".into(), &[0, 200, 400, 502], public),
        ("HTTP-06", "HTTP/1.0 with Transfer-Encoding: chunked",
            "POST /public/x HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: app.test\r\n\r\n".into(), &[200, 400], public),
        ("HTTP-07", "space before the colon of X-Forwarded-User",
            "GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-User : admin\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-08", "obs-fold continuation line",
            "GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-User: alice\r\n admin\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-09a", "NUL in a header value",
            "GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-A: a\0b\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-09b", "bare CR in a header value",
            "GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-A: a\rb\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-10a", "HTTP/1.1 without Host",
            "GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-10b", "two Host lines",
            "GET /public/x HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-10c", "Host: a b",
            "GET /public/x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HDR-22", "Host: app.test:443@evil.test",
            "GET /public/x HTTP/1.1\r\nHost: app.test:443@evil.test\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HDR-22b", "Host: :pp.e)ample.com (an empty host, found by fuzzing)",
            "GET /public/x HTTP/1.1\r\nHost: :pp.e)ample.com\r\nConnection: close\r\n\r\n".into(), &[400], none),
        ("HTTP-12", "pipelined: a public request, then /admin/ without a session",
            "GET /public/x HTTP/1.1\r\nHost: app.test\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nConnection: close\r\n\r\n".into(), &[200], public),
        ("HTTP-13", "h2c upgrade on a public path (no tunnel past the auth layer)",
            "GET /public/x HTTP/1.1\r\nHost: app.test\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\r\n".into(), &[200, 400], public),
        ("HTTP-15a", "a 100 KiB Cookie header",
            format!("GET /admin/ HTTP/1.1\r\nHost: app.test\r\nCookie: a={}\r\nConnection: close\r\n\r\n", "x".repeat(100 * 1024)), &[431], none),
        ("HTTP-15b", "300 header fields",
            format!("GET /admin/ HTTP/1.1\r\nHost: app.test\r\n{}Connection: close\r\n\r\n", (0..300).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()), &[431], none),
        ("HTTP-15c", "a 70 KiB request line",
            format!("GET /admin/{} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n", "a".repeat(70 * 1024)), &[414, 431], none),
        ("HTTP-18", "unauthenticated POST with Expect: 100-continue",
            "POST /admin/ HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n".into(), &[302], none),
        ("HTTP-19", "10 MiB to the back-channel logout endpoint",
            format!("POST /oauth2/backchannel_logout HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", 10 << 20, "a".repeat(10 << 20)), &[0, 400, 413], none),
    ];
    for (id, what, req, want, allowed) in cases {
        let res = expect(&w, req.as_bytes(), want, allowed).await;
        r.record(id, what, res);
    }

    // Invalid UTF-8 (obs-text bytes) in a header value and in a cookie.
    let mut req = b"GET /public/x HTTP/1.1\r\nHost: app.test\r\nX-Name: \xff\xfecaf\xe9\r\nCookie: _tollgate=\xff\xfe\r\nConnection: close\r\n\r\n".to_vec();
    r.record(
        "UTF8a",
        "invalid UTF-8 in header values on a public path",
        expect(&w, &req, &[200, 400], public).await,
    );
    req = b"GET /admin/ HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nCookie: _tollgate=\xff\xfe\r\nX-Forwarded-User: \xff\r\nConnection: close\r\n\r\n".to_vec();
    r.record(
        "UTF8b",
        "invalid UTF-8 in the session cookie on a protected path: a login",
        expect(&w, &req, &[302, 400], none).await,
    );

    // HTTP-12 and HTTP-14 in detail: the second request is judged on its own.
    let text = raw(w.tollgate.port, b"GET /public/x HTTP/1.1\r\nHost: app.test\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nConnection: close\r\n\r\n").await;
    r.record(
        "HTTP-12b",
        "the pipelined /admin/ is sent to log in",
        if statuses(&text) == [200, 302] {
            Ok(())
        } else {
            Err(format!("{:?}", statuses(&text)))
        },
    );
    let before = w.upstream.count();
    let text = raw(w.tollgate.port, b"GET /public/no-ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nConnection: close\r\n\r\n").await;
    let got = statuses(&text);
    let res = if got.first() == Some(&101) {
        Err("a 101 for an upstream that did not switch protocols".into())
    } else if got.get(1).is_some_and(|s| *s == 200) {
        Err(format!(
            "the bytes after a refused upgrade reached the upstream: {got:?}"
        ))
    } else {
        upstream_clean(&w, before, &["/public/no-ws"])
    };
    r.record(
        "HTTP-14",
        "a WebSocket upgrade the upstream refuses opens no tunnel",
        res,
    );

    // HDR-21: absolute-form request-target with another host.
    let text = raw(w.tollgate.port, b"GET https://evil.test/admin/ HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nConnection: close\r\n\r\n").await;
    let location = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .unwrap_or_default()
        .to_string();
    let res = match statuses(&text).first() {
        Some(400) => Ok(()),
        Some(302)
            if location.contains(&format!(
                "redirect_uri=http%3A%2F%2F127.0.0.1%3A{}%2Foauth2%2Fcallback",
                w.tollgate.port
            )) && !location.contains("evil.test") =>
        {
            Ok(())
        }
        other => Err(format!("{other:?} {location}")),
    };
    r.record(
        "HDR-21",
        "absolute-form target with another host never steers the redirect",
        res,
    );

    // Still serving after all of that.
    let ok = reqwest::get(w.tollgate.url("/public/x"))
        .await
        .map(|r| r.status().as_u16())
        .ok();
    r.record(
        "ALIVE",
        "tollgate still serves",
        if ok == Some(200) {
            Ok(())
        } else {
            Err(format!("{ok:?}"))
        },
    );
    r
}

async fn identity_headers_cannot_be_smuggled_past_the_rewrite() -> Report {
    let w = world().await;
    let mut r = Report::new("robustness");
    let mut b = Browser::new();
    let page = sign_in(&mut b, &w.tollgate.url("/app")).await;
    assert_eq!(page.status, 302, "login: {}", page.body);
    let cookie = b.cookie_header(&w.tollgate.url("/app"));
    let send = |extra: &str| {
        format!("GET /app HTTP/1.1\r\nHost: app.test\r\nCookie: {cookie}\r\n{extra}Connection: close\r\n\r\n")
    };

    // HDR-09: names in Connection cannot remove the headers tollgate adds.
    let before = w.upstream.count();
    let text = raw(w.tollgate.port, send("Connection: X-Forwarded-User, Authorization, X-Forwarded-Email, X-Forwarded-Access-Token\r\n").as_bytes()).await;
    let seen = w.upstream.seen();
    let res = match (statuses(&text).first(), seen.get(before)) {
        (Some(200), Some(s))
            if s.header("x-forwarded-user") == Some("alice")
                && s.header("x-forwarded-access-token").is_some() =>
        {
            Ok(())
        }
        (st, s) => Err(format!("{st:?} {:?}", s.map(|s| s.headers.clone()))),
    };
    r.record(
        "HDR-09",
        "Connection: X-Forwarded-User, ... does not drop the injected headers",
        res,
    );

    // HDR-01/04/05: spoofed identity in every spelling.
    let before = w.upstream.count();
    let text = raw(w.tollgate.port, send("X-Forwarded-User: admin\r\nX_Forwarded_User: admin\r\nx_forwarded-user: admin\r\nX-FORWARDED-USER: admin, root\r\nX-Forwarded_Email: admin@corp.test\r\nX-Auth-Request-User: admin\r\nGAP-Auth: admin\r\nX-Forwarded-Groups: admins\r\n").as_bytes()).await;
    let seen = w.upstream.seen();
    let res = match (statuses(&text).first(), seen.get(before)) {
        (Some(200), Some(s)) => {
            let spoofed: Vec<_> = s
                .headers
                .iter()
                .filter(|(_, v)| v.contains("admin"))
                .collect();
            if s.header_all("x-forwarded-user") == ["alice"] && spoofed.is_empty() {
                Ok(())
            } else {
                Err(format!("{:?}", s.headers))
            }
        }
        (st, _) => Err(format!("{st:?}")),
    };
    r.record(
        "HDR-01/04/05",
        "spoofed identity headers, underscore and case variants included, are stripped",
        res,
    );

    // CK-15/17: cookie chunk floods and junk are bounded work and a login.
    let flood: String = (0..2000)
        .map(|i| format!("_tollgate_{i}=AAAA"))
        .collect::<Vec<_>>()
        .join("; ");
    let junk = [
        ";;;",
        "=x",
        "a",
        "_tollgate",
        "_tollgate_chunks=99999999",
        "_tollgate_0=%00%ff; _tollgate_1=",
    ];
    let mut res = Ok(());
    for c in junk.iter().map(|s| s.to_string()).chain([flood]) {
        let started = Instant::now();
        let text = raw(w.tollgate.port, format!("GET /app HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nCookie: {c}\r\nConnection: close\r\n\r\n").as_bytes()).await;
        let st = statuses(&text);
        if !(st == [302] || st == [431]) {
            res = Err(format!("{} bytes of cookies: {st:?}", c.len()));
        }
        let _ = started;
    }
    r.record(
        "CK-15/17",
        "junk cookies and 2,000 chunk cookies lead to a login, never an error",
        res,
    );

    // HTTP-21: a 60 KiB query never makes a cookie over 4,096 bytes.
    let text = raw(w.tollgate.port, format!("GET /app?q={} HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nConnection: close\r\n\r\n", "a".repeat(60 * 1024)).as_bytes()).await;
    let too_big = text
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .any(|l| l.len() > 4096);
    r.record(
        "HTTP-21",
        "a 60 KiB return URL: no Set-Cookie over 4,096 bytes",
        if !too_big && !statuses(&text).is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", statuses(&text)))
        },
    );
    r
}

async fn slow_clients_are_closed_by_the_header_timeout() -> Report {
    let w = world().await;
    let mut r = Report::new("robustness");
    // HTTP-16: 200 connections that send half a request line and stop.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", w.tollgate.port))
            .await
            .expect("connect");
        s.write_all(b"GET /admin/ HTTP/1.1\r\nHost: app")
            .await
            .expect("write");
        slow.push(s);
    }
    // Fresh clients are still served meanwhile.
    let ok = reqwest::get(w.tollgate.url("/public/x"))
        .await
        .map(|r| r.status().as_u16())
        .ok();
    let mut result = if ok == Some(200) {
        Ok(())
    } else {
        Err(format!("a fresh client was not served ({ok:?})"))
    };
    // Every slow connection is closed (header_read_timeout = 1s); the read
    // bound only turns a hang into a failure.
    for mut s in slow {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        if read.is_err() {
            result = Err("a slow client was not closed".into());
        } else if text.contains("200 OK") {
            result = Err(format!("a partial request was served: {text}"));
        }
    }
    if !w.upstream.seen().iter().all(|s| s.path == "/public/x") {
        result = Err("the upstream saw a partial request".into());
    }
    r.record(
        "HTTP-16",
        "200 clients that stop mid-request are closed; others are served",
        result,
    );
    r
}

// === HTTP/2 ===

/// An HPACK literal header field without indexing, no Huffman (RFC 7541
/// §6.2.2): lets a test send names and values a real client would refuse.
fn hpack(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
    out
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Sends one HEADERS frame (prior-knowledge h2c) with the pseudo-headers
/// and `extra`; returns what the server did with stream 1: `Ok(status)`
/// for a response, `Err(kind)` for RST_STREAM (3) or GOAWAY (7).
async fn h2_request(port: u16, extra: &[(&str, &str)]) -> Result<u16, u8> {
    let mut block = Vec::new();
    let authority = extra
        .iter()
        .find(|(n, _)| *n == ":authority")
        .map_or("app.test", |(_, v)| *v);
    for (n, v) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", "/public/x"),
    ] {
        block.extend(hpack(n, v));
    }
    for (n, v) in extra.iter().filter(|(n, _)| *n != ":authority") {
        block.extend(hpack(n, v));
    }
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(4, 0, 0, &[]));
    bytes.extend(frame(1, 0x5, 1, &block));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(&bytes).await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    loop {
        // Parse whole frames received so far.
        let mut at = 0;
        while buf.len() >= at + 9 {
            let len = (usize::from(buf[at]) << 16)
                | (usize::from(buf[at + 1]) << 8)
                | usize::from(buf[at + 2]);
            let kind = buf[at + 3];
            let stream = u32::from_be_bytes([buf[at + 5], buf[at + 6], buf[at + 7], buf[at + 8]])
                & 0x7fff_ffff;
            if buf.len() < at + 9 + len {
                break;
            }
            let payload = &buf[at + 9..at + 9 + len];
            match (kind, stream) {
                (1, 1) => {
                    // The first header of a response is `:status`, which
                    // h2 servers send from the static table: 0x88 is 200,
                    // 0x8c 400; anything else is read as a literal.
                    return Ok(match payload.first() {
                        Some(0x88) => 200,
                        Some(0x8c) => 400,
                        Some(0x8d) => 404,
                        Some(0x8e) => 500,
                        _ => 0,
                    });
                }
                (3, 1) | (7, _) => return Err(kind),
                _ => {}
            }
            at += 9 + len;
        }
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Err(0),
        }
    }
}

async fn http2_malformed_requests_are_stream_errors() -> Report {
    let w = world().await;
    let mut r = Report::new("robustness");
    let port = w.tollgate.port;
    // A well-formed request first: the harness itself works.
    let ok = h2_request(port, &[]).await;
    r.record(
        "H2-00",
        "a well-formed prior-knowledge h2 request is served",
        if ok == Ok(200) {
            Ok(())
        } else {
            Err(format!("{ok:?}"))
        },
    );
    let before = w.upstream.count();
    for (id, what, extra) in [
        (
            "HTTP-11a",
            "an uppercase header name",
            vec![("X-Forwarded-User", "admin")],
        ),
        (
            "HTTP-11b",
            "connection: keep-alive",
            vec![("connection", "keep-alive")],
        ),
        (
            "HTTP-11c",
            "transfer-encoding: chunked",
            vec![("transfer-encoding", "chunked")],
        ),
        ("HTTP-11d", "keep-alive", vec![("keep-alive", "timeout=5")]),
        (
            "HTTP-11e",
            "proxy-connection",
            vec![("proxy-connection", "keep-alive")],
        ),
        (
            "HTTP-11f",
            "upgrade: websocket",
            vec![("upgrade", "websocket")],
        ),
        (
            "HTTP-11g",
            "CR LF in a header value",
            vec![("x-a", "a\r\nx-forwarded-user: admin")],
        ),
        ("HTTP-11h", "NUL in a header value", vec![("x-a", "a\0b")]),
        ("HTTP-11i", "te other than trailers", vec![("te", "gzip")]),
        (
            "HTTP-11j",
            ":authority that is no authority (found in review)",
            vec![(":authority", ":pp.e)ample.com")],
        ),
        (
            "HTTP-11k",
            ":authority with userinfo",
            vec![(":authority", "app.test@evil.test")],
        ),
    ] {
        let got = h2_request(port, &extra).await;
        let res = match got {
            Err(3 | 7) | Ok(400) => Ok(()),
            other => Err(format!("{other:?}")),
        };
        r.record(id, what, res);
    }
    let res = if w.upstream.count() == before {
        Ok(())
    } else {
        Err(format!(
            "the upstream saw {:?}",
            w.upstream
                .seen()
                .iter()
                .skip(before)
                .map(|s| s.headers.clone())
                .collect::<Vec<_>>()
        ))
    };
    r.record(
        "HTTP-11",
        "no malformed h2 request reached the upstream",
        res,
    );
    r
}

/// Every group, its cases named `<group>::<ID>` (see `support::cases`).
fn main() -> std::process::ExitCode {
    support::cases::main(&[
        Group {
            name: "http1",
            ids: &["HTTP", "HDR-2"],
            run: || Box::pin(http1_smuggling_and_malformed_requests_are_refused()),
        },
        Group {
            name: "identity_headers",
            ids: &["HDR", "CK", "HTTP-21"],
            run: || Box::pin(identity_headers_cannot_be_smuggled_past_the_rewrite()),
        },
        Group {
            name: "slow_clients",
            ids: &["HTTP-16"],
            run: || Box::pin(slow_clients_are_closed_by_the_header_timeout()),
        },
        Group {
            name: "http2",
            ids: &["H2", "HTTP-11"],
            run: || Box::pin(http2_malformed_requests_are_stream_errors()),
        },
    ])
}
