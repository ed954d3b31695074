//! The tollgate configuration being written: keys per section in
//! tollgate's order, each with an optional comment, rendered as TOML text
//! (comments are why this is not `toml::to_string`).

use std::collections::BTreeMap;

/// tollgate's tables, in the order of config/tollgate.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Section {
    Server,
    ServerTls,
    Upstream,
    Provider,
    Session,
    SessionRedis,
    Authorization,
    Routes,
    Metrics,
}

impl Section {
    const ALL: [Section; 9] = [
        Section::Server,
        Section::ServerTls,
        Section::Upstream,
        Section::Provider,
        Section::Session,
        Section::SessionRedis,
        Section::Authorization,
        Section::Routes,
        Section::Metrics,
    ];

    /// The keys this converter writes, in config/tollgate.toml's order;
    /// lines are rendered in it.
    fn key_order(self) -> &'static [&'static str] {
        match self {
            Section::Server => &[
                "listen",
                "public_url",
                "trusted_proxies",
                "allowed_redirect_domains",
                "health_path",
                "ready_path",
            ],
            Section::ServerTls => &["cert_file", "key_file"],
            Section::Upstream => &[
                "url",
                "timeout",
                "pass_host_header",
                "pass_user_headers",
                "pass_access_token",
                "pass_authorization_header",
            ],
            Section::Provider => &[
                "kind",
                "tenant",
                "allowed_tenants",
                "issuer",
                "client_id",
                "client_secret",
                "client_secret_file",
                "client_auth",
                "client_assertion_file",
                "response_mode",
                "prompt",
                "acr_values",
                "extra_authorize_params",
                "scopes",
                "redirect_url",
                "id_token_algorithms",
                "trusted_audiences",
                "groups_claim",
                "fetch_userinfo",
                "ca_file",
            ],
            Section::Session => &[
                "secret",
                "secret_file",
                "cookie_name",
                "lifetime",
                "secure",
                "same_site",
                "domain",
                "path",
                "store",
            ],
            Section::SessionRedis => &[
                "url",
                "mode",
                "nodes",
                "sentinel_master",
                "username",
                "password",
            ],
            Section::Authorization => &[
                "allowed_email_domains",
                "allowed_emails",
                "allowed_groups",
                "bearer_audiences",
            ],
            Section::Routes => &["allow_cors_preflight"],
            Section::Metrics => &["listen"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Section::Server => "server",
            Section::ServerTls => "server.tls",
            Section::Upstream => "upstream",
            Section::Provider => "provider",
            Section::Session => "session",
            Section::SessionRedis => "session.redis",
            Section::Authorization => "authorization",
            Section::Routes => "routes",
            Section::Metrics => "metrics",
        }
    }
}

/// What follows a value on its line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Comment {
    None,
    /// Information only.
    Note(String),
    /// Needs the reader's attention: `# REVIEW: ...`.
    Review(String),
}

/// One `key = value` line, possibly commented out.
#[derive(Debug, Clone)]
pub(super) struct Line {
    key: String,
    /// Already TOML: quoted string, array, boolean, inline table.
    value: String,
    comment: Comment,
    /// Written as `# key = value`: a suggestion or a placeholder for a
    /// required key, so that tollgate refuses to start until it is set.
    disabled: bool,
}

impl Line {
    pub(super) fn new(key: &str, value: String) -> Self {
        Line {
            key: key.to_string(),
            value,
            comment: Comment::None,
            disabled: false,
        }
    }

    pub(super) fn note(mut self, note: &str) -> Self {
        self.comment = Comment::Note(one_line(note));
        self
    }

    pub(super) fn review(mut self, why: &str) -> Self {
        self.comment = Comment::Review(one_line(why));
        self
    }

