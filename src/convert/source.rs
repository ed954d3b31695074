//! oauth2-proxy's three configuration sources, read and merged with its
//! precedence: command-line flags over `OAUTH2_PROXY_*` environment variables
//! over the `--config` file.
//!
//! Names are normalized to the config-file key: `--cookie-secret` and
//! `OAUTH2_PROXY_COOKIE_SECRET` are `cookie_secret`; list options take a
//! singular flag (`--email-domain`) and the plural key everywhere else
//! (`email_domains`, `OAUTH2_PROXY_EMAIL_DOMAINS`). Values are kept as text,
//! booleans or lists; their meaning is the mapping's business.

use std::collections::BTreeMap;

use super::{ConvertError, Input};

/// How an option takes its value on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `--name=value` or `--name value` (strings, durations, numbers).
    Text,
    /// `--name` alone means true; `--name=false`.
    Bool,
    /// Repeatable; each value may also be comma-separated.
    List,
}

use Kind::{Bool, List, Text};

/// Every option of oauth2-proxy's flags / environment / config file (its
/// "legacy" configuration): the config-file key, how it takes a value, and
/// its flag when that is not the key with `-` for `_`.
const KNOWN: &[(&str, Kind, &str)] = &[
    // Server and TLS.
    ("http_address", Text, ""),
    ("https_address", Text, ""),
    ("tls_cert_file", Text, ""),
    ("tls_key_file", Text, ""),
    ("tls_min_version", Text, ""),
    ("tls_cipher_suites", List, "tls-cipher-suite"),
    ("metrics_address", Text, ""),
    ("metrics_secure_address", Text, ""),
    ("metrics_tls_cert_file", Text, ""),
    ("metrics_tls_key_file", Text, ""),
    ("reverse_proxy", Bool, ""),
    ("real_client_ip_header", Text, ""),
    ("trusted_proxy_ips", List, "trusted-proxy-ip"),
    ("trusted_ips", List, "trusted-ip"),
    ("force_https", Bool, ""),
    ("redirect_url", Text, ""),
    ("relative_redirect_url", Bool, ""),
    ("whitelist_domains", List, "whitelist-domain"),
    ("proxy_prefix", Text, ""),
    ("ping_path", Text, ""),
    ("ping_user_agent", Text, ""),
    ("ready_path", Text, ""),
    ("gcp_healthchecks", Bool, ""),
    ("allow_query_semicolons", Bool, ""),
    // Upstreams.
    ("upstreams", List, "upstream"),
    ("pass_host_header", Bool, ""),
    ("proxy_websockets", Bool, ""),
    ("flush_interval", Text, ""),
    ("upstream_timeout", Text, ""),
    ("ssl_upstream_insecure_skip_verify", Bool, ""),
    ("disable_keep_alives", Bool, ""),
    // Headers.
    ("pass_basic_auth", Bool, ""),
    ("pass_access_token", Bool, ""),
    ("pass_user_headers", Bool, ""),
    ("pass_authorization_header", Bool, ""),
    ("set_basic_auth", Bool, ""),
    ("set_xauthrequest", Bool, ""),
    ("set_authorization_header", Bool, ""),
    ("prefer_email_to_user", Bool, ""),
    ("basic_auth_password", Text, ""),
    ("skip_auth_strip_headers", Bool, ""),
    ("signature_key", Text, ""),
    // Provider.
    ("provider", Text, ""),
    ("provider_display_name", Text, ""),
    ("client_id", Text, ""),
    ("client_secret", Text, ""),
    ("client_secret_file", Text, ""),
    ("provider_ca_files", List, "provider-ca-file"),
    ("use_system_trust_store", Bool, ""),
    ("oidc_issuer_url", Text, ""),
    ("insecure_oidc_allow_unverified_email", Bool, ""),
    ("insecure_oidc_skip_issuer_verification", Bool, ""),
    ("insecure_oidc_skip_nonce", Bool, ""),
    ("skip_oidc_discovery", Bool, ""),
    ("oidc_jwks_url", Text, ""),
    ("oidc_email_claim", Text, ""),
    ("oidc_groups_claim", Text, ""),
    ("oidc_audience_claims", List, "oidc-audience-claim"),
    ("oidc_extra_audiences", List, "oidc-extra-audience"),
    ("oidc_public_key_files", List, "oidc-public-key-file"),
    (
        "oidc_enabled_signing_algs",
        List,
        "oidc-enabled-signing-alg",
    ),
    ("login_url", Text, ""),
    ("redeem_url", Text, ""),
    ("profile_url", Text, ""),
    ("skip_claims_from_profile_url", Bool, ""),
    ("resource", Text, ""),
    ("validate_url", Text, ""),
    ("scope", Text, ""),
    ("prompt", Text, ""),
    ("approval_prompt", Text, ""),
    ("user_id_claim", Text, ""),
    ("allowed_groups", List, "allowed-group"),
    ("allowed_roles", List, "allowed-role"),
    ("backend_logout_url", Text, ""),
    ("acr_values", Text, ""),
    ("jwt_key", Text, ""),
    ("jwt_key_file", Text, ""),
    ("pubjwk_url", Text, ""),
    ("code_challenge_method", Text, ""),
    ("force_code_challenge_method", Text, ""),
    ("auth_request_response_mode", Text, ""),
    ("ssl_insecure_skip_verify", Bool, ""),
    // Provider-specific.
    ("keycloak_groups", List, "keycloak-group"),
    ("azure_tenant", Text, ""),
    ("azure_graph_group_field", Text, ""),
    ("entra_id_allowed_tenants", List, "entra-id-allowed-tenant"),
    ("entra_id_federated_token_auth", Bool, ""),
    ("bitbucket_team", Text, ""),
    ("bitbucket_repository", Text, ""),
    ("github_org", Text, ""),
    ("github_team", Text, ""),
    ("github_repo", Text, ""),
    ("github_token", Text, ""),
    ("github_users", List, "github-user"),
    ("gitlab_groups", List, "gitlab-group"),
    ("gitlab_projects", List, "gitlab-project"),
    ("google_groups", List, "google-group"),
    ("google_admin_email", Text, ""),
    ("google_service_account_json", Text, ""),
    ("google_use_application_default_credentials", Text, ""),
    ("google_target_principal", Text, ""),
    ("google_use_organization_id", Bool, ""),
    ("google_admin_api_user_scope", Text, ""),
    // Who may pass.
    ("email_domains", List, "email-domain"),
    ("authenticated_emails_file", Text, ""),
    ("htpasswd_file", Text, ""),
    ("htpasswd_user_groups", List, "htpasswd-user-group"),
    ("display_htpasswd_form", Bool, ""),
    ("skip_auth_routes", List, "skip-auth-route"),
    ("skip_auth_regex", List, "skip-auth-regex"),
    ("skip_auth_preflight", Bool, ""),
    ("api_routes", List, "api-route"),
    ("skip_jwt_bearer_tokens", Bool, ""),
    ("extra_jwt_issuers", List, "extra-jwt-issuers"),
    ("bearer_token_login_fallback", Bool, ""),
    ("skip_provider_button", Bool, ""),
    ("force_json_errors", Bool, ""),
    ("encode_state", Bool, ""),
    // Cookies.
    ("cookie_name", Text, ""),
    ("cookie_secret", Text, ""),
    ("cookie_secret_file", Text, ""),
    ("cookie_domains", List, "cookie-domain"),
    ("cookie_path", Text, ""),
    ("cookie_expire", Text, ""),
    ("cookie_refresh", Text, ""),
    ("cookie_secure", Bool, ""),
    ("cookie_httponly", Bool, ""),
    ("cookie_samesite", Text, ""),
    ("cookie_csrf_per_request", Bool, ""),
    ("cookie_csrf_per_request_limit", Text, ""),
    ("cookie_csrf_expire", Text, ""),
    ("cookie_csrf_samesite", Text, ""),
    // Session storage.
    ("session_store_type", Text, ""),
    ("session_cookie_minimal", Bool, ""),
    ("redis_connection_url", Text, ""),
    ("redis_username", Text, ""),
    ("redis_password", Text, ""),
    ("redis_use_sentinel", Bool, ""),
    ("redis_sentinel_password", Text, ""),
    ("redis_sentinel_master_name", Text, ""),
    ("redis_sentinel_connection_urls", List, ""),
    ("redis_use_cluster", Bool, ""),
    ("redis_cluster_connection_urls", List, ""),
    ("redis_ca_path", Text, ""),
    ("redis_insecure_skip_tls_verify", Bool, ""),
    ("redis_connection_idle_timeout", Text, ""),
    ("http_store_base_url", Text, ""),
    ("http_store_api_key", Text, ""),
    // Logging.
    ("auth_logging", Bool, ""),
    ("auth_logging_format", Text, ""),
    ("request_logging", Bool, ""),
    ("request_logging_format", Text, ""),
    ("standard_logging", Bool, ""),
    ("standard_logging_format", Text, ""),
    ("errors_to_info_log", Bool, ""),
    ("exclude_logging_paths", List, "exclude-logging-path"),
    ("logging_local_time", Bool, ""),
    ("silence_ping_logging", Bool, ""),
    ("request_id_header", Text, ""),
    ("logging_filename", Text, ""),
    ("logging_max_size", Text, ""),
    ("logging_max_age", Text, ""),
    ("logging_max_backups", Text, ""),
    ("logging_compress", Bool, ""),
    // Pages.
    ("custom_templates_dir", Text, ""),
    ("custom_sign_in_logo", Text, ""),
    ("banner", Text, ""),
    ("footer", Text, ""),
    ("show_debug_on_error", Bool, ""),
    // Commands rather than settings.
    ("config", Text, ""),
    ("alpha_config", Text, ""),
    ("convert_config_to_alpha", Bool, ""),
    ("config_test", Bool, ""),
    ("version", Bool, ""),
];

