//! An authoritative DNS server on loopback (hickory-server), with zones the
//! test writes and, if asked, names it fails for (SERVFAIL, silence); plus
//! servers that only ever fail.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

fn name(text: &str) -> Name {
    let mut name = Name::from_str(text).expect("a DNS name");
    name.set_fqdn(true);
    name
}

/// The records of one zone.
pub struct Zone {
    origin: Name,
    records: Vec<Record>,
}

impl Zone {
    pub fn new(origin: &str) -> Self {
        let origin = name(origin);
        let soa = SOA::new(
            name(&format!("ns.{origin}")),
            name(&format!("hostmaster.{origin}")),
            1,
            3600,
            600,
            86400,
            60,
        );
        let records = vec![Record::from_rdata(origin.clone(), 60, RData::SOA(soa))];
        Zone { origin, records }
    }

    fn add(mut self, owner: &str, data: RData) -> Self {
        self.records.push(Record::from_rdata(name(owner), 60, data));
        self
    }

    pub fn mx(self, owner: &str, preference: u16, exchange: &str) -> Self {
        let exchange = if exchange == "." {
            Name::root()
        } else {
            name(exchange)
        };
        self.add(owner, RData::MX(MX::new(preference, exchange)))
    }

    pub fn ip(self, owner: &str, ip: &str) -> Self {
        match ip.parse::<IpAddr>().expect("an IP address") {
            IpAddr::V4(v4) => self.add(owner, RData::A(A(v4))),
            IpAddr::V6(v6) => self.add(owner, RData::AAAA(AAAA(v6))),
        }
    }

    pub fn cname(self, owner: &str, target: &str) -> Self {
        self.add(owner, RData::CNAME(CNAME(name(target))))
    }

    pub fn txt(self, owner: &str, text: &str) -> Self {
        self.add(owner, RData::TXT(TXT::new(vec![text.to_owned()])))
    }

    /// The PTR record of `ip` (reverse DNS), naming `target`. The zone
    /// must be the reverse zone that holds it (`2.0.192.in-addr.arpa`);
    /// the resolver answers for 127.0.0.0/8 itself (`localhost`).
    pub fn ptr(self, ip: &str, target: &str) -> Self {
        let ip: IpAddr = ip.parse().expect("an IP address");
        let owner = Name::from(ip).to_ascii();
        self.add(&owner, RData::PTR(PTR(name(target))))
    }
}

/// `example.test` with its MX `mx.example.test` at 127.0.0.1: the zone
/// most tests use.
pub fn example_zone() -> Zone {
    Zone::new("example.test")
        .mx("example.test", 10, "mx.example.test")
        .ip("mx.example.test", "127.0.0.1")
}

/// A running DNS server; stops when dropped.
pub struct TestDns {
    pub addr: SocketAddr,
    _server: Server<Catalog>,
    _faults: Option<Faults>,
}

/// What the server does with every query for a name, instead of
/// answering it from its zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers SERVFAIL.
    ServFail,
    /// Never answers (a timeout).
    Silence,
}

/// The task in front of the zones' server that fails the chosen names;
/// ended when dropped.
struct Faults(tokio::task::JoinHandle<()>);

impl Drop for Faults {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TestDns {
    /// Serves the zones on 127.0.0.1, UDP and TCP on one port.
    pub async fn start(zones: Vec<Zone>) -> Self {
        let mut catalog = Catalog::new();
        for zone in zones {
            let mut handler = InMemoryZoneHandler::<
                hickory_resolver::net::runtime::TokioRuntimeProvider,
            >::empty(
                zone.origin.clone(), ZoneType::Primary, AxfrPolicy::Deny
            );
            for record in zone.records {
                assert!(
                    handler.upsert_mut(record, 1),
                    "record added to {}",
                    zone.origin
                );
            }
            catalog.upsert(LowerName::new(&zone.origin), vec![Arc::new(handler)]);
        }
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("address");
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        TestDns {
            addr,
            _server: server,
            _faults: None,
        }
    }

