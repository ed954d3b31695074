use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn write(text: &str) -> (tempfile::TempDir, ConfigPath) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, ConfigPath::Named(path, "--config"))
}

fn minimal() -> String {
    format!(
        r#"
[server]
public_url = "https://app.example.com"
[upstream]
url = "http://127.0.0.1:8080"
[provider]
issuer = "https://idp.example.com"
client_id = "my-app"
client_secret = "s3:cr%t+&= x"
[session]
secret = "{KEY}"
"#
    )
}

/// The keys a configuration text is refused for.
fn refused_keys(text: &str) -> Vec<String> {
    let (_dir, path) = write(text);
    errors(load(&path, &[]))
        .into_iter()
        .map(|e| e.key)
        .collect()
}

fn errors(result: Result<(Config, RawConfig), ConfigError>) -> Vec<KeyError> {
    match result {
        Err(ConfigError::Invalid(e)) => e,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("config unexpectedly valid"),
    }
}

#[test]
fn minimal_config_loads_with_documented_defaults() {
    let (_d, path) = write(&minimal());
    let (c, _) = load(&path, &[]).expect("valid");
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:4180");
    assert_eq!(
        c.provider().redirect_url.as_str(),
        "https://app.example.com/oauth2/callback"
    );
    assert_eq!(c.provider().client_auth, ClientAuth::ClientSecretBasic);
    assert_eq!(
        c.provider().client_secret.as_ref().map(|s| s.expose_str()),
        Some("s3:cr%t+&= x")
    );
    assert_eq!(c.session.lifetime, Duration::from_secs(12 * 3600));
    assert_eq!(c.session.cookie_name, "_tollgate");
    assert!(c.session.secure);
    assert!(c.provider().pkce);
}

