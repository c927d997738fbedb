//! Blocklists: the public address looked up in each DNSBL zone, through
//! the resolver. IPv4 `a.b.c.d` is asked as `d.c.b.a.<zone>`, IPv6 in
//! nibble form (RFC 5782); an A answer in 127.0.0.0/8 is a listing, and
//! NXDOMAIN is not. Spamhaus answers 127.255.255.252–255 when it refuses
//! to answer (a public resolver, too many queries): a warning, not a
//! listing.

use std::net::{IpAddr, Ipv4Addr};

use futures::future::join_all;

use super::{Row, printable};
use crate::verify::dns::MailResolver;

/// Most characters of a listing's TXT reason shown.
const REASON_SHOWN: usize = 160;

/// A row per zone; none when the address is unknown (the public address
/// row says so) or no zone is configured.
pub(super) async fn check(
    resolver: &MailResolver,
    ip: Option<IpAddr>,
    zones: &[String],
) -> Vec<Row> {
    let Some(ip) = ip else {
        return Vec::new();
    };
    let reversed = reversed(ip);
    join_all(
        zones
            .iter()
            .map(|zone| lookup(resolver, ip, &reversed, zone)),
    )
    .await
}

/// The address as a DNSBL query label: reversed octets, or reversed
/// nibbles for IPv6.
fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let hex: String = v6
                .octets()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            let nibbles: Vec<String> = hex.chars().rev().map(String::from).collect();
            nibbles.join(".")
        }
    }
}

async fn lookup(resolver: &MailResolver, ip: IpAddr, reversed: &str, zone: &str) -> Row {
    let check = format!("dnsbl {zone}");
    let name = format!("{reversed}.{zone}");
    let answers = match resolver.ipv4_records(&name).await {
        Ok(None) => return Row::pass(check, format!("{ip} is not listed")),
        Ok(Some(answers)) => answers,
        Err(err) => {
            return Row::warn(
                check,
                format!("{ip} could not be looked up: {}", err.detail),
                "check --dns-servers, or drop the zone from --dnsbl-zones",
            );
        }
    };
    let codes: Vec<String> = answers.iter().map(ToString::to_string).collect();
    let codes = codes.join(", ");
    if answers.iter().any(|code| refused_query(*code)) {
        return Row::warn(
            check,
            format!("the list refused the query (answered {codes})"),
            "the list refuses queries from public or shared resolvers: use your own \
             recursive resolver with --dns-servers (or the list's registered access)",
        );
    }
    if !answers.iter().all(|code| code.is_loopback()) {
        return Row::warn(
            check,
            format!("answered {codes}, outside 127.0.0.0/8: not a blocklist answer"),
            "the resolver rewrites negative answers, or the zone is not a DNSBL: \
             check --dns-servers and --dnsbl-zones",
        );
    }
    let reason = match resolver.txt_records(&name).await {
        Ok(texts) if !texts.is_empty() => {
            format!(": {}", printable(&texts.join(" "), REASON_SHOWN))
        }
        _ => String::new(),
    };
    Row::fail(
        check,
        format!("{ip} is listed on {zone} ({codes}){reason}"),
        "mail servers that use this list refuse probes from this address: ask the list \
         to delist it (its site says how) or send through another address with --proxy",
    )
}

/// Spamhaus's "query refused" answers (127.255.255.252 to .255).
fn refused_query(code: Ipv4Addr) -> bool {
    let [a, b, c, d] = code.octets();
    a == 127 && b == 255 && c == 255 && d >= 252
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_reversed_as_blocklists_expect() {
        assert_eq!(reversed("192.0.2.99".parse().expect("ip")), "99.2.0.192");
        let v6 = reversed("2001:db8::1".parse().expect("ip"));
        assert!(v6.starts_with("1.0.0.0.0.0.0.0"), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2"), "{v6}");
        assert_eq!(v6.split('.').count(), 32);
    }

    #[test]
    fn spamhaus_refusals_are_not_listings() {
        for code in ["127.255.255.252", "127.255.255.254", "127.255.255.255"] {
            assert!(refused_query(code.parse().expect("ip")), "{code}");
        }
        for code in ["127.0.0.2", "127.0.0.4", "127.255.255.251"] {
            assert!(!refused_query(code.parse().expect("ip")), "{code}");
        }
    }
}
