//! Which network addresses a URL a user chose may reach (SSRF), free of I/O.
//!
//! Webhook deliveries and registry health checks connect, from inside our network, to
//! URLs whoever holds a key chose. Without these rules such a URL could reach the
//! instance metadata service, loopback admin ports or private services. Each caller
//! checks literal addresses when a URL is registered and the resolved address inside its
//! HTTP client's resolver at every connection (DNS can change after registration);
//! [`GuardedResolver`] is that second check.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::outbound::{DnsFuture, ResolveDns, ResolveDnsError};

/// What a deployment relaxes. Link-local and metadata addresses (and unspecified,
/// multicast, reserved) stay refused whatever it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// 10/8, 172.16/12, 192.168/16, 100.64/10, 192.0.0/24, 198.18/15, fc00::/7.
    pub allow_private: bool,
    /// 127/8 and ::1.
    pub allow_loopback: bool,
}

impl AddressPolicy {
    /// Only public addresses: the deployed default.
    pub const STRICT: Self = Self {
        allow_private: false,
        allow_loopback: false,
    };
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 169.254.0.0/16, fe80::/10: where metadata lives; never a legitimate target.
    LinkLocal,
    /// 169.254.169.254, fd00:ec2::254: the cloud instance metadata service.
    Metadata,
    Unspecified,
    Multicast,
    /// Broadcast and the reserved 240.0.0.0/4.
    Reserved,
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (shared), 192.0.0/24, 198.18/15, fc00::/7.
    Private,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::LinkLocal => "a link-local address",
            Refusal::Metadata => "the instance metadata address",
            Refusal::Unspecified => "an unspecified address",
            Refusal::Multicast => "a multicast address",
            Refusal::Reserved => "a reserved or broadcast address",
            Refusal::Loopback => "a loopback address",
            Refusal::Private => "a private address",
        })
    }
}

impl Refusal {
    /// Whether `policy` lets this kind of address through.
    pub fn relaxed_by(self, policy: AddressPolicy) -> bool {
        match self {
            Refusal::Loopback => policy.allow_loopback,
            Refusal::Private => policy.allow_private,
            _ => false,
        }
    }
}

/// Whether `ip` may be connected to under `policy`.
pub fn check_ip(ip: IpAddr, policy: AddressPolicy) -> Result<(), Refusal> {
    match classify(ip) {
        Some(r) if !r.relaxed_by(policy) => Err(r),
        _ => Ok(()),
    }
}

/// What is special about `ip`, if anything. IPv6 forms that carry an IPv4 address
/// (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are judged by the IPv4 address they reach.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some(Refusal::Metadata)
    } else if a == 169 && b == 254 {
        Some(Refusal::LinkLocal)
    } else if a == 0 {
        // 0.0.0.0/8 "this network": 0.0.0.0 reaches loopback on Linux.
        Some(Refusal::Unspecified)
    } else if a == 127 {
        Some(Refusal::Loopback)
    } else if (224..=239).contains(&a) {
        Some(Refusal::Multicast)
    } else if a >= 240 {
        Some(Refusal::Reserved)
    } else if a == 10
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 100 && (64..=127).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        Some(Refusal::Private)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let seg = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Some(Refusal::Metadata)
    } else if ip.is_unspecified() {
        Some(Refusal::Unspecified)
    } else if ip.is_loopback() {
        Some(Refusal::Loopback)
    } else if seg[0] & 0xffc0 == 0xfe80 {
        Some(Refusal::LinkLocal)
    } else if seg[0] & 0xff00 == 0xff00 {
        Some(Refusal::Multicast)
    } else if seg[0] & 0xfe00 == 0xfc00 || seg[0] & 0xffc0 == 0xfec0 {
        // Unique-local fc00::/7, and the deprecated site-local fec0::/10.
        Some(Refusal::Private)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that route to one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let seg = ip.segments();
    let o = ip.octets();
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // IPv4-compatible ::a.b.c.d (deprecated, but some stacks still route it); `::` and
    // `::1` are IPv6's own unspecified and loopback.
    if seg[..6].iter().all(|s| *s == 0) && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(last32);
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|s| *s == 0) {
        return Some(last32);
    }
    // 6to4 2002:AABB:CCDD::/48.
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Names resolvers answer with loopback without asking DNS.
pub fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A name that resolved only to refused addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} resolves only to refused addresses ({refusal})")]
pub struct SsrfRefused {
    pub name: String,
    pub refusal: Refusal,
}