/// Older config-file and environment names oauth2-proxy still reads.
const ALIASES: &[(&str, &str)] = &[
    // bitly/oauth2_proxy's singular key, still common in old files.
    ("cookie_domain", "cookie_domains"),
    // `OAUTH2_PROXY_GOOGLE_GROUP`, deprecated for `_GOOGLE_GROUPS`.
    ("google_group", "google_groups"),
];

/// How `key` (a config-file key) takes its value; `None` for an unknown key.
pub(super) fn kind(key: &str) -> Option<Kind> {
    KNOWN
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, kind, _)| *kind)
}

/// The config-file key of a known flag name (without dashes in front).
fn flag_key(flag: &str) -> Option<(&'static str, Kind)> {
    KNOWN
        .iter()
        .find(|(key, _, own)| {
            if own.is_empty() {
                flag.len() == key.len()
                    && flag
                        .bytes()
                        .zip(key.bytes())
                        .all(|(f, k)| f == k || (f == b'-' && k == b'_'))
            } else {
                *own == flag
            }
        })
        .map(|(key, kind, _)| (*key, *kind))
}

/// A known key for a config-file or environment name (aliases resolved).
fn canonical(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(lower, |(_, key)| (*key).to_string())
}

/// One option's value, as a source gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Raw {
    Text(String),
    Bool(bool),
    List(Vec<String>),
}

