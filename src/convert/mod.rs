//! `tollgate convert --from-oauth2-proxy`: an oauth2-proxy configuration (its
//! `--config` file, command-line flags and `OAUTH2_PROXY_*` environment)
//! turned into a tollgate configuration, with a report of what became of
//! every option given.
//!
//! Pure: the caller reads the file and the environment and writes the
//! result. Precedence is oauth2-proxy's: flags over environment over file.
//!
//! Two rules hold throughout:
//! - **The report never carries a value.** It names options and says why;
//!   secrets (`client_secret`, `cookie_secret`, `redis_password`, ...) go
//!   into the TOML when given inline (it is the user's own file), never
//!   into the report or an error.
//! - **What cannot be carried over fails closed.** A required key without a
//!   value is written commented out, and a restriction tollgate cannot
//!   express leaves a placeholder that tollgate refuses, so the result does
//!   not start (and `tollgate check-config` says why) until a person has
//!   looked; it never starts more open than oauth2-proxy was.
//!
//! The mapping, option by option: docs/migrating-from-oauth2-proxy.md.

mod access;
mod alpha;
mod doc;
mod provider;
mod server;
mod session;
mod source;
mod unsupported;
mod upstream;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

use source::Raw;

/// What oauth2-proxy was given. Not `Debug`: it holds secrets.
#[derive(Clone, Default)]
pub struct Input {
    /// Contents of the oauth2-proxy `--config` file (TOML `key = value`), if any.
    pub config_file: Option<String>,
    /// Command-line flags as given, e.g. `["--provider=oidc", "--email-domain", "*"]`.
    pub flags: Vec<String>,
    /// Environment variables (only `OAUTH2_PROXY_*` are read).
    pub env: Vec<(String, String)>,
    /// Contents of the alpha configuration (`--alpha-config`, YAML), if any.
    pub alpha_config: Option<String>,
}

/// What became of one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Carried over with the same meaning (or, for a value tollgate always
    /// has, nothing to write).
    Mapped,
    /// Carried over, or covered, with a different behaviour: the reason.
    Changed(String),
    /// Not carried over: the reason, and what to do instead.
    Unmapped(String),
}

/// One line of the report: an oauth2-proxy option (its config-file key, with
/// `[i]` for one entry of a list) and its outcome. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    pub option: String,
    pub outcome: Outcome,
}

impl fmt::Display for ReportLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Mapped => write!(f, "{}: mapped", self.option),
            Outcome::Changed(why) => write!(f, "{}: changed: {why}", self.option),
            Outcome::Unmapped(why) => write!(f, "{}: not mapped: {why}", self.option),
        }
    }
}

/// The result: tollgate's TOML and the report, in the order of tollgate's
/// sections.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub toml: String,
    pub report: Vec<ReportLine>,
}

/// Input oauth2-proxy itself would refuse. Messages name options, never
/// their values.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the oauth2-proxy config file is not valid TOML (line {line}): {message}")]
    ConfigFile { line: usize, message: String },
    #[error("the oauth2-proxy alpha configuration is not valid YAML (line {line}): {message}")]
    AlphaConfig { line: usize, message: String },
    #[error("flag `{0}` needs a value")]
    MissingValue(String),
    #[error("oauth2-proxy option `{option}` must be {expected}")]
    BadValue {
        option: String,
        expected: &'static str,
    },
}

/// Converts an oauth2-proxy configuration.
///
/// # Errors
///
/// What oauth2-proxy itself would refuse to read: a config file that is not
/// TOML, a flag without its value, a switch or duration that does not parse.
pub fn convert(input: &Input) -> Result<Conversion, ConvertError> {
    let alpha = input.alpha_config.as_deref().map(alpha::read).transpose()?;
    let mut cx = Ctx::new(source::read(input, alpha)?);
    for (place, why) in std::mem::take(&mut cx.opts.alpha) {
        cx.unmapped(&format!("alpha: {place}"), why);
    }
    if input.alpha_config.is_some() {
        cx.changed(
            "alpha_config",
            "read: its options are converted below under their legacy names",
        );
    }
    server::map(&mut cx)?;
    upstream::map(&mut cx)?;
    provider::map(&mut cx)?;
    session::map(&mut cx)?;
    access::map(&mut cx)?;
    server::telemetry(&mut cx);
    unsupported::rest(&mut cx)?;
    Ok(Conversion {
        toml: cx.doc.render(),
        report: cx.report,
    })
}