/// The addresses of `resolved` that `policy` allows; [`SsrfRefused`] when none is. For an
/// HTTP client's DNS resolver: what it returns is what the connector dials, so the
/// address checked is the address connected to (no rebinding between check and use).
pub fn filter_resolved(
    name: &str,
    resolved: impl IntoIterator<Item = SocketAddr>,
    policy: AddressPolicy,
) -> Result<Vec<SocketAddr>, SsrfRefused> {
    let mut refusal = None;
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| match check_ip(a.ip(), policy) {
            Ok(()) => true,
            Err(r) => {
                refusal = Some(r);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(SsrfRefused {
            name: name.to_owned(),
            refusal: refusal.unwrap_or(Refusal::Unspecified),
        });
    }
    Ok(allowed)
}

/// The resolver of an outbound client for URLs users give (webhooks, health checks,
/// [`crate::outbound::OutboundClient::guarded`]): every name is resolved here and only
/// the addresses the policy allows are handed to the connector, so the address checked
/// is the address connected to, at every request (DNS may change after registration).
/// A name left with no allowed address fails the connection with [`SsrfRefused`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: AddressPolicy,
    /// Fixed answers instead of the system resolver, as a DNS server that answers so
    /// would (tests).
    hosts: Option<Arc<HashMap<String, Vec<IpAddr>>>>,
}

impl GuardedResolver {
    /// Names resolved by the system resolver.
    pub fn new(policy: AddressPolicy) -> Self {
        Self {
            policy,
            hosts: None,
        }
    }

    /// Names resolved from `hosts` only.
    pub fn with_hosts(policy: AddressPolicy, hosts: HashMap<String, Vec<IpAddr>>) -> Self {
        Self {
            policy,
            hosts: Some(Arc::new(hosts)),
        }
    }

    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// The addresses of `name` the policy allows; an address literal is its own answer.
    pub async fn resolve(
        &self,
        name: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let resolved: Vec<SocketAddr> = match (name.parse::<IpAddr>(), &self.hosts) {
            (Ok(ip), _) => vec![SocketAddr::new(ip, 0)],
            (Err(_), None) => tokio::net::lookup_host((name, 0)).await?.collect(),
            (Err(_), Some(hosts)) => hosts
                .get(name)
                .into_iter()
                .flatten()
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect(),
        };
        let allowed = filter_resolved(name, resolved, self.policy)?;
        Ok(allowed.into_iter().map(|a| a.ip()).collect())
    }
}

impl ResolveDns for GuardedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move { self.resolve(name).await.map_err(ResolveDnsError::new) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK_ONLY: AddressPolicy = AddressPolicy {
        allow_private: false,
        allow_loopback: true,
    };
    const PRIVATE_ONLY: AddressPolicy = AddressPolicy {
        allow_private: true,
        allow_loopback: false,
    };

