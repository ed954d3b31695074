//! The `tollgate` binary: CLI, logging, runtime, signals, exit codes.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Parser, Subcommand};

use tollgate::config::{self, ConfigError, ConfigPath};

/// EX_USAGE from sysexits.h: the configuration is wrong.
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(version, about = "OAuth 2.0 / OpenID Connect authentication sidecar")]
struct Cli {
    /// Config file (default ./tollgate.toml, optional when every key comes from TOLLGATE_* variables).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args)]
/// `tollgate init`'s flags.
struct InitArgs {
    #[arg(long)]
    issuer: String,
    #[arg(long)]
    client_id: String,
    /// The service tollgate forwards to, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    upstream: String,
    /// How browsers reach tollgate, e.g. https://app.example.com.
    #[arg(long)]
    public_url: String,
    #[arg(long, default_value = "0.0.0.0:4180")]
    listen: String,
    /// An existing file holding the client secret.
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
    /// Print a fresh random 32-byte key, base64, for `session.secret`.
    GenerateSecret,
    /// Write ./tollgate.toml with fresh secrets (in files beside it): the
    /// client secret is read from stdin unless --client-secret-file names one.
    Init(InitArgs),
    /// Turn an oauth2-proxy configuration (its config file, the flags after
    /// `--`, and OAUTH2_PROXY_* variables) into tollgate.toml on stdout, with
    /// a report of every option on stderr.
    Convert {
        /// oauth2-proxy's --config file.
        #[arg(long = "from-oauth2-proxy", value_name = "FILE")]
        from: Option<PathBuf>,
        /// oauth2-proxy command-line flags, after `--`.
        #[arg(last = true)]
        flags: Vec<String>,
    },
    /// Write a fresh private key for `client_auth = "private_key_jwt"` and
    /// print its public JWK Set (to register at the provider).
    GenerateKey {
        /// ES256, ES384, EdDSA, RS256 or PS256 (RSA keys are 2048-bit).
        #[arg(long, default_value = "ES256")]
        algorithm: String,
        /// Where the PEM private key goes (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

fn config_path(cli: &Cli, env: &[(String, String)]) -> ConfigPath {
    if let Some(p) = &cli.config {
        return ConfigPath::Named(p.clone(), "--config");
    }
    match env.iter().find(|(k, _)| k == "TOLLGATE_CONFIG") {
        Some((_, v)) if !v.is_empty() => ConfigPath::Named(PathBuf::from(v), "TOLLGATE_CONFIG"),
        _ => ConfigPath::Default,
    }
}

fn describe(err: &ConfigError) -> String {
    match err {
        ConfigError::NoConfig => format!("tollgate: {err}"),
        _ => format!("tollgate: {err}\nFix the configuration and start again (`tollgate check-config` checks it; every key is described in the configuration reference, docs/configuration.md)."),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::GenerateSecret) => {
            let mut key = [0u8; 32];
            if aws_lc_rs::rand::fill(&mut key).is_err() {
                eprintln!("tollgate: the system random number generator failed");
                return ExitCode::FAILURE;
            }
            println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
            ExitCode::SUCCESS
        }
        Some(Command::Init(args)) => init(args),
        Some(Command::Convert { from, flags }) => convert(from, flags),
        Some(Command::GenerateKey { algorithm, out }) => match generate_key(&algorithm, &out) {
            Ok(jwks) => {
                eprintln!("tollgate: wrote the private key to {}; register this public key set at the provider (or point it at /oauth2/client_jwks):", out.display());
                // A closed pipe (`| head`) is not a failure: the key is written.
                let _ = writeln!(std::io::stdout(), "{jwks}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::CheckConfig) => {
            let env = config::process_env();
            match config::load(&config_path(&cli, &env), &env) {
                Ok((config, raw)) => {
                    for w in config.warnings() {
                        eprintln!("tollgate: warning: {w}");
                    }
                    println!("# configuration is valid; effective values (secrets redacted):");
                    match toml::to_string(&raw) {
                        Ok(t) => println!("{t}"),
                        Err(e) => eprintln!("cannot print the configuration: {e}"),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}", describe(&e));
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            let env = config::process_env();
            let path = config_path(&cli, &env);
            let (config, raw) = match config::load(&path, &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}", describe(&e));
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match run(config, path, raw) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tollgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The path `--alpha-config` names among oauth2-proxy's flags.
fn alpha_flag(flags: &[String]) -> Option<String> {
    let mut args = flags.iter();
    while let Some(a) = args.next() {
        let name = a.trim_start_matches('-');
        if let Some(v) = name.strip_prefix("alpha-config=") {
            return Some(v.to_string());
        }
        if name == "alpha-config" && a.starts_with('-') {
            return args.next().cloned();
        }
    }
    None
}

/// `tollgate convert`: see [`tollgate::convert`].
fn convert(from: Option<PathBuf>, flags: Vec<String>) -> ExitCode {
    // The alpha configuration: FILE itself when it is YAML, or the file
    // `--alpha-config` names among the flags.
    let yaml = from
        .as_ref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    let (legacy_path, alpha_path) = if yaml {
        (None, from)
    } else {
        (from, alpha_flag(&flags).map(PathBuf::from))
    };
    let read = |path: Option<PathBuf>| match path {
        Some(p) => std::fs::read_to_string(&p)
            .map(Some)
            .map_err(|e| eprintln!("tollgate: cannot read {}: {e}", p.display())),
        None => Ok(None),
    };
    let (Ok(config_file), Ok(alpha_config)) = (read(legacy_path), read(alpha_path)) else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let env: Vec<(String, String)> = config::process_env()
        .into_iter()
        .filter(|(k, _)| k.starts_with("OAUTH2_PROXY_"))
        .collect();
    let input = tollgate::convert::Input {
        config_file,
        flags,
        env,
        alpha_config,
    };
    match tollgate::convert::convert(&input) {
        Ok(c) => {
            let _ = write!(std::io::stdout(), "{}", c.toml);
            for line in &c.report {
                eprintln!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `tollgate init`: see [`config::init`].
fn init(args: InitArgs) -> ExitCode {
    let InitArgs {
        issuer,
        client_id,
        upstream,
        public_url,
        listen,
        client_secret_file,
    } = args;
    let client_secret = match &client_secret_file {
        Some(_) => None,
        None => {
            eprintln!("tollgate: client secret for {client_id} (one line on stdin):");
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() || line.trim().is_empty() {
                eprintln!(
                    "tollgate: no client secret given; pass --client-secret-file FILE or type it"
                );
                return ExitCode::from(EXIT_CONFIG);
            }
            Some(line)
        }
    };
    let options = config::init::InitOptions {
        issuer,
        client_id,
        upstream,
        public_url,
        listen,
        client_secret,
        client_secret_file,
        // Absolute paths: the secrets are found whatever directory
        // tollgate later runs from.
        dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    match config::init::init(&options) {
        Ok(w) => {
            println!(
                "wrote {} (session secret in {}, client secret in {}, both mode 0600)",
                w.config.display(),
                w.session_secret.display(),
                w.client_secret.display()
            );
            println!("register {}/oauth2/callback as the redirect URI at the provider; then run: tollgate", options.public_url.trim_end_matches('/'));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Writes a new key to `out` (never over an existing file) and returns its
/// public JWK Set.
fn generate_key(algorithm: &str, out: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    use tollgate::oidc::client_auth::{generate_pem, ClientKeys};
    use tollgate::oidc::settings::ClientKeyConfig;
    let alg: jsonwebtoken::Algorithm = algorithm
        .parse()
        .ok()
        .filter(|a| {
            !matches!(
                a,
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            )
        })
        .with_context(|| {
            format!("`{algorithm}` is not one of ES256, ES384, EdDSA, RS256/384/512, PS256/384/512")
        })?;
    let pem = generate_pem(alg)?;
    let keys = ClientKeys::load(
        &ClientKeyConfig {
            file: out.display().to_string(),
            pem: tollgate::secret::Secret::new(pem.clone().into_bytes()),
            algorithm: Some(alg),
            kid: None,
            certificate: None,
        },
        &[],
    )?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(serde_json::to_string_pretty(&keys.jwks())?)
}

/// The start-up line, and what the configuration probably did not mean.
fn announce(config: &config::Config, listen: std::net::SocketAddr, workers: usize) {
    tracing::info!(
        %listen,
        workers,
        upstreams = config.upstreams.len(),
        upstream = %config.upstream.url,
        issuer = %config.provider().issuer,
        providers = config.providers.len(),
        tracing = tollgate::telemetry::trace::on(),
        version = env!("CARGO_PKG_VERSION"),
        "tollgate started"
    );
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
}

/// Serves `/metrics` on `addr` from the background thread.
async fn metrics_on(
    bg: &tollgate::server::Background,
    addr: std::net::SocketAddr,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    tracing::info!(listen = %addr, "serving metrics at /metrics");
    // Registered with the background runtime, which serves it.
    let l = l.into_std().context("cannot serve metrics")?;
    Ok(bg.spawn(async move {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => tollgate::server::serve_metrics(l).await,
            Err(e) => tracing::error!(error = %e, "cannot serve metrics"),
        }
    }))
}

fn run(config: config::Config, path: ConfigPath, raw: config::RawConfig) -> anyhow::Result<()> {
    // Tracing first: the subscriber carries its layer. Dropped last, so
    // that spans still queued are exported at exit.
    let (_tracing, tracer) = tollgate::telemetry::trace::from_env()
        .context("OpenTelemetry tracing (OTEL_* variables)")?
        .unzip();
    let _log = tollgate::telemetry::init(&config.log, tracer);
    // One crypto provider for every rustls user in the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The main thread is worker 0; see `server` for why each worker has a
    // runtime of its own. Discovery, keys, reloads, metrics and Redis run
    // on a thread of their own.
    let runtime = tollgate::server::worker_runtime().context("cannot start the async runtime")?;
    let background =
        tollgate::server::Background::start().context("cannot start the background thread")?;
    let bg = &background;
    runtime.block_on(async move {
        let listen = config.server.listen;
        let app = Arc::new(tollgate::gateway::App::new(config).context("cannot initialise")?);
        let tls = match &app.config.server.tls {
            Some(files) => {
                let t = tollgate::server::tls::Reloading::new(&files.cert_file, &files.key_file)
                    .context("cannot load the TLS certificate")?;
                bg.spawn(t.clone().watch());
                Some(t)
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let workers = tollgate::server::worker_count();
        announce(
            &app.config,
            listener.local_addr().unwrap_or(listen),
            workers,
        );
        // Bound before anything is served: a taken metrics port is a startup error.
        let metrics = match app.config.metrics_listen {
            Some(addr) => Some(metrics_on(bg, addr).await?),
            None => None,
        };
        let discovery = bg.spawn(tollgate::server::discover(app.clone()));
        let store = bg.spawn(tollgate::server::connect_store(app.clone()));
        let limit = tollgate::server::Admission::new(&app.config.server);
        let slot = tollgate::server::reload::AppSlot::new(app);
        let reloads = bg.spawn(tollgate::server::reload::watch(slot.clone(), path, raw));

        // Workers 1.. on threads of their own, each with a handle on the
        // same listening socket; they stop when worker 0 sees the signal.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listener = listener.into_std().context("cannot share the listener")?;
        let mut threads = Vec::new();
        for i in 1..workers {
            let handle = listener.try_clone().context("cannot share the listener")?;
            let (slot, limit, tls, mut stopped) =
                (slot.clone(), limit.clone(), tls.clone(), stopped.clone());
            let thread = std::thread::Builder::new()
                .name(format!("tollgate-worker-{i}"))
                .spawn(move || -> std::io::Result<()> {
                    let result = tollgate::server::worker_runtime().and_then(|rt| {
                        rt.block_on(async move {
                            let listener = tokio::net::TcpListener::from_std(handle)?;
                            tollgate::server::serve(slot, listener, limit, tls, async move {
                                let _ = stopped.wait_for(|s| *s).await;
                            })
                            .await;
                            Ok(())
                        })
                    });
                    if let Err(e) = &result {
                        // Said now, not at exit: the others serve on.
                        tracing::error!(worker = i, error = %e, "a worker could not start");
                    }
                    result
                })
                .context("cannot start a worker thread")?;
            threads.push(thread);
        }
        let listener = tokio::net::TcpListener::from_std(listener).context("cannot listen")?;
        let shutdown_slot = slot.clone();
        tollgate::server::serve(slot, listener, limit, tls, async move {
            tollgate::server::shutdown_signal().await;
            shutdown_slot.get().begin_shutdown();
            let _ = stop.send(true);
        })
        .await;
        // The other workers drain on their own; the background thread keeps
        // running what they may still need meanwhile (Redis, keys).
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {} // logged by the worker
                    Err(_) => tracing::error!("a worker panicked"),
                }
            }
        });
        let _ = joined.await;
        reloads.abort();
        discovery.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        store.abort();
        Ok(())
    })
}
