//! Who may reach which path: the `[authorization]` section.
//!
//! A request that reached this point has a valid session; [`Policy::decide`]
//! says whether *this* user may make *this* request. Two layers, both must
//! pass:
//!
//! 1. **Shortcuts** (`allowed_email_domains`, `allowed_emails`,
//!    `allowed_groups`). If any of the three is set, the user must match at
//!    least one entry of one of them, on every path.
//! 2. **Rules**, in order. The first rule whose path and method match the
//!    request decides: allow if the user matches any of its `allow_*`
//!    entries (or it has `allow_any`), else deny. When rules exist and none
//!    matches, the request is denied: a path nobody thought about is closed,
//!    not open.
//!
//! With neither shortcuts nor rules ([`Policy::is_open`]) every
//! authenticated user passes.
//!
//! Matching, and why:
//!
//! - Paths are the [`normalize`](crate::proxy::path::normalize)d request
//!   path, never the query (oauth2-proxy GHSA-7rh7-c77v-6434). A path with
//!   `;params` is decided twice, as written and as Java servers route it
//!   ([`without_params`]); it is allowed only if both readings are allowed,
//!   so `/admin;x` cannot fall through to a rule later in the list.
//! - Emails must have exactly one `@` (oauth2-proxy GHSA-c5c4-8r6x-56w3:
//!   `a@evil.com@example.com` is not an `example.com` address) and are
//!   compared ASCII-case-insensitively.
//! - Domain entries match on a label boundary: `example.com` only that
//!   domain; `.example.com` or `*.example.com` any subdomain but not the
//!   apex, and never `evilexample.com` (oauth2-proxy GHSA-4mf2-f3wh-gvf2).
//!   One trailing dot (the DNS root) is ignored on both sides.
//! - Groups and claim values are compared exactly, element by element, never
//!   as a joined string (`["nonadmins,admins"]` is not `admins`, HDR-19).

use std::collections::{BTreeMap, BTreeSet};

use http::Method;
use regex::Regex;
use serde_json::{Map, Value};

use crate::proxy::host::{host_matches, host_pattern};
use crate::proxy::path::{anchored_regex, method_allowed, parse_methods, without_params};

/// `[authorization]` as written.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuthorization {
    /// Email domains whose users may pass (see the module docs for the
    /// `.example.com` form).
    pub allowed_email_domains: Vec<String>,
    /// Exact email addresses that may pass.
    pub allowed_emails: Vec<String>,
    /// Group names (the session's groups claim) that may pass.
    pub allowed_groups: Vec<String>,
    /// Per-path rules; the first that matches a request decides.
    pub rules: Vec<RawRule>,
    /// Bearer access tokens (API clients): a JWT must name one of these in
    /// `aud`. Read by the config loader for `auth::bearer`, not by [`Policy`].
    pub bearer_audiences: Vec<String>,
    /// Check opaque bearer tokens at the provider's introspection endpoint.
    /// Read by the config loader for `auth::bearer`, not by [`Policy`].
    pub bearer_introspection: bool,
    /// Signature algorithms accepted on JWT bearer tokens: asymmetric only.
    /// Read by the config loader for `auth::bearer`, not by [`Policy`].
    pub bearer_algorithms: Vec<String>,
    /// More issuers whose JWT access tokens are accepted, each with its
    /// own audiences (oauth2-proxy's `extra_jwt_issuers`). Read by the
    /// config loader for `auth::bearer`, not by [`Policy`].
    pub bearer_issuers: Vec<RawBearerIssuer>,
}

/// One `[[authorization.bearer_issuers]]` entry.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBearerIssuer {
    pub issuer: String,
    pub audiences: Vec<String>,
}

impl Default for RawAuthorization {
    fn default() -> Self {
        Self {
            allowed_email_domains: Vec::new(),
            allowed_emails: Vec::new(),
            allowed_groups: Vec::new(),
            rules: Vec::new(),
            bearer_audiences: Vec::new(),
            bearer_introspection: false,
            bearer_algorithms: ["RS256", "ES256", "PS256", "EdDSA"]
                .map(String::from)
                .to_vec(),
            bearer_issuers: Vec::new(),
        }
    }
}

/// One `[[authorization.rules]]` entry.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRule {
    /// Shown in logs and deny reasons; defaults to `rule #i` (the index in
    /// `authorization.rules`, from 0).
    pub name: Option<String>,
    /// Path prefixes, segment-aware: `/admin` matches `/admin`, `/admin/`
    /// and `/admin/x` but not `/administrator`. A trailing `/` is ignored
    /// (`/admin/` also matches `/admin`), so `/admin`, `/admin/` and
    /// `/admin/.` are always decided alike.
    pub paths: Vec<String>,
    /// A regex over the normalised path, anchored: compiled as `^(?:…)$`.
    /// With both `paths` and `path_regex`, either may match. With neither,
    /// the rule matches every path.
    pub path_regex: Option<String>,
    /// Methods the rule covers; empty = every method. Case-insensitive;
    /// `GET` also covers `HEAD`.
    pub methods: Vec<String>,
    /// Hosts the rule covers (`app.example.com`, or `*.example.com` for one
    /// label before it); empty = every host. Where the host is not known
    /// (forward-auth from an untrusted peer), the rule may not admit users
    /// it would refuse, and never admits by itself.
    pub hosts: Vec<String>,
    pub allow_emails: Vec<String>,
    pub allow_email_domains: Vec<String>,
    pub allow_groups: Vec<String>,
    /// Claim path → required value (string, number or boolean). The path is
    /// dotted (`realm_access.roles`); a top-level claim literally named with
    /// the dots is tried first. A claim that is an array matches when one of
    /// its elements equals the value. Types must agree: `"1"` is not `1`.
    /// Each entry is one more way in, like the other `allow_*` lists.
    pub allow_claims: BTreeMap<String, Value>,
    /// Any authenticated user. Cannot be combined with `allow_*` lists.
    pub allow_any: bool,
    /// Provider ids (`provider.id`): when set, the rule admits only users
    /// who signed in with one of these, whatever else matches. Groups and
    /// claims of different providers are different namespaces.
    pub providers: Vec<String>,
}

/// The user as the rules see them.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The id of the provider that signed the user in.
    pub provider: Option<&'a str>,
    pub email: Option<&'a str>,
    pub email_verified: Option<bool>,
    pub groups: &'a [String],
    /// Top-level claims (ID token and userinfo, as the session stored them).
    pub claims: &'a Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { reason: String },
}

/// The compiled `[authorization]` section.
#[derive(Debug)]
pub struct Policy {
    shortcuts: Grant,
    rules: Vec<Rule>,
}

