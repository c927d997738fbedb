//! Where a domain's mail goes: MX records (RFC 5321 §5.1), null MX
//! (RFC 7505), the implicit MX of a domain without MX records, and the
//! addresses of each mail host.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as NetDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rand::seq::SliceRandom;

/// A host that accepts mail for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    /// The host name, lower case, without the trailing dot.
    pub name: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

/// What DNS says about a domain's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailRoute {
    /// Mail hosts in the order to try them: by preference, equal
    /// preferences shuffled. `implicit` when the domain has no MX records
    /// and its own address is used.
    Hosts {
        hosts: Vec<MailHost>,
        implicit: bool,
    },
    /// `MX 0 .`: the domain says it accepts no mail.
    NullMx,
    /// The domain exists but has neither MX records nor an address, or its
    /// MX hosts have no addresses.
    NoMailServer,
    /// NXDOMAIN.
    NoSuchDomain,
}

/// A lookup that failed without an answer (SERVFAIL, timeout, refused):
/// says nothing about the domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup of {name} failed: {detail}")]
pub struct DnsError {
    pub name: String,
    pub detail: String,
}

/// Settings of the resolver.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Name servers as `ip:port`; empty for the system's resolver.
    pub servers: Vec<SocketAddr>,
    /// Time allowed for one query to one server.
    pub timeout: Duration,
    /// Names that must resolve to mail hosts while the resolver can be
    /// trusted (see `resolver_watch.rs`); none turns the watch off.
    pub canaries: Vec<String>,
}

/// A caching resolver for mail routing.
#[derive(Clone)]
pub struct MailResolver {
    resolver: TokioResolver,
}

impl std::fmt::Debug for MailResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailResolver").finish_non_exhaustive()
    }
}

enum Lookup<T> {
    Found(T),
    NxDomain,
    NoRecords,
}

impl MailResolver {
    pub fn new(settings: &DnsSettings) -> Result<Self, DnsError> {
        Self::build(settings, 16_384)
    }

    /// A resolver that keeps no answers: every lookup asks the servers.
    pub fn uncached(settings: &DnsSettings) -> Result<Self, DnsError> {
        Self::build(settings, 0)
    }

