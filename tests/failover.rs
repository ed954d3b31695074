//! The Redis session store failing over under load, with real Redis: a
//! Sentinel deployment (one master, one replica, three sentinels) and a
//! Cluster (three masters, each with a replica). The master holding a
//! signed-in user's session is killed while requests keep coming; the
//! session must keep working once a replica is promoted, new logins must
//! work, and tollgate must not need a restart. Requests during the
//! failover may be refused with 503 (the store is unreachable); none may
//! send the user to log in again (a lost session) or fail otherwise.
//!
//! Nothing here asserts a duration: the waits are for conditions (the
//! sentinels name a new master, a request succeeds), bounded only so a
//! broken build fails instead of hanging. The measured failure windows are
//! printed (`cargo test --test failover -- --nocapture`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// Requests with one session cookie from two tasks, each answer recorded
/// with when it came, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Instant, u16)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String, cookie: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
        let tasks = (0..2)
            .map(|_| {
                let (url, cookie, stop, seen) =
                    (url.clone(), cookie.clone(), stop.clone(), seen.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .timeout(Duration::from_secs(10))
                        .build()
                        .expect("client");
                    while !stop.load(Ordering::Relaxed) {
                        let status = match http
                            .get(&url)
                            .header("cookie", &cookie)
                            .header("accept", "text/html")
                            .send()
                            .await
                        {
                            Ok(r) => r.status().as_u16(),
                            Err(_) => 0,
                        };
                        seen.lock().expect("lock").push((Instant::now(), status));
                    }
                })
            })
            .collect();
        Self { stop, seen, tasks }
    }

    fn answers(&self) -> Vec<(Instant, u16)> {
        self.seen.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for the answers so far.
    async fn until(&self, what: &str, pred: impl Fn(&[(Instant, u16)]) -> bool) {
        let start = Instant::now();
        while !pred(&self.answers()) {
            assert!(start.elapsed() < Duration::from_secs(90), "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> Vec<(Instant, u16)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let seen = self.seen.lock().expect("lock").clone();
        seen
    }
}

/// What the answers after `killed` say: counts by status, the window in
/// which requests failed, and when they succeeded again for good.
fn report(what: &str, killed: Instant, answers: &[(Instant, u16)]) -> Vec<u16> {
    let after: Vec<(Instant, u16)> = answers
        .iter()
        .copied()
        .filter(|(t, _)| *t >= killed)
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for (_, s) in &after {
        *counts.entry(*s).or_insert(0usize) += 1;
    }
    let failed: Vec<Instant> = after
        .iter()
        .filter(|(_, s)| *s != 200)
        .map(|(t, _)| *t)
        .collect();
    let window = match (failed.first(), failed.last()) {
        (Some(a), Some(b)) => b.duration_since(*a),
        _ => Duration::ZERO,
    };
    let recovered = after
        .iter()
        .filter(|(t, s)| *s == 200 && failed.last().is_none_or(|f| t > f))
        .map(|(t, _)| t.duration_since(killed))
        .next();
    eprintln!(
        "{what}: answers after the kill by status {counts:?}; failures over {window:?}; \
         every answer 200 again {recovered:?} after the kill"
    );
    after.iter().map(|(_, s)| *s).collect()
}

async fn tollgate_with(idp_port: u16, idp: &Idp, upstream: &str, redis: &str) -> Tollgate {
    let session = format!("store = \"redis\"\n[session.redis]\ntimeout = \"500ms\"\n{redis}");
    let mut setup = Setup::basic(idp_port, idp, upstream);
    setup.session = &session;
    Tollgate::start(&setup).await
}

/// Sentinel: the master is killed under load; the sentinels promote the
/// replica; tollgate follows them without a restart. Sessions written
/// before the kill were replicated (`WAIT`), so none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_sessions_and_logins_without_a_restart() {
    let mut master = Redis::start().await;
    let replica = Redis::replica_of(&master).await;
    let mut sentinels = Vec::new();
    for _ in 0..3 {
        sentinels.push(Sentinel::watch(&master, "mymaster", 2).await);
    }
    let start = Instant::now();
    for s in &sentinels {
        while s.view("mymaster").await != Some((master.port, 1, 2)) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "sentinels never met"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let nodes: Vec<String> = sentinels
        .iter()
        .map(|s| format!("\"{}\"", s.url()))
        .collect();
    let redis = format!(
        "mode = \"sentinel\"\nnodes = [{}]\nsentinel_master = \"mymaster\"\n",
        nodes.join(", ")
    );
    let tollgate = tollgate_with(port, &idp, &upstream.url(), &redis).await;
    let mut alice = Browser::new();
    assert_eq!(alice.login(&tollgate.url("/"), "alice").await.status, 200);
    assert_eq!(master.wait_replicated(1).await, 1);

    let new_master = replica.port;
    let sentinel = &sentinels[0];
    fail_over(
        "sentinel",
        &tollgate,
        &mut alice,
        || master.stop(),
        || async move { sentinel.view("mymaster").await.map(|v| v.0) == Some(new_master) },
    )
    .await;
    let records = replica
        .dump()
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("tollgate:s:"))
        .count();
    assert_eq!(records, 2);
}

/// Cluster: the master holding the session's slot is killed under load;
/// its replica takes over; the cluster client follows the new slot map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_keeps_sessions_and_logins_without_a_restart() {
    let cluster = Cluster::with_replicas(1).await;
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let redis = format!("mode = \"cluster\"\nnodes = [{}]\n", nodes.join(", "));
    let tollgate = tollgate_with(port, &idp, &upstream.url(), &redis).await;
    let mut alice = Browser::new();
    assert_eq!(alice.login(&tollgate.url("/"), "alice").await.status, 200);
    let holder = cluster
        .master_holding("tollgate:s:")
        .expect("a master holds the session");
    assert_eq!(cluster.wait_replicated(holder), 1);

    // Killed first, then asked about: never both at once.
    let cluster = std::cell::RefCell::new(cluster);
    fail_over(
        "cluster",
        &tollgate,
        &mut alice,
        || cluster.borrow_mut().kill(holder),
        || async { cluster.borrow().is_ok_without(holder) },
    )
    .await;
}

/// Kills the store's master (`kill`) while two clients keep requesting with
/// alice's session, waits until `promoted` says a replica took over and a
/// request succeeded after that, and checks what the users saw: only 200
/// and 503 while failing over, alice still signed in, a new login working.
async fn fail_over<F: std::future::Future<Output = bool>>(
    what: &str,
    tollgate: &Tollgate,
    alice: &mut Browser,
    kill: impl FnOnce(),
    promoted: impl Fn() -> F,
) {
    let url = tollgate.url("/load");
    let load = Load::start(url.clone(), alice.cookie_header(&url));
    load.until("answers before the kill", |a| a.len() >= 20)
        .await;
    let killed = Instant::now();
    kill();
    let start = Instant::now();
    while !promoted().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: no promotion"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promotion = killed.elapsed();
    load.until("a 200 after the promotion", |a| {
        a.iter().any(|(t, s)| *t >= killed + promotion && *s == 200)
    })
    .await;
    let statuses = report(what, killed, &load.finish().await);
    eprintln!("{what}: a replica was promoted after {promotion:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only 200 and 503 while failing over: {statuses:?}\n{}",
        tollgate.output.text()
    );
    assert_eq!(alice.get(&tollgate.url("/after")).await.status, 200);
    let mut bob = Browser::new();
    assert_eq!(bob.login(&tollgate.url("/"), "bob").await.status, 200);
}
