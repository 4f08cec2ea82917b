//! Which addresses a webhook may be sent to (SSRF), free of I/O.
//!
//! A webhook URL is chosen by whoever holds a `webhooks:write` key, and the delivery
//! worker POSTs to it from inside our network: without these rules it could reach the
//! instance metadata service, loopback admin ports or private services. Literal
//! addresses are refused when a subscription is registered ([`WebhookUrl::parse`]); names
//! are resolved and checked again inside the HTTP client at every delivery
//! (`aloft_shared::ssrf::GuardedResolver`), because DNS can change after registration.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub const MAX_URL_CHARS: usize = 2048;

/// How strict the address rules are. `allow_private` is for local development and
/// tests only (`WEBHOOK_ALLOW_PRIVATE_URLS`): it allows `http` and loopback/private
/// addresses. Link-local and metadata addresses stay refused in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    pub allow_private: bool,
}

impl UrlPolicy {
    pub const STRICT: Self = Self {
        allow_private: false,
    };
    pub const LOCAL: Self = Self {
        allow_private: true,
    };
}

pub use aloft_shared::ssrf::{Refusal, classify};

impl UrlPolicy {
    /// The shared address rules this policy means: `allow_private` relaxes loopback and
    /// private ranges together.
    pub fn addresses(self) -> aloft_shared::ssrf::AddressPolicy {
        aloft_shared::ssrf::AddressPolicy {
            allow_private: self.allow_private,
            allow_loopback: self.allow_private,
        }
    }
}

/// Whether `ip` may receive a webhook under `policy` (the rules live in
/// `aloft_shared::ssrf`, shared with the registry's health checks).
pub fn check_ip(ip: IpAddr, policy: UrlPolicy) -> Result<(), Refusal> {
    aloft_shared::ssrf::check_ip(ip, policy.addresses())
}

/// Why a URL cannot be a webhook endpoint; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be an absolute URL")]
    NotAUrl,
    #[error("must be at most {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("must use https")]
    NotHttps,
    #[error("must not contain a user name or password")]
    Credentials,
    #[error("must not contain a fragment (#…)")]
    Fragment,
    #[error("must have a host name")]
    NoHost,
    #[error("must not point at {0}")]
    Refused(Refusal),
}

/// A URL a webhook may be delivered to under the policy it was parsed with: https
/// (unless relaxed), no credentials, and not a refused address when the host is an IP
/// literal. Odd literal spellings (`2852039166`, `0x7f.1`, `0177.0.0.1`, `[::ffff:…]`)
/// are normalised by the WHATWG URL parser, the same one the HTTP client uses, so the
/// address checked is the address connected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// `raw` as sent. A URI (the spec's `format: uri`) has no white space or control
    /// characters; the WHATWG parser would silently drop them (around it, and tabs and
    /// newlines anywhere), so they are refused here.
    pub fn parse(raw: &str, policy: UrlPolicy) -> Result<Self, UrlError> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(UrlError::TooLong);
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::NotAUrl);
        }
        let url = url::Url::parse(raw).map_err(|_| UrlError::NotAUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_private => {}
            _ => return Err(UrlError::NotHttps),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let ip = match url.host() {
            None => return Err(UrlError::NoHost),
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(name)) => {
                if name.is_empty() {
                    return Err(UrlError::NoHost);
                }
                let name = name.trim_end_matches('.');
                // Resolvers answer these with loopback without asking DNS.
                if (name == "localhost" || name.ends_with(".localhost")) && !policy.allow_private {
                    return Err(UrlError::Refused(Refusal::Loopback));
                }
                None
            }
        };
        if let Some(ip) = ip {
            check_ip(ip, policy).map_err(UrlError::Refused)?;
        }
        Ok(Self(url))
    }

    /// A stored URL, re-checked under today's policy at delivery time.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<WebhookUrl> for String {
    fn from(u: WebhookUrl) -> Self {
        u.0.into()
    }
}

