//! "Did you mean …?" from DNS facts. An address whose domain has no mail
//! route (a trusted NXDOMAIN, a null MX, or neither MX nor address) gets
//! the same local part at a nearby domain that does take mail:
//!
//! 1. its registrable domain (public suffix list), when the typed domain is
//!    a subdomain: `alice@mail.example.com` → `alice@example.com`;
//! 2. the domain with a common slip of the top-level label fixed
//!    ([`TLD_SLIPS`]): `alice@example.con` → `alice@example.com`;
//! 3. the registrable domain of that fixed domain:
//!    `alice@mail.example.con` → `alice@example.com`.
//!
//! The first that DNS shows to take mail — MX records naming a host with an
//! address a probe would be allowed to reach — is suggested. A lookup that
//! fails (SERVFAIL, timeout) ends the search with no suggestion: a guess is
//! never made where an answer is missing. The lookups go through the
//! verifier's resolver (its cache, its timeout) and are made only for a
//! domain without a mail route, so a domain that takes mail costs nothing.

use super::dns::{MailResolver, MailRoute};
use super::guard::forbidden_target;

/// Top-level labels typed for `.com`, `.net` and `.org`: one key away
/// (a neighbour on the keyboard, two letters swapped, one doubled or
/// dropped, a zero for an `o`). Some are real TLDs (`.co` Colombia, `.cm`
/// Cameroon, `.om` Oman, `.ne` Niger): like every slip here, they are
/// corrected only when the typed domain has no mail route and the
/// corrected one has one.
pub const TLD_SLIPS: &[(&str, &str)] = &[
    ("con", "com"),
    ("cmo", "com"),
    ("ocm", "com"),
    ("comm", "com"),
    ("coom", "com"),
    ("copm", "com"),
    ("cpm", "com"),
    ("clm", "com"),
    ("vom", "com"),
    ("xom", "com"),
    ("c0m", "com"),
    ("co", "com"),
    ("cm", "com"),
    ("om", "com"),
    ("nte", "net"),
    ("nett", "net"),
    ("ner", "net"),
    ("ne", "net"),
    ("ogr", "org"),
    ("orgg", "org"),
    ("rog", "org"),
    ("prg", "org"),
];

/// The domains worth looking up, in order, for `domain` (lower-case ASCII)
/// when it has no mail route. Empty when no rule applies.
pub fn candidates(domain: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::with_capacity(3);
    let mut push = |candidate: &str| {
        if candidate != domain && !found.iter().any(|seen| seen == candidate) {
            found.push(candidate.to_owned());
        }
    };
    if let Some(parent) = registrable(domain) {
        push(parent);
    }
    if let Some(fixed) = tld_fixed(domain) {
        push(&fixed);
        if let Some(parent) = registrable(&fixed) {
            push(parent);
        }
    }
    found
}

/// The registrable domain of `domain`: its public suffix and one label
/// more (`example.co.uk` for `mail.example.co.uk`).
fn registrable(domain: &str) -> Option<&str> {
    psl::domain_str(domain)
}

/// `domain` with its top-level label replaced, if that label is a slip
/// and the whole public suffix: `example.com.co` is under `com.co`, a
/// suffix of its own, and is left alone.
fn tld_fixed(domain: &str) -> Option<String> {
    let (name, tld) = domain.rsplit_once('.')?;
    if psl::suffix_str(domain) != Some(tld) {
        return None;
    }
    TLD_SLIPS
        .iter()
        .find(|(slip, _)| *slip == tld)
        .map(|(_, fixed)| format!("{name}.{fixed}"))
}

/// Whether a route shows a domain that takes mail: MX records (not null)
/// naming a host with an address the SSRF guard lets a probe reach. A
/// domain with an address and no MX (an implicit MX, RFC 5321 §5.1) is
/// most often a web site, so it is not put to the user as their mail
/// domain.
pub fn takes_mail(route: &MailRoute, allow_private_targets: bool) -> bool {
    match route {
        MailRoute::Hosts {
            hosts,
            implicit: false,
        } => hosts
            .iter()
            .flat_map(|host| &host.addrs)
            .any(|ip| allow_private_targets || forbidden_target(*ip).is_none()),
        _ => false,
    }
}