const SHORTCUT_DENIED: &str = "not in allowed_email_domains/allowed_emails/allowed_groups";
const NO_RULE: &str = "no rule matches";
/// Dotted claim paths are resolved by trying every split; this bounds the
/// work a crafted claim set can cause (2^dots lookups at worst).
const MAX_CLAIM_PATH_DOTS: usize = 8;

#[derive(Debug)]
struct Rule {
    deny_reason: String,
    /// Lower-case host patterns; empty: every host.
    hosts: Vec<String>,
    prefixes: Vec<String>,
    regex: Option<Regex>,
    methods: Vec<Method>,
    grant: Grant,
    fold_case: bool,
}

/// Who a rule (or the shortcuts) lets in.
#[derive(Debug, Default)]
struct Grant {
    /// Empty: users of any provider.
    providers: Vec<String>,
    any: bool,
    emails: Vec<Email>,
    domains: Vec<DomainPattern>,
    groups: Vec<String>,
    claims: Vec<(String, Value)>,
}

/// A configured address, lower-case, trailing dot removed.
#[derive(Debug)]
struct Email {
    local: String,
    domain: String,
}

#[derive(Debug)]
enum DomainPattern {
    Exact(String),
    /// Strict subdomains of this domain (stored without the leading dot).
    Subdomains(String),
}

// === impl Policy ===

impl Policy {
    /// Compiles `[authorization]`; every problem is reported as
    /// `(key, message)`, keys like `authorization.rules[1].path_regex`.
    /// With `fold_case` (`upstream.case_insensitive_paths`), paths match
    /// ignoring ASCII case.
    pub fn new(raw: &RawAuthorization, fold_case: bool) -> Result<Policy, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut shortcuts = Grant::default();
        shortcuts.add_emails(
            "authorization.allowed_emails",
            &raw.allowed_emails,
            &mut errors,
        );
        shortcuts.add_domains(
            "authorization.allowed_email_domains",
            &raw.allowed_email_domains,
            &mut errors,
        );
        shortcuts.add_groups(
            "authorization.allowed_groups",
            &raw.allowed_groups,
            &mut errors,
        );

        let mut rules = Vec::with_capacity(raw.rules.len());
        // The first rule that matches every request makes later rules dead.
        let mut catch_all: Option<usize> = None;
        for (i, r) in raw.rules.iter().enumerate() {
            let key = format!("authorization.rules[{i}]");
            if let Some(first) = catch_all {
                errors.push((
                    key.clone(),
                    format!(
                        "never consulted: authorization.rules[{first}] matches every host, path \
                         and method and comes first"
                    ),
                ));
            }
            if let Some(rule) = Rule::new(&key, i, r, fold_case, &mut errors) {
                if catch_all.is_none()
                    && rule.hosts.is_empty()
                    && rule.methods.is_empty()
                    && rule.regex.is_none()
                    && (rule.prefixes.is_empty() || rule.prefixes.iter().any(|p| p == "/"))
                {
                    catch_all = Some(i);
                }
                rules.push(rule);
            }
        }
        if errors.is_empty() {
            Ok(Policy { shortcuts, rules })
        } else {
            Err(errors)
        }
    }

    /// No shortcuts and no rules: every authenticated user passes.
    pub fn is_open(&self) -> bool {
        self.shortcuts.is_empty() && self.rules.is_empty()
    }

    /// Decides one request. `path` is the normalised path (no query).
    /// Allocates only to explain a denial.
    pub fn decide(&self, who: &Identity<'_>, method: &Method, path: &str) -> Decision {
        self.decide_at(who, method, None, path)
    }

    /// [`Policy::decide`] for a request to `host` (lower-case, no port;
    /// `None`: not known, see [`RawRule::hosts`]).
    pub fn decide_at(
        &self,
        who: &Identity<'_>,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Decision {
        if !self.shortcuts.is_empty() && !self.shortcuts.admits(who) {
            return Decision::Deny {
                reason: SHORTCUT_DENIED.into(),
            };
        }
        if self.rules.is_empty() {
            return Decision::Allow;
        }
        let first = self.decide_rules(who, method, host, path);
        if first != Decision::Allow {
            return first;
        }
        match without_params(path) {
            std::borrow::Cow::Owned(stripped) if stripped != path => {
                self.decide_rules(who, method, host, &stripped)
            }
            _ => Decision::Allow,
        }
    }

    /// Claim paths the rules read, so sessions keep those claims. A dotted
    /// path may be found under its literal name or under any of its
    /// dot-prefixes (`realm_access` for `realm_access.roles`): see
    /// [`Policy::claim_roots`].
    pub fn claim_paths(&self) -> BTreeSet<String> {
        self.rules
            .iter()
            .flat_map(|r| r.grant.claims.iter().map(|(p, _)| p.clone()))
            .collect()
    }

    /// The top-level claim names [`Policy::decide`] may look at: each claim
    /// path and each of its dot-prefixes (`realm_access.roles` →
    /// `realm_access`, `realm_access.roles`). A session that stores these
    /// top-level claims has everything the rules need.
    pub fn claim_roots(&self) -> BTreeSet<String> {
        let mut roots = BTreeSet::new();
        for path in self.claim_paths() {
            for (i, _) in path.match_indices('.') {
                if let Some(head) = path.get(..i) {
                    roots.insert(head.to_string());
                }
            }
            roots.insert(path);
        }
        roots
    }

    /// Decides a request whose method and path are not known (forward-auth
    /// from a peer whose `X-Forwarded-*` headers are not believed): allowed
    /// only when the rules would allow this user whatever the method and
    /// path, so the answer never differs in the user's favour from a full
    /// check.
    pub fn decide_unknown_path(&self, who: &Identity<'_>) -> Decision {
        if !self.shortcuts.is_empty() && !self.shortcuts.admits(who) {
            return Decision::Deny {
                reason: SHORTCUT_DENIED.into(),
            };
        }
        for rule in &self.rules {
            if !rule.grant.admits(who) {
                return Decision::Deny {
                    reason: format!("{} (the original path is unknown)", rule.deny_reason),
                };
            }
            if rule.matches_every_path() {
                return Decision::Allow;
            }
        }
        if self.rules.is_empty() {
            Decision::Allow
        } else {
            Decision::Deny {
                reason: format!("{NO_RULE} for every path (the original path is unknown)"),
            }
        }
    }

    fn decide_rules(
        &self,
        who: &Identity<'_>,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Decision {
        for rule in &self.rules {
            if !rule.matches(method, path) {
                continue;
            }
            let admits = rule.grant.admits(who);
            match rule.covers_host(host) {
                Some(false) => {}
                Some(true) if admits => return Decision::Allow,
                Some(true) => {
                    return Decision::Deny {
                        reason: rule.deny_reason.clone(),
                    }
                }
                // The host is unknown: this rule may be the one that
                // applies. Refusing where it would refuse, and otherwise
                // deciding by the rules after it, never answers in the
                // user's favour.
                None if admits => {}
                None => {
                    return Decision::Deny {
                        reason: format!("{} (the host is unknown)", rule.deny_reason),
                    }
                }
            }
        }
        Decision::Deny {
            reason: NO_RULE.into(),
        }
    }
}