/// Stored URLs were checked when written; reading one back re-checks only its shape.
/// Delivery re-checks it under the current policy with [`WebhookUrl::parse`].
impl TryFrom<String> for WebhookUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        url::Url::parse(&s).map(Self).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn strict(u: &str) -> Result<WebhookUrl, UrlError> {
        WebhookUrl::parse(u, UrlPolicy::STRICT)
    }

    fn local(u: &str) -> Result<WebhookUrl, UrlError> {
        WebhookUrl::parse(u, UrlPolicy::LOCAL)
    }

    #[test]
    fn every_refused_form_is_refused_and_relaxed_only_where_allowed() {
        use Refusal::*;
        // (url, refusal in strict mode, still refused in local mode)
        let cases: &[(&str, Refusal, bool)] = &[
            ("https://127.0.0.1/", Loopback, false),
            ("https://127.1.2.3:8443/x", Loopback, false),
            ("https://localhost/", Loopback, false),
            ("https://api.localhost./", Loopback, false),
            ("https://[::1]/", Loopback, false),
            ("https://[::ffff:127.0.0.1]/", Loopback, false),
            ("https://[::ffff:7f00:1]/", Loopback, false),
            ("https://2130706433/", Loopback, false),
            ("https://0x7f.1/", Loopback, false),
            ("https://0177.0.0.1/", Loopback, false),
            ("https://127.1/", Loopback, false),
            ("https://10.0.0.1/", Private, false),
            ("https://172.16.0.1/", Private, false),
            ("https://172.31.255.255/", Private, false),
            ("https://192.168.1.1/", Private, false),
            ("https://100.64.0.1/", Private, false),
            ("https://100.127.255.255/", Private, false),
            ("https://[fc00::1]/", Private, false),
            ("https://[fd12:3456::1]/", Private, false),
            ("https://[::ffff:10.1.2.3]/", Private, false),
            ("https://[64:ff9b::a00:1]/", Private, false),
            ("https://[2002:c0a8:101::1]/", Private, false),
            ("https://169.254.169.254/latest/meta-data/", Metadata, true),
            ("https://2852039166/", Metadata, true),
            ("https://0xa9fea9fe/", Metadata, true),
            ("https://0251.0376.0251.0376/", Metadata, true),
            ("https://169.254.43518/", Metadata, true),
            ("https://[::ffff:169.254.169.254]/", Metadata, true),
            ("https://[::ffff:a9fe:a9fe]/", Metadata, true),
            ("https://[fd00:ec2::254]/", Metadata, true),
            ("https://169.254.1.1/", LinkLocal, true),
            ("https://[fe80::1]/", LinkLocal, true),
            ("https://[febf::1]/", LinkLocal, true),
            ("https://0.0.0.0/", Unspecified, true),
            ("https://0/", Unspecified, true),
            ("https://[::]/", Unspecified, true),
            ("https://224.0.0.1/", Multicast, true),
            ("https://[ff02::1]/", Multicast, true),
            ("https://255.255.255.255/", Reserved, true),
            ("https://240.0.0.1/", Reserved, true),
        ];
        for (url, refusal, always) in cases {
            assert_eq!(strict(url), Err(UrlError::Refused(*refusal)), "{url}");
            let relaxed = local(url);
            if *always {
                assert_eq!(relaxed, Err(UrlError::Refused(*refusal)), "{url} (local)");
            } else {
                assert!(relaxed.is_ok(), "{url} (local): {relaxed:?}");
            }
        }
    }

    #[test]
    fn public_https_urls_are_accepted() {
        for url in [
            "https://example.com/hooks",
            "https://hooks.example.com:8443/a?b=c",
            "https://93.184.216.34/",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://169.253.0.1/",
        ] {
            assert!(strict(url).is_ok(), "{url}");
        }
        assert_eq!(strict(" https://example.com/x "), Err(UrlError::NotAUrl));
    }

    #[test]
    fn shape_rules() {
        assert_eq!(strict("http://example.com/"), Err(UrlError::NotHttps));
        assert!(local("http://127.0.0.1:8080/hook").is_ok());
        assert_eq!(strict("ftp://example.com/"), Err(UrlError::NotHttps));
        assert_eq!(local("file:///etc/passwd"), Err(UrlError::NotHttps));
        assert_eq!(strict("example.com/hook"), Err(UrlError::NotAUrl));
        assert_eq!(strict(""), Err(UrlError::NotAUrl));
        assert_eq!(
            strict("https://user:pw@example.com/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(strict("https://example.com/#x"), Err(UrlError::Fragment));
        for spaced in [
            "https://exa\tmple.com/",
            "https://example.com/a\nb",
            "https://example.com/ ",
        ] {
            assert_eq!(strict(spaced), Err(UrlError::NotAUrl), "{spaced:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(strict(&long), Err(UrlError::TooLong));
    }

    #[test]
    fn classification_of_resolved_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            check_ip(ip("169.254.169.254"), UrlPolicy::LOCAL),
            Err(Refusal::Metadata)
        );
        assert_eq!(check_ip(ip("127.0.0.1"), UrlPolicy::LOCAL), Ok(()));
        assert_eq!(
            check_ip(ip("127.0.0.1"), UrlPolicy::STRICT),
            Err(Refusal::Loopback)
        );
        assert_eq!(check_ip(ip("8.8.8.8"), UrlPolicy::STRICT), Ok(()));
        assert_eq!(
            check_ip(ip("::ffff:192.168.0.1"), UrlPolicy::STRICT),
            Err(Refusal::Private)
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_accepted_urls_are_https(s in "\\PC{0,200}") {
            if let Ok(u) = strict(&s) {
                prop_assert_eq!(u.as_url().scheme(), "https");
            }
        }

        /// What is accepted is a URI as sent (no white space or control characters, at
        /// most 2048 characters), https, without credentials or fragment, and stored as
        /// the parser normalised it: which reads back as the same URL.
        #[test]
        fn accepted_urls_keep_the_spec_rules(
            s in "[ \t]?(https|HTTPS|http|ftp)://(u:p@)?(example\\.com|93\\.184\\.216\\.34|\\[2606:4700::1111\\]|exa\tmple\\.com)(:[0-9]{1,5})?/[a-z\n]{0,6}(\\?[a-z]=[a-z])?(#x)?[ \n]?",
        ) {
            if let Ok(u) = strict(&s) {
                prop_assert!(s.chars().count() <= MAX_URL_CHARS);
                prop_assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()), "{:?}", s);
                prop_assert_eq!(u.as_url().scheme(), "https");
                prop_assert!(u.as_url().username().is_empty() && u.as_url().password().is_none());
                prop_assert!(u.as_url().fragment().is_none());
                prop_assert_eq!(strict(u.as_str()), Ok(u.clone()));
                let json = serde_json::to_string(&u).unwrap();
                prop_assert_eq!(serde_json::from_str::<WebhookUrl>(&json).unwrap(), u);
            }
        }

        #[test]
        fn every_ipv6_literal_agrees_with_the_address(ip in any::<std::net::Ipv6Addr>(), relaxed in any::<bool>()) {
            let policy = if relaxed { UrlPolicy::LOCAL } else { UrlPolicy::STRICT };
            let expected = check_ip(IpAddr::V6(ip), policy).map_err(UrlError::Refused);
            let url = format!("https://[{ip}]:8443/hook");
            prop_assert_eq!(WebhookUrl::parse(&url, policy).map(|_| ()), expected);
        }

        #[test]
        fn every_ipv4_literal_spelling_agrees_with_the_address(n in any::<u32>()) {
            let ip = Ipv4Addr::from(n);
            let dotted = strict(&format!("https://{ip}/")).is_ok();
            let decimal = strict(&format!("https://{n}/")).is_ok();
            let hex = strict(&format!("https://{n:#x}/")).is_ok();
            let mapped = strict(&format!("https://[::ffff:{ip}]/")).is_ok();
            prop_assert_eq!(dotted, classify(IpAddr::V4(ip)).is_none());
            prop_assert_eq!(dotted, decimal);
            prop_assert_eq!(dotted, hex);
            prop_assert_eq!(dotted, mapped);
        }
    }
}
