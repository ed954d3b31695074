//! The request path tollgate decides on, and the routes that skip
//! authentication.
//!
//! Principle (security-cases.md §12): decide on **one** normalised path and
//! forward that same path, so the upstream can never read a different
//! resource than the one that was authorised. [`normalize`] therefore either
//! returns a canonical path or refuses the request; it never guesses.
//!
//! What [`normalize`] does, in order, per RFC 3986:
//!
//! - percent-decodes only unreserved characters (`ALPHA DIGIT - . _ ~`,
//!   §2.3: "should be decoded"), keeps every other `%XX` with upper-case hex
//!   (§2.1, §6.2.2.1), and percent-encodes characters that may not appear
//!   raw in a path (space, `"`, `<`, `>`, `[`, `]`, `^`, `` ` ``, `{`, `|`,
//!   `}` and non-ASCII), so `/café` and `/caf%C3%A9` are one path;
//! - refuses what has no single meaning across upstream servers: `%2F` and
//!   `%5C` (Envoy CVE-2021-29492: some servers split on them after decoding),
//!   `%25` followed by two hex digits (decoded twice it is something else,
//!   D-11), raw `\` (a separator on Windows-style servers), control characters
//!   raw or encoded (`%00` truncates C strings), a `%` not followed by two hex
//!   digits, and percent-encoded bytes that are not UTF-8 (`%C0%AE` is the
//!   overlong `.` that lenient decoders accept);
//! - removes dot-segments (§5.2.4) **after** decoding, so `%2e%2e` is `..`;
//! - merges repeated slashes (`//admin` is `/admin`, as nginx and most
//!   routers read it).
//!
//! Path parameters: a segment whose text before its first `;` is `.` or `..`
//! **is** a dot-segment (`/public/..;/admin` is `/admin`). Tomcat, Jetty and
//! Spring strip `;params` before resolving dot-segments (Apache Shiro
//! CVE-2020-1957), and a literal `..;` segment has no legitimate use, so the
//! reading that cannot be bypassed is theirs. `;` elsewhere is kept
//! (`/public;/../admin` is `/admin` because `..` removes `public;`). Because
//! those servers also route `/admin;x` as `/admin`, callers that match a path
//! against rules judge both readings: see [`without_params`].

use std::borrow::Cow;

use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Uri};
use regex::Regex;

/// Why a request path was refused. Each is answered with 400 and never
/// forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty, not starting with `/` (asterisk- or absolute-form reached the
    /// wrong place), or containing `?` or `#` (RFC 9112 §3.2: a fragment is
    /// never part of a request-target; the query must be split off first).
    #[error("the request path is not an origin-form path")]
    NotOriginForm,
    #[error("the request path contains an encoded slash (%2F)")]
    EncodedSlash,
    #[error("the request path contains an encoded backslash (%5C)")]
    EncodedBackslash,
    #[error("the request path is percent-encoded twice (%25 followed by two hex digits)")]
    DoubleEncoded,
    #[error("the request path contains a backslash")]
    Backslash,
    #[error("the request path contains a control character")]
    ControlCharacter,
    #[error("the request path contains `%` not followed by two hex digits")]
    BadPercentEncoding,
    #[error("the request path contains percent-encoded bytes that are not UTF-8")]
    InvalidUtf8,
}

/// Normalizes a request path (without its query); see the module docs for
/// the rules.
///
/// Returns `Cow::Borrowed` whenever the result is the input or a prefix of
/// it (`/a/b`, `/caf%C3%A9`, `/a/.` → `/a/`): ordinary paths cost no
/// allocation. The result always starts with `/` and is ASCII.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotOriginForm);
    };
    let mut out = Output::new(path);
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let kind = scan(segment, None)?;
        match kind {
            // Repeated slashes merge: an empty segment adds nothing.
            Kind::Empty | Kind::Dot => {}
            Kind::DotDot => out.pop_segment(),
            Kind::Normal => {
                out.push(b'/');
                scan(segment, Some(&mut out))?;
            }
        }
        // §5.2.4: a path ending in `/`, `/.` or `/..` keeps a trailing slash.
        if segments.peek().is_none() && kind != Kind::Normal {
            out.push(b'/');
        }
    }
    Ok(out.finish())
}

