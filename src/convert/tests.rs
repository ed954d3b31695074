use super::*;

/// oauth2-proxy's own example configuration, verbatim:
/// <https://github.com/oauth2-proxy/oauth2-proxy/blob/master/contrib/oauth2-proxy.cfg.example>
/// (as of commit 2202bd70140bdb5dbb7f8d7ca0a12ba48ca937b1). Every setting in
/// it is commented out.
const EXAMPLE: &str = r##"## OAuth2 Proxy Config File
## https://github.com/oauth2-proxy/oauth2-proxy

## <addr>:<port> to listen on for HTTP/HTTPS clients
# http_address = "127.0.0.1:4180"
# https_address = ":443"

## Are we running behind a reverse proxy? Will not accept headers like X-Real-Ip unless this is set.
# reverse_proxy = true

## TLS Settings
# tls_cert_file = ""
# tls_key_file = ""

## the OAuth Redirect URL.
# defaults to the "https://" + requested host header + "/oauth2/callback"
# redirect_url = "https://internalapp.yourcompany.com/oauth2/callback"

## the http url(s) of the upstream endpoint. If multiple, routing is based on path
# upstreams = [
#     "http://127.0.0.1:8080/"
# ]

## Logging configuration
#logging_filename = ""
#logging_max_size = 100
#logging_max_age = 7
#logging_local_time = true
#logging_compress = false
#standard_logging = true
#standard_logging_format = "[{{.Timestamp}}] [{{.File}}] {{.Message}}"
#request_logging = true
#request_logging_format = "{{.Client}} - {{.Username}} [{{.Timestamp}}] {{.Host}} {{.RequestMethod}} {{.Upstream}} {{.RequestURI}} {{.Protocol}} {{.UserAgent}} {{.StatusCode}} {{.ResponseSize}} {{.RequestDuration}}"
#auth_logging = true
#auth_logging_format = "{{.Client}} - {{.Username}} [{{.Timestamp}}] [{{.Status}}] {{.Message}}"

## pass HTTP Basic Auth, X-Forwarded-User and X-Forwarded-Email information to upstream
# pass_basic_auth = true
# pass_user_headers = true
## pass the request Host Header to upstream
## when disabled the upstream Host is used as the Host Header
# pass_host_header = true

## Email Domains to allow authentication for (this authorizes any email on this domain)
## for more granular authorization use `authenticated_emails_file`
## To authorize any email addresses use "*"
# email_domains = [
#     "yourcompany.com"
# ]

## The OAuth Client ID, Secret
# client_id = "123456.apps.googleusercontent.com"
# client_secret = ""

## Scopes Added to the request
## It has the same behavior as the --scope flag
# scope = "openid email profile"

## Pass OAuth Access token to upstream via "X-Forwarded-Access-Token"
# pass_access_token = false

## Authenticated Email Addresses File (one email per line)
# authenticated_emails_file = ""

## Htpasswd File (optional)
## Additionally authenticate against a htpasswd file. Entries must be created with "htpasswd -B" for bcrypt encryption
## enabling exposes a username/login signin form
# htpasswd_file = ""

## bypass authentication for requests that match the method & path. Format: method=path_regex OR path_regex alone for all methods
# skip_auth_routes = [
#   "GET=^/probe",
#   "^/metrics"
# ]

## mark paths as API routes to get HTTP Status code 401 instead of redirect to login page
# api_routes = [
#   "^/api"
# ]

## Templates
## optional directory with custom sign_in.html and error.html
# custom_templates_dir = ""

## skip SSL checking for HTTPS requests
# ssl_insecure_skip_verify = false


