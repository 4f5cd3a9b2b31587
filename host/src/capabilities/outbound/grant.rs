//! Outbound grants (`allowed_hosts` entries) and the address rule.
//!
//! A grant is `scheme://host[:port]`: `host` is a name, `*.suffix`, `*` or an IP address;
//! the port is a number, `*`, or omitted for the scheme's default. Deny by default: a plugin
//! without grants reaches nothing.
//!
//! Private addresses (loopback, RFC 1918, link-local, cloud metadata, ...) are reachable only
//! through a grant that names the address itself: a wildcard never grants one, and a name that
//! resolves to one is refused (see `resolver`), so DNS cannot smuggle a plugin into the host's
//! own network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use url::{Host, Url};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostGrant {
    scheme: String,
    host: HostPattern,
    port: PortPattern,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: any name that ends with `.example.com`.
    Suffix(String),
    Name(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exactly(u16),
}

/// Why a grant does not parse; the message shows the expected form.
#[derive(Debug, thiserror::Error)]
#[error(
    "{text:?} is not a valid grant ({why}); write scheme://host[:port], e.g. \"https://example.com\", \"https://*.example.com\", \"http://127.0.0.1:8080\" or \"http://10.0.0.5:*\""
)]
pub struct GrantError {
    text: String,
    why: &'static str,
}

impl FromStr for HostGrant {
    type Err = GrantError;

    fn from_str(text: &str) -> Result<Self, GrantError> {
        let error = |why| GrantError { text: text.to_owned(), why };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| error("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(error("the scheme must be http or https"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(error("a grant names a destination, not a path, query or credentials"));
        }
        let (host, port) = split_port(rest).ok_or_else(|| error("the port must be a number or *"))?;
        let port = match port {
            None => PortPattern::Exactly(default_port(&scheme)),
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exactly(p.parse().map_err(|_| error("the port must be a number or *"))?),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(error("a wildcard is `*` or `*.` followed by a domain"));
            }
            HostPattern::Suffix(suffix.to_owned())
        } else if host.contains('*') {
            return Err(error("a wildcard is `*` or `*.` followed by a domain"));
        } else {
            match Url::parse(&format!("{scheme}://{host}/")).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
                Some(Host::Domain(name)) => HostPattern::Name(name),
                Some(Host::Ipv4(ip)) => HostPattern::Address(IpAddr::V4(ip)),
                Some(Host::Ipv6(ip)) => HostPattern::Address(IpAddr::V6(ip)),
                None => return Err(error("the host is not a valid name or address")),
            }
        };
        Ok(Self { scheme, host, port, text: text.to_owned() })
    }
}

/// `host[:port]`, where an IPv6 host is in brackets.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => rest.strip_prefix(':').map(|p| (host, Some(p))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl HostGrant {
    /// Whether this grant lets a request reach `url` (scheme, host and port).
    fn allows(&self, url: &Url) -> bool {
        let port = url.port_or_known_default();
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exactly(p) => port == Some(p),
        };
        if url.scheme() != self.scheme || !port_ok {
            return false;
        }
        match (url.host(), &self.host) {
            (Some(Host::Domain(name)), HostPattern::Any) => !name.is_empty(),
            (Some(Host::Domain(name)), HostPattern::Name(granted)) => name.eq_ignore_ascii_case(granted),
            (Some(Host::Domain(name)), HostPattern::Suffix(suffix)) => {
                name.len() > suffix.len() + 1
                    && name.to_ascii_lowercase().ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
            (Some(Host::Ipv4(ip)), pattern) => address_allowed(IpAddr::V4(ip), pattern),
            (Some(Host::Ipv6(ip)), pattern) => address_allowed(IpAddr::V6(ip), pattern),
            _ => false,
        }
    }
}

/// A wildcard grants public addresses; a private one must be named.
fn address_allowed(ip: IpAddr, pattern: &HostPattern) -> bool {
    match pattern {
        HostPattern::Address(granted) => canonical(*granted) == canonical(ip),
        HostPattern::Any => is_public(ip),
        HostPattern::Name(_) | HostPattern::Suffix(_) => false,
    }
}

/// Whether `url` may be requested under `grants`, or why not.
pub fn check(grants: &[HostGrant], url: &Url) -> Result<(), String> {
    if grants.iter().any(|g| g.allows(url)) {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    let destination = format!("{}://{host}:{port}", url.scheme());
    let private = match url.host() {
        Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        _ => false,
    };
    Err(if grants.is_empty() {
        format!(
            "{destination} is not allowed: this plugin has no allowed_hosts (upload it with a manifest that grants it)"
        )
    } else if private {
        format!(
            "{destination} is a private address: only a grant that names it allows it (e.g. \"{}://{host}:{port}\")",
            url.scheme()
        )
    } else {
        format!("{destination} is not in this plugin's allowed_hosts")
    })
}

/// Whether a grant names `url`'s host itself (a name or an address, not a wildcard) and
/// allows it: the only way a guest may name a proxy outside the manifest's pool, so that a
/// wildcard meant for destinations does not turn every server it covers into a relay.
pub fn check_named(grants: &[HostGrant], url: &Url) -> Result<(), String> {
    if grants.iter().any(|g| matches!(g.host, HostPattern::Name(_) | HostPattern::Address(_)) && g.allows(url)) {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    Err(format!(
        "it is not in the manifest's proxies, and no allowed_hosts entry names it (a wildcard does not grant a proxy; add e.g. \"{}://{host}:{port}\")",
        url.scheme()
    ))
}

/// Whether an address is on the public internet. Everything a host's own network (or its
/// cloud provider) answers on is not: loopback, private and shared ranges, link-local (the
/// 169.254.169.254 metadata service), multicast, documentation and reserved ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

/// IPv4-mapped and NAT64 IPv6 addresses are judged (and compared) as the IPv4 they carry.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return IpAddr::V4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT, some metadata services)
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 88 && c == 99) // the deprecated 6to4 relay anycast
        || ip.is_documentation()
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || ip.is_multicast()
        || a >= 240) // reserved, broadcast
}