/// The path with every segment's `;params` removed, as Tomcat, Jetty and
/// Spring route it (`/admin;jsessionid=x/y` → `/admin/y`, `/admin;.js` →
/// `/admin`). Segments left empty merge like repeated slashes.
///
/// Rules that decide on a path judge both this reading and the path as
/// written, and a request passes only when both pass, so `/admin;.js` can
/// neither slip past a rule on `/admin` nor match a public route for `.js`
/// files. Expects a [`normalize`]d path; borrowed when there is no `;`.
pub fn without_params(path: &str) -> Cow<'_, str> {
    if !path.contains(';') {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut segments = path.trim_start_matches('/').split('/').peekable();
    while let Some(segment) = segments.next() {
        let name = segment.split(';').next().unwrap_or_default();
        let last = segments.peek().is_none();
        match name {
            "" | "." => {}
            ".." => {
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                out.push('/');
                out.push_str(name);
                continue;
            }
        }
        if last {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

// === impl Target ===

/// The request target that every decision judges and the upstream
/// receives: the [`normalize`]d path, and the query exactly as the client
/// sent it (rules never read the query).
///
/// This is the one place the invariant "judged == forwarded" lives: a
/// `Target` can only be built by normalizing, the router, public routes,
/// authorization rules and login redirects read [`Target::path`] or
/// [`Target::as_str`], and the upstream request URI is built from the same
/// value ([`crate::proxy::Upstream::forward`] never reads the client's URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pq: PathAndQuery,
}

impl Target {
    /// Normalizes `path` and attaches `query` unchanged; refuses what
    /// [`normalize`] refuses, and a query that is not a valid URI query.
    pub fn new(path: &str, query: Option<&str>) -> Result<Self, PathError> {
        let path = normalize(path)?;
        let text = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.into_owned(),
        };
        let pq = PathAndQuery::from_maybe_shared(bytes::Bytes::from(text))
            .map_err(|_| PathError::NotOriginForm)?;
        Ok(Self { pq })
    }

    /// The target of a request URI (origin-, absolute-form or HTTP/2
    /// `:path`).
    pub fn of(uri: &Uri) -> Result<Self, PathError> {
        Self::new(uri.path(), uri.query())
    }

    /// Parses an origin-form target as it appears in `X-Original-URI` or
    /// `X-Forwarded-Uri`: the path and the query; a fragment is dropped.
    pub fn parse(target: &str) -> Result<Self, PathError> {
        let target = target.split('#').next().unwrap_or_default();
        match target.split_once('?') {
            Some((path, query)) => Self::new(path, Some(query)),
            None => Self::new(target, None),
        }
    }

    /// The normalized path: what public routes and rules judge.
    pub fn path(&self) -> &str {
        self.pq.path()
    }

    /// The query as the client sent it.
    pub fn query(&self) -> Option<&str> {
        self.pq.query()
    }

    /// `path?query`, what the upstream receives (after `upstream.url`'s
    /// path prefix) and what a login returns to.
    pub fn as_str(&self) -> &str {
        self.pq.as_str()
    }

    pub fn path_and_query(&self) -> &PathAndQuery {
        &self.pq
    }
}

// === impl normalize internals ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Dot,
    DotDot,
    Normal,
}

/// One character of a path segment as read from the wire.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// An ASCII byte allowed raw in a path: kept as is.
    Plain(u8),
    /// An ASCII byte that may not appear raw in a path: percent-encoded.
    Unsafe(u8),
    /// `%XX` naming an unreserved character: decoded (RFC 3986 §2.3).
    Decoded(u8),
    /// `%XX` naming anything else ASCII: kept, hex upper-cased.
    Escaped(u8),
    /// A non-ASCII character, raw or as valid percent-encoded UTF-8:
    /// written percent-encoded.
    NonAscii(char),
}

/// Validates one segment and classifies it; with `out`, also writes its
/// canonical form.
fn scan(segment: &str, mut out: Option<&mut Output<'_>>) -> Result<Kind, PathError> {
    if segment.is_empty() {
        return Ok(Kind::Empty);
    }
    let mut rest = segment;
    // Dots seen before the first raw `;`, and whether anything else was.
    let mut dots = 0usize;
    let mut other = false;
    let mut in_params = false;
    while !rest.is_empty() {
        let (unit, used) = read_unit(rest)?;
        rest = rest.get(used..).unwrap_or_default();
        match unit {
            Unit::Plain(b';') => in_params = true,
            Unit::Plain(b'.') | Unit::Decoded(b'.') if !in_params => dots += 1,
            Unit::Escaped(b'%') if is_hex_unit(rest) => {
                // `%25` then two hex digits (raw or decoded) is `%XX` after a
                // second decoding: refuse rather than pick one of the two.
                if let Ok((_, used)) = read_unit(rest) {
                    if is_hex_unit(rest.get(used..).unwrap_or_default()) {
                        return Err(PathError::DoubleEncoded);
                    }
                }
            }
            _ => {}
        }
        if !in_params && !matches!(unit, Unit::Plain(b'.') | Unit::Decoded(b'.')) {
            other = true;
        }
        if let Some(out) = out.as_deref_mut() {
            out.unit(unit);
        }
    }
    Ok(match (dots, other) {
        (1, false) => Kind::Dot,
        (2, false) => Kind::DotDot,
        _ => Kind::Normal,
    })
}