/// The conversion under way.
struct Ctx {
    opts: source::Options,
    doc: doc::Doc,
    report: Vec<ReportLine>,
    /// Options (and list entries) already reported.
    done: BTreeSet<String>,
    /// oauth2-proxy's provider type, lower case (its default: "google").
    provider: String,
    /// tollgate's `provider.kind` chosen for it.
    kind: &'static str,
}

impl Ctx {
    fn new(opts: source::Options) -> Self {
        Ctx {
            opts,
            doc: doc::Doc::default(),
            report: Vec::new(),
            done: BTreeSet::new(),
            provider: String::new(),
            kind: "oidc",
        }
    }

    // --- the report ---

    /// Reports `option` once (a later report of the same option is dropped).
    fn outcome(&mut self, option: &str, outcome: Outcome) {
        if self.done.insert(option.to_string()) {
            self.report.push(ReportLine {
                option: option.to_string(),
                outcome,
            });
        }
    }

    fn mapped(&mut self, option: &str) {
        self.outcome(option, Outcome::Mapped);
    }

    fn changed(&mut self, option: &str, why: impl Into<String>) {
        self.outcome(option, Outcome::Changed(why.into()));
    }

    fn unmapped(&mut self, option: &str, why: impl Into<String>) {
        self.outcome(option, Outcome::Unmapped(why.into()));
    }

    /// Marks `option` as handled without a line of its own (its entries
    /// have lines, `option[i]`).
    fn touch(&mut self, option: &str) {
        self.done.insert(option.to_string());
    }

    // --- the options ---

    /// Whether `key` was given a non-empty value.
    fn given(&self, key: &str) -> bool {
        match self.opts.values.get(key) {
            None => false,
            Some(Raw::Bool(_)) => true,
            Some(Raw::Text(t)) => !t.trim().is_empty(),
            Some(Raw::List(items)) => items.iter().any(|i| !i.trim().is_empty()),
        }
    }

    /// A text option, trimmed; `None` when absent or empty.
    fn text(&self, key: &str) -> Option<String> {
        let text = match self.opts.values.get(key)? {
            Raw::Text(t) => t.trim().to_string(),
            Raw::Bool(b) => b.to_string(),
            Raw::List(items) => source::split_commas(&items.join(",")).join(","),
        };
        (!text.is_empty()).then_some(text)
    }

    /// A list option: entries trimmed, empty ones dropped; a text value is
    /// comma-separated.
    fn list(&self, key: &str) -> Vec<String> {
        match self.opts.values.get(key) {
            None | Some(Raw::Bool(_)) => Vec::new(),
            Some(Raw::Text(t)) => source::split_commas(t),
            Some(Raw::List(items)) => items
                .iter()
                .map(|i| i.trim())
                .filter(|i| !i.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    /// A boolean option, read as Go's `strconv.ParseBool` does.
    fn flag(&self, key: &str) -> Result<Option<bool>, ConvertError> {
        let text = match self.opts.values.get(key) {
            None => return Ok(None),
            Some(Raw::Bool(b)) => return Ok(Some(*b)),
            Some(Raw::Text(t)) => t.trim(),
            Some(Raw::List(_)) => "",
        };
        match text {
            "" => Ok(None),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
            _ => Err(ConvertError::BadValue {
                option: key.to_string(),
                expected: "true or false",
            }),
        }
    }

    /// A duration option (Go syntax) in milliseconds.
    fn duration(&self, key: &str) -> Result<Option<u128>, ConvertError> {
        match self.text(key) {
            None => Ok(None),
            Some(t) => doc::go_duration_ms(&t)
                .map(Some)
                .ok_or_else(|| ConvertError::BadValue {
                    option: key.to_string(),
                    expected: "a duration such as \"30s\" or \"168h\"",
                }),
        }
    }
}

/// Whether an `http(s)` URL's host is loopback (where tollgate allows http).
fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why tollgate would refuse `text` as an issuer / redirect URL, if it would:
/// it takes `https://`, or `http://` on a loopback host only.
fn insecure_url(text: &str) -> Option<&'static str> {
    match url::Url::parse(text) {
        Ok(u) if u.scheme() == "https" => None,
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => None,
        Ok(u) if u.scheme() == "http" => {
            Some("tollgate takes https:// here (http:// only on a loopback host)")
        }
        _ => Some("not an absolute http(s) URL"),
    }
}