    /// Serves the zones like [`TestDns::start`], except that every query
    /// for one of the `faults`' names (of any type) meets that fault. Over
    /// UDP only: the other queries are relayed to the zones' server.
    pub async fn start_with_faults(zones: Vec<Zone>, faults: &[(&str, Fault)]) -> Self {
        let zones = Self::start(zones).await;
        let upstream = zones.addr;
        let faults: HashMap<String, Fault> = faults
            .iter()
            .map(|(name, fault)| (name.trim_end_matches('.').to_ascii_lowercase(), *fault))
            .collect();
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP"));
        let addr = front.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            while let Ok((len, peer)) = front.recv_from(&mut buffer).await {
                let query = buffer[..len].to_vec();
                let fault = question_name(&query).and_then(|name| faults.get(&name).copied());
                match fault {
                    Some(Fault::ServFail) => {
                        if let Some(reply) = bare_answer(&query, RCODE_SERVFAIL) {
                            let _ = front.send_to(&reply, peer).await;
                        }
                    }
                    Some(Fault::Silence) => {}
                    None => {
                        let front = front.clone();
                        tokio::spawn(async move {
                            if let Some(reply) = relay(&query, upstream).await {
                                let _ = front.send_to(&reply, peer).await;
                            }
                        });
                    }
                }
            }
        });
        TestDns {
            addr,
            _server: zones._server,
            _faults: Some(Faults(task)),
        }
    }
}

/// The name a query asks about, lower case, without the trailing dot.
fn question_name(query: &[u8]) -> Option<String> {
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            return Some(labels.join("."));
        }
        let label = query.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
}

/// A query sent to `upstream` over UDP, and its answer.
async fn relay(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.send_to(query, upstream).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
        .await
        .ok()?
        .ok()?;
    buffer.truncate(len);
    Some(buffer)
}

/// A UDP socket and a TCP listener on the same loopback port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let port = udp.local_addr().expect("address").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no free port for a DNS server");
}

/// A DNS server that answers every query with SERVFAIL.
pub async fn servfail_server() -> SocketAddr {
    bare_answer_server(RCODE_SERVFAIL).await
}

/// A resolver that lies: NXDOMAIN for every name, with no SOA in the
/// authority section (a captive portal, a broken network).
pub async fn lying_nxdomain_server() -> SocketAddr {
    bare_answer_server(RCODE_NXDOMAIN).await
}

/// A resolver that lies: "no records" (NOERROR, empty) for every query,
/// with no SOA.
pub async fn lying_nodata_server() -> SocketAddr {
    bare_answer_server(RCODE_NOERROR).await
}

const RCODE_NOERROR: u8 = 0;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;

/// A server that answers every query with this response code and nothing
/// else: no answer, no authority, no SOA.
async fn bare_answer_server(rcode: u8) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    let addr = socket.local_addr().expect("address");
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            if let Some(reply) = bare_answer(&buffer[..len], rcode) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

/// An answer to a query with its id and question, a response code, and no
/// records.
fn bare_answer(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: the name's labels, then type and class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    end += 1 + 4;
    let mut reply = query.get(..end)?.to_vec();
    reply[2] = 0x80 | (query[2] & 0x79); // QR, the query's opcode and RD
    reply[3] = 0x80 | rcode; // RA, the response code
    reply[4..6].copy_from_slice(&[0, 1]);
    reply[6..12].copy_from_slice(&[0; 6]);
    Some(reply)
}

/// A DNS server that never answers.
pub async fn silent_server() -> (SocketAddr, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    (socket.local_addr().expect("address"), socket)
}

/// A DNS server that answers every query with bytes that are not DNS (the
/// query's id, then noise), or with a header cut short.
pub async fn garbage_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    let addr = socket.local_addr().expect("address");
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        let mut toggle = false;
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            toggle = !toggle;
            let reply: Vec<u8> = if toggle || len < 2 {
                // A truncated header.
                buffer[..len.min(5)].to_vec()
            } else {
                let mut noise = buffer[..2].to_vec();
                noise.extend(std::iter::repeat_n(0xAB, 300));
                noise
            };
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    addr
}