// === impl Rule ===

impl Rule {
    fn new(
        key: &str,
        index: usize,
        raw: &RawRule,
        fold_case: bool,
        errors: &mut Vec<(String, String)>,
    ) -> Option<Rule> {
        let before = errors.len();
        let label = match &raw.name {
            Some(name) if name.is_empty() || name.chars().any(char::is_control) => {
                errors.push((
                    format!("{key}.name"),
                    "must be non-empty, without control characters".into(),
                ));
                String::new()
            }
            Some(name) => format!("rule `{name}`"),
            None => format!("rule #{index}"),
        };

        let mut prefixes = Vec::with_capacity(raw.paths.len());
        for (j, p) in raw.paths.iter().enumerate() {
            match path_prefix(p) {
                Ok(p) => prefixes.push(p),
                Err(e) => errors.push((format!("{key}.paths[{j}]"), e)),
            }
        }
        let regex = match raw
            .path_regex
            .as_deref()
            .map(|r| anchored_regex(r, fold_case))
        {
            None => None,
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                errors.push((format!("{key}.path_regex"), e));
                None
            }
        };
        let methods = parse_methods(key, &raw.methods, errors);
        let mut hosts = Vec::new();
        for (j, h) in raw.hosts.iter().enumerate() {
            match host_pattern(h) {
                Some(p) => hosts.push(p),
                None => errors.push((
                    format!("{key}.hosts[{j}]"),
                    format!("`{h}` is not a host name like \"app.example.com\" or \"*.example.com\" (no port)"),
                )),
            }
        }

        let mut grant = Grant {
            any: raw.allow_any,
            providers: raw.providers.clone(),
            ..Grant::default()
        };
        grant.add_emails(&format!("{key}.allow_emails"), &raw.allow_emails, errors);
        grant.add_domains(
            &format!("{key}.allow_email_domains"),
            &raw.allow_email_domains,
            errors,
        );
        grant.add_groups(&format!("{key}.allow_groups"), &raw.allow_groups, errors);
        grant.add_claims(&format!("{key}.allow_claims"), &raw.allow_claims, errors);

        let lists_set = !raw.allow_emails.is_empty()
            || !raw.allow_email_domains.is_empty()
            || !raw.allow_groups.is_empty()
            || !raw.allow_claims.is_empty();
        if raw.allow_any && lists_set {
            // `allow_any` with lists reads like "any of these users" but
            // would admit everyone: refuse the ambiguity.
            errors.push((
                key.to_string(),
                "allow_any admits every authenticated user; remove it or the allow_* lists".into(),
            ));
        } else if !raw.allow_any && !lists_set {
            errors.push((
                key.to_string(),
                "allows nobody: set allow_any or at least one allow_* list".into(),
            ));
        }

        (errors.len() == before).then(|| Rule {
            hosts,
            deny_reason: format!("{label} does not allow this user"),
            prefixes,
            regex,
            methods,
            grant,
            fold_case,
        })
    }

    fn matches_every_path(&self) -> bool {
        self.hosts.is_empty()
            && self.methods.is_empty()
            && ((self.prefixes.is_empty() && self.regex.is_none())
                || self.prefixes.iter().any(|p| p == "/"))
    }

    /// Whether the rule covers `host`: `None` when the host is unknown
    /// and the rule names hosts.
    fn covers_host(&self, host: Option<&str>) -> Option<bool> {
        if self.hosts.is_empty() {
            return Some(true);
        }
        let host = host?;
        Some(self.hosts.iter().any(|p| host_matches(p, host)))
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        if !method_allowed(&self.methods, method) {
            return false;
        }
        if self.prefixes.is_empty() && self.regex.is_none() {
            return true;
        }
        self.prefixes
            .iter()
            .any(|p| has_path_prefix(path, p, self.fold_case))
            || self.regex.as_ref().is_some_and(|r| r.is_match(path))
    }
}

