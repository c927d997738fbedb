//! An authoritative DNS server on loopback (hickory-server) that counts the
//! queries it answers. Every benchmark domain gets its own MX host name,
//! since mailvet's per-host session cap is keyed by that name; the MX host's
//! address is 127.0.0.1, or one of the domain's own ([`Dns::start_at`]) for
//! a farm whose mail servers each have an address, as the per-address cap
//! expects of real ones.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// The zone every benchmark domain lives in.
pub const ORIGIN: &str = "bench.test";

/// Records live an hour: a resolver that caches them may reuse them for
/// the whole run.
const TTL: u32 = 3600;

fn name(text: &str) -> Result<Name> {
    let mut name = Name::from_str(text).with_context(|| format!("DNS name {text}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// Queries answered, by record type.
type Tally = Arc<Mutex<BTreeMap<String, usize>>>;

/// The catalog, counting each query before answering it.
struct Counting {
    catalog: Catalog,
    queries: Arc<AtomicUsize>,
    by_type: Tally,
}

#[async_trait::async_trait]
impl RequestHandler for Counting {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::Relaxed);
        if let Ok(info) = request.request_info() {
            let kind = info.query.query_type().to_string();
            if let Ok(mut tally) = self.by_type.lock() {
                *tally.entry(kind).or_default() += 1;
            }
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// A running DNS server; stops when dropped.
pub struct Dns {
    pub addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    by_type: Tally,
    _server: Server<Counting>,
}

impl Dns {
    /// Serves `bench.test` with, for each `domain` (a label under it),
    /// `domain MX 10 mx.domain` and `mx.domain A 127.0.0.1`.
    pub async fn start<'a>(domains: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        Self::start_at(
            domains
                .into_iter()
                .map(|domain| (domain, Ipv4Addr::LOCALHOST)),
        )
        .await
    }

    /// Serves `bench.test` with, for each `(domain, address)`,
    /// `domain MX 10 mx.domain` and `mx.domain A address`.
    pub async fn start_at<'a>(
        domains: impl IntoIterator<Item = (&'a str, Ipv4Addr)>,
    ) -> Result<Self> {
        let origin = name(ORIGIN)?;
        let mut zone =
            InMemoryZoneHandler::<hickory_resolver::net::runtime::TokioRuntimeProvider>::empty(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
        let soa = SOA::new(
            name(&format!("ns.{ORIGIN}"))?,
            name(&format!("hostmaster.{ORIGIN}"))?,
            1,
            3600,
            600,
            86400,
            TTL,
        );
        let mut records = vec![Record::from_rdata(origin.clone(), TTL, RData::SOA(soa))];
        for (domain, address) in domains {
            let mx = name(&format!("mx.{domain}"))?;
            records.push(Record::from_rdata(
                name(domain)?,
                TTL,
                RData::MX(MX::new(10, mx.clone())),
            ));
            records.push(Record::from_rdata(mx, TTL, RData::A(A(address))));
        }
        for record in records {
            if !zone.upsert_mut(record, 1) {
                bail!("a record was refused by the zone");
            }
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let queries = Arc::new(AtomicUsize::new(0));
        let by_type = Tally::default();
        let (udp, tcp) = bind_pair().await?;
        let addr = udp.local_addr()?;
        let mut server = Server::new(Counting {
            catalog,
            queries: queries.clone(),
            by_type: by_type.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        Ok(Dns {
            addr,
            queries,
            by_type,
            _server: server,
        })
    }

    /// Queries answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    /// Queries answered so far by type, as `MX 500, A 500, AAAA 500`.
    pub fn queries_by_type(&self) -> String {
        let tally = self.by_type.lock().map(|t| t.clone()).unwrap_or_default();
        tally
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A UDP socket and a TCP listener on the same loopback port.
async fn bind_pair() -> Result<(UdpSocket, TcpListener)> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        let port = udp.local_addr()?.port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return Ok((udp, tcp));
        }
    }
    bail!("no free port for the DNS server")
}