/// Everything given, merged.
#[derive(Debug, Default)]
pub(super) struct Options {
    /// Known options by config-file key.
    pub values: BTreeMap<String, Raw>,
    /// Unknown option names (normalized like known ones), first mention
    /// first, each with the known key it was probably meant to be. Their
    /// values are never kept.
    pub unknown: Vec<(String, Option<&'static str>)>,
    /// Command-line arguments that were not flags (oauth2-proxy ignores them).
    pub stray: usize,
    /// Parts of an alpha configuration with no legacy form: where in the
    /// YAML, and why.
    pub alpha: Vec<(String, String)>,
}

impl Options {
    fn note_unknown(&mut self, name: String, meant: Option<&'static str>) {
        if !self.unknown.iter().any(|(n, _)| *n == name) {
            self.unknown.push((name, meant));
        }
    }

    /// Puts `later` over `self`, key by key.
    fn overlay(&mut self, later: Options) {
        self.values.extend(later.values);
        for (name, meant) in later.unknown {
            self.note_unknown(name, meant);
        }
        self.stray += later.stray;
        self.alpha.extend(later.alpha);
    }
}

/// Reads the three sources and merges them: flags over environment over
/// file; `alpha`, the alpha configuration already read, right over the file.
pub(super) fn read(input: &Input, alpha: Option<Options>) -> Result<Options, ConvertError> {
    let mut merged = match &input.config_file {
        Some(text) => from_file(text)?,
        None => Options::default(),
    };
    // oauth2-proxy refuses an option set in both; the alpha file's
    // structure is read after the legacy file.
    if let Some(alpha) = alpha {
        merged.overlay(alpha);
    }
    merged.overlay(from_env(&input.env));
    merged.overlay(from_flags(&input.flags)?);
    Ok(merged)
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn from_file(text: &str) -> Result<Options, ConvertError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConvertError::ConfigFile {
        line: e.span().map_or(1, |s| line_at(text, s.start)),
        // Only the description: the error's Display quotes the line, which
        // may hold a secret.
        message: e.message().trim().to_string(),
    })?;
    let mut out = Options::default();
    for (name, value) in table {
        let key = canonical(&name);
        match (kind(&key), file_value(value)) {
            (Some(_), Some(raw)) => {
                out.values.insert(key, raw);
            }
            _ => out.note_unknown(key, None),
        }
    }
    Ok(out)
}

