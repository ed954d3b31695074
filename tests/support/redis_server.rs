//! Real Redis: standalone, cluster and sentinel, on free ports.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

// === redis ===

/// A real redis-server on a free port, persisting to a temporary directory
/// (append-only, fsync always) so it can be stopped and started again with
/// its data.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// More `redis-server` arguments (`--replicaof`).
    extra: Vec<String>,
}

impl Redis {
    pub async fn start() -> Self {
        Self::with(Vec::new()).await
    }

    /// A replica of `master`, synchronised before this returns.
    pub async fn replica_of(master: &Redis) -> Self {
        let r = Self::with(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port.to_string(),
        ])
        .await;
        let start = Instant::now();
        while !r
            .info("replication")
            .await
            .contains("master_link_status:up")
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the replica never synchronised"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        r
    }

    async fn with(extra: Vec<String>) -> Self {
        let mut r = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            extra,
        };
        r.run().await;
        r
    }

    /// `INFO <section>` as text (empty when it does not answer).
    pub async fn info(&self, section: &str) -> String {
        match self.connection().await {
            Ok(mut c) => redis::cmd("INFO")
                .arg(section)
                .query_async::<String>(&mut c)
                .await
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// `WAIT replicas timeout`: how many replicas acknowledged every write
    /// made so far.
    pub async fn wait_replicated(&self, replicas: u32) -> u32 {
        let mut c = self.connection().await.expect("connect");
        redis::cmd("WAIT")
            .arg(replicas)
            .arg(10_000)
            .query_async(&mut c)
            .await
            .expect("WAIT")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start");
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn ping(&self) -> bool {
        match self.connection().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    /// Every key with its raw string value (other types: their members).
    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut c = self.connection().await.expect("connect");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut c)
            .await
            .expect("keys");
        let mut out = Vec::new();
        for k in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut c)
                .await
                .expect("type");
            let value: Vec<u8> = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut c)
                    .await
                    .expect("get"),
                "set" => {
                    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                        .arg(&k)
                        .query_async(&mut c)
                        .await
                        .expect("smembers");
                    members.concat()
                }
                _ => Vec::new(),
            };
            out.push((k, value));
        }
        out
    }
}

/// A three-master Redis Cluster, with `replicas` replicas per master.
pub struct Cluster {
    children: Vec<Option<Child>>,
    pub ports: Vec<u16>,
    replicas: usize,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    pub async fn start() -> Self {
        Self::with_replicas(0).await
    }

    pub async fn with_replicas(replicas: usize) -> Self {
        // Built first, so that a failure below still ends every node (Drop).
        let mut cluster = Cluster {
            children: Vec::new(),
            ports: (0..3 * (1 + replicas)).map(|_| free_port()).collect(),
            replicas,
            _dirs: Vec::new(),
        };
        for p in cluster.ports.clone() {
            // The cluster bus is a port of its own (default: port + 10000,
            // which free_port does not reserve and may be in use).
            let bus = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            cluster.children.push(
                Command::new("redis-server")
                    .args([
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        &p.to_string(),
                        "--save",
                        "",
                    ])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ])
                    .args(["--cluster-port", &bus.to_string()])
                    // A master that does not answer for a second fails over.
                    .args(["--cluster-node-timeout", "1000"])
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map(Some)
                    .expect("start redis-server"),
            );
            cluster._dirs.push(dir);
        }
        for (i, p) in cluster.ports.clone().into_iter().enumerate() {
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                let exited = cluster.children[i].as_mut().map(|c| c.try_wait());
                if let Some(Ok(Some(status))) = exited {
                    panic!("cluster node on port {p} exited with {status}");
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "cluster node did not start"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        cluster.form().await;
        cluster
    }

    /// Joins the nodes into one cluster and waits until it says ok.
    async fn form(&self) {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args([
                "--cluster-replicas",
                &self.replicas.to_string(),
                "--cluster-yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "cluster create failed");
        let start = Instant::now();
        loop {
            let ok = self
                .ports
                .iter()
                .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"));
            // Every replica attached and synchronised.
            let synced = self.ports.iter().all(|p| {
                let info = cli(*p, &["info", "replication"]);
                info.contains("role:master") || info.contains("master_link_status:up")
            });
            if ok && synced {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "cluster never became ok"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The port of the master that holds a key starting with `prefix`.
    pub fn master_holding(&self, prefix: &str) -> Option<u16> {
        self.ports.iter().copied().find(|p| {
            cli(*p, &["info", "replication"]).contains("role:master")
                && cli(*p, &["--scan"]).lines().any(|k| k.starts_with(prefix))
        })
    }

    /// `WAIT 1 10000` on the node at `port`: replicas that have every write.
    pub fn wait_replicated(&self, port: u16) -> u32 {
        cli(port, &["wait", "1", "10000"])
            .trim()
            .parse()
            .unwrap_or_default()
    }

    /// Kills the node at `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        if let Some(i) = self.ports.iter().position(|p| *p == port) {
            if let Some(mut c) = self.children[i].take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Whether the other nodes agree that `dead` failed and that every slot
    /// is served again.
    pub fn is_ok_without(&self, dead: u16) -> bool {
        let live: Vec<u16> = self.ports.iter().copied().filter(|p| *p != dead).collect();
        let marked = live.first().is_some_and(|p| {
            cli(*p, &["cluster", "nodes"]).lines().any(|l| {
                l.contains(&format!("127.0.0.1:{dead}@"))
                    && l.contains(",fail")
                    && !l.contains("fail?")
            })
        });
        marked
            && live
                .iter()
                .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// Keys across all masters.
    pub fn keys(&self) -> Vec<String> {
        self.ports
            .iter()
            .filter(|p| cli(**p, &["info", "replication"]).contains("role:master"))
            .flat_map(|p| {
                cli(*p, &["--scan"])
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::as_mut) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `redis-cli -p <port> <args>`'s output (empty when it fails).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A redis-sentinel watching one master.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub async fn start(master: &Redis, name: &str) -> Self {
        Self::watch(master, name, 1).await
    }

    /// A sentinel that agrees with `quorum` others that the master is down
    /// after it fails to answer for a second.
    pub async fn watch(master: &Redis, name: &str, quorum: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {name} 127.0.0.1 {master} {quorum}\n\
                 sentinel down-after-milliseconds {name} 1000\nsentinel failover-timeout {name} 10000\n",
                dir = dir.path().display(),
                master = master.port
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let url = format!("redis://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if let Ok(client) = redis::Client::open(url.as_str()) {
                if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                    let addr: redis::RedisResult<Vec<String>> = redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(name)
                        .query_async(&mut c)
                        .await;
                    if addr.is_ok_and(|a| a.len() == 2) {
                        break;
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sentinel did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// What this sentinel says of `name`: the master's port, and how many
    /// replicas and other sentinels it knows.
    pub async fn view(&self, name: &str) -> Option<(u16, usize, usize)> {
        let mut c = redis::Client::open(self.url())
            .ok()?
            .get_multiplexed_async_connection()
            .await
            .ok()?;
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(name)
            .query_async(&mut c)
            .await
            .ok()?;
        let count = |what: &'static str| {
            let mut c = c.clone();
            async move {
                redis::cmd("SENTINEL")
                    .arg(what)
                    .arg(name)
                    .query_async::<Vec<redis::Value>>(&mut c)
                    .await
                    .map(|v| v.len())
                    .unwrap_or_default()
            }
        };
        Some((
            addr.get(1)?.parse().ok()?,
            count("replicas").await,
            count("sentinels").await,
        ))
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
