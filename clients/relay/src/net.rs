//! Where the relay may connect: no request reaches a private address unless the config allows it.
//!
//! The check sits in ureq's resolver: the addresses it returns are the only ones the connector
//! dials, so what is checked is what is connected to. A DNS answer that changes between a check
//! and a connect cannot slip through, because there is no second lookup. Proxies from the
//! environment are turned off (a proxy would resolve the name itself), redirects are never
//! followed, and every request has one overall time limit.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ureq::config::Config as UreqConfig;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::Allowed;

/// Why an address is refused, if it is: its category.
pub fn refused_category(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_category(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_category(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) and IPv4-compatible addresses carry an IPv4 address.
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4])
                || (s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
            {
                let o = v6.octets();
                return v4_category(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else {
                None
            }
        }
    }
}

fn v4_category(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("reserved")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (CGNAT)")
    } else {
        None
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| in_net(IpAddr::V4(a), net, bits)),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

/// Which addresses may be connected to.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub allowed: Vec<Allowed>,
}

impl Policy {
    /// Whether `ip`, reached for the URL host `host`, may be connected to; the reason if not.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        let Some(category) = refused_category(ip) else {
            return Ok(());
        };
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let listed = self.allowed.iter().any(|a| match a {
            Allowed::Host(h) => *h == host,
            Allowed::Net(net, bits) => in_net(ip, *net, *bits),
        });
        if listed {
            Ok(())
        } else {
            Err(format!(
                "refused to connect to {host}: it resolves to {ip}, a {category} address \
                 (list the host or its network in allow_private to reach it)"
            ))
        }
    }
}

/// The resolver that refuses what [`Policy`] refuses, after resolution and before connecting.
#[derive(Debug)]
struct CheckedResolver {
    policy: Policy,
    inner: DefaultResolver,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &UreqConfig,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or("");
        let mut out = self.empty();
        let mut refused = None;
        for a in &addrs {
            match self.policy.check(host, a.ip()) {
                Ok(()) => out.push(*a),
                Err(e) => refused = Some(e),
            }
        }
        // Any refused address refuses the host: a name that answers both a public and a
        // private address is not one to trust with a fallback.
        if let Some(e) = refused {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                e,
            )));
        }
        Ok(out)
    }
}

/// An HTTP agent that reaches only what `policy` allows, follows no redirect, uses no proxy,
/// and gives each request `timeout` in all.
pub fn agent(policy: Policy, timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .user_agent(concat!("cairn-relay/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        CheckedResolver {
            policy,
            inner: DefaultResolver::default(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_addresses_are_refused_and_public_ones_pass() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(refused_category(ip(a)).is_some(), "{a}");
        }
        for a in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(refused_category(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn the_allow_list_opens_hosts_and_networks() {
        let policy = Policy {
            allowed: vec![
                Allowed::parse("10.0.0.0/8").unwrap(),
                Allowed::parse("matrix.internal").unwrap(),
            ],
        };
        assert!(policy.check("x", ip("10.9.9.9")).is_ok());
        assert!(policy.check("x", ip("::ffff:10.9.9.9")).is_ok());
        assert!(policy.check("x", ip("192.168.0.1")).is_err());
        assert!(policy.check("Matrix.Internal", ip("192.168.0.1")).is_ok());
        assert!(policy.check("x", ip("8.8.8.8")).is_ok());
    }
}
