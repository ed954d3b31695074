//! A real Keycloak (the server distribution from Maven Central, installed
//! by `tests/keycloak/install.sh`), started in dev mode with an in-memory
//! database in a process group of its own, configured through its admin
//! REST API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

pub struct Keycloak {
    child: Child,
    pub port: u16,
    pub output: Output,
    http: reqwest::Client,
}

/// `KEYCLOAK_HOME` and `KEYCLOAK_JAVA_HOME` as `install.sh` wrote them.
fn installed() -> (PathBuf, PathBuf) {
    let env = repo().join("target/keycloak/env");
    let text = std::fs::read_to_string(&env).unwrap_or_else(|_| {
        panic!(
            "Keycloak is not installed: run tests/keycloak/install.sh (./test.sh does) ({} missing)",
            env.display()
        )
    });
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{key} missing from {}", env.display()))
    };
    (value("KEYCLOAK_HOME"), value("KEYCLOAK_JAVA_HOME"))
}

impl Keycloak {
    /// Starts Keycloak and waits (up to three minutes: the first start of
    /// an installation builds it) until it answers.
    pub async fn start() -> Self {
        use std::os::unix::process::CommandExt;
        // One start at a time: the first start of an installation builds
        // it (`lib/quarkus`), and two builds at once corrupt each other's
        // files. Later starts find it built.
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one_at_a_time = STARTING.lock().await;
        let (home, java) = installed();
        let port = free_port();
        let output = Output::default();
        let mut child = Command::new(home.join("bin/kc.sh"))
            .args([
                "start-dev",
                "--http-host=127.0.0.1",
                &format!("--http-port={port}"),
                "--db=dev-mem",
                "--features=client-auth-federated,kubernetes-service-accounts",
            ])
            .env("JAVA_HOME", java)
            .env("KC_BOOTSTRAP_ADMIN_USERNAME", "admin")
            .env("KC_BOOTSTRAP_ADMIN_PASSWORD", "admin")
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start Keycloak");
        output.capture(child.stdout.take().expect("stdout"));
        output.capture(child.stderr.take().expect("stderr"));
        let http = reqwest::Client::new();
        let kc = Self {
            child,
            port,
            output,
            http,
        };
        let started = Instant::now();
        loop {
            let ready = kc
                .http
                .get(kc.url("/realms/master"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return kc;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "Keycloak did not start:\n{}",
                kc.output.text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The issuer of `realm`.
    pub fn issuer(&self, realm: &str) -> String {
        self.url(&format!("/realms/{realm}"))
    }

    async fn admin_token(&self) -> String {
        let v: Value = self
            .http
            .post(self.url("/realms/master/protocol/openid-connect/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", "admin"),
            ])
            .send()
            .await
            .expect("admin token")
            .json()
            .await
            .expect("token json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// Creates a realm from its full representation (users, clients,
    /// identity providers), as an import file would.
    pub async fn create_realm(&self, realm: &Value) {
        let token = self.admin_token().await;
        let resp = self
            .http
            .post(self.url("/admin/realms"))
            .bearer_auth(token)
            .json(realm)
            .send()
            .await
            .expect("create realm");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "creating the realm: {status} {body}");
    }
}

/// A realm user with a password, verified email and names (Keycloak's user
/// profile asks for first and last name before a first login otherwise).
pub fn user(name: &str, password: &str, groups: &[&str]) -> Value {
    json!({
        "username": name,
        "enabled": true,
        "email": format!("{name}@example.com"),
        "emailVerified": true,
        "firstName": name,
        "lastName": "Test",
        "credentials": [{"type": "password", "value": password, "temporary": false}],
        "realmRoles": groups,
    })
}

/// Signs in at Keycloak's login form on `page` (what tollgate's login
/// redirect led to) and follows on to where the callback sends the browser.
pub async fn sign_in(b: &mut Browser, page: Page, user: &str, password: &str) -> Page {
    assert!(
        page.body.contains("kc-form-login"),
        "not Keycloak's login page ({}): {}",
        page.status,
        page.body
    );
    let action = page
        .body
        .split("id=\"kc-form-login\"")
        .nth(1)
        .and_then(|s| s.split("action=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .expect("form action")
        .replace("&amp;", "&");
    let posted = b
        .request(
            reqwest::Method::POST,
            &action,
            Some(&[("username", user), ("password", password)]),
            &[],
        )
        .await;
    let next = posted
        .location()
        .unwrap_or_else(|| {
            panic!(
                "no redirect after login ({}): {}",
                posted.status, posted.body
            )
        })
        .to_string();
    b.follow(&next).await
}

impl Drop for Keycloak {
    fn drop(&mut self) {
        // kc.sh starts java: end the whole group.
        end_group(&mut self.child);
    }
}