    #[test]
    fn every_kind_of_address_is_classified_and_relaxed_only_where_allowed() {
        use Refusal::*;
        // (address, refusal, allowed by loopback-only, allowed by private-only)
        let cases: &[(&str, Option<Refusal>, bool, bool)] = &[
            ("8.8.8.8", None, true, true),
            ("2606:4700::1111", None, true, true),
            ("172.32.0.1", None, true, true),
            ("169.253.0.1", None, true, true),
            ("127.0.0.1", Some(Loopback), true, false),
            ("127.255.0.9", Some(Loopback), true, false),
            ("::1", Some(Loopback), true, false),
            ("::ffff:127.0.0.1", Some(Loopback), true, false),
            ("10.1.2.3", Some(Private), false, true),
            ("172.16.0.1", Some(Private), false, true),
            ("192.168.0.1", Some(Private), false, true),
            ("100.64.0.1", Some(Private), false, true),
            ("fd12::1", Some(Private), false, true),
            ("fc00::1", Some(Private), false, true),
            ("::ffff:10.0.0.1", Some(Private), false, true),
            ("64:ff9b::a00:1", Some(Private), false, true),
            ("2002:c0a8:101::1", Some(Private), false, true),
            ("169.254.169.254", Some(Metadata), false, false),
            ("::ffff:169.254.169.254", Some(Metadata), false, false),
            ("fd00:ec2::254", Some(Metadata), false, false),
            ("169.254.1.1", Some(LinkLocal), false, false),
            ("fe80::1", Some(LinkLocal), false, false),
            ("0.0.0.0", Some(Unspecified), false, false),
            ("::", Some(Unspecified), false, false),
            ("224.0.0.1", Some(Multicast), false, false),
            ("ff02::1", Some(Multicast), false, false),
            ("255.255.255.255", Some(Reserved), false, false),
        ];
        for (ip, refusal, loopback, private) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify(ip), *refusal, "{ip}");
            assert_eq!(
                check_ip(ip, AddressPolicy::STRICT).is_ok(),
                refusal.is_none(),
                "{ip}"
            );
            assert_eq!(check_ip(ip, LOOPBACK_ONLY).is_ok(), *loopback, "{ip}");
            assert_eq!(check_ip(ip, PRIVATE_ONLY).is_ok(), *private, "{ip}");
        }
    }

    #[test]
    fn a_resolved_name_keeps_only_allowed_addresses() {
        let a = |s: &str| SocketAddr::new(s.parse().unwrap(), 0);
        assert_eq!(
            filter_resolved(
                "mixed",
                [a("169.254.169.254"), a("93.184.216.34")],
                AddressPolicy::STRICT
            ),
            Ok(vec![a("93.184.216.34")])
        );
        assert_eq!(
            filter_resolved("meta", [a("169.254.169.254")], AddressPolicy::STRICT),
            Err(SsrfRefused {
                name: "meta".into(),
                refusal: Refusal::Metadata
            })
        );
        assert!(filter_resolved("none", [], AddressPolicy::STRICT).is_err());
        assert!(is_localhost_name("LocalHost."));
        assert!(is_localhost_name("api.localhost"));
        assert!(!is_localhost_name("localhost.example.com"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        const POLICIES: [AddressPolicy; 4] = [
            AddressPolicy::STRICT,
            AddressPolicy {
                allow_private: false,
                allow_loopback: true,
            },
            AddressPolicy {
                allow_private: true,
                allow_loopback: false,
            },
            AddressPolicy {
                allow_private: true,
                allow_loopback: true,
            },
        ];

        /// Every IPv6 form that carries `v4`, judged as `v4` itself.
        fn v6_forms(v4: Ipv4Addr) -> Vec<Ipv6Addr> {
            let [a, b, c, d] = v4.octets();
            let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            let mut forms = vec![
                v4.to_ipv6_mapped(),
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
            ];
            // `::` and `::1` are IPv6's own unspecified and loopback, not 0.0.0.0/0.0.0.1.
            if u32::from(v4) > 1 {
                forms.push(v4.to_ipv6_compatible());
            }
            forms
        }

        proptest! {
            #[test]
            fn ipv4_carried_in_ipv6_is_judged_as_the_ipv4(v4 in any::<Ipv4Addr>()) {
                for v6 in v6_forms(v4) {
                    prop_assert_eq!(classify(IpAddr::V6(v6)), classify(IpAddr::V4(v4)), "{}", v6);
                }
            }

            /// However an address is written in text (IPv4-mapped, with zero runs
            /// compressed or not, upper case), it is the same address and gets the same answer.
            #[test]
            fn textual_forms_of_one_address_agree(v4 in any::<Ipv4Addr>(), upper in any::<bool>()) {
                let expected = classify(IpAddr::V4(v4));
                let [a, b, c, d] = v4.octets();
                let texts = [
                    format!("::ffff:{v4}"),
                    format!("0:0:0:0:0:ffff:{v4}"),
                    format!("::ffff:{:x}{:02x}:{:x}{:02x}", a, b, c, d),
                    format!("64:ff9b::{v4}"),
                ];
                for t in texts {
                    let t = if upper { t.to_uppercase() } else { t };
                    let ip: IpAddr = t.parse().unwrap();
                    prop_assert_eq!(classify(ip), expected, "{}", t);
                }
            }

            /// Link-local and metadata (and unspecified, multicast, reserved) are refused
            /// whatever the deployment allows; a policy only ever relaxes its own kind.
            #[test]
            fn policies_relax_only_loopback_and_private(ip in any::<IpAddr>()) {
                let strict = check_ip(ip, AddressPolicy::STRICT);
                for policy in POLICIES {
                    match classify(ip) {
                        None => prop_assert_eq!(check_ip(ip, policy), Ok(())),
                        Some(r @ Refusal::Loopback) => {
                            prop_assert_eq!(check_ip(ip, policy).is_ok(), policy.allow_loopback, "{}", ip);
                            prop_assert_eq!(strict, Err(r));
                        }
                        Some(r @ Refusal::Private) => {
                            prop_assert_eq!(check_ip(ip, policy).is_ok(), policy.allow_private, "{}", ip);
                            prop_assert_eq!(strict, Err(r));
                        }
                        Some(r) => prop_assert_eq!(check_ip(ip, policy), Err(r), "{}", ip),
                    }
                }
            }

            #[test]
            fn link_local_and_metadata_are_refused_in_every_mode(
                c in any::<u8>(),
                d in any::<u8>(),
                tail in any::<[u16; 7]>(),
            ) {
                let v4 = Ipv4Addr::new(169, 254, c, d);
                let v6 = Ipv6Addr::new(0xfe80 | (tail[0] & 0x3f), tail[1], tail[2], tail[3], tail[4], tail[5], tail[6], tail[0]);
                for policy in POLICIES {
                    prop_assert!(check_ip(IpAddr::V4(v4), policy).is_err());
                    prop_assert!(check_ip(IpAddr::V6(v6), policy).is_err());
                    for form in v6_forms(v4) {
                        prop_assert!(check_ip(IpAddr::V6(form), policy).is_err(), "{}", form);
                    }
                }
            }

            #[test]
            fn a_resolution_keeps_exactly_the_allowed_addresses(
                ips in proptest::collection::vec(any::<IpAddr>(), 0..6),
                policy in proptest::sample::select(POLICIES.to_vec()),
            ) {
                let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, 443)).collect();
                let allowed: Vec<SocketAddr> = addrs
                    .iter()
                    .copied()
                    .filter(|a| check_ip(a.ip(), policy).is_ok())
                    .collect();
                match filter_resolved("n", addrs, policy) {
                    Ok(kept) => prop_assert_eq!(kept, allowed),
                    Err(e) => prop_assert!(allowed.is_empty(), "{}", e),
                }
            }

            #[test]
            fn localhost_names_ignore_case_and_a_final_dot(
                label in "[a-zA-Z0-9-]{1,20}",
                host in "[lL][oO][cC][aA][lL][hH][oO][sS][tT]",
                dot in "\\.?",
            ) {
                let (bare, sub, other) = (
                    format!("{host}{dot}"),
                    format!("{label}.{host}{dot}"),
                    format!("{host}.{label}x"),
                );
                prop_assert!(is_localhost_name(&bare));
                prop_assert!(is_localhost_name(&sub));
                prop_assert!(!is_localhost_name(&other));
            }
        }
    }
}
