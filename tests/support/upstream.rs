//! An in-process upstream that records every request it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

use super::*;

// === upstream ===

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An HTTP upstream that records every request and answers `ok`; `/ws`
/// is a WebSocket echo; `/hang` never answers.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// `/gate` answers only once this is notified.
    pub gate: Arc<tokio::sync::Notify>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let gate = Arc::new(tokio::sync::Notify::new());
        let (record, gate2) = (seen.clone(), gate.clone());
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    serve(stream, record.clone(), gate2.clone());
                }
            }
        });
        Self { addr, seen, gate }
    }

    /// The same upstream on a Unix domain socket at `path` (its `addr` is
    /// then meaningless).
    pub async fn start_unix(path: &std::path::Path) -> Self {
        let listener = tokio::net::UnixListener::bind(path).expect("bind unix socket");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let gate = Arc::new(tokio::sync::Notify::new());
        let (record, gate2) = (seen.clone(), gate.clone());
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    serve(stream, record.clone(), gate2.clone());
                }
            }
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self { addr, seen, gate }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw no request")
    }
}

/// Serves one connection (HTTP/1.1, h2c, upgrades) in a task of its own.
fn serve<S>(stream: S, record: Arc<Mutex<Vec<Seen>>>, gate: Arc<tokio::sync::Notify>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| handle(req, record.clone(), gate.clone()));
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .await;
    });
}

async fn handle(
    mut req: Request<Incoming>,
    record: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<tokio::sync::Notify>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mut seen = Seen {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: header_pairs(req.headers()),
        body: String::new(),
    };
    if req.uri().path() == "/ws" {
        record.lock().expect("lock").push(seen);
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else {
            return Ok(Response::builder()
                .status(400)
                .body(Full::default())
                .expect("resp"));
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            use futures_util::{SinkExt, StreamExt};
            let Ok(upgraded) = upgrade.await else { return };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(Full::default())
            .expect("resp"));
    }
    let path = seen.path.clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.body = String::from_utf8_lossy(&body).into_owned();
    record.lock().expect("lock").push(seen);
    if path == "/gate" {
        gate.notified().await;
    }
    if path == "/hang" {
        std::future::pending::<()>().await;
    }
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"upstream": "ok", "path": path}).to_string(),
        )))
        .expect("resp"))
}
