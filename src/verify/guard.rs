//! The SSRF guard: addresses a probe must never connect to, whatever DNS
//! says, unless the operator allows private targets. An MX record pointing
//! at 127.0.0.1 or at a cloud metadata service (169.254.169.254) would
//! otherwise turn the verifier into a scanner of its own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public unicast address, or `None` if it is.
pub fn forbidden_target(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (127, _, _) => "loopback",
        (10, _, _) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local (cloud metadata)",
        (100, 64..=127, _) => "carrier-grade NAT",
        (0, _, _) => "unspecified",
        (192, 0, 0) => "IETF protocol assignments",
        (192, 88, 99) => "6to4 relay anycast (deprecated)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let first = segments[0];
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_multicast() {
        "multicast"
    } else if first & 0xfe00 == 0xfc00 {
        "unique-local (cloud metadata)"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if first & 0xffc0 == 0xfec0 {
        "site-local (deprecated)"
    } else if first == 0x2001 && segments[1] == 0x0db8 {
        "documentation"
    } else if first == 0x2001 && segments[1] == 0x0000 {
        // Teredo (RFC 4380): the client's address is obfuscated inside,
        // and the tunnel can end anywhere.
        "Teredo tunnel"
    } else if first == 0x2002 {
        // 6to4 (RFC 3056, deprecated by RFC 7526): bits 16 to 48 carry
        // an IPv4 address that the relay would dial.
        "6to4 tunnel"
    } else if segments[..6] == [0; 6] {
        // IPv4-compatible `::a.b.c.d` (deprecated by RFC 4291); `::` and
        // `::1` are caught above.
        "IPv4-compatible (deprecated)"
    } else if first == 0x0064 && segments[1] == 0xff9b && segments[2] == 0x0001 {
        // Local-use NAT64 (RFC 8215, 64:ff9b:1::/48): the translator is
        // the operator's own, with a prefix length of its choosing.
        "local-use NAT64"
    } else if first == 0x0064 && segments[1] == 0xff9b {
        // The well-known NAT64 prefix 64:ff9b::/96 (RFC 6052): the last
        // 32 bits are the IPv4 address that is dialled, and it decides.
        if segments[2..6] != [0; 4] {
            return Some("NAT64 outside its /96");
        }
        let [.., c, d] = segments;
        let v4 = Ipv4Addr::new((c >> 8) as u8, c as u8, (d >> 8) as u8, d as u8);
        return forbidden_v4(v4);
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(ip: &str) -> Option<&'static str> {
        forbidden_target(ip.parse().expect("an IP address"))
    }

    #[test]
    fn internal_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "192.0.2.10",
            "2001:db8::1",
            "192.88.99.1",
            // 6to4 around 127.0.0.1 and 169.254.169.254, and any other.
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2002:808:808::1",
            // Teredo.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            // IPv4-compatible.
            "::127.0.0.1",
            "::169.254.169.254",
            "::8.8.8.8",
            // Site-local.
            "fec0::1",
            "feff::1",
            // Local-use NAT64, whatever sits in its last bits.
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:7f00:1::",
            "64:ff9b:1::808:808",
            // The well-known NAT64 prefix outside its /96.
            "64:ff9b:0:0:1::808:808",
        ] {
            assert!(verdict(ip).is_some(), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2a00:1450:4001::1b",
            "64:ff9b::808:808",
            "2001:4860:4860::8888",
            "2600::1",
        ] {
            assert_eq!(verdict(ip), None, "{ip}");
        }
    }
}