/// Whether the next unit of `s` is a hex digit, written raw or encoded.
fn is_hex_unit(s: &str) -> bool {
    matches!(read_unit(s), Ok((Unit::Plain(b) | Unit::Decoded(b), _)) if b.is_ascii_hexdigit())
}

/// Reads one unit from the start of non-empty `s`; returns it and the bytes
/// it used.
fn read_unit(s: &str) -> Result<(Unit, usize), PathError> {
    let bytes = s.as_bytes();
    let Some(&b) = bytes.first() else {
        return Err(PathError::NotOriginForm);
    };
    match b {
        b'%' => escaped(bytes),
        b'\\' => Err(PathError::Backslash),
        b'?' | b'#' => Err(PathError::NotOriginForm),
        0x00..=0x1F | 0x7F => Err(PathError::ControlCharacter),
        0x80..=0xFF => match s.chars().next() {
            // C1 controls (U+0080..U+009F; U+0085 is a line break to some).
            Some(c) if !c.is_control() => Ok((Unit::NonAscii(c), c.len_utf8())),
            _ => Err(PathError::ControlCharacter),
        },
        _ if is_pchar(b) => Ok((Unit::Plain(b), 1)),
        _ => Ok((Unit::Unsafe(b), 1)),
    }
}

/// Reads `%XX` (and, for a UTF-8 lead byte, its continuation escapes).
fn escaped(bytes: &[u8]) -> Result<(Unit, usize), PathError> {
    let v = hex_pair(bytes, 0)?;
    match v {
        b'/' => Err(PathError::EncodedSlash),
        b'\\' => Err(PathError::EncodedBackslash),
        0x00..=0x1F | 0x7F => Err(PathError::ControlCharacter),
        _ if is_unreserved(v) => Ok((Unit::Decoded(v), 3)),
        0x00..=0x7F => Ok((Unit::Escaped(v), 3)),
        _ => {
            let len = match v {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => return Err(PathError::InvalidUtf8),
            };
            let mut buf = [v, 0, 0, 0];
            for (i, slot) in buf.iter_mut().enumerate().take(len).skip(1) {
                // A continuation byte must itself be escaped: a raw byte
                // here is ASCII or the start of another character.
                if bytes.get(3 * i) != Some(&b'%') {
                    return Err(PathError::InvalidUtf8);
                }
                *slot = hex_pair(bytes, 3 * i)?;
            }
            // `from_utf8` refuses overlong forms, surrogates and > U+10FFFF.
            let c = buf
                .get(..len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.chars().next())
                .ok_or(PathError::InvalidUtf8)?;
            if c.is_control() {
                return Err(PathError::ControlCharacter);
            }
            Ok((Unit::NonAscii(c), 3 * len))
        }
    }
}

/// The byte named by `%XX` at `bytes[at..]`.
fn hex_pair(bytes: &[u8], at: usize) -> Result<u8, PathError> {
    let digit = |i: usize| {
        bytes
            .get(at + i)
            .and_then(|&b| char::from(b).to_digit(16))
            .ok_or(PathError::BadPercentEncoding)
    };
    let (hi, lo) = (digit(1)?, digit(2)?);
    // Both are < 16, so this fits in a byte.
    Ok(u8::try_from(hi * 16 + lo).unwrap_or(0))
}

/// RFC 3986 §2.3 unreserved.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §3.3 `pchar` minus `pct-encoded`: what may stand raw in a
/// segment.
fn is_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The normalised path being written. Stays a prefix of the input (no
/// allocation) until the first byte that differs.
struct Output<'a> {
    src: &'a str,
    /// While `owned` is `None`, the output is `src[..len]`.
    len: usize,
    owned: Option<String>,
}