    fn build(settings: &DnsSettings, cache_size: u64) -> Result<Self, DnsError> {
        let setup_error = |err: NetError| DnsError {
            name: "resolver".into(),
            detail: err.to_string(),
        };
        let provider = TokioRuntimeProvider::default();
        let mut builder = if settings.servers.is_empty() {
            TokioResolver::builder(provider).map_err(setup_error)?
        } else {
            let servers = settings
                .servers
                .iter()
                .map(|server| {
                    // UDP, with TCP for truncated answers, on the given port.
                    let mut config = NameServerConfig::udp_and_tcp(server.ip());
                    for connection in &mut config.connections {
                        connection.port = server.port();
                    }
                    config
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = settings.timeout;
        options.attempts = 2;
        options.cache_size = cache_size;
        let resolver = builder.build().map_err(setup_error)?;
        Ok(MailResolver { resolver })
    }

    /// The mail route of `domain` (ASCII, as `EmailAddress::domain` gives it).
    pub async fn mail_route(&self, domain: &str) -> Result<MailRoute, DnsError> {
        let started = Instant::now();
        let route = self.resolve_route(domain).await;
        let outcome = match &route {
            Ok(MailRoute::Hosts {
                implicit: false, ..
            }) => "mx",
            Ok(MailRoute::Hosts { implicit: true, .. }) => "implicit_mx",
            Ok(MailRoute::NullMx) => "null_mx",
            Ok(MailRoute::NoMailServer) => "no_mail_server",
            Ok(MailRoute::NoSuchDomain) => "nxdomain",
            Err(_) => "error",
        };
        metrics::histogram!("mailvet_dns_lookup_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        route
    }

    async fn resolve_route(&self, domain: &str) -> Result<MailRoute, DnsError> {
        let exchanges = match self.mx(domain).await? {
            Lookup::NxDomain => return Ok(MailRoute::NoSuchDomain),
            Lookup::NoRecords => return self.implicit_route(domain).await,
            Lookup::Found(exchanges) => exchanges,
        };
        let real: Vec<(u16, String)> = exchanges
            .iter()
            .filter(|(_, host)| !host.is_empty())
            .cloned()
            .collect();
        if real.is_empty() {
            // Only `MX 0 .` (RFC 7505), or nothing usable at all.
            return Ok(if exchanges.is_empty() {
                MailRoute::NoMailServer
            } else {
                MailRoute::NullMx
            });
        }
        let mut hosts = Vec::with_capacity(real.len());
        let mut failure = None;
        for (preference, name) in order_by_preference(real) {
            match self.addresses(&name).await {
                Ok(Lookup::Found(addrs)) => hosts.push(MailHost {
                    name,
                    preference,
                    addrs,
                }),
                Ok(Lookup::NxDomain | Lookup::NoRecords) => {}
                Err(err) => failure = Some(err),
            }
        }
        match (hosts.is_empty(), failure) {
            (false, _) => Ok(MailRoute::Hosts {
                hosts,
                implicit: false,
            }),
            // Some host could not be looked up: we cannot say there is none.
            (true, Some(err)) => Err(err),
            (true, None) => Ok(MailRoute::NoMailServer),
        }
    }

    async fn implicit_route(&self, domain: &str) -> Result<MailRoute, DnsError> {
        Ok(match self.addresses(domain).await? {
            Lookup::Found(addrs) => MailRoute::Hosts {
                hosts: vec![MailHost {
                    name: domain.to_owned(),
                    preference: 0,
                    addrs,
                }],
                implicit: true,
            },
            Lookup::NxDomain => MailRoute::NoSuchDomain,
            Lookup::NoRecords => MailRoute::NoMailServer,
        })
    }

    /// The addresses of `host` (A and AAAA), for connections that are not
    /// mail routing (outbound HTTP).
    pub async fn host_addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        match self.addresses(host).await? {
            Lookup::Found(addrs) => Ok(addrs),
            _ => Err(DnsError {
                name: host.to_owned(),
                detail: "no address".into(),
            }),
        }
    }

    /// The names the PTR records of `ip` give (its reverse DNS), lower case
    /// and without the trailing dot; empty when it has none.
    pub async fn reverse_names(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let mut name = Name::from(ip);
        name.set_fqdn(true);
        let shown = name.to_ascii();
        Ok(match self.records(name, &shown, RecordType::PTR).await? {
            Lookup::Found(records) => records
                .iter()
                .filter_map(|data| match data {
                    RData::PTR(ptr) => Some(host_name(&ptr.0)),
                    _ => None,
                })
                .collect(),
            Lookup::NxDomain | Lookup::NoRecords => Vec::new(),
        })
    }

    /// The addresses in the A records of `name`; `None` when the name does
    /// not exist or has no A record (a negative answer proven by the
    /// zone's SOA: a blocklist's "not listed").
    pub async fn ipv4_records(&self, name: &str) -> Result<Option<Vec<Ipv4Addr>>, DnsError> {
        Ok(
            match self.records(fqdn(name)?, name, RecordType::A).await? {
                Lookup::Found(records) => Some(
                    records
                        .iter()
                        .filter_map(|data| match data {
                            RData::A(a) => Some(a.0),
                            _ => None,
                        })
                        .collect(),
                ),
                Lookup::NxDomain | Lookup::NoRecords => None,
            },
        )
    }

    /// The text of the TXT records of `name` (the strings of a record
    /// joined); empty when it has none.
    pub async fn txt_records(&self, name: &str) -> Result<Vec<String>, DnsError> {
        Ok(
            match self.records(fqdn(name)?, name, RecordType::TXT).await? {
                Lookup::Found(records) => records
                    .iter()
                    .filter_map(|data| match data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part))
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect(),
                Lookup::NxDomain | Lookup::NoRecords => Vec::new(),
            },
        )
    }

    /// The records of one type at `name`, with negative answers judged as
    /// every lookup's are (see [`classify_error`]).
    async fn records(
        &self,
        name: Name,
        shown: &str,
        record_type: RecordType,
    ) -> Result<Lookup<Vec<RData>>, DnsError> {
        match self.resolver.lookup(name, record_type).await {
            Ok(lookup) => {
                let found: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|record| record.record_type() == record_type)
                    .map(|record| record.data.clone())
                    .collect();
                Ok(if found.is_empty() {
                    Lookup::NoRecords
                } else {
                    Lookup::Found(found)
                })
            }
            Err(err) => classify_error(shown, err),
        }
    }

    /// MX records as (preference, host); the host of a null MX is "".
    async fn mx(&self, domain: &str) -> Result<Lookup<Vec<(u16, String)>>, DnsError> {
        let name = fqdn(domain)?;
        match self.resolver.lookup(name, RecordType::MX).await {
            Ok(lookup) => {
                let exchanges: Vec<_> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some((mx.preference, host_name(&mx.exchange))),
                        _ => None,
                    })
                    .collect();
                Ok(if exchanges.is_empty() {
                    Lookup::NoRecords
                } else {
                    Lookup::Found(exchanges)
                })
            }
            Err(err) => classify_error(domain, err),
        }
    }

    async fn addresses(&self, host: &str) -> Result<Lookup<Vec<IpAddr>>, DnsError> {
        let name = fqdn(host)?;
        match self.resolver.lookup_ip(name).await {
            Ok(lookup) => {
                let mut addrs: Vec<IpAddr> = Vec::new();
                for addr in lookup.iter() {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                Ok(if addrs.is_empty() {
                    Lookup::NoRecords
                } else {
                    Lookup::Found(addrs)
                })
            }
            Err(err) => classify_error(host, err),
        }
    }
}