    pub(super) fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }

    fn render(&self, out: &mut String) {
        if self.disabled {
            out.push_str("# ");
        }
        out.push_str(&key(&self.key));
        out.push_str(" = ");
        out.push_str(&self.value);
        match &self.comment {
            Comment::None => {}
            Comment::Note(n) => {
                out.push_str("  # ");
                out.push_str(n);
            }
            Comment::Review(r) => {
                out.push_str("  # REVIEW: ");
                out.push_str(r);
            }
        }
        out.push('\n');
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The document.
#[derive(Debug, Default)]
pub(super) struct Doc {
    sections: BTreeMap<Section, Vec<Line>>,
    /// `[[authorization.bearer_issuers]]`, each a list of lines.
    pub bearer_issuers: Vec<Vec<Line>>,
    /// `[[authorization.rules]]`, each a list of lines.
    pub rules: Vec<Vec<Line>>,
    /// `[[routes.public]]`, each a list of lines.
    pub public_routes: Vec<Vec<Line>>,
}

impl Doc {
    /// Sets `key` in `section`, replacing an earlier line for the same key.
    pub(super) fn put(&mut self, section: Section, line: Line) {
        let lines = self.sections.entry(section).or_default();
        match lines.iter_mut().find(|l| l.key == line.key) {
            Some(old) => *old = line,
            None => lines.push(line),
        }
    }

    /// `key = value`.
    pub(super) fn set(&mut self, section: Section, key: &str, value: String) {
        self.put(section, Line::new(key, value));
    }

    /// `key = value  # note`.
    pub(super) fn note(&mut self, section: Section, key: &str, value: String, note: &str) {
        self.put(section, Line::new(key, value).note(note));
    }

    /// `key = value  # REVIEW: why`.
    pub(super) fn review(&mut self, section: Section, key: &str, value: String, why: &str) {
        self.put(section, Line::new(key, value).review(why));
    }

    /// `# key = value  # REVIEW: why`: a required or advisable key left for
    /// the reader to fill in.
    pub(super) fn placeholder(&mut self, section: Section, key: &str, value: String, why: &str) {
        self.put(section, Line::new(key, value).review(why).disabled());
    }

    /// `# key = value  # note`: a suggestion, not needed to start.
    pub(super) fn hint(&mut self, section: Section, key: &str, value: String, note: &str) {
        self.put(section, Line::new(key, value).note(note).disabled());
    }

    /// The TOML text.
    pub(super) fn render(&self) -> String {
        let mut out = String::from(HEADER);
        for section in Section::ALL {
            let mut lines: Vec<&Line> = self
                .sections
                .get(&section)
                .map(|ls| ls.iter().collect())
                .unwrap_or_default();
            let order = section.key_order();
            lines.sort_by_key(|l| {
                order
                    .iter()
                    .position(|k| *k == l.key)
                    .unwrap_or(order.len())
            });
            if !lines.is_empty() {
                out.push_str(&format!("\n[{}]\n", section.name()));
                for line in lines {
                    line.render(&mut out);
                }
            }
            let arrays: Vec<(&str, &Vec<Vec<Line>>)> = match section {
                Section::Authorization => vec![
                    ("authorization.bearer_issuers", &self.bearer_issuers),
                    ("authorization.rules", &self.rules),
                ],
                Section::Routes => vec![("routes.public", &self.public_routes)],
                _ => Vec::new(),
            };
            for (name, tables) in arrays {
                for table in tables {
                    out.push_str(&format!("\n[[{name}]]\n"));
                    for line in table {
                        line.render(&mut out);
                    }
                }
            }
        }
        out
    }
}

const HEADER: &str = "\
# Converted from oauth2-proxy by `tollgate convert`; review every line marked REVIEW
# (the conversion report says what became of each oauth2-proxy option, and
# lines starting with `# key =` are suggestions or required keys still to fill in).
# Every key: docs/configuration.md. Check the result with
# `tollgate check-config --config FILE` before using it.
";

/// A key, bare when it can be.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        q(k)
    }
}

/// A TOML string.
pub(super) fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML array of strings.
pub(super) fn list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// A TOML inline table of strings.
pub(super) fn inline_table(entries: &[(String, String)]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), q(v)))
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

/// Parses a Go duration (`"1h30m"`, `"168h0m0s"`, `"1.5h"`, `"500ms"`,
/// `"0"`) into milliseconds (anything below a millisecond rounds up to one).
/// `None` when it is not one.
pub(super) fn go_duration_ms(text: &str) -> Option<u128> {
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t == "0" {
        return Some(0);
    }
    let mut rest = t;
    let mut nanos: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += number * unit;
    }
    if !nanos.is_finite() || nanos < 0.0 {
        return None;
    }
    // Truncation to whole milliseconds, then at least 1 ms for a non-zero
    // duration; the value fits comfortably (u128, from f64 below 2^1024).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (nanos / 1e6) as u128;
    Some(if ms == 0 && nanos > 0.0 { 1 } else { ms })
}

/// Milliseconds as a tollgate (humantime) duration: `"168h"`, `"90m"`,
/// `"45s"`, `"1500ms"`.
pub(super) fn human(ms: u128) -> String {
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
