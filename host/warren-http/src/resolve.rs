//! Which addresses may be dialled: the check that defeats SSRF to internal
//! services and DNS rebinding.
//!
//! A non-public address (loopback, private, link-local such as
//! 169.254.169.254, unique-local, shared 100.64/10, unspecified, multicast,
//! broadcast, documentation, benchmarking and other reserved ranges, and the
//! IPv4-mapped, IPv4-compatible, 6to4 and NAT64 forms of these) is dialled
//! only when the caller's `http_client.private_ip` grants that address.
//!
//! Guarantees: a name is resolved by [`GuardedResolver`], which reqwest
//! calls at connect time, and which hands reqwest only the addresses that
//! pass [`AddressPolicy::permits`], so the address dialled is the address
//! checked (a rebinding DNS answer is checked like any other). An IP-literal
//! URL is never resolved, so [`AddressPolicy::check_url`] checks it before
//! each hop is sent. A lookup runs on the DNS lane (`warren_core::dns_lane`)
//! as its caller's host, so a tenant whose names resolve slowly delays its
//! own lookups only; one abandoned before a thread takes it is never run.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};
use warren_core::ProcError;
use warren_core::grants::{Grants, HTTP_PRIVATE_IP};

use crate::error::denied;

/// Addresses kept from one DNS answer. A hostile name server can answer
/// with hundreds of records, and hyper tries them one after another, each
/// with its own connect attempt; a real service needs a handful.
pub const MAX_RESOLVED_ADDRESSES: usize = 16;

/// The `http_client.private_ip` grants of one caller: only that action of
/// the grants held is ever consulted.
#[derive(Clone, Debug, Default)]
pub(crate) struct AddressPolicy {
    grants: Grants,
}

impl AddressPolicy {
    /// The policy of a caller holding `grants`.
    pub(crate) fn from_grants(grants: &Grants) -> AddressPolicy {
        AddressPolicy {
            grants: grants.clone(),
        }
    }

    /// The patterns, sorted: equal keys mean equal policies.
    pub(crate) fn key(&self) -> Vec<String> {
        let mut key: Vec<String> = self
            .grants
            .patterns(HTTP_PRIVATE_IP)
            .map(str::to_owned)
            .collect();
        key.sort();
        key
    }

    /// Whether `ip` may be dialled: it is public, or granted.
    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        !is_non_public(ip) || self.grants.allows(HTTP_PRIVATE_IP, &ip.to_string())
    }

    /// `PERMISSION_DENIED` if `url`'s host is an IP literal that may not be
    /// dialled (names are checked by [`GuardedResolver`] once resolved).
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), ProcError> {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            // The url crate turns every IPv4 spelling into `Host::Ipv4`;
            // this catches a name hyper would still read as an address.
            Some(Host::Domain(name)) => match name.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => return Ok(()),
            },
            None => return Ok(()),
        };
        if self.permits(ip) {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        Err(denied(DeniedAddress { host, addr: ip }.to_string()))
    }
}

/// A resolution whose every address was refused: reqwest reports it as a
/// connect error, and `error::from_reqwest` finds it in the chain of
/// sources and turns it into `PERMISSION_DENIED`.
#[derive(Debug, Clone)]
pub(crate) struct DeniedAddress {
    host: String,
    addr: IpAddr,
}

impl fmt::Display for DeniedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "http_client.private_ip not granted: {} resolves to the non-public address {}",
            self.host, self.addr
        )
    }
}

impl std::error::Error for DeniedAddress {}

/// The system resolver of one host's callers, keeping only the addresses
/// its policy permits.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    /// The host whose lookups these are, on the DNS lane.
    caller: u16,
}

