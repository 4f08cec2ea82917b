//! HTTP health checks: where one may connect (SSRF rules) and what a result does to an
//! instance's health.
//!
//! A check URL is chosen by whoever holds `registry:write`, and the sweep GETs it from
//! inside our network. So its host must be the instance's own address, an address
//! literal in a refused form (however spelled: `0xa9fea9fe`, `2852039166`,
//! `0251.254.169.254`, `[::ffff:169.254.169.254]`) is refused at registration, and a
//! name is resolved and checked again inside the sweep's HTTP client at every check.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use aloft_shared::ssrf::{AddressPolicy, Refusal, check_ip, is_localhost_name};
use serde::{Deserialize, Serialize};

use super::{FAILURES_BEFORE_CRITICAL, HealthStatus};

pub const MAX_CHECK_URL_CHARS: usize = 2048;

/// The deployment setting `REGISTRY_HEALTH_CHECKS_ALLOW`: which address kinds, refused by
/// default, health checks may reach. `none` (the default: public addresses only),
/// `private` (VPC-internal instances: 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7),
/// `loopback` (127/8, ::1: local development and tests), `private-and-loopback`.
/// Link-local and metadata addresses are refused in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthChecksAllow(pub AddressPolicy);

impl FromStr for HealthChecksAllow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (allow_private, allow_loopback) = match s {
            "none" => (false, false),
            "private" => (true, false),
            "loopback" => (false, true),
            "private-and-loopback" => (true, true),
            _ => return Err("must be none, private, loopback or private-and-loopback".into()),
        };
        Ok(Self(AddressPolicy {
            allow_private,
            allow_loopback,
        }))
    }
}

/// Why a check URL is refused; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckUrlError {
    #[error("must be an http:// or https:// URL of at most {MAX_CHECK_URL_CHARS} characters")]
    NotAUrl,
    #[error("must not contain a user name or password")]
    Credentials,
    #[error("must not point at {0}")]
    Refused(Refusal),
    #[error("must point at the instance's own address ({0})")]
    NotOwnAddress(String),
}

/// A check URL that passed the rules: scheme, no credentials, and, when its host is an
/// address literal, an address the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTarget(pub url::Url);

/// Checks `raw` under `policy`. The WHATWG URL parser (the one the HTTP client uses)
/// normalises every literal spelling, so the address checked is the address dialled.
/// Run at registration and again before every check (the policy may have tightened).
/// As the spec says (`^https?://`, at most 2048 characters): the scheme in lower case
/// and nothing before it; the URL parser alone would take ` HTTP://…` too.
pub fn check_target(raw: &str, policy: AddressPolicy) -> Result<CheckTarget, CheckUrlError> {
    if raw.chars().count() > MAX_CHECK_URL_CHARS
        || !(raw.starts_with("http://") || raw.starts_with("https://"))
    {
        return Err(CheckUrlError::NotAUrl);
    }
    let url = url::Url::parse(raw).map_err(|_| CheckUrlError::NotAUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CheckUrlError::NotAUrl);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CheckUrlError::Credentials);
    }
    let ip = match url.host() {
        None => return Err(CheckUrlError::NotAUrl),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(name)) => {
            if is_localhost_name(name) && !policy.allow_loopback {
                return Err(CheckUrlError::Refused(Refusal::Loopback));
            }
            None
        }
    };
    if let Some(ip) = ip {
        check_ip(ip, policy).map_err(CheckUrlError::Refused)?;
    }
    Ok(CheckTarget(url))
}

/// The host an instance's `address` names, normalised like a URL host, so
/// `http://010.0.0.1/` matches address `10.0.0.1` and `[fd00::1]` matches `fd00::1`.
fn address_host(address: &str) -> Option<url::Host<String>> {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Some(url::Host::Ipv4(v4)),
        Ok(IpAddr::V6(v6)) => Some(url::Host::Ipv6(v6)),
        Err(_) => url::Host::parse(address).ok(),
    }
}

impl CheckTarget {
    /// The target, only if its host is `address` (checks probe the instance they belong
    /// to, never another host).
    pub fn owned_by(self, address: &str) -> Result<Self, CheckUrlError> {
        let own = address_host(address);
        if own.is_some() && self.0.host().map(|h| h.to_owned()) == own {
            Ok(self)
        } else {
            Err(CheckUrlError::NotOwnAddress(address.to_owned()))
        }
    }
}

/// An HTTP health check the sweep runs against an instance: a GET that must answer 2xx
/// within `timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub http: String,
    pub interval_seconds: u32,
    pub timeout_ms: u32,
}