## Cookie Settings
## Name     - the cookie name
## Secret   - the seed string for secure cookies; should be 16, 24, or 32 bytes
##            for use with an AES cipher when cookie_refresh or pass_access_token
##            is set
## Domain   - (optional) cookie domain to force cookies to (ie: .yourcompany.com)
## Expire   - (duration) expire timeframe for cookie
## Refresh  - (duration) refresh the cookie when duration has elapsed after cookie was initially set.
##            Should be less than cookie_expire; set to 0 to disable.
##            On refresh, OAuth token is re-validated.
##            (ie: 1h means tokens are refreshed on request 1hr+ after it was set)
## Secure   - secure cookies are only sent by the browser of a HTTPS connection (recommended)
## HttpOnly - httponly cookies are not readable by javascript (recommended)
# cookie_name = "_oauth2_proxy"
# cookie_secret = ""
# cookie_domains = ""
# cookie_expire = "168h"
# cookie_refresh = ""
# cookie_secure = true
# cookie_httponly = true

## Session Storage
## Session store type can be "cookie" (default), "redis", or "http"
# session_store_type = "cookie"

## HTTP Session Storage (requires session_store_type = "http")
## See https://oauth2-proxy.github.io/oauth2-proxy/docs/configuration/sessions#http-storage
# http_store_base_url = "https://session-store.example.com"
# http_store_api_key = "your-secret-api-key"
"##;

/// A 32-byte key in URL-safe base64, as oauth2-proxy's docs generate them.
const STRONG_SECRET: &str = "bXktdmVyeS1sb25nLWNvb2tpZS1zZWNyZXQtMzItYnl0ZXM=";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> Input {
    Input {
        config_file: Some(text.to_string()),
        ..Input::default()
    }
}

fn run(input: &Input) -> (Conversion, toml::Table) {
    let c = convert(input).expect("converts");
    let table = toml::from_str::<toml::Table>(&c.toml).expect("the output is TOML");
    (c, table)
}

/// `table.a.b.c`.
fn get<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let mut parts = path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn get_str<'t>(table: &'t toml::Table, path: &str) -> Option<&'t str> {
    get(table, path).and_then(toml::Value::as_str)
}

fn get_strs(table: &toml::Table, path: &str) -> Vec<String> {
    get(table, path)
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn outcome<'c>(c: &'c Conversion, option: &str) -> &'c Outcome {
    &c.report
        .iter()
        .find(|l| l.option == option)
        .unwrap_or_else(|| panic!("no report line for {option}: {:#?}", c.report))
        .outcome
}