/// Validates a configured prefix: it must already be a normalised path
/// (requests are compared after normalisation, so `/a/../b` or `/%61` could
/// never match as written). A trailing `/` is dropped, except for `/`.
fn path_prefix(p: &str) -> Result<String, String> {
    if p.contains(['?', '#']) {
        return Err("a path prefix cannot contain `?` or `#` (rules never see the query)".into());
    }
    match crate::proxy::path::normalize(p) {
        Ok(n) if n == p => {}
        Ok(n) => return Err(format!("not a normalised path; write `{n}`")),
        Err(e) => return Err(format!("not a valid path: {e}")),
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

/// Segment-aware prefix match: `/admin` matches `/admin`, `/admin/…`, not
/// `/administrator`.
fn has_path_prefix(path: &str, prefix: &str, fold_case: bool) -> bool {
    let rest = match path.get(..prefix.len()) {
        Some(head) if head == prefix || (fold_case && head.eq_ignore_ascii_case(prefix)) => {
            path.get(prefix.len()..).unwrap_or_default()
        }
        _ => return false,
    };
    rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/')
}

// === impl Grant ===

impl Grant {
    fn is_empty(&self) -> bool {
        !self.any
            && self.emails.is_empty()
            && self.domains.is_empty()
            && self.groups.is_empty()
            && self.claims.is_empty()
    }

    fn admits(&self, who: &Identity<'_>) -> bool {
        if !self.providers.is_empty()
            && !who
                .provider
                .is_some_and(|p| self.providers.iter().any(|q| q == p))
        {
            return false;
        }
        if self.any {
            return true;
        }
        if let Some((local, domain)) = usable_email(who) {
            if self.emails.iter().any(|e| {
                e.local.eq_ignore_ascii_case(local) && e.domain.eq_ignore_ascii_case(domain)
            }) {
                return true;
            }
            if self.domains.iter().any(|d| d.matches(domain)) {
                return true;
            }
        }
        if who.groups.iter().any(|g| self.groups.contains(g)) {
            return true;
        }
        self.claims.iter().any(|(path, want)| {
            resolve_claim(who.claims, path).is_some_and(|have| claim_matches(have, want))
        })
    }

    fn add_emails(&mut self, key: &str, list: &[String], errors: &mut Vec<(String, String)>) {
        for (i, raw) in list.iter().enumerate() {
            let parsed = split_email(raw).and_then(|(local, domain)| {
                let domain = domain.strip_suffix('.').unwrap_or(domain);
                check_domain(domain).ok().map(|()| (local, domain))
            });
            match parsed {
                Some((local, domain)) => self.emails.push(Email {
                    local: local.to_ascii_lowercase(),
                    domain: domain.to_ascii_lowercase(),
                }),
                None => errors.push((
                    format!("{key}[{i}]"),
                    format!("`{raw}` is not an email address (one `@`, a non-empty local part, an ASCII domain)"),
                )),
            }
        }
    }

    fn add_domains(&mut self, key: &str, list: &[String], errors: &mut Vec<(String, String)>) {
        for (i, raw) in list.iter().enumerate() {
            match domain_pattern(raw) {
                Ok(d) => self.domains.push(d),
                Err(e) => errors.push((format!("{key}[{i}]"), e)),
            }
        }
    }

    fn add_groups(&mut self, key: &str, list: &[String], errors: &mut Vec<(String, String)>) {
        for (i, g) in list.iter().enumerate() {
            if g.is_empty() {
                errors.push((format!("{key}[{i}]"), "a group name cannot be empty".into()));
            } else {
                self.groups.push(g.clone());
            }
        }
    }

    fn add_claims(
        &mut self,
        key: &str,
        claims: &BTreeMap<String, Value>,
        errors: &mut Vec<(String, String)>,
    ) {
        for (path, want) in claims {
            let k = format!("{key}.{path}");
            if path.is_empty() || path.chars().any(char::is_control) {
                errors.push((
                    k,
                    "a claim path must be non-empty, without control characters".into(),
                ));
                continue;
            }
            if path.matches('.').count() > MAX_CLAIM_PATH_DOTS {
                errors.push((
                    k,
                    format!("at most {MAX_CLAIM_PATH_DOTS} dots in a claim path"),
                ));
                continue;
            }
            if !matches!(want, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                errors.push((
                    k,
                    "the required value must be a string, number or boolean".into(),
                ));
                continue;
            }
            self.claims.push((path.clone(), want.clone()));
        }
    }
}

// === Per-request constraints ===

/// Constraints an ingress puts on one `/oauth2/auth` check, as oauth2-proxy
/// takes them from the query: `allowed_groups`, `allowed_emails` and
/// `allowed_email_domains`, each comma-separated. Every parameter given
/// must hold (any one of its values), on top of the configured rules.
#[derive(Debug, Default)]
pub struct Constraints {
    groups: Vec<String>,
    emails: Vec<String>,
    domains: Vec<DomainPattern>,
}

/// Most values a constraint parameter may list.
const MAX_CONSTRAINT_VALUES: usize = 64;

impl Constraints {
    /// From a query string; `Ok(None)` when it has none of the parameters,
    /// `Err(parameter)` for a malformed or over-long one.
    pub fn from_query(query: &str) -> Result<Option<Self>, &'static str> {
        let mut c = Constraints::default();
        let mut any = false;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let (name, list): (&'static str, Vec<&str>) = match k.as_ref() {
                "allowed_groups" => ("allowed_groups", v.split(',').collect()),
                "allowed_emails" => ("allowed_emails", v.split(',').collect()),
                "allowed_email_domains" => ("allowed_email_domains", v.split(',').collect()),
                _ => continue,
            };
            any = true;
            let values: Vec<&str> = list
                .into_iter()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if values.is_empty() || values.len() > MAX_CONSTRAINT_VALUES {
                return Err(name);
            }
            match name {
                "allowed_groups" => c.groups.extend(values.iter().map(|s| s.to_string())),
                "allowed_emails" => {
                    if values.iter().any(|e| split_email(e).is_none()) {
                        return Err(name);
                    }
                    c.emails
                        .extend(values.iter().map(|s| s.to_ascii_lowercase()));
                }
                _ => {
                    for d in values {
                        c.domains.push(domain_pattern(d).map_err(|_| name)?);
                    }
                }
            }
        }
        Ok(any.then_some(c))
    }

    /// `Err(reason)` naming the first constraint `who` fails.
    pub fn check(&self, who: &Identity<'_>) -> Result<(), &'static str> {
        if !self.groups.is_empty() && !who.groups.iter().any(|g| self.groups.contains(g)) {
            return Err("not in any of allowed_groups");
        }
        let email = usable_email(who);
        if !self.emails.is_empty() {
            let address = who
                .email
                .filter(|_| email.is_some())
                .map(str::to_ascii_lowercase);
            if !address.is_some_and(|a| self.emails.contains(&a)) {
                return Err("not one of allowed_emails");
            }
        }
        if !self.domains.is_empty()
            && !email.is_some_and(|(_, d)| self.domains.iter().any(|p| p.matches(d)))
        {
            return Err("email domain not in allowed_email_domains");
        }
        Ok(())
    }
}

// === Emails and domains ===

/// `(local, domain)` when `s` has exactly one `@` and a non-empty local part,
/// and no whitespace or control characters anywhere.
fn split_email(s: &str) -> Option<(&str, &str)> {
    let (local, domain) = s.split_once('@')?;
    if local.is_empty() || domain.contains('@') {
        return None;
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    Some((local, domain))
}

/// The user's email as `(local, domain)` if it may authorize anything.
///
/// `email_verified: false` means the provider itself says the user has not
/// proven they own the address: on multi-tenant or self-service providers
/// anyone can type `ceo@example.com` ("nOAuth", Descope 2023), so such an
/// address never matches. An absent claim is accepted because several
/// providers (Entra ID among them) omit it for addresses they manage; the
/// session layer should pass `Some(false)` for providers that cannot be
/// trusted on this.
fn usable_email<'a>(who: &Identity<'a>) -> Option<(&'a str, &'a str)> {
    if who.email_verified == Some(false) {
        return None;
    }
    let (local, domain) = split_email(who.email?)?;
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    check_domain(domain).ok()?;
    Some((local, domain))
}

/// A DNS name as tollgate accepts it: ASCII letters, digits and `-` in
/// non-empty labels of at most 63 bytes, at most 253 bytes in all.
/// Internationalised domains must be in their `xn--` (A-label) form.
fn check_domain(d: &str) -> Result<(), String> {
    if d.is_empty() {
        return Err("empty domain".into());
    }
    if !d.is_ascii() {
        return Err(format!(
            "`{d}` is not ASCII; write its punycode (xn--…) form"
        ));
    }
    if d.len() > 253 {
        return Err("a domain name has at most 253 characters".into());
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("`{d}` has an empty or over-long label"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "`{d}` has a character other than a letter, digit, `-` or `.`"
            ));
        }
    }
    Ok(())
}