/// The domain to suggest instead of `domain`, which has no mail route
/// (see the module's rules), or `None`.
pub async fn nearby_mail_domain(
    resolver: &MailResolver,
    domain: &str,
    allow_private_targets: bool,
) -> Option<String> {
    for candidate in candidates(domain) {
        match resolver.mail_route(&candidate).await {
            Ok(route) if takes_mail(&route, allow_private_targets) => return Some(candidate),
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(%err, "no suggestion: a lookup for it failed");
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::verify::dns::MailHost;

    #[test]
    fn a_subdomain_leads_to_its_registrable_domain() {
        assert_eq!(candidates("mail.example.com"), ["example.com"]);
        assert_eq!(candidates("a.b.example.co.uk"), ["example.co.uk"]);
        assert_eq!(candidates("mail.example.test"), ["example.test"]);
    }

    #[test]
    fn a_registrable_domain_with_a_usual_tld_has_nothing_to_look_up() {
        for domain in ["example.com", "example.co.uk", "example.test", "example.de"] {
            assert!(candidates(domain).is_empty(), "{domain}");
        }
    }

    #[test]
    fn tld_slips_lead_to_the_intended_tld() {
        for (typed, fixed) in [
            ("example.con", "example.com"),
            ("example.cmo", "example.com"),
            ("example.c0m", "example.com"),
            ("example.co", "example.com"),
            ("example.cm", "example.com"),
            ("example.om", "example.com"),
            ("example.nte", "example.net"),
            ("example.ne", "example.net"),
            ("example.ogr", "example.org"),
            ("example.prg", "example.org"),
        ] {
            assert_eq!(candidates(typed), [fixed], "{typed}");
        }
    }

    #[test]
    fn a_subdomain_with_a_slip_tries_its_parent_then_the_fix_then_the_fixed_parent() {
        assert_eq!(
            candidates("mail.example.con"),
            ["example.con", "mail.example.com", "example.com"]
        );
        assert_eq!(
            candidates("mail.example.co"),
            ["example.co", "mail.example.com", "example.com"]
        );
    }

    #[test]
    fn only_the_last_label_is_a_slip() {
        assert!(candidates("example.co.uk").is_empty());
        assert!(
            candidates("example.com.co").is_empty(),
            "com.co is a public suffix, not a slip of .com"
        );
        assert_eq!(candidates("mail.example.net.co"), ["example.net.co"]);
        assert!(candidates("con.example.com").contains(&"example.com".to_owned()));
        assert_eq!(candidates("con.example.com").len(), 1);
    }

    fn hosts(implicit: bool, ip: &str) -> MailRoute {
        MailRoute::Hosts {
            hosts: vec![MailHost {
                name: "mx.example.com".into(),
                preference: 10,
                addrs: vec![ip.parse::<IpAddr>().expect("an IP address")],
            }],
            implicit,
        }
    }

    #[test]
    fn only_mx_records_with_a_reachable_host_show_a_mail_domain() {
        assert!(takes_mail(&hosts(false, "192.0.1.25"), false));
        assert!(
            !takes_mail(&hosts(true, "192.0.1.25"), false),
            "an address without MX records is not enough"
        );
        assert!(
            !takes_mail(&hosts(false, "127.0.0.1"), false),
            "a host the guard refuses is no mail route"
        );
        assert!(takes_mail(&hosts(false, "127.0.0.1"), true));
        for route in [
            MailRoute::NullMx,
            MailRoute::NoMailServer,
            MailRoute::NoSuchDomain,
        ] {
            assert!(!takes_mail(&route, true), "{route:?}");
        }
    }
}