impl fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http)
    }
}

/// An instance's status and consecutive failure count after one check.
pub fn after_check(failures_before: u32, passed: bool) -> (HealthStatus, u32) {
    if passed {
        return (HealthStatus::Passing, 0);
    }
    let failures = failures_before.saturating_add(1);
    let status = if failures >= FAILURES_BEFORE_CRITICAL {
        HealthStatus::Critical
    } else {
        HealthStatus::Warning
    };
    (status, failures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn allow(s: &str) -> AddressPolicy {
        s.parse::<HealthChecksAllow>().unwrap().0
    }

    #[test]
    fn every_refused_literal_form_is_refused_and_relaxed_only_where_allowed() {
        use Refusal::*;
        // (url, refusal by default, allowed by `private`, allowed by `loopback`)
        let cases: &[(&str, Refusal, bool, bool)] = &[
            (
                "http://169.254.169.254/latest/meta-data/",
                Metadata,
                false,
                false,
            ),
            ("http://0xa9fea9fe/", Metadata, false, false),
            ("http://2852039166/", Metadata, false, false),
            ("http://0251.254.169.254/", Metadata, false, false),
            ("http://0251.0376.0251.0376/", Metadata, false, false),
            ("http://169.254.43518/", Metadata, false, false),
            ("http://[::ffff:169.254.169.254]/", Metadata, false, false),
            ("http://[::ffff:a9fe:a9fe]/", Metadata, false, false),
            ("http://[fd00:ec2::254]/", Metadata, false, false),
            ("http://169.254.1.1/", LinkLocal, false, false),
            ("http://[fe80::1]/", LinkLocal, false, false),
            ("http://0.0.0.0/", Unspecified, false, false),
            ("http://0/", Unspecified, false, false),
            ("http://[::]/", Unspecified, false, false),
            ("http://224.0.0.1/", Multicast, false, false),
            ("http://[ff02::1]/", Multicast, false, false),
            ("http://255.255.255.255/", Reserved, false, false),
            ("http://127.0.0.1:8080/health", Loopback, false, true),
            ("http://2130706433/", Loopback, false, true),
            ("http://0x7f.1/", Loopback, false, true),
            ("http://0177.0.0.1/", Loopback, false, true),
            ("http://[::1]/", Loopback, false, true),
            ("http://[::ffff:127.0.0.1]/", Loopback, false, true),
            ("http://localhost/", Loopback, false, true),
            ("http://api.localhost./", Loopback, false, true),
            ("http://10.0.0.1/", Private, true, false),
            ("http://012.0.0.1/", Private, true, false),
            ("http://172.16.0.1/", Private, true, false),
            ("http://192.168.1.1/", Private, true, false),
            ("http://100.64.0.1/", Private, true, false),
            ("http://[fd12::1]/", Private, true, false),
            ("http://[::ffff:10.1.2.3]/", Private, true, false),
        ];
        for (url, refusal, private, loopback) in cases {
            assert_eq!(
                check_target(url, allow("none")),
                Err(CheckUrlError::Refused(*refusal)),
                "{url}"
            );
            assert_eq!(
                check_target(url, allow("private")).is_ok(),
                *private,
                "{url}"
            );
            assert_eq!(
                check_target(url, allow("loopback")).is_ok(),
                *loopback,
                "{url}"
            );
            assert_eq!(
                check_target(url, allow("private-and-loopback")).is_ok(),
                *private || *loopback,
                "{url}"
            );
        }
    }

    #[test]
    fn shapes_and_own_address() {
        let strict = AddressPolicy::STRICT;
        for (url, err) in [
            ("ftp://93.184.216.34/", CheckUrlError::NotAUrl),
            ("file:///etc/passwd", CheckUrlError::NotAUrl),
            ("93.184.216.34/health", CheckUrlError::NotAUrl),
            ("http://u:p@93.184.216.34/", CheckUrlError::Credentials),
        ] {
            assert_eq!(check_target(url, strict), Err(err), "{url}");
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_CHECK_URL_CHARS));
        assert_eq!(check_target(&long, strict), Err(CheckUrlError::NotAUrl));
        // (url, address, own)
        for (url, address, own) in [
            ("http://93.184.216.34:8080/health", "93.184.216.34", true),
            ("https://web.example.com/h?deep=1", "WEB.example.com", true),
            ("http://[2606:2800:220:1::1]/", "2606:2800:220:1::1", true),
            ("http://[2606:2800:220:1::1]/", "[2606:2800:220:1::1]", true),
            ("http://93.184.216.35/", "93.184.216.34", false),
            (
                "http://evil.example/?h=93.184.216.34",
                "93.184.216.34",
                false,
            ),
            ("http://web.example.com/", "web.example.com.evil", false),
        ] {
            let got = check_target(url, strict).unwrap().owned_by(address);
            assert_eq!(got.is_ok(), own, "{url} {address}");
        }
        assert!(
            check_target("http://012.0.0.1/", allow("private"))
                .unwrap()
                .owned_by("10.0.0.1")
                .is_ok(),
            "an octal spelling of the own address is the own address"
        );
    }

    #[test]
    fn the_setting_has_four_values() {
        assert_eq!(allow("none"), AddressPolicy::STRICT);
        assert!(allow("private").allow_private && !allow("private").allow_loopback);
        assert!("yes".parse::<HealthChecksAllow>().is_err());
    }

    #[test]
    fn failing_checks_warn_then_go_critical_and_one_success_heals() {
        assert_eq!(after_check(0, false), (HealthStatus::Warning, 1));
        assert_eq!(after_check(1, false), (HealthStatus::Warning, 2));
        assert_eq!(after_check(2, false), (HealthStatus::Critical, 3));
        assert_eq!(after_check(7, false), (HealthStatus::Critical, 8));
        assert_eq!(after_check(7, true), (HealthStatus::Passing, 0));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = check_target(&s, AddressPolicy::STRICT);
        }

        #[test]
        fn every_ipv4_spelling_agrees_with_the_address(n in any::<u32>()) {
            let ip = Ipv4Addr::from(n);
            let strict = AddressPolicy::STRICT;
            let ok = |u: String| check_target(&u, strict).is_ok();
            let dotted = ok(format!("http://{ip}/"));
            prop_assert_eq!(dotted, check_ip(IpAddr::V4(ip), strict).is_ok());
            prop_assert_eq!(dotted, ok(format!("http://{n}/")));
            prop_assert_eq!(dotted, ok(format!("http://{n:#x}/")));
            prop_assert_eq!(dotted, ok(format!("http://0{n:o}/")));
            prop_assert_eq!(dotted, ok(format!("http://[::ffff:{ip}]/")));
        }

        #[test]
        fn every_ipv6_literal_agrees_with_the_address(ip in any::<std::net::Ipv6Addr>(), policy in 0u8..4) {
            let policy = AddressPolicy { allow_private: policy & 1 == 1, allow_loopback: policy & 2 == 2 };
            let expected = check_ip(IpAddr::V6(ip), policy).map_err(CheckUrlError::Refused);
            let url = format!("http://[{ip}]:8080/health");
            prop_assert_eq!(check_target(&url, policy).map(|_| ()), expected.clone());
            // Written out in full, upper case: the same address.
            let full: Vec<String> = ip.segments().iter().map(|s| format!("{s:X}")).collect();
            let url = format!("http://[{}]/", full.join(":"));
            prop_assert_eq!(check_target(&url, policy).map(|_| ()), expected);
        }

        /// What the spec says a check URL is (`^https?://`, at most 2048 characters) is
        /// what is accepted: no padding, no other scheme spelling, no credentials.
        #[test]
        fn accepted_check_urls_keep_the_spec_rules(
            s in "[ ]?(http|https|HTTP|Https|ftp)://(u:p@)?(93\\.184\\.216\\.34|example\\.com|\\[2606:2800:220:1::1\\])(:[0-9]{1,5})?/[a-z]{0,10}[ ]?|\\PC{0,30}|https://example\\.com/[a-z]{2020,2040}",
        ) {
            if let Ok(CheckTarget(url)) = check_target(&s, AddressPolicy::STRICT) {
                prop_assert!(s.starts_with("http://") || s.starts_with("https://"), "{:?}", s);
                prop_assert!(s.chars().count() <= MAX_CHECK_URL_CHARS);
                prop_assert!(url.username().is_empty() && url.password().is_none());
                // The URL owns its own host.
                let host = url.host_str().unwrap().trim_matches(|c| c == '[' || c == ']').to_owned();
                prop_assert!(CheckTarget(url).owned_by(&host).is_ok());
            }
        }

        #[test]
        fn the_setting_is_one_of_four_names(s in "none|private|loopback|private-and-loopback|[a-z -]{0,22}|\\PC{0,10}") {
            let known = ["none", "private", "loopback", "private-and-loopback"];
            prop_assert_eq!(s.parse::<HealthChecksAllow>().is_ok(), known.contains(&s.as_str()));
        }
    }
}
