//! Connections to the upstream: kept and reused across requests, never
//! reused after an exchange that did not end cleanly, given up when the
//! upstream closes them, and an idempotent request sent again when a kept
//! connection is closed under it. Against real nginx (its `$connection`
//! and `$connection_requests` variables say which connection served a
//! request) and, for a server closing a connection at the worst moment,
//! which nginx does only on a timer, an in-process upstream that does it
//! on cue (RFC 9112 §9.6: a server may close an idle connection at any
//! time).

mod support;

use std::time::Duration;

use support::front::Front;
use support::*;

const PUBLIC: &str = r#"
[[routes.public]]
path = "/.*"
"#;

/// nginx answering `<connection> <requests on it>` at `/`, 204 at
/// `/empty`, a 4 MiB file at `/big`; `keepalive` is its
/// `keepalive_requests`.
async fn nginx(keepalive: u32) -> Front {
    let port = free_port();
    let servers = format!(
        r#"
  keepalive_requests {keepalive};
  server {{
    listen 127.0.0.1:{port};
    location = / {{ default_type text/plain; return 200 "$connection $connection_requests\n"; }}
    location = /empty {{ return 204; }}
    location = /big {{ alias {{dir}}/big; }}
  }}"#
    );
    let front = Front::nginx_http(port, &servers).await;
    front
}

async fn tollgate_for(upstream: &str) -> (Idp, Tollgate) {
    let port = free_port();
    let idp = Idp::start(port);
    let mut setup = Setup::basic(port, &idp, upstream);
    setup.extra = PUBLIC;
    let tollgate = Tollgate::start(&setup).await;
    (idp, tollgate)
}

/// `(connection, requests on it)` from nginx's answer.
fn served_by(body: &str) -> (u64, u64) {
    let mut parts = body.split_whitespace().map(|n| n.parse::<u64>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(c)), Some(Ok(n)), None) => (c, n),
        _ => panic!("not nginx's answer: {body:?}"),
    }
}

fn one_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client")
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let up = nginx(1000).await;
    let (_idp, tollgate) = tollgate_for(&up.url("")).await;
    let client = one_connection_client();
    let mut seen = Vec::new();
    for i in 0..20 {
        // Answers without a body in between must leave the connection fit.
        if i % 5 == 4 {
            let r = client
                .get(tollgate.url("/empty"))
                .send()
                .await
                .expect("204");
            assert_eq!(r.status(), 204);
            let r = client.head(tollgate.url("/")).send().await.expect("HEAD");
            assert_eq!(r.status(), 200);
        }
        let r = client.get(tollgate.url("/")).send().await.expect("GET");
        assert_eq!(r.status(), 200);
        seen.push(served_by(&r.text().await.expect("body")));
    }
    let first = seen[0].0;
    assert!(
        seen.iter().all(|(c, _)| *c == first),
        "one upstream connection for one client connection: {seen:?}"
    );
    assert!(seen[19].1 >= 20, "kept and reused: {seen:?}");
}

#[tokio::test]
async fn an_upstream_closing_after_each_few_requests_gets_new_connections() {
    let up = nginx(3).await;
    let (_idp, tollgate) = tollgate_for(&up.url("")).await;
    let client = one_connection_client();
    let mut connections = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let r = client.get(tollgate.url("/")).send().await.expect("GET");
        assert_eq!(r.status(), 200, "every request answered");
        let (c, n) = served_by(&r.text().await.expect("body"));
        assert!(n <= 3, "nginx serves 3 requests a connection");
        connections.insert(c);
    }
    assert!(connections.len() >= 4, "{connections:?}");
}

#[tokio::test]
async fn a_response_abandoned_mid_body_never_reaches_the_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = nginx(1000).await;
    let dir = up.dir();
    std::fs::write(dir.join("big"), vec![b'x'; 4 << 20]).expect("write big");
    let (_idp, tollgate) = tollgate_for(&up.url("")).await;
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tollgate.port))
            .await
            .expect("connect");
        s.write_all(b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .expect("write");
        let mut some = [0u8; 4096];
        let n = s.read(&mut some).await.expect("read");
        assert!(String::from_utf8_lossy(&some[..n]).starts_with("HTTP/1.1 200"));
        drop(s);
        // Whatever connection the next request gets, it is a clean one.
        for _ in 0..4 {
            let r = reqwest::get(tollgate.url("/")).await.expect("GET");
            assert_eq!(r.status(), 200);
            served_by(&r.text().await.expect("body"));
        }
    }
}