/// A config-file value as text, boolean or list; `None` for a table.
fn file_value(value: toml::Value) -> Option<Raw> {
    match value {
        toml::Value::Boolean(b) => Some(Raw::Bool(b)),
        toml::Value::Array(items) => Some(Raw::List(
            items.into_iter().filter_map(scalar_text).collect(),
        )),
        toml::Value::Table(_) => None,
        other => scalar_text(other).map(Raw::Text),
    }
}

fn scalar_text(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// Comma-separated values, trimmed, empty ones dropped.
pub(super) fn split_commas(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn from_env(env: &[(String, String)]) -> Options {
    let mut out = Options::default();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("OAUTH2_PROXY_") else {
            continue;
        };
        // Like oauth2-proxy (viper), an empty variable counts as unset.
        if rest.is_empty() || value.is_empty() {
            continue;
        }
        let key = canonical(rest);
        match kind(&key) {
            Some(List) => {
                out.values.insert(key, Raw::List(split_commas(value)));
            }
            Some(_) => {
                out.values.insert(key, Raw::Text(value.clone()));
            }
            // `OAUTH2_PROXY_EMAIL_DOMAIN`: the flag's singular, which
            // oauth2-proxy silently ignores (it reads `..._DOMAINS`).
            None => {
                let meant = flag_key(&key.replace('_', "-"))
                    .filter(|(k, kind)| *kind == List && *k != key)
                    .map(|(k, _)| k);
                out.note_unknown(key, meant);
            }
        }
    }
    out
}

fn from_flags(flags: &[String]) -> Result<Options, ConvertError> {
    let mut out = Options::default();
    let mut args = flags.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            // Everything after is positional, which oauth2-proxy ignores.
            out.stray += args.len();
            break;
        }
        // `--name` (pflag) or `-name` (the Go `flag` package of old releases).
        let body = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|b| !b.is_empty() && !b.starts_with('-'));
        let Some(body) = body else {
            out.stray += 1;
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some((key, kind)) = flag_key(&name.to_ascii_lowercase()) else {
            // Unknown: take a following non-flag as its value, so that it is
            // not counted as a stray argument; the value is never kept.
            let next_is_value = args.as_slice().first().is_some_and(|a| !a.starts_with('-'));
            if inline.is_none() && next_is_value {
                args.next();
            }
            out.note_unknown(name.replace('-', "_").to_ascii_lowercase(), None);
            continue;
        };
        let raw = match (kind, inline) {
            (Bool, None) => Raw::Bool(true),
            (_, Some(v)) => Raw::Text(v),
            (_, None) => match args.next() {
                Some(v) => Raw::Text(v.clone()),
                None => return Err(ConvertError::MissingValue(format!("--{name}"))),
            },
        };
        add_flag(&mut out, key, kind, raw);
    }
    Ok(out)
}

/// Records one flag: list flags accumulate (and split on commas, as
/// pflag's string slices do); others take the last value.
fn add_flag(out: &mut Options, key: &str, kind: Kind, raw: Raw) {
    if kind != List {
        out.values.insert(key.to_string(), raw);
        return;
    }
    let Raw::Text(text) = raw else {
        return;
    };
    let new = split_commas(&text);
    match out.values.get_mut(key) {
        Some(Raw::List(items)) => items.extend(new),
        _ => {
            out.values.insert(key.to_string(), Raw::List(new));
        }
    }
}
