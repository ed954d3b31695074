//! `tollgate init`: a working configuration with fresh secrets, checked by
//! the same rules as every start, written without overwriting anything.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// What `tollgate init` was told.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub issuer: String,
    pub client_id: String,
    pub upstream: String,
    pub public_url: String,
    pub listen: String,
    /// The client secret itself (read from stdin by the CLI); `None` with
    /// `client_secret_file`.
    pub client_secret: Option<String>,
    /// An existing file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// Where everything is written.
    pub dir: PathBuf,
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    pub config: PathBuf,
    pub session_secret: PathBuf,
    pub client_secret: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} exists already; init never overwrites (move it away or edit it)")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration would not load:\n{0}")]
    Invalid(#[from] super::ConfigError),
    #[error("the system random number generator failed")]
    Random,
}

pub const CONFIG_FILE: &str = "tollgate.toml";
pub const SESSION_SECRET_FILE: &str = "tollgate-session.secret";
pub const CLIENT_SECRET_FILE: &str = "tollgate-client.secret";

/// Writes `tollgate.toml` and the secret files into `o.dir`, after checking
/// the result loads. Nothing that exists is overwritten; on a failed check
/// nothing is left behind.
pub fn init(o: &InitOptions) -> Result<Written, InitError> {
    let config = o.dir.join(CONFIG_FILE);
    let session_secret = o.dir.join(SESSION_SECRET_FILE);
    let client_secret = match &o.client_secret_file {
        Some(f) => f.clone(),
        None => o.dir.join(CLIENT_SECRET_FILE),
    };
    let mut fresh = vec![&config, &session_secret];
    if o.client_secret_file.is_none() {
        fresh.push(&client_secret);
    }
    if let Some(p) = fresh.iter().find(|p| p.exists()) {
        return Err(InitError::Exists((*p).clone()));
    }
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| InitError::Random)?;
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    create(&session_secret, &format!("{key}\n"))?;
    let mut written = vec![session_secret.clone()];
    if let Some(secret) = &o.client_secret {
        create(&client_secret, &format!("{}\n", secret.trim_end()))?;
        written.push(client_secret.clone());
    }
    let text = render(o, &session_secret, &client_secret);
    let checked = super::load_str(&text, &[])
        .map_err(InitError::from)
        .and_then(|_| create(&config, &text));
    if let Err(e) = checked {
        for f in written {
            let _ = std::fs::remove_file(f);
        }
        return Err(e);
    }
    Ok(Written {
        config,
        session_secret,
        client_secret,
    })
}

/// The configuration text: the given values and the secret files, with a
/// pointer to the reference for everything else.
fn render(o: &InitOptions, session_secret: &Path, client_secret: &Path) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "# Written by `tollgate init`. Every key: docs/configuration.md.\n\
         # Register {callback} as the redirect URI at the provider,\n\
         # and {public}/ as the post-logout redirect URI.\n\n\
         [server]\nlisten = {listen}\npublic_url = {public_q}\n\n\
         [upstream]\nurl = {upstream}\n\n\
         [provider]\nissuer = {issuer}\nclient_id = {client_id}\nclient_secret_file = {client_secret}\n\n\
         [session]\nsecret_file = {session_secret}\n",
        callback = format_args!("{}/oauth2/callback", o.public_url.trim_end_matches('/')),
        public = o.public_url.trim_end_matches('/'),
        listen = q(&o.listen),
        public_q = q(&o.public_url),
        upstream = q(&o.upstream),
        issuer = q(&o.issuer),
        client_id = q(&o.client_id),
        client_secret = q(&client_secret.display().to_string()),
        session_secret = q(&session_secret.display().to_string()),
    )
}

/// Creates `path` (mode 0600, never over an existing file) holding `text`.
fn create(path: &Path, text: &str) -> Result<(), InitError> {
    let error = |source| InitError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> InitOptions {
        InitOptions {
            issuer: "https://idp.example.com".into(),
            client_id: "my-app".into(),
            upstream: "http://127.0.0.1:8080".into(),
            public_url: "https://app.example.com".into(),
            listen: "127.0.0.1:4180".into(),
            client_secret: Some("s3cret".into()),
            client_secret_file: None,
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn init_writes_a_config_that_loads_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("dir");
        let w = init(&options(dir.path())).expect("init");
        let text = std::fs::read_to_string(&w.config).expect("config");
        let (config, _) = crate::config::load_str(&text, &[]).expect("loads");
        assert_eq!(config.provider().client_id, "my-app");
        assert_eq!(
            std::fs::read_to_string(&w.client_secret).expect("secret"),
            "s3cret\n"
        );
        let mode = std::fs::metadata(&w.session_secret).expect("meta");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        assert!(matches!(
            init(&options(dir.path())),
            Err(InitError::Exists(_))
        ));
    }

    #[test]
    fn a_config_that_would_not_load_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let mut o = options(dir.path());
        o.issuer = "http://idp.example.com".into();
        assert!(matches!(init(&o), Err(InitError::Invalid(_))));
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