fn domain_pattern(raw: &str) -> Result<DomainPattern, String> {
    if raw.contains('@') {
        return Err(format!(
            "`{raw}` is an address; list addresses in allowed_emails / allow_emails"
        ));
    }
    let (sub, rest) = match raw.strip_prefix("*.").or_else(|| raw.strip_prefix('.')) {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    check_domain(rest).map_err(|e| format!("`{raw}`: {e}"))?;
    let d = rest.to_ascii_lowercase();
    Ok(if sub {
        DomainPattern::Subdomains(d)
    } else {
        DomainPattern::Exact(d)
    })
}

impl DomainPattern {
    /// `domain` is a checked DNS name (no empty labels), trailing dot gone.
    fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Exact(d) => domain.eq_ignore_ascii_case(d),
            DomainPattern::Subdomains(d) => {
                let Some(cut) = domain.len().checked_sub(d.len()) else {
                    return false;
                };
                match domain.as_bytes().split_at_checked(cut) {
                    // `head` is `label.` or longer: a label boundary with at
                    // least one label in front, never the apex itself.
                    Some((head, tail)) => {
                        head.len() >= 2
                            && head.ends_with(b".")
                            && tail.eq_ignore_ascii_case(d.as_bytes())
                    }
                    None => false,
                }
            }
        }
    }
}

// === Claims ===

/// Finds a dotted claim path: the literal key first, then each split at a
/// dot, left to right, descending into objects.
fn resolve_claim<'c>(claims: &'c Map<String, Value>, path: &str) -> Option<&'c Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    for (i, _) in path.match_indices('.') {
        let (Some(head), Some(tail)) = (path.get(..i), path.get(i + 1..)) else {
            continue;
        };
        if let Some(Value::Object(inner)) = claims.get(head) {
            if let Some(v) = resolve_claim(inner, tail) {
                return Some(v);
            }
        }
    }
    None
}

fn claim_matches(have: &Value, want: &Value) -> bool {
    match have {
        Value::Array(items) => items.iter().any(|item| scalar_eq(item, want)),
        other => scalar_eq(other, want),
    }
}