impl GuardedResolver {
    pub(crate) fn new(policy: AddressPolicy, caller: u16) -> GuardedResolver {
        GuardedResolver {
            policy: Arc::new(policy),
            caller,
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let (caller, host) = (self.caller, name.as_str().to_owned());
        Box::pin(async move {
            let found = lookup(caller, host.clone()).await?;
            let addrs = filter(&policy, &host, found.into_iter())?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `name` (the system resolver's `getaddrinfo`, as
/// tokio's `lookup_host`; port 0, which the URL's port replaces), the
/// first [`MAX_RESOLVED_ADDRESSES`] of them, looked up on the DNS lane as
/// host `caller`. Dropped before a thread takes it, it is never run.
async fn lookup(caller: u16, name: String) -> std::io::Result<Vec<SocketAddr>> {
    let found = warren_core::dns_lane()
        .run(caller, move || {
            (name.as_str(), 0)
                .to_socket_addrs()
                .map(|addrs| addrs.take(MAX_RESOLVED_ADDRESSES).collect::<Vec<_>>())
        })
        .await;
    found.unwrap_or_else(|| Err(std::io::Error::other("the DNS lookup was dropped unrun")))
}

/// The permitted addresses among `found` (at most
/// [`MAX_RESOLVED_ADDRESSES`]), or [`DeniedAddress`] if some were found but
/// none is permitted.
fn filter(
    policy: &AddressPolicy,
    host: &str,
    found: impl Iterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, DeniedAddress> {
    let mut kept = Vec::new();
    let mut refused = None;
    for addr in found.take(MAX_RESOLVED_ADDRESSES) {
        if policy.permits(addr.ip()) {
            kept.push(addr);
        } else {
            tracing::debug!(host, addr = %addr.ip(), "refused a non-public address");
            refused.get_or_insert(addr.ip());
        }
    }
    match refused {
        Some(addr) if kept.is_empty() => Err(DeniedAddress {
            host: host.to_owned(),
            addr,
        }),
        _ => Ok(kept),
    }
}

/// Whether `ip` is not a public unicast address of the Internet.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => is_non_public_v6(v6),
    }
}

/// IPv4 ranges that are not public (IANA special-purpose registry).
const NON_PUBLIC_V4: [(u32, u8); 16] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network", unspecified
    (0x0a00_0000, 8),  // 10/8 private
    (0x6440_0000, 10), // 100.64/10 shared (CGNAT)
    (0x7f00_0000, 8),  // 127/8 loopback
    (0xa9fe_0000, 16), // 169.254/16 link-local, cloud metadata
    (0xac10_0000, 12), // 172.16/12 private
    (0xc000_0000, 24), // 192.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2/24 documentation
    (0xc058_6300, 24), // 192.88.99/24 6to4 relay anycast
    (0xc0a8_0000, 16), // 192.168/16 private
    (0xc612_0000, 15), // 198.18/15 benchmarking
    (0xc633_6400, 24), // 198.51.100/24 documentation
    (0xcb00_7100, 24), // 203.0.113/24 documentation
    (0xe000_0000, 4),  // 224/4 multicast
    (0xf000_0000, 4),  // 240/4 reserved, 255.255.255.255 broadcast
    (0xffff_ffff, 32), // broadcast (inside 240/4; kept for clarity)
];

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let bits = ip.to_bits();
    NON_PUBLIC_V4
        .iter()
        .any(|&(net, prefix)| bits >> (32 - u32::from(prefix)) == net >> (32 - u32::from(prefix)))
}

/// IPv6 ranges that are not public, whatever address they embed.
const NON_PUBLIC_V6: [(u128, u8); 12] = [
    (0, 96),                      // ::/96 unspecified, loopback, IPv4-compatible
    (0x0064_ff9b_0001 << 80, 48), // 64:ff9b:1::/48 local-use NAT64
    (0x0100 << 112, 64),          // 100::/64 discard
    (0x2001 << 112, 23),          // 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...)
    (0x2001_0db8 << 96, 32),      // 2001:db8::/32 documentation
    (0x3fff << 112, 20),          // 3fff::/20 documentation
    (0x5f00 << 112, 16),          // 5f00::/16 segment routing
    (0xfc00 << 112, 7),           // fc00::/7 unique-local
    (0xfe80 << 112, 10),          // fe80::/10 link-local
    (0xfec0 << 112, 10),          // fec0::/10 site-local (deprecated)
    (0xff00 << 112, 8),           // ff00::/8 multicast
    (0xffff << 48, 96),           // ::ffff:0:0:0/96 IPv4-translated
];

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_non_public_v4(v4);
    }
    let bits = ip.to_bits();
    NON_PUBLIC_V6
        .iter()
        .any(|&(net, prefix)| bits >> (128 - u32::from(prefix)) == net >> (128 - u32::from(prefix)))
}

/// The IPv4 address an IPv6 address stands for, when it is an IPv4-mapped
/// (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`)
/// address. IPv4-compatible `::a.b.c.d` is refused whole by
/// [`NON_PUBLIC_V6`].
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    let low32 = Ipv4Addr::from_bits(bits as u32);
    if bits >> 32 == 0xffff {
        return Some(low32);
    }
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(low32);
    }
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from_bits((bits >> 80) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn non_public(text: &str) -> bool {
        is_non_public(text.parse().expect("an address"))
    }

    #[test]
    fn classifies_addresses() {
        for addr in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            assert!(non_public(addr), "{addr} is not public");
        }
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "169.255.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert!(!non_public(addr), "{addr} is public");
        }
    }

    #[test]
    fn policy_permits_granted_addresses() {
        let mut grants = Grants::new();
        grants
            .add(HTTP_PRIVATE_IP, "10.0.0.0/8")
            .expect("valid pattern");
        let policy = AddressPolicy::from_grants(&grants);
        assert!(policy.permits("10.9.9.9".parse().expect("ip")));
        assert!(policy.permits("::ffff:10.9.9.9".parse().expect("ip")));
        assert!(policy.permits("8.8.8.8".parse().expect("ip")));
        assert!(!policy.permits("127.0.0.1".parse().expect("ip")));
        assert_eq!(policy.key(), vec!["10.0.0.0/8".to_owned()]);
        assert!(AddressPolicy::default().key().is_empty());
    }

    #[test]
    fn filter_keeps_permitted_and_denies_when_none_left() {
        let policy = AddressPolicy::default();
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter()
                .map(|a| SocketAddr::new(a.parse().expect("ip"), 0))
                .collect()
        };
        let kept = filter(&policy, "x", addrs(&["127.0.0.1", "8.8.8.8"]).into_iter())
            .expect("one public address");
        assert_eq!(kept, addrs(&["8.8.8.8"]));
        let err = filter(&policy, "x", addrs(&["127.0.0.1", "::1"]).into_iter())
            .expect_err("nothing public");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
        let many = vec!["8.8.8.8"; 100];
        assert_eq!(
            filter(&policy, "x", addrs(&many).into_iter())
                .expect("public")
                .len(),
            MAX_RESOLVED_ADDRESSES
        );
    }

    #[test]
    fn literal_urls_are_checked() {
        let policy = AddressPolicy::default();
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            let url = Url::parse(url).expect("url");
            let err = policy.check_url(&url).expect_err(url.as_str());
            assert_eq!(err.kind, warren_core::ErrorKind::PermissionDenied);
        }
        let url = Url::parse("http://example.org/").expect("url");
        policy
            .check_url(&url)
            .expect("a name is checked when resolved");
    }
}