/// A negative answer proves absence only when it carries the zone's SOA
/// (RFC 2308): that is what an authoritative server sends. A resolver
/// that answers NXDOMAIN or "no records" without one — a captive portal, a
/// broken or lying network — proves nothing, and its answer is a failure.
fn classify_error<T>(name: &str, err: NetError) -> Result<Lookup<T>, DnsError> {
    let failure = |detail: String| DnsError {
        name: name.to_owned(),
        detail,
    };
    match &err {
        NetError::Dns(NetDnsError::NoRecordsFound(negative)) => {
            let nxdomain = negative.response_code == ResponseCode::NXDomain;
            if negative.soa.is_none() {
                return Err(failure(format!(
                    "{} without the zone's SOA record, which proves nothing (RFC 2308)",
                    if nxdomain {
                        "NXDOMAIN"
                    } else {
                        "an answer with no records"
                    }
                )));
            }
            Ok(if nxdomain {
                Lookup::NxDomain
            } else {
                Lookup::NoRecords
            })
        }
        _ => Err(failure(err.to_string())),
    }
}

/// A fully qualified name, so that no search domain is appended.
fn fqdn(domain: &str) -> Result<Name, DnsError> {
    let mut name = Name::from_ascii(domain).map_err(|err| DnsError {
        name: domain.to_owned(),
        detail: err.to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// A host name as text: lower case, no trailing dot ("" for the root).
fn host_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// Sorts by preference and shuffles hosts of equal preference, so that load
/// spreads as the domain intended (RFC 5321 §5.1).
fn order_by_preference(mut exchanges: Vec<(u16, String)>) -> Vec<(u16, String)> {
    exchanges.sort();
    exchanges.dedup_by(|a, b| a.1 == b.1);
    let mut rng = rand::rng();
    let mut start = 0;
    while start < exchanges.len() {
        let preference = exchanges[start].0;
        let end = exchanges[start..]
            .iter()
            .position(|(p, _)| *p != preference)
            .map_or(exchanges.len(), |offset| start + offset);
        exchanges[start..end].shuffle(&mut rng);
        start = end;
    }
    exchanges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ordered_by_preference_and_equal_ones_shuffled() {
        let exchanges = vec![
            (20, "c".to_owned()),
            (10, "a".to_owned()),
            (10, "b".to_owned()),
            (30, "d".to_owned()),
        ];
        let mut first_seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let ordered = order_by_preference(exchanges.clone());
            let prefs: Vec<u16> = ordered.iter().map(|(p, _)| *p).collect();
            assert_eq!(prefs, [10, 10, 20, 30]);
            first_seen.insert(ordered[0].1.clone());
        }
        assert_eq!(
            first_seen.len(),
            2,
            "both preference-10 hosts come first sometimes"
        );
    }
}