/// The answer the in-process upstreams give.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";

/// Reads from `s` into `buf` until it holds a request head; where the head
/// ends, or `None` when the connection ended first.
async fn read_head(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end + 4);
        }
        match s.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// An upstream that answers the first request on each connection and, on
/// the second, closes the connection without answering; it counts the
/// connections it accepted.
struct Closing {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Closing {
    async fn start() -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // Requests here have no body: a head is a request.
                    let mut buf = Vec::new();
                    let Some(end) = read_head(&mut s, &mut buf).await else {
                        return;
                    };
                    buf.drain(..end);
                    let _ = s.write_all(OK).await;
                    // The second request is read, then left unanswered.
                    let _ = read_head(&mut s, &mut buf).await;
                });
            }
        });
        Self {
            port,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The second request waits longer than the time after which a kept
/// connection counts as one the upstream may be closing.
const IDLE: Duration = Duration::from_millis(1200);

/// A closing upstream, tollgate, one client, and a first request answered
/// on a connection that then sits idle.
async fn closing_after_one() -> (Closing, Idp, Tollgate, reqwest::Client) {
    let up = Closing::start().await;
    let (idp, tollgate) = tollgate_for(&format!("http://127.0.0.1:{}", up.port)).await;
    let client = one_connection_client();
    let r = client.get(tollgate.url("/a")).send().await.expect("first");
    assert_eq!(r.status(), 200);
    tokio::time::sleep(IDLE).await;
    (up, idp, tollgate, client)
}

#[tokio::test]
async fn a_get_the_upstream_closed_unanswered_goes_again_on_a_new_connection() {
    let (up, _idp, tollgate, client) = closing_after_one().await;
    let r = client.get(tollgate.url("/b")).send().await.expect("second");
    assert_eq!(r.status(), 200, "sent again on a new connection");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn a_post_the_upstream_closed_unanswered_is_not_sent_again() {
    let (up, _idp, tollgate, client) = closing_after_one().await;
    let r = client
        .post(tollgate.url("/b"))
        .send()
        .await
        .expect("second");
    assert_eq!(
        r.status(),
        502,
        "a POST may have had its effect: not repeated"
    );
    assert_eq!(up.accepted(), 1);
}

/// An upstream that answers a request as soon as its head arrives, then
/// reads the body (`size` bytes expected) and reports how many bytes it got.
async fn answers_before_the_body(size: usize) -> (u16, tokio::sync::oneshot::Receiver<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (report, got) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        let Some(end) = read_head(&mut s, &mut buf).await else {
            return;
        };
        let _ = s.write_all(OK).await;
        let mut chunk = vec![0u8; 64 * 1024];
        // Until the whole body or the end of the connection: with the
        // upload already over when the answer went out, tollgate keeps the
        // connection for the next request.
        let mut body = buf.len() - end;
        while body < size {
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => body += n,
                _ => break,
            }
        }
        let _ = report.send(body);
    });
    (port, got)
}

#[tokio::test]
async fn an_upload_the_upstream_answers_early_is_still_sent_whole() {
    const SIZE: usize = 4 << 20;
    let (port, got) = answers_before_the_body(SIZE).await;
    let (_idp, tollgate) = tollgate_for(&format!("http://127.0.0.1:{port}")).await;
    let client = reqwest::Client::new();
    let r = client
        .post(tollgate.url("/upload"))
        .body(vec![b'u'; SIZE])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok\n");
    // The upstream reports once it has the whole body (or the connection
    // ended before).
    let received = tokio::time::timeout(Duration::from_secs(30), got)
        .await
        .expect("the upload ended")
        .expect("a count");
    assert_eq!(received, SIZE, "the whole body reached the upstream");
}
