//! How tollgate's own pages look: the product name, a logo, an accent
//! colour and a support link (`[pages]`), set once per configuration.

use std::sync::{Arc, RwLock};

/// `[pages]` as the loader validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    /// Shown above every page and in its title; empty: none.
    pub product_name: String,
    /// An https URL, or a path on this site (served by the upstream).
    pub logo_url: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub accent_color: String,
    /// A "Get help" link: https, `mailto:`, or a path on this site.
    pub support_url: Option<String>,
    /// `pages.template_file`: its path and text, checked to compile.
    pub template: Option<(String, String)>,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            product_name: String::new(),
            logo_url: None,
            accent_color: "#0a58ca".into(),
            support_url: None,
            template: None,
        }
    }
}

/// The look in force, and its template compiled.
#[derive(Default)]
pub(super) struct Look {
    pub brand: Branding,
    pub template: Option<minijinja::Environment<'static>>,
}

static CURRENT: RwLock<Option<Arc<Look>>> = RwLock::new(None);

/// The name the page template is known by inside MiniJinja.
pub(super) const TEMPLATE: &str = "page.html";

/// Compiles a page template (HTML auto-escaping on); the error says
/// where the syntax is wrong.
pub fn compile(source: &str) -> Result<minijinja::Environment<'static>, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template_owned(TEMPLATE, source.to_string())?;
    Ok(env)
}

/// Makes `b` the look of every page from now on (start, reload). Its
/// template compiled when the configuration was checked.
pub fn set(b: Branding) {
    let template = b.template.as_ref().and_then(|(_, src)| compile(src).ok());
    let look = Look { brand: b, template };
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(look));
}

pub(super) fn current() -> Arc<Look> {
    CURRENT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

impl Branding {
    /// The Content-Security-Policy: nothing but inline styles, and images
    /// from the logo's origin when it has one of its own.
    pub(super) fn csp(&self) -> String {
        let img = match self
            .logo_url
            .as_deref()
            .and_then(|l| url::Url::parse(l).ok())
        {
            Some(u) => format!("; img-src {}", u.origin().ascii_serialization()),
            None if self.logo_url.is_some() => "; img-src 'self'".into(),
            None => String::new(),
        };
        format!("default-src 'none'; style-src 'unsafe-inline'{img}; frame-ancestors 'none'")
    }
}

/// Whether `s` is `#rgb` or `#rrggbb`.
pub fn is_color(s: &str) -> bool {
    s.strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `s` may be linked from a page: https, a path on this site, or
/// (for support) `mailto:`.
pub fn is_safe_link(s: &str, mailto: bool) -> bool {
    if s.starts_with('/') {
        return !s.starts_with("//")
            && !s.contains('\\')
            && s.bytes().all(|b| b.is_ascii_graphic());
    }
    match url::Url::parse(s) {
        Ok(u) => u.scheme() == "https" || (mailto && u.scheme() == "mailto"),
        Err(_) => false,
    }
}