impl<'a> Output<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            len: 0,
            owned: None,
        }
    }

    /// Appends one ASCII byte (every byte written is ASCII).
    fn push(&mut self, b: u8) {
        match &mut self.owned {
            Some(s) => s.push(char::from(b)),
            None if self.src.as_bytes().get(self.len) == Some(&b) => self.len += 1,
            None => {
                let mut s = String::with_capacity(self.src.len() + 8);
                // The prefix matched ASCII bytes, so `len` is a char boundary.
                s.push_str(self.src.get(..self.len).unwrap_or_default());
                s.push(char::from(b));
                self.owned = Some(s);
            }
        }
    }

    fn push_escaped(&mut self, b: u8) {
        self.push(b'%');
        self.push(HEX[usize::from(b >> 4)]);
        self.push(HEX[usize::from(b & 0x0F)]);
    }

    fn unit(&mut self, unit: Unit) {
        match unit {
            Unit::Plain(b) | Unit::Decoded(b) => self.push(b),
            Unit::Unsafe(b) | Unit::Escaped(b) => self.push_escaped(b),
            Unit::NonAscii(c) => {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    self.push_escaped(b);
                }
            }
        }
    }

    /// Removes the last `/segment` (§5.2.4 step 2C); at the root, nothing.
    fn pop_segment(&mut self) {
        match &mut self.owned {
            Some(s) => {
                let cut = s.rfind('/').unwrap_or(0);
                s.truncate(cut);
            }
            None => {
                let current = self.src.get(..self.len).unwrap_or_default();
                self.len = current.rfind('/').unwrap_or(0);
            }
        }
    }

    fn finish(self) -> Cow<'a, str> {
        match self.owned {
            Some(s) => Cow::Owned(s),
            None => Cow::Borrowed(self.src.get(..self.len).unwrap_or("/")),
        }
    }
}

// === Methods, shared with the authorization rules ===

/// Parses a configured method: case-insensitive, stored upper-case. `None`
/// unless it is an RFC 9110 §5.6.2 token.
/// Parses a config list of methods, reporting each bad one under
/// `<key>.methods[j]`.
pub(crate) fn parse_methods(
    key: &str,
    raw: &[String],
    errors: &mut Vec<(String, String)>,
) -> Vec<Method> {
    let mut methods = Vec::with_capacity(raw.len());
    for (j, m) in raw.iter().enumerate() {
        match parse_method(m) {
            Some(m) => methods.push(m),
            None => errors.push((
                format!("{key}.methods[{j}]"),
                format!("`{m}` is not an HTTP method"),
            )),
        }
    }
    methods
}

pub(crate) fn parse_method(s: &str) -> Option<Method> {
    if s.is_empty() {
        return None;
    }
    Method::from_bytes(s.to_ascii_uppercase().as_bytes()).ok()
}

/// Whether `method` is in `allowed` (empty = every method).
///
/// Compared case-insensitively: RFC 9110 §9.1 makes `get` a different method
/// from `GET`, but some upstream frameworks upper-case it, so a rule for
/// `GET` must not be skippable by sending `get`. `GET` also covers `HEAD`
/// (§9.3.2: HEAD is GET without the content), so a GET-only rule cannot be
/// sidestepped with HEAD.
pub(crate) fn method_allowed(allowed: &[Method], method: &Method) -> bool {
    let m = method.as_str();
    allowed.is_empty()
        || allowed.iter().any(|a| {
            a.as_str().eq_ignore_ascii_case(m)
                || (*a == Method::GET && m.eq_ignore_ascii_case("HEAD"))
        })
}

/// Compiles a configured path regex so that it must match the whole path;
/// with `fold_case`, ignoring case (`upstream.case_insensitive_paths`).
///
/// The pattern is first compiled alone: a valid pattern has balanced
/// groups, so `a)|(.*` cannot close the `(?:` and escape the anchors.
pub(crate) fn anchored_regex(pattern: &str, fold_case: bool) -> Result<Regex, String> {
    if pattern.is_empty() {
        return Err("must not be empty".into());
    }
    Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(fold_case)
        .build()
        .map_err(|e| format!("invalid regex: {e}"))
}

// === Public routes ===

/// `[routes]`: requests that skip authentication.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRoutes {
    pub public: Vec<RawPublicRoute>,
    /// Let CORS preflights (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) through without a session: browsers
    /// never send cookies on a preflight, so without this a cross-origin API
    /// behind tollgate cannot be called at all.
    pub allow_cors_preflight: bool,
}

/// One public route.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPublicRoute {
    /// A regex over the normalised path (never the query), compiled anchored
    /// as `^(?:path)$`: `/public/.*` does not match `/publicity`.
    pub path: String,
    /// Methods this route covers; empty = every method. `GET` covers `HEAD`.
    pub methods: Vec<String>,
    /// Hosts this route covers (`app.example.com`, `*.example.com`); empty
    /// = every host. A request whose host is not known is not public here.
    pub hosts: Vec<String>,
}

