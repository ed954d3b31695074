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
}

impl Redis {
    pub async fn start() -> Self {
        let mut r = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.run().await;
        r
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

/// A three-master Redis Cluster (no replicas).
pub struct Cluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    pub async fn start() -> Self {
        // Built first, so that a failure below still ends every node (Drop).
        let mut cluster = Cluster {
            children: Vec::new(),
            ports: (0..3).map(|_| free_port()).collect(),
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
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start redis-server"),
            );
            cluster._dirs.push(dir);
        }
        for (i, p) in cluster.ports.clone().into_iter().enumerate() {
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                if let Ok(Some(status)) = cluster.children[i].try_wait() {
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
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "cluster create failed");
        let start = Instant::now();
        loop {
            let ok = self.ports.iter().all(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "cluster never became ok"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
            .flat_map(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "--scan"])
                    .output()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A redis-sentinel watching one master.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub async fn start(master: &Redis, name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {name} 127.0.0.1 {} 1\n",
                dir.path().display(),
                master.port
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