fn scalar_eq(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => {
            // `1` and `1` compare as integers whatever their JSON width;
            // anything involving a float compares exactly as parsed.
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => a == b,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(raw: RawAuthorization) -> Policy {
        Policy::new(&raw, false).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn errors(raw: RawAuthorization) -> Vec<(String, String)> {
        Policy::new(&raw, false).err().unwrap_or_default()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    struct User {
        email: Option<String>,
        verified: Option<bool>,
        groups: Vec<String>,
        claims: Map<String, Value>,
    }

    impl User {
        fn email(e: &str) -> Self {
            Self {
                email: Some(e.into()),
                verified: Some(true),
                groups: vec![],
                claims: Map::new(),
            }
        }
        fn groups(g: &[&str]) -> Self {
            Self {
                email: None,
                verified: None,
                groups: strings(g),
                claims: Map::new(),
            }
        }
        fn claims(v: Value) -> Self {
            Self {
                email: None,
                verified: None,
                groups: vec![],
                claims: match v {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
            }
        }
        fn who(&self) -> Identity<'_> {
            Identity {
                provider: None,
                email: self.email.as_deref(),
                email_verified: self.verified,
                groups: &self.groups,
                claims: &self.claims,
            }
        }
    }

    fn allowed(p: &Policy, u: &User, method: Method, path: &str) -> bool {
        p.decide(&u.who(), &method, path) == Decision::Allow
    }

    fn domains(list: &[&str]) -> Policy {
        policy(RawAuthorization {
            allowed_email_domains: strings(list),
            ..Default::default()
        })
    }

    fn rule(paths: &[&str]) -> RawRule {
        RawRule {
            paths: strings(paths),
            ..Default::default()
        }
    }

    #[test]
    fn per_request_constraints_narrow_as_oauth2_proxy_does() {
        let claims = Map::new();
        let groups = vec!["dev".to_string()];
        let who = |email: &'static str, verified: Option<bool>| Identity {
            provider: None,
            email: Some(email),
            email_verified: verified,
            groups: &groups,
            claims: &claims,
        };
        let c = |q: &str| Constraints::from_query(q).expect("parses").expect("some");
        assert!(Constraints::from_query("rd=/x").expect("ok").is_none());
        assert!(c("allowed_groups=ops,dev")
            .check(&who("a@example.com", None))
            .is_ok());
        assert!(c("allowed_groups=ops")
            .check(&who("a@example.com", None))
            .is_err());
        assert!(c("allowed_emails=A@Example.com")
            .check(&who("a@example.com", None))
            .is_ok());
        assert!(c("allowed_emails=a@example.com")
            .check(&who("a@example.com", Some(false)))
            .is_err());
        assert!(c("allowed_email_domains=*.example.com")
            .check(&who("a@eu.example.com", None))
            .is_ok());
        assert!(c("allowed_email_domains=*.example.com")
            .check(&who("a@example.com", None))
            .is_err());
        // Every parameter must hold.
        assert!(c("allowed_groups=dev&allowed_email_domains=other.test")
            .check(&who("a@example.com", None))
            .is_err());
        assert_eq!(
            Constraints::from_query("allowed_email_domains=a@b").err(),
            Some("allowed_email_domains")
        );
        assert_eq!(
            Constraints::from_query("allowed_groups=").err(),
            Some("allowed_groups")
        );
    }

    #[test]
    fn empty_policy_is_open() {
        let p = policy(RawAuthorization::default());
        assert!(p.is_open());
        assert!(allowed(&p, &User::groups(&[]), Method::GET, "/anything"));
    }

    #[test]
    fn shortcut_denial_has_the_documented_reason() {
        let p = domains(&["example.com"]);
        assert!(!p.is_open());
        assert_eq!(
            p.decide(&User::email("a@other.test").who(), &Method::GET, "/"),
            Decision::Deny {
                reason: "not in allowed_email_domains/allowed_emails/allowed_groups".into()
            }
        );
    }

    #[test]
    fn exact_domain_matches_only_itself() {
        let p = domains(&["example.com"]);
        assert!(allowed(&p, &User::email("a@example.com"), Method::GET, "/"));
        assert!(allowed(&p, &User::email("A@EXAMPLE.COM"), Method::GET, "/"));
        assert!(allowed(
            &p,
            &User::email("a@example.com."),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::email("a@sub.example.com"),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::email("a@evilexample.com"),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::email("a@example.com.evil.test"),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::email("a@example.com.."),
            Method::GET,
            "/"
        ));
    }

    #[test]
    fn subdomain_patterns_need_a_label_boundary_and_exclude_the_apex() {
        for entry in [
            ".example.com",
            "*.example.com",
            ".EXAMPLE.com.",
            "*.example.com.",
        ] {
            let p = domains(&[entry]);
            assert!(
                allowed(&p, &User::email("a@sub.example.com"), Method::GET, "/"),
                "{entry}"
            );
            assert!(
                allowed(&p, &User::email("a@a.b.example.com"), Method::GET, "/"),
                "{entry}"
            );
            assert!(
                allowed(&p, &User::email("a@Sub.Example.Com."), Method::GET, "/"),
                "{entry}"
            );
            assert!(
                !allowed(&p, &User::email("a@example.com"), Method::GET, "/"),
                "{entry}"
            );
            assert!(
                !allowed(&p, &User::email("a@evilexample.com"), Method::GET, "/"),
                "{entry}"
            );
            assert!(
                !allowed(&p, &User::email("a@.example.com"), Method::GET, "/"),
                "{entry}"
            );
            assert!(
                !allowed(&p, &User::email("a@x..example.com"), Method::GET, "/"),
                "{entry}"
            );
            assert!(
                !allowed(
                    &p,
                    &User::email("a@sub.example.com.evil.test"),
                    Method::GET,
                    "/"
                ),
                "{entry}"
            );
        }
    }

    #[test]
    fn an_email_needs_exactly_one_at_and_a_local_part() {
        let p = domains(&["example.com", ".example.com"]);
        for e in [
            "a@evil.com@example.com",
            "attacker@evil.test@sub.example.com",
            "@example.com",
            "example.com",
            "a@",
            "a b@example.com",
            "a@example.com\r\nX-Admin: 1",
            "a@exa_mple.com",
            "a@exa/mple.example.com",
        ] {
            assert!(!allowed(&p, &User::email(e), Method::GET, "/"), "{e:?}");
        }
    }

    #[test]
    fn unverified_email_never_authorizes() {
        let p = policy(RawAuthorization {
            allowed_emails: strings(&["ceo@example.com"]),
            allowed_email_domains: strings(&["example.com"]),
            ..Default::default()
        });
        let mut u = User::email("ceo@example.com");
        u.verified = Some(false);
        assert!(!allowed(&p, &u, Method::GET, "/"));
        u.verified = None;
        assert!(allowed(&p, &u, Method::GET, "/"));
        u.verified = Some(true);
        assert!(allowed(&p, &u, Method::GET, "/"));
    }

    #[test]
    fn allowed_emails_compare_case_insensitively() {
        let p = policy(RawAuthorization {
            allowed_emails: strings(&["Alice@Example.com."]),
            ..Default::default()
        });
        assert!(allowed(
            &p,
            &User::email("alice@example.com"),
            Method::GET,
            "/"
        ));
        assert!(allowed(
            &p,
            &User::email("ALICE@EXAMPLE.COM."),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::email("bob@example.com"),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::email("alice@example.com@evil.test"),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::email("alice@sub.example.com"),
            Method::GET,
            "/"
        ));
    }

    #[test]
    fn groups_compare_element_by_element() {
        let p = policy(RawAuthorization {
            allowed_groups: strings(&["admins"]),
            ..Default::default()
        });
        assert!(allowed(
            &p,
            &User::groups(&["staff", "admins"]),
            Method::GET,
            "/"
        ));
        assert!(!allowed(
            &p,
            &User::groups(&["nonadmins,admins", "staff"]),
            Method::GET,
            "/"
        ));
        assert!(!allowed(&p, &User::groups(&["Admins"]), Method::GET, "/"));
        assert!(!allowed(&p, &User::groups(&[]), Method::GET, "/"));
    }

    #[test]
    fn any_shortcut_suffices() {
        let p = policy(RawAuthorization {
            allowed_email_domains: strings(&["example.com"]),
            allowed_groups: strings(&["contractors"]),
            ..Default::default()
        });
        let mut u = User::groups(&["contractors"]);
        u.email = Some("x@other.test".into());
        assert!(allowed(&p, &u, Method::GET, "/"));
        assert!(allowed(&p, &User::email("a@example.com"), Method::GET, "/"));
    }

    #[test]
    fn shortcuts_and_rules_must_both_pass() {
        let p = policy(RawAuthorization {
            allowed_email_domains: strings(&["example.com"]),
            rules: vec![RawRule {
                allow_any: true,
                ..rule(&["/"])
            }],
            ..Default::default()
        });
        assert!(allowed(
            &p,
            &User::email("a@example.com"),
            Method::GET,
            "/x"
        ));
        assert!(!allowed(
            &p,
            &User::email("a@other.test"),
            Method::GET,
            "/x"
        ));
    }

    fn admin_then_everyone() -> Policy {
        policy(RawAuthorization {
            rules: vec![
                RawRule {
                    name: Some("admin".into()),
                    allow_groups: strings(&["admins"]),
                    ..rule(&["/admin"])
                },
                RawRule {
                    allow_any: true,
                    ..rule(&["/"])
                },
            ],
            ..Default::default()
        })
    }

    #[test]
    fn prefixes_are_segment_aware() {
        let p = admin_then_everyone();
        let staff = User::groups(&["staff"]);
        let admin = User::groups(&["admins"]);
        for path in ["/admin", "/admin/", "/admin/x", "/admin/x/y"] {
            assert!(!allowed(&p, &staff, Method::GET, path), "{path}");
            assert!(allowed(&p, &admin, Method::GET, path), "{path}");
        }
        for path in ["/administrator", "/admins", "/", "/x/admin"] {
            assert!(allowed(&p, &staff, Method::GET, path), "{path}");
        }
    }

    #[test]
    fn host_rules_apply_to_their_hosts_and_an_unknown_host_never_helps() {
        let p = policy(RawAuthorization {
            rules: vec![
                RawRule {
                    hosts: strings(&["admin.example.com", "*.ops.example.com"]),
                    allow_groups: strings(&["admins"]),
                    ..rule(&[])
                },
                RawRule {
                    allow_any: true,
                    ..rule(&["/"])
                },
            ],
            ..Default::default()
        });
        let staff = User::groups(&["staff"]);
        let admin = User::groups(&["admins"]);
        let at = |u: &User, host: Option<&str>| {
            p.decide_at(&u.who(), &Method::GET, host, "/x") == Decision::Allow
        };
        for host in ["admin.example.com", "eu.ops.example.com"] {
            assert!(!at(&staff, Some(host)), "{host}");
            assert!(at(&admin, Some(host)), "{host}");
        }
        for host in ["app.example.com", "ops.example.com", "a.b.ops.example.com"] {
            assert!(at(&staff, Some(host)), "{host}");
        }
        // Unknown host: refused where the host rule would refuse.
        assert!(!at(&staff, None));
        assert!(at(&admin, None));
    }

    #[test]
    fn host_patterns_are_host_names() {
        for bad in [
            "",
            "a.example.com:443",
            "*.",
            "a..b",
            "https://a.b",
            "*.*.b",
        ] {
            let r = Policy::new(
                &RawAuthorization {
                    rules: vec![RawRule {
                        hosts: strings(&[bad]),
                        allow_any: true,
                        ..rule(&[])
                    }],
                    ..Default::default()
                },
                false,
            );
            assert!(r.is_err(), "{bad:?}");
        }
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "aexample.com"));
    }

    #[test]
    fn case_folding_is_opt_in_for_prefixes_and_regexes() {
        let raw = || RawAuthorization {
            rules: vec![
                RawRule {
                    allow_groups: strings(&["admins"]),
                    path_regex: Some("/api/v[0-9]+/keys".into()),
                    ..rule(&["/admin"])
                },
                RawRule {
                    allow_any: true,
                    ..rule(&["/"])
                },
            ],
            ..Default::default()
        };
        let staff = User::groups(&["staff"]);
        let exact = policy(raw());
        let folded = Policy::new(&raw(), true).unwrap_or_else(|e| panic!("{e:?}"));
        for path in ["/ADMIN", "/Admin/x", "/API/V1/KEYS"] {
            assert!(allowed(&exact, &staff, Method::GET, path), "{path}");
            assert!(!allowed(&folded, &staff, Method::GET, path), "{path}");
        }
        assert!(allowed(&folded, &staff, Method::GET, "/ADMINISTRATOR"));
    }

    #[test]
    fn an_unknown_path_is_allowed_only_where_every_path_would_be() {
        let p = admin_then_everyone();
        let staff = User::groups(&["staff"]);
        let admin = User::groups(&["admins"]);
        assert!(matches!(
            p.decide_unknown_path(&staff.who()),
            Decision::Deny { .. }
        ));
        assert_eq!(p.decide_unknown_path(&admin.who()), Decision::Allow);
        // No catch-all: some path matches no rule, so nobody passes blind.
        let only_admin = policy(RawAuthorization {
            rules: vec![RawRule {
                allow_groups: strings(&["admins"]),
                ..rule(&["/admin"])
            }],
            ..Default::default()
        });
        assert!(matches!(
            only_admin.decide_unknown_path(&admin.who()),
            Decision::Deny { .. }
        ));
        assert_eq!(
            policy(RawAuthorization::default()).decide_unknown_path(&staff.who()),
            Decision::Allow
        );
    }

    #[test]
    fn trailing_slash_in_a_prefix_still_covers_the_bare_path() {
        let p = policy(RawAuthorization {
            rules: vec![
                RawRule {
                    allow_groups: strings(&["admins"]),
                    ..rule(&["/admin/"])
                },
                RawRule {
                    allow_any: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let staff = User::groups(&["staff"]);
        for path in ["/admin", "/admin/", "/admin/x"] {
            assert!(!allowed(&p, &staff, Method::GET, path), "{path}");
        }
        assert!(allowed(&p, &staff, Method::GET, "/administrator"));
    }

    #[test]
    fn path_params_cannot_skip_a_rule() {
        let p = admin_then_everyone();
        let staff = User::groups(&["staff"]);
        for path in ["/admin;x", "/admin;jsessionid=1/secret", "/;x/admin"] {
            assert!(!allowed(&p, &staff, Method::GET, path), "{path}");
        }
        assert!(allowed(&p, &staff, Method::GET, "/public;v=1"));
    }

    #[test]
    fn deny_names_the_rule() {
        let p = admin_then_everyone();
        assert_eq!(
            p.decide(&User::groups(&[]).who(), &Method::GET, "/admin"),
            Decision::Deny {
                reason: "rule `admin` does not allow this user".into()
            }
        );
        let p = policy(RawAuthorization {
            rules: vec![
                RawRule {
                    allow_any: true,
                    ..rule(&["/a"])
                },
                RawRule {
                    allow_groups: strings(&["x"]),
                    ..rule(&["/b"])
                },
            ],
            ..Default::default()
        });
        assert_eq!(
            p.decide(&User::groups(&[]).who(), &Method::GET, "/b"),
            Decision::Deny {
                reason: "rule #1 does not allow this user".into()
            }
        );
        assert_eq!(
            p.decide(&User::groups(&[]).who(), &Method::GET, "/c"),
            Decision::Deny {
                reason: "no rule matches".into()
            }
        );
    }

    #[test]
    fn the_first_matching_rule_decides() {
        // An earlier, narrower rule wins even when a later one would allow.
        let p = policy(RawAuthorization {
            rules: vec![
                RawRule {
                    allow_groups: strings(&["ops"]),
                    ..rule(&["/api/admin"])
                },
                RawRule {
                    allow_any: true,
                    ..rule(&["/api"])
                },
                RawRule {
                    allow_groups: strings(&["never-reached-for-api"]),
                    ..rule(&["/api/other"])
                },
            ],
            ..Default::default()
        });
        let dev = User::groups(&["dev"]);
        assert!(!allowed(&p, &dev, Method::GET, "/api/admin/x"));
        assert!(allowed(&p, &dev, Method::GET, "/api/other"));
        assert!(allowed(
            &p,
            &User::groups(&["ops"]),
            Method::GET,
            "/api/admin"
        ));
    }

    #[test]
    fn method_filter_selects_rules() {
        let p = policy(RawAuthorization {
            rules: vec![
                RawRule {
                    methods: strings(&["post", "DELETE"]),
                    allow_groups: strings(&["writers"]),
                    ..rule(&["/docs"])
                },
                RawRule {
                    methods: strings(&["GET"]),
                    allow_any: true,
                    ..rule(&["/docs"])
                },
            ],
            ..Default::default()
        });
        let reader = User::groups(&["readers"]);
        let writer = User::groups(&["writers"]);
        assert!(allowed(&p, &reader, Method::GET, "/docs/a"));
        assert!(allowed(&p, &reader, Method::HEAD, "/docs/a"));
        assert!(!allowed(&p, &reader, Method::POST, "/docs/a"));
        assert!(!allowed(&p, &reader, Method::DELETE, "/docs/a"));
        assert!(allowed(&p, &writer, Method::POST, "/docs/a"));
        // `post` in lower case is still the POST rule, not "no rule".
        let lower = Method::from_bytes(b"post").expect("method");
        assert!(!allowed(&p, &reader, lower, "/docs/a"));
        // PUT matches no rule at all.
        assert_eq!(
            p.decide(&writer.who(), &Method::PUT, "/docs/a"),
            Decision::Deny {
                reason: "no rule matches".into()
            }
        );
    }

    #[test]
    fn path_regex_is_anchored() {
        let p = policy(RawAuthorization {
            rules: vec![RawRule {
                path_regex: Some("/api/v[0-9]+/items".into()),
                allow_any: true,
                ..Default::default()
            }],
            ..Default::default()
        });
        let u = User::groups(&[]);
        assert!(allowed(&p, &u, Method::GET, "/api/v1/items"));
        assert!(!allowed(&p, &u, Method::GET, "/api/v1/items/2"));
        assert!(!allowed(&p, &u, Method::GET, "/x/api/v1/items"));
    }

    #[test]
    fn paths_or_regex_either_matches() {
        let p = policy(RawAuthorization {
            rules: vec![RawRule {
                path_regex: Some("/b/[0-9]+".into()),
                allow_any: true,
                ..rule(&["/a"])
            }],
            ..Default::default()
        });
        let u = User::groups(&[]);
        assert!(allowed(&p, &u, Method::GET, "/a/x"));
        assert!(allowed(&p, &u, Method::GET, "/b/12"));
        assert!(!allowed(&p, &u, Method::GET, "/b/x"));
    }

    #[test]
    fn claims_resolve_dotted_paths_and_arrays() {
        let p = policy(RawAuthorization {
            rules: vec![RawRule {
                allow_claims: BTreeMap::from([
                    ("realm_access.roles".to_string(), json!("admin")),
                    ("https://example.com/tier".to_string(), json!(3)),
                    ("is_staff".to_string(), json!(true)),
                ]),
                ..Default::default()
            }],
            ..Default::default()
        });
        let ok = |v: Value| allowed(&p, &User::claims(v), Method::GET, "/");
        assert!(ok(json!({"realm_access": {"roles": ["user", "admin"]}})));
        assert!(ok(json!({"realm_access": {"roles": "admin"}})));
        assert!(ok(json!({"realm_access.roles": ["admin"]})));
        assert!(ok(json!({"https://example.com/tier": 3})));
        assert!(ok(json!({"https://example.com/tier": [1, 3]})));
        assert!(ok(json!({"is_staff": true})));
        assert!(!ok(
            json!({"realm_access": {"roles": ["user", "administrator"]}})
        ));
        assert!(!ok(json!({"realm_access": {"roles": ["user,admin"]}})));
        assert!(!ok(json!({"realm_access": {"roles": [["admin"]]}})));
        assert!(!ok(json!({"realm_access": ["admin"]})));
        assert!(!ok(json!({"https://example.com/tier": "3"})));
        assert!(!ok(json!({"is_staff": "true"})));
        assert!(!ok(json!({})));
        // The literal key is tried first, and when present it decides.
        assert!(!ok(
            json!({"realm_access.roles": [], "realm_access": {"roles": ["admin"]}})
        ));
    }

    #[test]
    fn claim_numbers_compare_by_value() {
        assert!(scalar_eq(&json!(3), &json!(3)));
        assert!(scalar_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!scalar_eq(&json!(3), &json!(3.5)));
        assert!(!scalar_eq(&json!(-1), &json!(u64::MAX)));
    }

    #[test]
    fn claim_paths_and_roots_are_reported() {
        let p = policy(RawAuthorization {
            rules: vec![RawRule {
                allow_claims: BTreeMap::from([
                    ("realm_access.roles".to_string(), json!("admin")),
                    ("tier".to_string(), json!(1)),
                ]),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(
            p.claim_paths().into_iter().collect::<Vec<_>>(),
            ["realm_access.roles", "tier"]
        );
        assert_eq!(
            p.claim_roots().into_iter().collect::<Vec<_>>(),
            ["realm_access", "realm_access.roles", "tier"]
        );
    }

    #[test]
    fn a_rule_without_paths_matches_every_path() {
        let p = policy(RawAuthorization {
            rules: vec![RawRule {
                allow_groups: strings(&["g"]),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(allowed(
            &p,
            &User::groups(&["g"]),
            Method::GET,
            "/any/where"
        ));
        assert!(!allowed(
            &p,
            &User::groups(&["h"]),
            Method::GET,
            "/any/where"
        ));
    }

    #[test]
    fn every_config_problem_is_reported_with_its_key() {
        let raw = RawAuthorization {
            allowed_email_domains: strings(&[
                "",
                "*",
                "evil..test",
                "münchen.de",
                "a@b.test",
                "*foo.test",
            ]),
            allowed_emails: strings(&["nobody", "a@b@c.test", "@x.test"]),
            allowed_groups: strings(&[""]),
            rules: vec![
                RawRule {
                    path_regex: Some("(".into()),
                    methods: strings(&["GE T"]),
                    ..rule(&["admin", "/a/../b", "/a?x"])
                },
                RawRule {
                    allow_any: true,
                    allow_groups: strings(&["x"]),
                    ..Default::default()
                },
                RawRule {
                    allow_claims: BTreeMap::from([
                        ("a".to_string(), json!(null)),
                        ("b".to_string(), json!(["x"])),
                        ("".to_string(), json!("x")),
                    ]),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let keys: Vec<String> = errors(raw).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "authorization.allowed_emails[0]",
                "authorization.allowed_emails[1]",
                "authorization.allowed_emails[2]",
                "authorization.allowed_email_domains[0]",
                "authorization.allowed_email_domains[1]",
                "authorization.allowed_email_domains[2]",
                "authorization.allowed_email_domains[3]",
                "authorization.allowed_email_domains[4]",
                "authorization.allowed_email_domains[5]",
                "authorization.allowed_groups[0]",
                "authorization.rules[0].paths[0]",
                "authorization.rules[0].paths[1]",
                "authorization.rules[0].paths[2]",
                "authorization.rules[0].path_regex",
                "authorization.rules[0].methods[0]",
                "authorization.rules[0]",
                "authorization.rules[1]",
                "authorization.rules[2].allow_claims.",
                "authorization.rules[2].allow_claims.a",
                "authorization.rules[2].allow_claims.b",
            ]
        );
    }

    #[test]
    fn a_rule_that_allows_nobody_is_an_error() {
        let errs = errors(RawAuthorization {
            rules: vec![rule(&["/x"])],
            ..Default::default()
        });
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "authorization.rules[0]");
        assert!(errs[0].1.contains("allows nobody"));
    }

    #[test]
    fn rules_after_a_catch_all_are_an_error() {
        let errs = errors(RawAuthorization {
            rules: vec![
                RawRule {
                    allow_any: true,
                    ..rule(&["/"])
                },
                RawRule {
                    allow_groups: strings(&["admins"]),
                    ..rule(&["/admin"])
                },
            ],
            ..Default::default()
        });
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "authorization.rules[1]");
    }

    #[test]
    fn unicode_domains_must_be_punycode() {
        let p = domains(&["xn--mnchen-3ya.de"]);
        assert!(allowed(
            &p,
            &User::email("a@xn--mnchen-3ya.de"),
            Method::GET,
            "/"
        ));
        assert!(!allowed(&p, &User::email("a@münchen.de"), Method::GET, "/"));
    }
}