/// The IANA IPv6 special-purpose registry, less what it marks globally reachable. 6to4 is
/// judged by the IPv4 address it carries.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible, deprecated
        || s[..6] == [0, 0, 0, 0, 0xffff, 0] // IPv4-translated (SIIT)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // NAT64 local use: the operator's own translator
        || (s[0] == 0x100 && s[1..3] == [0, 0] && (s[3] == 0 || s[3] == 1)) // discard-only, dummy prefix
        || (s[0] == 0x2001 && s[1] < 0x200 && !is_global_protocol_assignment(s)) // IETF protocol assignments
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation
        || s[0] == 0x5f00 // segment routing identifiers
        || (s[0] & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata included)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local
        || ip.is_multicast())
}

/// The blocks of `2001::/23` the registry marks globally reachable: two anycast services, AMT,
/// `AS112` and `ORCHIDv2`.
fn is_global_protocol_assignment(s: [u16; 8]) -> bool {
    let anycast = s[1] == 1 && s[2..7] == [0, 0, 0, 0, 0] && (s[7] == 1 || s[7] == 2);
    anycast || s[1] == 3 || (s[1] == 4 && s[2] == 0x112) || (0x20..0x30).contains(&s[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> Vec<HostGrant> {
        list.iter().map(|g| g.parse().unwrap()).collect()
    }

    fn allowed(list: &[&str], url: &str) -> bool {
        check(&grants(list), &Url::parse(url).unwrap()).is_ok()
    }

    #[test]
    fn grants_parse_or_say_why_not() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://a*.com",
            "https://*.",
            "http://x:99999",
            "https://user@x",
        ] {
            let err = bad.parse::<HostGrant>().unwrap_err().to_string();
            assert!(err.contains("scheme://host[:port]"), "{bad}: {err}");
        }
        assert!("http://[::1]:8080".parse::<HostGrant>().is_ok());
        assert!("HTTPS://Example.COM/".parse::<HostGrant>().is_ok());
    }

    #[test]
    fn names_wildcards_and_ports() {
        assert!(!allowed(&[], "https://example.com/"));
        assert!(allowed(&["https://example.com"], "https://EXAMPLE.com/a?b"));
        assert!(!allowed(&["https://example.com"], "http://example.com/"), "scheme must match");
        assert!(!allowed(&["https://example.com"], "https://example.com:8443/"), "default port only");
        assert!(allowed(&["https://example.com:*"], "https://example.com:8443/"));
        assert!(allowed(&["https://*.example.com"], "https://a.b.example.com/"));
        assert!(!allowed(&["https://*.example.com"], "https://example.com/"));
        assert!(!allowed(&["https://*.example.com"], "https://badexample.com/"));
        assert!(allowed(&["https://*"], "https://anything.org/"));
    }

    #[test]
    fn private_addresses_need_a_grant_that_names_them() {
        assert!(!allowed(&["http://*:*"], "http://127.0.0.1:8080/"));
        assert!(!allowed(&["http://*:*"], "http://169.254.169.254/latest/meta-data"));
        assert!(!allowed(&["http://*:*"], "http://[::ffff:10.0.0.1]/"));
        assert!(allowed(&["http://*:*"], "http://93.184.216.34/"));
        assert!(allowed(&["http://127.0.0.1:*"], "http://127.0.0.1:8080/"));
        assert!(allowed(&["http://127.0.0.1:*"], "http://[::ffff:127.0.0.1]:8080/"));
        assert!(!allowed(&["http://127.0.0.1:*"], "http://127.0.0.2:8080/"));
        let message = check(&grants(&["http://*:*"]), &Url::parse("http://10.1.2.3/").unwrap()).unwrap_err();
        assert!(message.contains("private address"), "{message}");
    }

    #[test]
    fn a_proxy_needs_a_grant_that_names_it() {
        let named = |list: &[&str], url: &str| check_named(&grants(list), &Url::parse(url).unwrap()).is_ok();
        assert!(named(&["http://proxy.example:3128"], "http://proxy.example:3128"));
        assert!(named(&["http://10.0.0.2:*"], "http://10.0.0.2:3128"));
        assert!(!named(&["http://*:*"], "http://93.184.216.34:3128"), "a wildcard is no proxy grant");
        assert!(!named(&["http://*.example:*"], "http://proxy.example:3128"));
        assert!(!named(&["http://proxy.example:80"], "http://proxy.example:3128"));
    }

    #[test]
    fn the_address_rule() {
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:192.168.0.1",
            "64:ff9b::a00:1",
            "192.88.99.1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "::ffff:0:7f00:1",
            "::ffff:0:808:808",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "5f00::1",
            "ff02::1",
            "fec0::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::101:101",
            "2002:808:808::1",
            "2001:4:112::1",
            "2001:20::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