/// Requests that reach the upstream without a session. The proxy must still
/// strip client-sent identity headers on them (security-cases HDR-06).
#[derive(Debug)]
pub struct PublicRoutes {
    routes: Vec<PublicRoute>,
    allow_cors_preflight: bool,
}

#[derive(Debug)]
struct PublicRoute {
    path: Regex,
    methods: Vec<Method>,
    /// Lower-case host patterns; empty: every host.
    hosts: Vec<String>,
}

impl PublicRoutes {
    /// Compiles `[routes]`; every problem is reported as `(key, message)`.
    pub fn new(raw: &RawRoutes, fold_case: bool) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut routes = Vec::with_capacity(raw.public.len());
        for (i, route) in raw.public.iter().enumerate() {
            let key = format!("routes.public[{i}]");
            let methods = parse_methods(&key, &route.methods, &mut errors);
            let mut hosts = Vec::new();
            for (j, h) in route.hosts.iter().enumerate() {
                match crate::proxy::host::host_pattern(h) {
                    Some(p) => hosts.push(p),
                    None => errors.push((
                        format!("{key}.hosts[{j}]"),
                        format!("`{h}` is not a host name like \"app.example.com\" or \"*.example.com\" (no port)"),
                    )),
                }
            }
            match anchored_regex(&route.path, fold_case) {
                Ok(path) => {
                    if route.path.ends_with(".*") && !route.path.ends_with("/.*") {
                        tracing::warn!(
                            key = %format!("{key}.path"),
                            "public route `{}` also matches paths that merely start with the same \
                             letters (`/public.*` matches `/publicity`); end it with `/.*` or \
                             `(/.*)?` if that is not meant",
                            route.path
                        );
                    }
                    routes.push(PublicRoute {
                        path,
                        methods,
                        hosts,
                    });
                }
                Err(e) => errors.push((format!("{key}.path"), e)),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                routes,
                allow_cors_preflight: raw.allow_cors_preflight,
            })
        } else {
            Err(errors)
        }
    }

    /// Nothing skips authentication.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && !self.allow_cors_preflight
    }

    /// Whether a request (already [`normalize`]d path) skips authentication.
    ///
    /// CORS preflight: method `OPTIONS` with both `Origin` and
    /// `Access-Control-Request-Method` headers (Fetch standard, "CORS-preflight
    /// request"), only when `allow_cors_preflight` is set.
    ///
    /// A path with `;params` must match as written **and** as
    /// [`without_params`] reads it: `/admin;.js` is not public under a
    /// `.*\.js` route, because Java servers serve `/admin` for it.
    /// Whether the request is public: `host` is the one it is for
    /// (lower-case, no port), `None` when not known.
    pub fn matches(
        &self,
        method: &Method,
        host: Option<&str>,
        normalized_path: &str,
        headers: &HeaderMap,
    ) -> bool {
        if self.allow_cors_preflight
            && *method == Method::OPTIONS
            && headers.contains_key(http::header::ORIGIN)
            && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return true;
        }
        let stripped = without_params(normalized_path);
        let covers = |r: &PublicRoute| {
            r.hosts.is_empty()
                || host.is_some_and(|h| {
                    r.hosts
                        .iter()
                        .any(|p| crate::proxy::host::host_matches(p, h))
                })
        };
        self.routes.iter().any(|r| {
            method_allowed(&r.methods, method)
                && covers(r)
                && r.path.is_match(normalized_path)
                && (stripped == normalized_path || r.path.is_match(&stripped))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn dot_segments_are_removed_after_decoding() {
        assert_eq!(norm("/public/../admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/public/%2e%2e/admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/public/%2E%2E/admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/public/.%2e/admin/").as_deref(), Ok("/admin/"));
        assert_eq!(norm("/public/./x").as_deref(), Ok("/public/x"));
        assert_eq!(norm("/./admin/").as_deref(), Ok("/admin/"));
        assert_eq!(norm("/%2e/admin/").as_deref(), Ok("/admin/"));
        assert_eq!(norm("/public/./../admin/").as_deref(), Ok("/admin/"));
        assert_eq!(norm("/a/b/c/./../../g").as_deref(), Ok("/a/g"));
    }

    #[test]
    fn dot_segments_never_climb_above_the_root() {
        assert_eq!(norm("/..").as_deref(), Ok("/"));
        assert_eq!(norm("/../../admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/a/..").as_deref(), Ok("/"));
    }

    #[test]
    fn trailing_dot_segments_leave_a_trailing_slash() {
        assert_eq!(norm("/a/.").as_deref(), Ok("/a/"));
        assert_eq!(norm("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(norm("/admin/.").as_deref(), Ok("/admin/"));
    }

    #[test]
    fn trailing_slash_is_preserved() {
        assert_eq!(norm("/a/").as_deref(), Ok("/a/"));
        assert!(matches!(normalize("/a/"), Ok(Cow::Borrowed("/a/"))));
    }

    #[test]
    fn repeated_slashes_merge() {
        assert_eq!(norm("//admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("//admin/").as_deref(), Ok("/admin/"));
        assert_eq!(norm("/public//../admin/").as_deref(), Ok("/admin/"));
        assert_eq!(norm("/a///b//").as_deref(), Ok("/a/b/"));
        assert_eq!(norm("//").as_deref(), Ok("/"));
    }

    #[test]
    fn dot_segments_with_params_are_dot_segments() {
        assert_eq!(norm("/public;/../admin").as_deref(), Ok("/admin"));
        // Apache Shiro CVE-2020-1957: Tomcat reads `..;` as `..`.
        assert_eq!(norm("/public/..;/admin/").as_deref(), Ok("/admin/"));
        assert_eq!(
            norm("/public/..;jsessionid=x/admin").as_deref(),
            Ok("/admin")
        );
        assert_eq!(norm("/public/.;x/y").as_deref(), Ok("/public/y"));
        assert_eq!(norm("/public/%2e%2e;/admin").as_deref(), Ok("/admin"));
        // Not dot segments: the text before `;` is not `.` or `..`.
        assert_eq!(norm("/a/...;x").as_deref(), Ok("/a/...;x"));
        assert_eq!(norm("/a/;x/b").as_deref(), Ok("/a/;x/b"));
        // An encoded `;` is data, not a parameter delimiter.
        assert_eq!(norm("/a/..%3Bx/b").as_deref(), Ok("/a/..%3Bx/b"));
    }

    #[test]
    fn only_unreserved_characters_are_decoded() {
        assert_eq!(norm("/%70ublic/x").as_deref(), Ok("/public/x"));
        assert_eq!(norm("/%7euser/%41%2D%5F").as_deref(), Ok("/~user/A-_"));
        assert_eq!(
            norm("/a%3bb%3Fc%23d%20e").as_deref(),
            Ok("/a%3Bb%3Fc%23d%20e")
        );
        assert_eq!(norm("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
        assert_eq!(norm("/100%25").as_deref(), Ok("/100%25"));
    }

    #[test]
    fn characters_not_allowed_raw_are_encoded() {
        assert_eq!(norm("/café").as_deref(), Ok("/caf%C3%A9"));
        assert_eq!(norm("/a b").as_deref(), Ok("/a%20b"));
        assert_eq!(
            norm("/{x}|\"<>`^[]").as_deref(),
            Ok("/%7Bx%7D%7C%22%3C%3E%60%5E%5B%5D")
        );
        assert_eq!(
            norm("/a;b=c:d@e!$&'()*+,").as_deref(),
            Ok("/a;b=c:d@e!$&'()*+,")
        );
    }

    #[test]
    fn ordinary_paths_are_borrowed() {
        for p in [
            "/",
            "/a/b",
            "/a/",
            "/caf%C3%A9",
            "/a;b=c",
            "/api/v1/items-1_2.json~",
        ] {
            assert!(
                matches!(normalize(p), Ok(Cow::Borrowed(x)) if x == p),
                "{p}"
            );
        }
        // A prefix of the input is borrowed too.
        assert!(matches!(normalize("/a/."), Ok(Cow::Borrowed("/a/"))));
        assert!(matches!(normalize("/.."), Ok(Cow::Borrowed("/"))));
    }

    #[test]
    fn encoded_separators_are_refused() {
        assert_eq!(norm("/public/..%2fadmin"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/public%2Fx"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/public%2f..%2fadmin/"), Err(PathError::EncodedSlash));
        assert_eq!(
            norm("/public/..%5Cadmin/"),
            Err(PathError::EncodedBackslash)
        );
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedBackslash));
    }

    #[test]
    fn double_encoding_is_refused() {
        assert_eq!(norm("/a/%252e%252e/b"), Err(PathError::DoubleEncoded));
        assert_eq!(
            norm("/public/%252E%252E/admin/"),
            Err(PathError::DoubleEncoded)
        );
        assert_eq!(norm("/a%252Fb"), Err(PathError::DoubleEncoded));
        // The two hex digits may themselves be encoded.
        assert_eq!(norm("/a%25%32%65"), Err(PathError::DoubleEncoded));
        assert_eq!(norm("/a%2525"), Err(PathError::DoubleEncoded));
        // A literal percent sign followed by anything else is fine.
        assert_eq!(norm("/50%25off").as_deref(), Ok("/50%25off"));
        assert_eq!(norm("/a%25/2e").as_deref(), Ok("/a%25/2e"));
        assert_eq!(norm("/a%252").as_deref(), Ok("/a%252"));
    }

    #[test]
    fn backslashes_are_refused() {
        assert_eq!(norm("/a\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/public/..\\admin/"), Err(PathError::Backslash));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(norm("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/admin%00.js"), Err(PathError::ControlCharacter));
        assert_eq!(
            norm("/public/%00/../admin/"),
            Err(PathError::ControlCharacter)
        );
        assert_eq!(norm("/a%0Ab"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%7f"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a\tb"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a\u{7f}"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%C2%85"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a\u{85}"), Err(PathError::ControlCharacter));
    }

    #[test]
    fn malformed_percent_encoding_is_refused() {
        assert_eq!(norm("/a%"), Err(PathError::BadPercentEncoding));
        assert_eq!(norm("/a%2"), Err(PathError::BadPercentEncoding));
        assert_eq!(norm("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(norm("/a%%32%65"), Err(PathError::BadPercentEncoding));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        // Overlong `.`: lenient decoders read `%C0%AE%C0%AE` as `..`.
        assert_eq!(
            norm("/public/%C0%AE%C0%AE/admin/"),
            Err(PathError::InvalidUtf8)
        );
        assert_eq!(norm("/%FF"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/%C3"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/%C3/"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/%A9"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/%ED%A0%80"), Err(PathError::InvalidUtf8)); // surrogate
        assert_eq!(norm("/%C3é"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/%F0%9F%98%80").as_deref(), Ok("/%F0%9F%98%80"));
    }

    #[test]
    fn non_origin_form_is_refused() {
        assert_eq!(norm(""), Err(PathError::NotOriginForm));
        assert_eq!(norm("*"), Err(PathError::NotOriginForm));
        assert_eq!(norm("admin"), Err(PathError::NotOriginForm));
        assert_eq!(
            norm("https://evil.test/admin"),
            Err(PathError::NotOriginForm)
        );
        assert_eq!(norm("/admin#/public/"), Err(PathError::NotOriginForm));
        assert_eq!(norm("/api?path=/status"), Err(PathError::NotOriginForm));
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in [
            "/public/%2e%2e/admin",
            "/caf%c3%a9/./x//y/..",
            "/a b/{c}",
            "/public;/../admin",
            "/%7euser/",
        ] {
            let once = norm(p).unwrap_or_default();
            assert!(
                matches!(normalize(&once), Ok(Cow::Borrowed(x)) if x == once),
                "{p}"
            );
        }
    }

    #[test]
    fn params_are_stripped_per_segment() {
        assert!(matches!(without_params("/a/b"), Cow::Borrowed("/a/b")));
        assert_eq!(without_params("/admin;.js"), "/admin");
        assert_eq!(without_params("/admin;jsessionid=x/y"), "/admin/y");
        assert_eq!(without_params("/;x/admin"), "/admin");
        assert_eq!(without_params("/admin/;x"), "/admin/");
        assert_eq!(without_params("/a;x/"), "/a/");
        assert_eq!(without_params("/;x"), "/");
    }

    #[test]
    fn a_public_route_with_hosts_is_public_only_on_them() {
        let raw = RawRoutes {
            public: vec![RawPublicRoute {
                path: "/docs/.*".into(),
                hosts: vec!["docs.example.com".into(), "*.docs.example.org".into()],
                ..RawPublicRoute::default()
            }],
            allow_cors_preflight: false,
        };
        let r = PublicRoutes::new(&raw, false).unwrap_or_else(|e| panic!("{e:?}"));
        let none = HeaderMap::new();
        let at = |host| r.matches(&Method::GET, host, "/docs/a", &none);
        assert!(at(Some("docs.example.com")));
        assert!(at(Some("eu.docs.example.org")));
        assert!(!at(Some("app.example.com")));
        assert!(!at(None), "an unknown host is not public");
        let bad = RawRoutes {
            public: vec![RawPublicRoute {
                path: "/x".into(),
                hosts: vec!["docs.example.com:443".into()],
                ..RawPublicRoute::default()
            }],
            allow_cors_preflight: false,
        };
        assert!(PublicRoutes::new(&bad, false).is_err());
    }

    fn routes(public: &[(&str, &[&str])], preflight: bool) -> PublicRoutes {
        let raw = RawRoutes {
            public: public
                .iter()
                .map(|(p, m)| RawPublicRoute {
                    path: (*p).into(),
                    methods: m.iter().map(|s| (*s).to_string()).collect(),
                    hosts: Vec::new(),
                })
                .collect(),
            allow_cors_preflight: preflight,
        };
        PublicRoutes::new(&raw, false).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn public_routes_are_anchored() {
        let r = routes(&[("/public/.*", &[])], false);
        let none = HeaderMap::new();
        assert!(r.matches(&Method::GET, None, "/public/x", &none));
        assert!(r.matches(&Method::POST, None, "/public/", &none));
        assert!(!r.matches(&Method::GET, None, "/publicity", &none));
        assert!(!r.matches(&Method::GET, None, "/public", &none));
        assert!(!r.matches(&Method::GET, None, "/x/public/y", &none));
        // An explicit `^…$` in the pattern is harmless.
        let r = routes(&[("^/health$", &[])], false);
        assert!(r.matches(&Method::GET, None, "/health", &none));
        assert!(!r.matches(&Method::GET, None, "/healthz", &none));
    }

    #[test]
    fn public_route_regex_cannot_escape_its_anchors() {
        let raw = RawRoutes {
            public: vec![RawPublicRoute {
                path: "/a)|(.*".into(),
                ..RawPublicRoute::default()
            }],
            allow_cors_preflight: false,
        };
        let errors = PublicRoutes::new(&raw, false).err().unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "routes.public[0].path");
    }

    #[test]
    fn public_routes_filter_methods() {
        let r = routes(&[("/public/.*", &["get", "OPTIONS"])], false);
        let none = HeaderMap::new();
        assert!(r.matches(&Method::GET, None, "/public/x", &none));
        assert!(r.matches(&Method::HEAD, None, "/public/x", &none));
        assert!(r.matches(&Method::OPTIONS, None, "/public/x", &none));
        assert!(!r.matches(&Method::POST, None, "/public/x", &none));
        let propfind = Method::from_bytes(b"PROPFIND").unwrap_or_default();
        assert!(!r.matches(&propfind, None, "/public/x", &none));
        let lower_get = Method::from_bytes(b"get").unwrap_or_default();
        assert!(r.matches(&lower_get, None, "/public/x", &none));
    }

    #[test]
    fn path_params_cannot_make_a_path_public() {
        let r = routes(&[(r".*\.js", &[]), ("/public/.*", &[])], false);
        let none = HeaderMap::new();
        assert!(r.matches(&Method::GET, None, "/app.js", &none));
        assert!(!r.matches(&Method::GET, None, "/admin;.js", &none));
        assert!(!r.matches(&Method::GET, None, "/admin/x;.js", &none));
        // Both readings are a .js file here: `/admin;v=1/app.js` and `/admin/app.js`.
        assert!(r.matches(&Method::GET, None, "/admin;v=1/app.js", &none));
        assert!(r.matches(&Method::GET, None, "/public/x;v=1", &none));
        assert!(!r.matches(&Method::GET, None, "/public;x", &none));
    }

    #[test]
    fn cors_preflight_needs_the_flag_and_both_headers() {
        let mut pre = HeaderMap::new();
        pre.insert(
            http::header::ORIGIN,
            http::HeaderValue::from_static("https://x.test"),
        );
        pre.insert(
            http::header::ACCESS_CONTROL_REQUEST_METHOD,
            http::HeaderValue::from_static("POST"),
        );
        let mut origin_only = HeaderMap::new();
        origin_only.insert(
            http::header::ORIGIN,
            http::HeaderValue::from_static("https://x.test"),
        );

        let on = routes(&[], true);
        assert!(!on.is_empty());
        assert!(on.matches(&Method::OPTIONS, None, "/api/x", &pre));
        assert!(!on.matches(&Method::OPTIONS, None, "/api/x", &origin_only));
        assert!(!on.matches(&Method::POST, None, "/api/x", &pre));

        let off = routes(&[], false);
        assert!(off.is_empty());
        assert!(!off.matches(&Method::OPTIONS, None, "/api/x", &pre));
    }

    #[test]
    fn bad_route_config_names_every_key() {
        let raw = RawRoutes {
            public: vec![
                RawPublicRoute {
                    path: "(".into(),
                    methods: vec!["GET".into(), "BAD METHOD".into(), String::new()],
                    ..RawPublicRoute::default()
                },
                RawPublicRoute::default(),
            ],
            allow_cors_preflight: false,
        };
        let keys: Vec<String> = PublicRoutes::new(&raw, false)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "routes.public[0].methods[1]",
                "routes.public[0].methods[2]",
                "routes.public[0].path",
                "routes.public[1].path",
            ]
        );
    }
}