fn report_text(c: &Conversion) -> String {
    c.report
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every key tollgate's own configuration types know, with the right types.
fn assert_tollgate_keys(text: &str) {
    if let Err(e) = toml::from_str::<crate::config::RawConfig>(text) {
        panic!("not tollgate's configuration: {e}\n{text}");
    }
}

/// The example with its settings uncommented (`# key = value` lines and
/// the lines of multi-line arrays); `##` lines stay comments.
fn uncommented(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("##") {
                return line.to_string();
            }
            let Some(body) = line.strip_prefix('#').map(str::trim_start) else {
                return line.to_string();
            };
            let setting = body.split_once('=').is_some_and(|(k, _)| {
                let k = k.trim();
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
            if setting || body.starts_with('"') || body == "]" {
                body.to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    lines.join("\n")
}

#[test]
fn oauth2_proxys_example_converts_as_shipped() {
    let (c, table) = run(&file(EXAMPLE));
    assert!(c.toml.starts_with(
        "# Converted from oauth2-proxy by `tollgate convert`; review every line marked REVIEW"
    ));
    // Nothing is set, so oauth2-proxy's defaults show through.
    assert_eq!(get_str(&table, "server.listen"), Some("127.0.0.1:4180"));
    assert_eq!(get_str(&table, "server.health_path"), Some("/ping"));
    assert_eq!(get_str(&table, "provider.kind"), Some("google"));
    assert_eq!(
        get(&table, "upstream.pass_access_token").and_then(toml::Value::as_bool),
        Some(false)
    );
    // Required keys without a value are left commented out, for review.
    assert!(get(&table, "server.public_url").is_none());
    assert!(c.toml.contains("# public_url = "));
    assert!(get(&table, "upstream.url").is_none());
    assert_eq!(
        get_str(&table, "session.secret"),
        Some("<output of `tollgate generate-secret`>")
    );
    assert!(matches!(outcome(&c, "cookie_secret"), Outcome::Changed(_)));
    assert_tollgate_keys(&c.toml);
}

#[test]
fn oauth2_proxys_example_with_every_setting_on() {
    let text = uncommented(EXAMPLE);
    assert!(text.contains("\nredirect_url = "), "{text}");
    let (c, table) = run(&file(&text));
    assert_eq!(get_str(&table, "server.listen"), Some("127.0.0.1:4180"));
    assert_eq!(
        get_str(&table, "server.public_url"),
        Some("https://internalapp.yourcompany.com")
    );
    assert_eq!(
        get_str(&table, "provider.redirect_url"),
        Some("https://internalapp.yourcompany.com/oauth2/callback")
    );
    assert_eq!(
        get_str(&table, "upstream.url"),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(get_str(&table, "provider.kind"), Some("google"));
    assert_eq!(
        get_str(&table, "provider.client_id"),
        Some("123456.apps.googleusercontent.com")
    );
    assert_eq!(
        get_strs(&table, "provider.scopes"),
        strings(&["openid", "email", "profile"])
    );
    assert_eq!(
        get_strs(&table, "authorization.allowed_email_domains"),
        strings(&["yourcompany.com"])
    );
    assert_eq!(
        get_str(&table, "session.cookie_name"),
        Some("_oauth2_proxy")
    );
    assert_eq!(get_str(&table, "session.lifetime"), Some("168h"));
    assert_eq!(
        get(&table, "session.secure").and_then(toml::Value::as_bool),
        Some(true)
    );
    // skip_auth_routes: anchored, with the method kept.
    let routes = get(&table, "routes.public")
        .and_then(toml::Value::as_array)
        .expect("public routes");
    assert_eq!(routes.len(), 2);
    assert_eq!(
        routes[0].get("path").and_then(toml::Value::as_str),
        Some("/probe.*")
    );
    assert_eq!(
        routes[0]
            .get("methods")
            .and_then(toml::Value::as_array)
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        routes[1].get("path").and_then(toml::Value::as_str),
        Some("/metrics.*")
    );
    // reverse_proxy needs the proxies' addresses: a commented placeholder.
    assert!(matches!(outcome(&c, "reverse_proxy"), Outcome::Changed(_)));
    assert!(c.toml.contains("# trusted_proxies = "));
    assert!(matches!(outcome(&c, "api_routes"), Outcome::Changed(_)));
    assert!(matches!(outcome(&c, "https_address"), Outcome::Unmapped(_)));
    assert!(matches!(
        outcome(&c, "http_store_base_url"),
        Outcome::Unmapped(_)
    ));
    assert!(matches!(outcome(&c, "email_domains"), Outcome::Mapped));
    assert!(matches!(outcome(&c, "upstreams[0]"), Outcome::Mapped));
    // The example's own secret-looking value never reaches the report.
    assert!(!report_text(&c).contains("your-secret-api-key"));
    assert_tollgate_keys(&c.toml);
}

#[test]
fn flags_beat_environment_beat_file() {
    let input = Input {
        alpha_config: None,
        config_file: Some(
            "provider = \"oidc\"\nclient_id = \"from-file\"\nscope = \"openid email\"\n\
             email_domains = [\"file.example\"]\nupstreams = [\"http://file:1/\"]\n\
             oidc_issuer_url = \"https://idp.example.com\"\n"
                .into(),
        ),
        flags: strings(&[
            "--client-id=from-flag",
            "--email-domain",
            "a.example",
            "--email-domain=b.example,c.example",
            "--cookie-secure=false",
            "--pass-access-token",
        ]),
        env: env(&[
            ("OAUTH2_PROXY_CLIENT_ID", "from-env"),
            ("OAUTH2_PROXY_SCOPE", "openid email groups"),
            (
                "OAUTH2_PROXY_UPSTREAMS",
                "http://env-1:8080/,http://env-2:8080/",
            ),
            ("OAUTH2_PROXY_COOKIE_SECURE", "true"),
            ("HOME", "/root"),
            ("OAUTH2_PROXY_NOT_AN_OPTION", "x"),
        ]),
    };
    let (c, table) = run(&input);
    assert_eq!(get_str(&table, "provider.client_id"), Some("from-flag"));
    assert_eq!(
        get_strs(&table, "provider.scopes"),
        strings(&["openid", "email", "groups"])
    );
    // Repeated list flags accumulate, commas split.
    assert_eq!(
        get_strs(&table, "authorization.allowed_email_domains"),
        strings(&["a.example", "b.example", "c.example"])
    );
    // Environment lists are comma-separated; one upstream is kept.
    assert_eq!(get_str(&table, "upstream.url"), Some("http://env-1:8080"));
    assert!(matches!(outcome(&c, "upstreams[1]"), Outcome::Unmapped(_)));
    assert_eq!(
        get(&table, "session.secure").and_then(toml::Value::as_bool),
        Some(false)
    );
    assert_eq!(
        get(&table, "upstream.pass_access_token").and_then(toml::Value::as_bool),
        Some(true)
    );
    assert!(matches!(outcome(&c, "not_an_option"), Outcome::Unmapped(_)));
    assert!(!c.report.iter().any(|l| l.option == "home"));
    assert_tollgate_keys(&c.toml);
}

#[test]
fn a_flag_without_its_value_is_an_error() {
    let input = Input {
        alpha_config: None,
        flags: strings(&["--provider=oidc", "--client-id"]),
        ..Input::default()
    };
    assert!(matches!(convert(&input), Err(ConvertError::MissingValue(f)) if f == "--client-id"));
}

#[test]
fn a_broken_config_file_names_its_line_and_not_its_text() {
    let input = file("provider = \"oidc\"\nclient_secret = \"hunter2\nclient_id = \"x\"\n");
    match convert(&input) {
        Err(e @ ConvertError::ConfigFile { line: 2, .. }) => {
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a broken file converted"),
    }
}

#[test]
fn keycloak_oidc_with_groups_roles_and_redis_sentinel() {
    let config = format!(
        r#"
provider = "keycloak-oidc"
oidc_issuer_url = "https://sso.example.com/realms/apps"
client_id = "tollgate"
client_secret_file = "/var/run/secrets/client-secret"
redirect_url = "https://app.example.com/oauth2/callback"
upstreams = ["http://app:8080/"]
email_domains = ["example.com"]
allowed_groups = ["/admins"]
allowed_roles = ["editor", "tollgate:viewer"]
code_challenge_method = "S256"
cookie_secret = "{STRONG_SECRET}"
session_store_type = "redis"
redis_use_sentinel = true
redis_sentinel_master_name = "primary"
redis_sentinel_connection_urls = ["redis://s1:26379", "redis://s2:26379"]
redis_sentinel_password = "sentinel-pw"
redis_password = "data-pw"
"#
    );
    let (c, table) = run(&file(&config));
    assert_eq!(get_str(&table, "provider.kind"), Some("keycloak"));
    assert_eq!(
        get_str(&table, "provider.issuer"),
        Some("https://sso.example.com/realms/apps")
    );
    assert_eq!(
        get_str(&table, "provider.client_secret_file"),
        Some("/var/run/secrets/client-secret")
    );
    assert!(get(&table, "provider.client_secret").is_none());
    // oauth2-proxy's default scope when allowed_groups is set.
    assert_eq!(
        get_strs(&table, "provider.scopes"),
        strings(&["openid", "email", "profile", "groups"])
    );
    // Email domain AND groups/roles: the groups become a catch-all rule.
    assert_eq!(
        get_strs(&table, "authorization.allowed_email_domains"),
        strings(&["example.com"])
    );
    assert!(get(&table, "authorization.allowed_groups").is_none());
    let rules = get(&table, "authorization.rules")
        .and_then(toml::Value::as_array)
        .expect("one rule");
    assert_eq!(rules.len(), 1);
    let allow: Vec<&str> = rules[0]
        .get("allow_groups")
        .and_then(toml::Value::as_array)
        .expect("allow_groups")
        .iter()
        .filter_map(toml::Value::as_str)
        .collect();
    assert_eq!(allow, ["/admins", "editor", "tollgate:viewer"]);
    assert!(rules[0].get("paths").is_none() && rules[0].get("methods").is_none());
    // Redis sentinel.
    assert_eq!(get_str(&table, "session.store"), Some("redis"));
    assert_eq!(get_str(&table, "session.redis.mode"), Some("sentinel"));
    assert_eq!(
        get_str(&table, "session.redis.sentinel_master"),
        Some("primary")
    );
    assert_eq!(
        get_strs(&table, "session.redis.nodes"),
        strings(&[
            "redis://:sentinel-pw@s1:26379",
            "redis://:sentinel-pw@s2:26379"
        ])
    );
    assert_eq!(get_str(&table, "session.redis.password"), Some("data-pw"));
    assert_eq!(get_str(&table, "session.secret"), Some(STRONG_SECRET));
    for option in [
        "provider",
        "allowed_groups",
        "allowed_roles",
        "cookie_secret",
        "redis_use_sentinel",
    ] {
        assert_eq!(outcome(&c, option), &Outcome::Mapped, "{option}");
    }
    assert!(matches!(
        outcome(&c, "redis_sentinel_password"),
        Outcome::Changed(_)
    ));
    assert_tollgate_keys(&c.toml);
}

#[test]
fn secrets_never_appear_in_the_report() {
    let secrets = [
        "client-secret-value-1234",
        "cookie-secret-too-short",
        "redis-password-value",
        "sentinel-password-value",
        "basic-auth-password-value",
        "github-token-value",
        "unknown-option-value",
    ];
    let config = format!(
        "provider = \"oidc\"\nclient_secret = \"{}\"\ncookie_secret = \"{}\"\n\
         session_store_type = \"redis\"\nredis_password = \"{}\"\n\
         redis_connection_url = \"redis://:{}@redis:6379\"\n\
         basic_auth_password = \"{}\"\ngithub_token = \"{}\"\nmystery = \"{}\"\n",
        secrets[0], secrets[1], secrets[2], secrets[3], secrets[4], secrets[5], secrets[6]
    );
    let input = Input {
        alpha_config: None,
        config_file: Some(config),
        flags: strings(&[
            "--jwt-key",
            "jwt-key-value",
            "--unknown-flag",
            "unknown-flag-value",
        ]),
        env: env(&[("OAUTH2_PROXY_HTTP_STORE_API_KEY", "api-key-value")]),
    };
    let (c, _) = run(&input);
    let report = report_text(&c);
    for secret in secrets
        .iter()
        .chain(&["jwt-key-value", "unknown-flag-value", "api-key-value"])
    {
        assert!(!report.contains(secret), "{secret} leaked:\n{report}");
    }
    // The user's own file keeps what it can use; a weak session key never.
    assert!(c.toml.contains(secrets[0]));
    assert!(c.toml.contains(secrets[2]));
    assert!(!c.toml.contains(secrets[1]));
    assert!(matches!(outcome(&c, "cookie_secret"), Outcome::Changed(_)));
    assert!(matches!(
        outcome(&c, "basic_auth_password"),
        Outcome::Unmapped(_)
    ));
}

#[test]
fn unknown_options_are_reported_unmapped() {
    let input = Input {
        alpha_config: None,
        config_file: Some("frobnicate = true\n[nested]\nx = 1\n".into()),
        flags: strings(&["--no-such-flag=1", "--another", "value", "stray"]),
        env: env(&[("OAUTH2_PROXY_EMAIL_DOMAIN", "example.com")]),
    };
    let (c, _) = run(&input);
    for option in ["frobnicate", "nested", "no_such_flag", "another"] {
        assert_eq!(
            outcome(&c, option),
            &Outcome::Unmapped("not a known oauth2-proxy option".into()),
            "{option}"
        );
    }
    // The flag's singular in the environment, which oauth2-proxy ignores.
    match outcome(&c, "email_domain") {
        Outcome::Unmapped(why) => {
            assert!(why.starts_with("not a known oauth2-proxy option"), "{why}");
            assert!(why.contains("OAUTH2_PROXY_EMAIL_DOMAINS"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(get(&run(&input).1, "authorization.allowed_email_domains").is_none());
    assert!(matches!(outcome(&c, "argument #1"), Outcome::Unmapped(_)));
}

#[test]
fn every_option_given_has_one_report_line() {
    let input = Input {
        alpha_config: None,
        config_file: Some(uncommented(EXAMPLE)),
        ..Input::default()
    };
    let (c, _) = run(&input);
    let mut seen = std::collections::BTreeSet::new();
    for line in &c.report {
        assert!(seen.insert(line.option.clone()), "{} twice", line.option);
    }
    for key in [
        "logging_filename",
        "logging_max_size",
        "standard_logging_format",
        "cookie_httponly",
        "pass_basic_auth",
    ] {
        assert!(seen.contains(key), "{key} missing:\n{}", report_text(&c));
    }
}

#[test]
fn the_output_is_toml_for_many_inputs() {
    let inputs = [
        "provider = \"github\"\ngithub_org = \"acme\"\ngithub_team = \"ops,dev\"\nclient_id = \"Iv1.x\"\nclient_secret = \"s\"\n",
        "provider = \"entra-id\"\noidc_issuer_url = \"https://login.microsoftonline.com/common/v2.0\"\nentra_id_allowed_tenants = [\"t1\"]\nentra_id_federated_token_auth = true\n",
        "provider = \"azure\"\nazure_tenant = \"0b1c\"\n",
        "provider = \"facebook\"\n",
        "http_address = \"unix:///run/op.sock\"\nmetrics_address = \":9100\"\n",
        "tls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"\nhttps_address = \":8443\"\n",
        "whitelist_domains = [\".example.com\", \"a.example.org:*\", \"b.example.net:8443\"]\n",
        "skip_auth_regex = [\"^/a|^/b\", \"/c$\", \"\"]\nskip_auth_routes = [\"POST!=^/x\", \"!=^/y\"]\n",
        "session_store_type = \"redis\"\nredis_use_cluster = true\nredis_cluster_connection_urls = [\"rediss://n1:6379\"]\n",
        "authenticated_emails_file = \"/etc/emails\"\nemail_domains = [\"*\"]\nallowed_groups = [\"g\"]\n",
        "skip_jwt_bearer_tokens = true\noidc_issuer_url = \"https://idp\"\nclient_id = \"c\"\nextra_jwt_issuers = [\"https://idp=api\", \"https://other=aud2\", \"https://other=aud3\", \"junk\"]\n",
        "prompt = \"login\"\napproval_prompt = \"force\"\nacr_values = \"a b\"\nresource = \"https://r\"\nauth_request_response_mode = \"form_post\"\n",
        "cookie_expire = \"1h30m\"\ncookie_refresh = \"1h\"\nupstream_timeout = \"1.5s\"\ncookie_samesite = \"Strict\"\ncookie_domains = [\"a.example\", \"b.example\"]\n",
        "scope = \"user:email read:org\"\nprovider = \"gitlab\"\ngitlab_groups = [\"acme/ops\"]\ngitlab_projects = [\"acme/app\"]\n",
        "oidc_enabled_signing_algs = [\"RS256\", \"none\"]\nprovider_ca_files = [\"/a.pem\", \"/b.pem\"]\n",
    ];
    for text in inputs {
        let (c, _) = run(&file(text));
        assert_tollgate_keys(&c.toml);
    }
}

#[test]
fn unexpressible_restrictions_fail_closed() {
    let (c, table) = run(&file(
        "provider = \"gitlab\"\nemail_domains = [\"*\"]\ngitlab_projects = [\"acme/app\"]\n",
    ));
    assert!(matches!(
        outcome(&c, "gitlab_projects"),
        Outcome::Unmapped(_)
    ));
    // A placeholder tollgate refuses (no `@`), not an open door.
    let emails = get_strs(&table, "authorization.allowed_emails");
    assert_eq!(emails.len(), 1);
    assert!(!emails[0].contains('@'));
}

#[test]
fn skip_auth_regexes_keep_their_meaning_once_anchored() {
    assert_eq!(
        access_anchored("^/public/.*$"),
        ("/public/.*".to_string(), true)
    );
    assert_eq!(
        access_anchored("^/static/"),
        ("/static/.*".to_string(), true)
    );
    assert_eq!(
        access_anchored("^/metrics"),
        ("/metrics.*".to_string(), false)
    );
    assert_eq!(
        access_anchored("/api/v1"),
        (".*/api/v1.*".to_string(), false)
    );
    assert_eq!(
        access_anchored("^/a|^/b"),
        (".*(?:^/a|^/b).*".to_string(), false)
    );
}

fn access_anchored(re: &str) -> (String, bool) {
    access::anchored(re)
}

#[test]
fn go_durations_become_tollgate_durations() {
    for (go, ours) in [
        ("168h0m0s", "168h"),
        ("1h30m", "90m"),
        ("30s", "30s"),
        ("1.5s", "1500ms"),
        ("500ms", "500ms"),
        ("0", "0s"),
        ("2h", "2h"),
    ] {
        let ms = doc::go_duration_ms(go).expect(go);
        assert_eq!(doc::human(ms), ours, "{go}");
    }
    assert_eq!(doc::go_duration_ms("soon"), None);
    assert_eq!(doc::go_duration_ms("5"), None);
}

#[test]
fn a_strong_secret_is_carried_and_the_config_loads() {
    let config = format!(
        r#"
provider = "oidc"
oidc_issuer_url = "https://idp.example.com"
client_id = "my-app"
client_secret = "s3cret"
redirect_url = "https://app.example.com/oauth2/callback"
http_address = "0.0.0.0:4180"
upstreams = ["http://127.0.0.1:8080/"]
email_domains = ["example.com"]
allowed_groups = ["staff"]
skip_auth_routes = ["GET=^/static/", "^/healthcheck$"]
whitelist_domains = [".example.com"]
cookie_secret = "{STRONG_SECRET}"
cookie_expire = "8h"
reverse_proxy = true
trusted_proxy_ips = ["10.0.0.0/8"]
skip_jwt_bearer_tokens = true
oidc_extra_audiences = ["https://api.example.com"]
metrics_address = "127.0.0.1:9100"
"#
    );
    let (c, _) = run(&file(&config));
    if let Err(e) = crate::config::load_str(&c.toml, &[]) {
        panic!("{e}\n{}", c.toml);
    }
}

/// What `oauth2-proxy --convert-config-to-alpha` writes for an OIDC setup
/// (the shape its "Alpha Configuration" documentation shows), header
/// values in the squashed form of releases before v7.14.
const ALPHA: &str = r#"
upstreamConfig:
  upstreams:
  - id: /
    path: /
    uri: http://127.0.0.1:8080
    flushInterval: 1s
    passHostHeader: true
    proxyWebSockets: true
injectRequestHeaders:
- name: X-Forwarded-Groups
  values:
  - claim: groups
- name: X-Forwarded-User
  values:
  - claim: user
- name: X-Forwarded-Email
  values:
  - claim: email
- name: X-Forwarded-Preferred-Username
  values:
  - claim: preferred_username
- name: X-Tenant
  values:
  - claim: tenant
injectResponseHeaders:
- name: X-Auth-Request-User
  values:
  - claim: user
- name: X-Auth-Request-Email
  values:
  - claim: email
server:
  BindAddress: 0.0.0.0:4180
providers:
- provider: oidc
  id: oidc=my-client
  clientID: my-client
  clientSecret: very-secret-value
  oidcConfig:
    issuerURL: https://idp.example.com/realms/main
    emailClaim: email
    groupsClaim: groups
    audienceClaims: [aud]
    insecureSkipNonce: true
  scope: openid email profile
  allowedGroups: [admins]
  code_challenge_method: S256
- provider: github
  clientID: second
"#;

fn alpha(yaml: &str) -> Input {
    Input {
        alpha_config: Some(yaml.to_string()),
        config_file: Some("email_domains = [\"example.com\"]\ncookie_secret = \"0123456789abcdef0123456789abcdef\"\n".into()),
        ..Input::default()
    }
}

#[test]
fn oauth2_proxys_alpha_configuration_converts() {
    let (c, table) = run(&alpha(ALPHA));
    assert_tollgate_keys(&c.toml);
    assert_eq!(
        get_str(&table, "upstream.url"),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(
        get_str(&table, "provider.issuer"),
        Some("https://idp.example.com/realms/main")
    );
    assert_eq!(get_str(&table, "provider.client_id"), Some("my-client"));
    // With the legacy file's email domains: both must hold, so a rule.
    assert!(c.toml.contains("allow_groups = [\"admins\"]"), "{}", c.toml);
    assert_eq!(get_str(&table, "server.listen"), Some("0.0.0.0:4180"));
    let report = report_text(&c);
    // Mapped under their legacy names, reported as such.
    assert_eq!(outcome(&c, "client_id"), &Outcome::Mapped, "{report}");
    assert!(
        matches!(outcome(&c, "insecure_oidc_skip_nonce"), Outcome::Changed(_)),
        "{report}"
    );
    // What the legacy options cannot say, by its place in the YAML.
    assert!(
        matches!(
            outcome(&c, "alpha: injectRequestHeaders[4]"),
            Outcome::Unmapped(_)
        ),
        "{report}"
    );
    assert!(
        matches!(outcome(&c, "alpha: providers[1]"), Outcome::Unmapped(_)),
        "{report}"
    );
    assert!(!report.contains("very-secret-value"));
}

/// v7.14's nested header sources, and upstreams that disagree on a switch.
#[test]
fn alpha_nested_header_sources_and_several_upstreams() {
    let yaml = r#"
upstreamConfig:
  upstreams:
  - id: app
    path: /
    uri: http://app:8080
    passHostHeader: true
  - id: api
    path: /api/
    uri: http://api:9000
    passHostHeader: false
injectRequestHeaders:
- name: X-Forwarded-Access-Token
  values:
  - claimSource:
      claim: access_token
- name: X-Secret
  values:
  - secretSource:
      value: c2VjcmV0
providers:
- provider: oidc
  clientID: c
  clientSecret: s
  oidcConfig:
    issuerURL: https://idp.example.com
"#;
    let (c, _table) = run(&alpha(yaml));
    assert_tollgate_keys(&c.toml);
    let report = report_text(&c);
    assert!(
        matches!(
            outcome(&c, "alpha: upstreamConfig.upstreams[].passHostHeader"),
            Outcome::Unmapped(_)
        ),
        "{report}"
    );
    assert!(
        matches!(
            outcome(&c, "alpha: injectRequestHeaders[1]"),
            Outcome::Unmapped(_)
        ),
        "{report}"
    );
    assert!(
        c.report.iter().any(|l| l.option.starts_with("upstreams")),
        "{report}"
    );
}

#[test]
fn broken_alpha_yaml_names_its_line() {
    let err = convert(&alpha("providers:\n  - clientID: [unclosed\n")).expect_err("refused");
    assert!(
        matches!(err, ConvertError::AlphaConfig { line, .. } if line >= 2),
        "{err}"
    );
}

#[test]
fn an_alpha_upstream_that_leaves_a_switch_out_has_the_default() {
    let yaml = "upstreamConfig:\n  upstreams:\n  - id: a\n    path: /\n    uri: http://a:1\n    passHostHeader: false\n  - id: b\n    path: /b/\n    uri: http://b:1\n";
    let (c, _) = run(&alpha(yaml));
    assert!(
        matches!(
            outcome(&c, "alpha: upstreamConfig.upstreams[].passHostHeader"),
            Outcome::Unmapped(_)
        ),
        "{}",
        report_text(&c)
    );
}
