//! Configuration reload without a restart: on SIGHUP, and when the config
//! file or any file it names (secrets, CA bundles, keys) changes — Kubernetes
//! updates mounted ConfigMaps and Secrets by swapping a symlink, which the
//! check sees because it follows links.
//!
//! A reload builds a complete new [`App`] from the new configuration and
//! swaps it in atomically: requests in flight finish on the old one, new
//! requests get the new one, no connection is dropped, and sessions stay
//! valid (same secrets, or the old one listed in `previous_secrets`). An
//! invalid configuration is logged and counted, and the running one kept.
//! `server.listen`, the `server.tls` paths, the listener limits
//! (`shutdown_grace`, the connection timeouts and limits), `[metrics]`
//! and `[log]` need a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::config::{self, ConfigPath, RawConfig};
use crate::gateway::App;
use crate::telemetry::metrics::{metrics, ResultLabels};

/// How often watched files are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The running application, replaceable as a whole.
pub struct AppSlot(RwLock<Arc<App>>);

impl AppSlot {
    pub fn new(app: Arc<App>) -> Arc<Self> {
        Arc::new(Self(RwLock::new(app)))
    }

    pub fn get(&self) -> Arc<App> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, app: Arc<App>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = app;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    App(#[from] crate::gateway::AppError),
}

/// The config file and every file its values name.
fn watched(path: &ConfigPath, raw: &RawConfig) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match path {
        ConfigPath::Named(p, _) => vec![p.clone()],
        ConfigPath::Default => vec![PathBuf::from(config::DEFAULT_CONFIG_PATH)],
    };
    let named = [
        &raw.session.secret_file,
        &raw.session.redis.password_file,
        &raw.upstream.assertion_key_file,
        &raw.upstream.ca_file,
        &raw.upstream.client_cert_file,
        &raw.upstream.client_key_file,
    ];
    files.extend(named.into_iter().flatten().map(PathBuf::from));
    files.extend(raw.pages.template_file.iter().map(PathBuf::from));
    // `[[upstreams]]` entries' own certificate files.
    for entry in &raw.upstreams {
        for key in ["ca_file", "client_cert_file", "client_key_file"] {
            if let Some(p) = entry.get(key).and_then(|v| v.as_str()) {
                files.push(PathBuf::from(p));
            }
        }
    }
    for p in raw.all_providers() {
        let named = [
            &p.client_secret_file,
            &p.ca_file,
            &p.client_key_file,
            &p.client_key_certificate_file,
            &p.tls_client_certificate_file,
            &p.tls_client_key_file,
            &p.dpop_key_file,
        ];
        files.extend(named.into_iter().flatten().map(PathBuf::from));
        // A rotated key is picked up like a rotated secret. The assertion
        // file is not watched: it is read afresh on every use.
        files.extend(p.client_extra_key_files.iter().map(PathBuf::from));
    }
    files
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files.iter().map(|f| stamp(f)).collect()
}

/// Loads the configuration again and swaps in a new application.
pub async fn reload(slot: &AppSlot, path: &ConfigPath) -> Result<RawConfig, ReloadError> {
    let env = config::process_env();
    let (config, raw) = config::load(path, &env)?;
    let old = slot.get();
    let (o, n) = (&old.config, &config);
    let unchanged = o.server.listen == n.server.listen
        && o.metrics_listen == n.metrics_listen
        && o.server.tls.as_ref().map(|t| (&t.cert_file, &t.key_file))
            == n.server.tls.as_ref().map(|t| (&t.cert_file, &t.key_file))
        && o.log.level == n.log.level
        && o.log.json == n.log.json
        && o.server.shutdown_grace == n.server.shutdown_grace
        && o.server.header_read_timeout == n.server.header_read_timeout
        && o.server.idle_timeout == n.server.idle_timeout
        && o.server.max_connections == n.server.max_connections
        && o.server.max_connections_per_client == n.server.max_connections_per_client
        && o.server.max_requests_per_connection == n.server.max_requests_per_connection;
    if !unchanged {
        tracing::warn!(
            "changes to server.listen, server.tls file paths, server.shutdown_grace, server.header_read_timeout, \
             server.idle_timeout, server.max_connections, server.max_connections_per_client, \
             server.max_requests_per_connection, [metrics] and [log] take effect at the next restart"
        );
    }
    let new = Arc::new(App::new(config)?);
    let pending = new.take_over(&old);
    if pending.discovery {
        tokio::spawn(super::discover(new.clone()));
    }
    if pending.store {
        tokio::spawn(super::connect_store(new.clone()));
    }
    if old.is_shutting_down() {
        new.begin_shutdown();
    }
    slot.replace(new);
    Ok(raw)
}

/// Reloads on SIGHUP and on file changes, forever.
pub async fn watch(slot: Arc<AppSlot>, path: ConfigPath, raw: RawConfig) {
    let mut files = watched(&path, &raw);
    let mut seen = stamps(&files);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let by_signal = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let by_signal = std::future::pending::<()>();
        let cause = tokio::select! {
            () = by_signal => "SIGHUP",
            () = tokio::time::sleep(CHECK_EVERY) => {
                let now = stamps(&files);
                if now == seen {
                    continue;
                }
                seen = now;
                "file change"
            }
        };
        let result = match reload(&slot, &path).await {
            Ok(raw) => {
                files = watched(&path, &raw);
                seen = stamps(&files);
                tracing::info!(cause, "configuration reloaded");
                "ok"
            }
            Err(e) => {
                tracing::warn!(cause, error = %e, "configuration reload failed; keeping the running configuration");
                "failed"
            }
        };
        metrics()
            .config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}