#[test]
fn environment_overrides_file_and_numeric_values_load_as_strings() {
    let (_d, path) = write(&minimal());
    let (c, _) = load(
        &path,
        &env(&[
            ("TOLLGATE_PROVIDER__CLIENT_ID", "12345"),
            ("TOLLGATE_SESSION__LIFETIME", "30m"),
            ("TOLLGATE_SESSION__SECURE", "false"),
            ("TOLLGATE_CONFIG", "ignored.toml"),
            ("TOLLGATE_PORT", "tcp://10.0.0.1:4180"),
            ("TOLLGATE_SERVICE_HOST", "10.0.0.1"),
            ("OTHER_VAR", "ignored"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.provider().client_id, "12345");
    assert_eq!(c.session.lifetime, Duration::from_secs(1800));
    assert!(!c.session.secure);
}

#[test]
fn unknown_key_is_named_with_a_suggestion_and_the_file() {
    let (_d, path) = write(&minimal().replace("[upstream]", "[upstream]\ntimout = \"3s\""));
    let errs = errors(load(&path, &[]));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "upstream.timout");
    assert!(
        errs[0].message.contains("did you mean `timeout`"),
        "{}",
        errs[0].message
    );
    assert!(
        errs[0].origin.ends_with("tollgate.toml"),
        "{}",
        errs[0].origin
    );
}

#[test]
fn unknown_key_from_environment_names_the_variable() {
    let (_d, path) = write(&minimal());
    let errs = errors(load(
        &path,
        &env(&[("TOLLGATE_SERVER__LISEN", "1.2.3.4:1")]),
    ));
    assert_eq!(errs[0].key, "server.lisen");
    assert!(errs[0].message.contains("`listen`"), "{}", errs[0].message);
    assert!(
        errs[0].origin.contains("TOLLGATE_SERVER__LISEN"),
        "{}",
        errs[0].origin
    );
}

#[test]
fn named_file_that_does_not_exist_is_an_error() {
    let path = ConfigPath::Named("/nonexistent/tollgate.toml".into(), "--config");
    assert!(matches!(
        load(&path, &[]),
        Err(ConfigError::FileMissing { .. })
    ));
}

#[test]
fn http_issuer_is_refused_unless_loopback() {
    let (_d, path) = write(&minimal().replace("https://idp.example.com", "http://idp.example.com"));
    let errs = errors(load(&path, &[]));
    assert_eq!(errs[0].key, "provider.issuer");
    assert!(errs[0].message.contains("non-loopback"));
    for ok in [
        "http://127.0.0.1:9000",
        "http://127.8.9.1",
        "http://localhost:9000",
        "http://[::1]:9000",
    ] {
        let (_d, path) = write(&minimal().replace("https://idp.example.com", ok));
        load(&path, &[]).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn errors_name_the_key_and_where_the_value_came_from() {
    let (_d, path) = write(&minimal());
    let errs = errors(load(
        &path,
        &env(&[
            ("TOLLGATE_SESSION__LIFETIME", "forever"),
            ("TOLLGATE_SESSION__SECRET", "c2hvcnQ="),
        ]),
    ));
    let lifetime = errs
        .iter()
        .find(|e| e.key == "session.lifetime")
        .expect("lifetime error");
    assert!(
        lifetime.origin.contains("TOLLGATE_SESSION__LIFETIME"),
        "{}",
        lifetime.origin
    );
    let secret = errs
        .iter()
        .find(|e| e.key == "session.secret")
        .expect("secret error");
    assert!(secret.message.contains("at least 32"), "{}", secret.message);
}

#[test]
fn secrets_can_come_from_files_with_trailing_newline_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "from-file\n").expect("write");
    let text = minimal().replace(
        "client_secret = \"s3:cr%t+&= x\"",
        &format!("client_secret_file = \"{}\"", secret.display()),
    );
    let (_d, path) = write(&text);
    let (c, _) = load(&path, &[]).expect("valid");
    assert_eq!(
        c.provider().client_secret.as_ref().map(|s| s.expose_str()),
        Some("from-file")
    );
}

#[test]
fn inline_and_file_secret_together_is_an_error() {
    let (_d, path) = write(&minimal().replace(
        "client_secret = \"s3:cr%t+&= x\"",
        "client_secret = \"a\"\nclient_secret_file = \"/etc/hostname\"",
    ));
    let errs = errors(load(&path, &[]));
    assert!(errs[0].message.contains("not both"));
}

#[test]
fn none_algorithm_is_never_accepted() {
    let (_d, path) = write(&minimal().replace(
        "client_secret =",
        "id_token_algorithms = [\"none\"]\nclient_secret =",
    ));
    let errs = errors(load(&path, &[]));
    assert_eq!(errs[0].key, "provider.id_token_algorithms");
}

#[test]
fn public_client_needs_no_secret_but_needs_pkce() {
    let text = minimal().replace("client_secret = \"s3:cr%t+&= x\"", "client_auth = \"none\"");
    let (_d, path) = write(&text);
    load(&path, &[]).expect("public client is valid");
    let (_d, path) = write(&text.replace("client_auth", "pkce = false\nclient_auth"));
    assert_eq!(errors(load(&path, &[]))[0].key, "provider.pkce");
}

#[test]
fn missing_required_keys_are_all_reported_at_once() {
    let (_d, path) = write("");
    let keys: Vec<String> = errors(load(&path, &[]))
        .into_iter()
        .map(|e| e.key)
        .collect();
    for k in [
        "server.public_url",
        "upstream.url",
        "provider.issuer",
        "provider.client_id",
        "provider.client_secret",
        "session.secret",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let (_d, path) = write(&minimal());
    let (c, raw) = load(&path, &[]).expect("valid");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3:cr%t"), "{dbg}");
    let shown = serde_json::to_string(&raw).expect("serialize");
    assert!(
        !shown.contains("s3:cr%t") && !shown.contains(KEY),
        "{shown}"
    );
}

#[test]
fn redirect_url_must_be_the_callback_path() {
    let (_d, path) = write(&minimal().replace(
        "client_id =",
        "redirect_url = \"https://app.example.com/auth/cb\"\nclient_id =",
    ));
    assert_eq!(errors(load(&path, &[]))[0].key, "provider.redirect_url");
}

#[test]
fn access_keys_are_validated_with_their_names() {
    let cases = [
        ("[headers]\nCookie = \"sub\"\n", "headers.Cookie"),
        (
            "[authorization]\nbearer_audiences = [\"my-app\"]\n",
            "authorization.bearer_audiences",
        ),
        ("[metrics]\nlisten = \"0.0.0.0:4180\"\n", "metrics.listen"),
        (
            "[[authorization.rules]]\npaths = [\"/admin\"]\n",
            "authorization.rules[0]",
        ),
        (
            "[[routes.public]]\npath = \"(unclosed\"\n",
            "routes.public[0].path",
        ),
    ];
    for (extra, key) in cases {
        let (_d, path) = write(&format!("{}{extra}", minimal()));
        let errs = errors(load(&path, &[]));
        assert!(
            errs.iter().any(|e| e.key.starts_with(key)),
            "{extra}: {errs:?}"
        );
    }
    let (_d, path) = write(&minimal().replace(
        "[server]",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.1\", \"not-a-net\"]",
    ));
    assert_eq!(errors(load(&path, &[]))[0].key, "server.trusted_proxies");
}

#[test]
fn empty_client_secret_is_refused_naming_the_key() {
    // CA-18: client_secret_basic with an empty secret would send `id:`.
    let text = minimal().replace(r#"client_secret = "s3:cr%t+&= x""#, r#"client_secret = """#);
    let (_dir, path) = write(&text);
    let errs = errors(load(&path, &[]));
    assert!(
        errs.iter()
            .any(|e| e.key == "provider.client_secret" && e.message.contains("empty")),
        "{errs:?}"
    );
}

#[test]
fn a_secret_file_that_never_ends_is_refused_not_read_forever() {
    let text = minimal().replace(
        r#"client_secret = "s3:cr%t+&= x""#,
        r#"client_secret_file = "/dev/zero""#,
    );
    let (_dir, path) = write(&text);
    let errs = errors(load(&path, &[]));
    assert!(
        errs.iter()
            .any(|e| e.key == "provider.client_secret_file"
                && e.message.contains("larger than 4 MiB")),
        "{errs:?}"
    );
}

#[test]
fn non_ascii_client_secrets_are_accepted_control_characters_are_not() {
    // RFC 6749 Appendix B's own example encodes `£` and `€`.
    let ok = minimal().replace(
        r#"client_secret = "s3:cr%t+&= x""#,
        r#"client_secret = " %&+£€""#,
    );
    let (_dir, path) = write(&ok);
    assert!(load(&path, &[]).is_ok());
    let bad = minimal().replace(
        r#"client_secret = "s3:cr%t+&= x""#,
        r#"client_secret = "abc\u0007""#,
    );
    let (_dir, path) = write(&bad);
    let errs = errors(load(&path, &[]));
    assert!(
        errs.iter()
            .any(|e| e.key == "provider.client_secret" && e.message.contains("control")),
        "{errs:?}"
    );
}

#[test]
fn hmac_id_tokens_need_a_long_enough_client_secret() {
    // IDT-39, RFC 7518 §3.2: HS256 needs a key of at least 32 bytes.
    let text = minimal().replace(
        "[session]",
        "id_token_algorithms = [\"RS256\", \"HS256\"]\n\n[session]",
    );
    let (_dir, path) = write(&text);
    let errs = errors(load(&path, &[]));
    assert!(
        errs.iter()
            .any(|e| e.key == "provider.client_secret" && e.message.contains("at least 32")),
        "{errs:?}"
    );
}

#[test]
fn bearer_tokens_never_take_a_mac() {
    // Review finding 4: a MAC keyed with the client secret would let every
    // holder of the secret mint access tokens.
    let text = format!(
        "{}\n[authorization]\nbearer_audiences = [\"api\"]\nbearer_algorithms = [\"RS256\", \"HS256\"]\n",
        minimal()
    );
    let (_dir, path) = write(&text);
    let errs = errors(load(&path, &[]));
    assert!(
        errs.iter()
            .any(|e| e.key == "authorization.bearer_algorithms" && e.message.contains("HS256")),
        "{errs:?}"
    );
}

#[test]
fn cookie_prefixes_are_held_to_what_browsers_accept() {
    // RFC 6265bis §4.1.3: `__Host-` needs Secure, Path=/ and no Domain;
    // `__Secure-` needs Secure. Prefixes match ignoring case.
    for (session, key) in [
        (
            "cookie_name = \"__Host-tg\"\nsecure = false",
            "session.secure",
        ),
        (
            "cookie_name = \"__host-tg\"\ndomain = \"example.com\"",
            "session.domain",
        ),
        (
            "cookie_name = \"__Host-tg\"\npath = \"/app\"",
            "session.path",
        ),
        (
            "cookie_name = \"__Secure-tg\"\nsecure = false",
            "session.secure",
        ),
    ] {
        let text = minimal().replace("[session]", &format!("[session]\n{session}"));
        let (_dir, path) = write(&text);
        let errs = errors(load(&path, &[]));
        assert!(errs.iter().any(|e| e.key == key), "{session}: {errs:?}");
    }
    let text = minimal().replace("[session]", "[session]\ncookie_name = \"__Host-tg\"");
    let (_dir, path) = write(&text);
    assert!(load(&path, &[]).is_ok(), "the defaults suit __Host-");
}

#[test]
fn login_options_are_checked_and_cannot_replace_tollgate_s_own_parameters() {
    let text = minimal().replace(
        "[session]",
        "prompt = \"none login\"\nmax_age = \"soon\"\nacr_values = [\"a b\"]\nextra_authorize_params = { state = \"x\", display = \"page\" }\n[session]",
    );
    let keys = refused_keys(&text);
    for key in [
        "provider.prompt",
        "provider.max_age",
        "provider.acr_values[0]",
        "provider.extra_authorize_params.state",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not refused: {keys:?}");
    }
    assert!(!keys
        .iter()
        .any(|k| k == "provider.extra_authorize_params.display"));
    let text = minimal().replace(
        "[session]",
        "prompt = \"login consent\"\nmax_age = \"1h\"\n[session]",
    );
    let (_d, path) = write(&text);
    let (config, _) = load(&path, &[]).expect("valid");
    assert_eq!(
        config.provider().login.max_age,
        Some(std::time::Duration::from_secs(3600))
    );
}

#[test]
fn key_settings_are_refused_with_methods_that_do_not_use_them() {
    let text = minimal().replace(
        "[session]",
        "client_key_algorithm = \"ES256\"\nclient_extra_key_files = [\"k.pem\"]\n[session]",
    );
    let keys = refused_keys(&text);
    assert!(
        keys.contains(&"provider.client_key_algorithm".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"provider.client_extra_key_files".to_string()),
        "{keys:?}"
    );
    // client_secret_jwt signs HS256: the secret must be 32 bytes or more.
    let text = minimal().replace(
        "[session]",
        "client_auth = \"client_secret_jwt\"\n[session]",
    );
    let (_d, path) = write(&text);
    let errs = errors(load(&path, &[]));
    assert!(errs
        .iter()
        .any(|e| e.key == "provider.client_secret" && e.message.contains("at least 32")));
}

#[test]
fn dpop_turns_access_token_forwarding_off_unless_asked_for() {
    let dpop = minimal().replace("[session]", "dpop = true\n[session]");
    let (_d, path) = write(&dpop);
    let (config, _) = load(&path, &[]).expect("valid");
    assert!(config.provider().dpop);
    assert!(!config.upstream.pass_access_token);
    let asked = dpop.replace("[provider]", "pass_access_token = true\n[provider]");
    let (_d, path) = write(&asked);
    let (config, _) = load(&path, &[]).expect("valid");
    assert!(config.upstream.pass_access_token);
    let (_d, path) = write(&minimal());
    assert!(
        load(&path, &[])
            .expect("valid")
            .0
            .upstream
            .pass_access_token
    );
}

#[test]
fn the_fapi2_profile_refuses_what_it_does_not_allow() {
    let text = minimal().replace("[session]", "profile = \"fapi2\"\n[session]");
    let keys = refused_keys(&text);
    for key in [
        "provider.client_auth",
        "provider.dpop",
        "provider.id_token_algorithms",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not refused: {keys:?}");
    }
    let text = minimal().replace("[session]", "profile = \"fapi1\"\n[session]");
    let (_d, path) = write(&text);
    assert!(errors(load(&path, &[]))
        .iter()
        .any(|e| e.key == "provider.profile"));
}

#[test]
fn page_branding_refuses_what_could_inject_into_a_page() {
    let text = minimal()
        + "[pages]\naccent_color = \"red;}body{display:none\"\nlogo_url = \"javascript:alert(1)\"\nsupport_url = \"//evil.test\"\n";
    let keys = refused_keys(&text);
    for key in ["pages.accent_color", "pages.logo_url", "pages.support_url"] {
        assert!(keys.iter().any(|k| k == key), "{key}: {keys:?}");
    }
}

const PARTNER: &str = r#"
[[providers]]
id = "partner"
issuer = "https://partner.example.com"
client_id = "tollgate"
client_secret = "partner-secret"
"#;

#[test]
fn providers_add_to_the_provider_each_with_its_own_id_and_name() {
    let text = format!("{}{PARTNER}", minimal()).replace(
        "[provider]\n",
        "[provider]\nkind = \"github\"\nissuer = \"https://github.com\"\n",
    );
    // `kind = "github"` fills the issuer; written out here it must agree.
    let text = text.replacen("issuer = \"https://idp.example.com\"\n", "", 1);
    let (_d, path) = write(&text);
    let (c, _) = load(&path, &[]).expect("valid");
    let ids: Vec<(&str, &str)> = c
        .providers
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(
        ids,
        [("default", "GitHub"), ("partner", "partner.example.com")]
    );
    assert!(c.upstream.pass_provider);
}

#[test]
fn providers_alone_need_no_provider_table() {
    let text = minimal().replace(
        "[provider]\nissuer = \"https://idp.example.com\"\nclient_id = \"my-app\"\nclient_secret = \"s3:cr%t+&= x\"\n",
        "",
    );
    let (_d, path) = write(&format!("{text}{PARTNER}"));
    let (c, _) = load(&path, &[]).expect("valid");
    assert_eq!(c.providers.len(), 1);
    assert_eq!(c.provider().id, "partner");
    assert!(!c.upstream.pass_provider);
}

#[test]
fn provider_entries_are_reported_by_their_index_and_ids_must_differ() {
    let text = format!(
        "{}{}\n[[providers]]\nid = \"partner\"\nissuer = \"https://b.example.com\"\nclient_id = \"x\"\nclient_secret = \"y\"\nclock_skew = \"1h\"\n[[providers]]\nissuer = \"https://c.example.com\"\nclient_id = \"x\"\nclient_secret = \"y\"\n[[providers]]\nid = \"Bad Id\"\nissuer = \"https://d.example.com\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
        minimal(),
        PARTNER
    );
    let (_d, path) = write(&text);
    let errs = errors(load(&path, &[]));
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "providers[1].clock_skew",
            "providers[1].id",
            "providers[2].id",
            "providers[3].id"
        ],
        "{errs:?}"
    );
    assert!(
        errs.iter().all(|e| e.origin.ends_with("tollgate.toml")),
        "{errs:?}"
    );
}

#[test]
fn forward_auth_settings_without_trusted_proxies_are_warned_about() {
    let (_d, path) = write(&minimal());
    let (c, _) = load(&path, &[]).expect("valid");
    assert!(c.warnings().is_empty());
    let text = minimal().replace(
        "[server]\n",
        "[server]\nallowed_redirect_domains = [\".example.com\"]\n",
    );
    let (_d, path) = write(&text);
    let (c, _) = load(&path, &[]).expect("valid");
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(c.warnings()[0].contains("server.trusted_proxies"));
    let text = text.replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    let (_d, path) = write(&text);
    let (c, _) = load(&path, &[]).expect("valid");
    assert!(c.warnings().is_empty());
}

#[test]
fn provider_hosts_are_host_names_and_each_belongs_to_one_provider() {
    let text = format!(
        "{}{PARTNER}hosts = [\"App.Example.com\", \"*.example.org\", \"a.example.com:443\"]\n",
        minimal()
    )
    .replace(
        "client_secret = \"s3:cr%t+&= x\"\n",
        "client_secret = \"s3:cr%t+&= x\"\nhosts = [\"app.example.com\"]\n",
    );
    assert_eq!(
        refused_keys(&text),
        ["providers[0].hosts[2]", "providers[0].hosts"]
    );
}

#[test]
fn a_rule_may_name_only_configured_providers() {
    let text = format!(
        "{}{PARTNER}\n[[authorization.rules]]\nproviders = [\"partner\", \"corp\"]\nallow_any = true\n",
        minimal()
    );
    assert_eq!(refused_keys(&text), ["authorization.rules[0].providers[1]"]);
}

/// `minimal()` with `[[upstreams]]` instead of `[upstream].url`.
/// `session.domain` lets every `*.example.com` host see the session.
fn routed(upstream: &str, entries: &str) -> String {
    minimal().replace(
        "[upstream]\nurl = \"http://127.0.0.1:8080\"\n",
        &format!("[upstream]\n{upstream}\n{entries}\n"),
    ) + "domain = \"example.com\"\n"
}

#[test]
fn upstreams_entries_take_what_they_leave_out_from_upstream() {
    let text = routed(
        "timeout = \"7s\"\npass_access_token = false",
        r#"
[[upstreams]]
host = "app.example.com"
url = "http://127.0.0.1:8081"
[[upstreams]]
host = "*.example.com"
path_prefix = "/api/"
url = "h2c://127.0.0.1:50051"
timeout = "2s"
pass_host_header = false
[[upstreams]]
host = "*"
url = "https://fallback.internal"
protocol = "http2"
"#,
    );
    let (_d, path) = write(&text);
    let (c, _) = load(&path, &[]).expect("valid");
    assert_eq!(c.upstreams.len(), 3);
    let [app, api, any] = &c.upstreams[..] else {
        panic!("three routes")
    };
    assert_eq!(app.host.as_deref(), Some("app.example.com"));
    assert_eq!(app.path_prefix, "");
    assert_eq!(app.upstream.timeout, Duration::from_secs(7));
    assert!(!app.upstream.pass_access_token && app.upstream.pass_host_header);
    assert!(!app.upstream.http2);
    assert_eq!(api.path_prefix, "/api");
    assert_eq!(api.upstream.url.as_str(), "http://127.0.0.1:50051/");
    assert!(api.upstream.http2 && !api.upstream.pass_host_header);
    assert_eq!(api.upstream.timeout, Duration::from_secs(2));
    assert_eq!(any.host, None);
    assert!(any.upstream.http2);
    // `[upstream]` keeps what every upstream shares.
    assert_eq!(c.upstream.timeout, Duration::from_secs(7));
}

#[test]
fn upstreams_entries_are_refused_under_their_own_keys() {
    let keys = refused_keys(&routed(
        "url = \"http://127.0.0.1:1\"\ntimeout = \"soon\"",
        r#"
[[upstreams]]
url = "http://127.0.0.1:8081"
[[upstreams]]
host = "a.example.com"
path_prefix = "api"
url = "ftp://x"
[[upstreams]]
host = "b.example.com"
url = "http://127.0.0.1:2"
timout = "1s"
[[upstreams]]
host = "c.example.com"
url = "http://127.0.0.1:3"
headers = { user = "X-User" }
protocol = "http3"
[[upstreams]]
host = "d.example.com"
url = "http://127.0.0.1:4"
[[upstreams]]
host = "D.example.com"
url = "http://127.0.0.1:5"
"#,
    ));
    let mut expected = vec![
        "upstream.url",
        // `[upstream]`'s bad timeout once, not once per entry.
        "upstream.timeout",
        "upstreams[0].host",
        "upstreams[1].path_prefix",
        "upstreams[1].url",
        "upstreams[2].timout",
        "upstreams[3].headers",
        "upstreams[3].protocol",
        "upstreams[5].path_prefix",
    ];
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[test]
fn upstreams_hosts_must_be_under_a_shared_session_domain() {
    let text = routed(
        "",
        r#"
[[upstreams]]
host = "app.example.com"
url = "http://127.0.0.1:8081"
[[upstreams]]
host = "*.other.org"
url = "http://127.0.0.1:8082"
[[upstreams]]
host = "*"
url = "http://127.0.0.1:8083"
"#,
    );
    assert_eq!(refused_keys(&text), vec!["upstreams[1].host"]);
    // Without session.domain, each host keeps a session of its own.
    let text = text.replace("domain = \"example.com\"\n", "");
    assert!(
        load_str(&text, &[]).is_ok(),
        "{:?}",
        load_str(&text, &[]).err()
    );
}

#[test]
fn a_page_template_must_compile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.html");
    let bad = dir.path().join("bad.html");
    std::fs::write(&good, "<h1>{{ title }}</h1>").expect("write");
    std::fs::write(&bad, "<h1>{{ title </h1>").expect("write");
    let with = |p: &std::path::Path| {
        format!(
            "{}[pages]\ntemplate_file = \"{}\"\n",
            minimal(),
            p.display()
        )
    };
    let (c, _) = load_str(&with(&good), &[]).expect("valid");
    assert!(c.pages.template.is_some());
    assert_eq!(refused_keys(&with(&bad)), vec!["pages.template_file"]);
    assert_eq!(
        refused_keys(&with(&dir.path().join("missing.html"))),
        vec!["pages.template_file"]
    );
}

#[test]
fn upstreams_hosts_are_names_a_redirect_can_name() {
    for host in ["*.10.0.0.1", "1234", "0x7f.1", "*.*.example.com"] {
        let text = routed(
            "",
            &format!("[[upstreams]]\nhost = \"{host}\"\nurl = \"http://127.0.0.1:1\"\n"),
        );
        assert_eq!(refused_keys(&text), vec!["upstreams[0].host"], "{host}");
    }
    let text = routed(
        "",
        "[[upstreams]]\nhost = \"10.0.0.5\"\nurl = \"http://127.0.0.1:1\"\n",
    );
    let text = text.replace("domain = \"example.com\"\n", "");
    assert!(load_str(&text, &[]).is_ok(), "an exact address is a host");
}

#[test]
fn several_hosts_sharing_a_session_are_not_taken_for_forward_auth() {
    let text = routed(
        "",
        "[[upstreams]]\nhost = \"app.example.com\"\nurl = \"http://127.0.0.1:1\"\n",
    );
    let (c, _) = load_str(&text, &[]).expect("valid");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let forward_auth = minimal() + "domain = \"example.com\"\n";
    let (c, _) = load_str(&forward_auth, &[]).expect("valid");
    assert_eq!(c.warnings().len(), 1);
}
