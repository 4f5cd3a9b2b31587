//! A session's cookie jar: the domain, path and expiry rules of a real cookie store, cookies
//! for a public suffix (`Domain=com`, `Domain=co.uk`) refused as browsers refuse them, and a
//! cap on what the jar holds, since every cookie in it is host memory a server chose to fill.
//!
//! The public suffix list is parsed once for the whole process, from a copy built into the
//! binary: `cookie_store` can check suffixes itself, but only with a list of its own per jar,
//! which at hundreds of sessions per task would cost more than the cookies.

use std::sync::LazyLock;

use cookie_store::{Cookie, CookieStore, RawCookie};
use publicsuffix::Psl as _;
use url::Url;

/// The Public Suffix List (publicsuffix.org, MPL 2.0), refreshed with the source.
static PUBLIC_SUFFIXES: LazyLock<publicsuffix::List> = LazyLock::new(|| {
    publicsuffix::List::from_bytes(include_bytes!("../../../data/public_suffix_list.dat")).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the built-in public suffix list does not parse: cookies for public suffixes are not refused");
        publicsuffix::List::new()
    })
});

/// How much one jar may hold.
#[derive(Clone, Copy, Debug)]
pub struct JarLimits {
    pub cookies: usize,
    pub bytes: usize,
}

/// Cookies of one session, counted.
pub struct Jar {
    store: CookieStore,
    limits: JarLimits,
    /// Why a cookie was refused for the cap, until the task is told.
    overflow: Option<String>,
}

impl Jar {
    pub fn new(limits: JarLimits) -> Self {
        Self { store: CookieStore::default(), limits, overflow: None }
    }

    /// The `Cookie` header value for `url`, empty if no cookie applies.
    pub fn header(&self, url: &Url) -> String {
        let values = self.store.get_request_values(url);
        values.map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    /// Stores the cookies a response from `url` sets, up to the jar's limits; the first one
    /// past them is refused and remembered for [`Jar::take_overflow`].
    pub fn store<'a>(&mut self, cookies: impl Iterator<Item = RawCookie<'a>>, url: &Url) {
        for raw in cookies {
            if self.overflow.is_some() || is_for_a_public_suffix(&raw, url) {
                continue;
            }
            // A cookie the rules refuse (domain or path mismatch) is ignored, as browsers do.
            let Ok(cookie) = Cookie::try_from_raw_cookie(&raw, url) else { continue };
            let (domain, path) = (String::from(&cookie.domain), String::from(&cookie.path));
            self.drop_expired();
            let (count, bytes) = self.size();
            let replaced = self.store.get_any(&domain, &path, cookie.name()).map(cookie_bytes);
            let count = count + usize::from(replaced.is_none());
            let bytes = bytes - replaced.unwrap_or(0) + cookie_bytes(&cookie);
            if count > self.limits.cookies || bytes > self.limits.bytes {
                self.overflow = Some(format!(
                    "{url} set more cookies than a session may hold ({count} cookies of {bytes} bytes; \
                     outbound.max_session_cookies is {}, outbound.max_session_cookie_kb {})",
                    self.limits.cookies,
                    self.limits.bytes / 1024
                ));
                continue;
            }
            let _refused = self.store.insert(cookie.into_owned(), url);
        }
    }

    /// Why the jar refused a cookie for its cap since the last call, if it did.
    pub fn take_overflow(&mut self) -> Option<String> {
        self.overflow.take()
    }

    /// Forgets expired cookies: a site that sets short-lived cookies under ever new names
    /// must not fill the jar.
    fn drop_expired(&mut self) {
        let expired: Vec<(String, String, String)> = self
            .store
            .iter_any()
            .filter(|cookie| cookie.is_expired())
            .map(|cookie| (String::from(&cookie.domain), String::from(&cookie.path), cookie.name().to_owned()))
            .collect();
        for (domain, path, name) in expired {
            self.store.remove(&domain, &path, &name);
        }
    }

    /// Cookies held and their bytes. A jar holds a few hundred at most: counting them anew is
    /// cheaper than keeping a count in step with the store's replacements and expiries.
    fn size(&self) -> (usize, usize) {
        self.store.iter_any().fold((0, 0), |(count, bytes), cookie| (count + 1, bytes + cookie_bytes(cookie)))
    }
}

/// What the host keeps of one cookie: name, value, domain and path.
fn cookie_bytes(cookie: &Cookie<'_>) -> usize {
    let domain = cookie.domain.as_cow().map_or(0, |d| d.len());
    cookie.name().len() + cookie.value().len() + domain + cookie.path.as_ref().len()
}

/// A `Domain` attribute that names a public suffix, other than the host itself (RFC 6265 5.3
/// step 5): such a cookie would go to every site under that suffix.
fn is_for_a_public_suffix(cookie: &RawCookie<'_>, url: &Url) -> bool {
    let Some(domain) = cookie.domain() else { return false };
    let domain = domain.trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
    let is_suffix =
        PUBLIC_SUFFIXES.suffix(domain.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes() == domain.as_bytes());
    is_suffix && url.host_str().is_none_or(|host| !host.eq_ignore_ascii_case(&domain))
}
