//! `mailvet doctor` as an operator runs it, against a loopback world: a
//! DNS server whose zones stand in for the providers, the HELO name, its
//! reverse zone and a blocklist; scripted SMTP peers as the providers'
//! mail hosts. Nothing leaves 127.0.0.0/8.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::cli::mailvet;
use crate::common::dns::{TestDns, Zone, lying_nxdomain_server};
use crate::common::smtp_peer::{Script, SmtpPeer};

const HELO: &str = "probe.mailvet.test";
/// The egress address the tests give with `--public-ip`. Only its DNS
/// records are asked about (of the loopback DNS server), never the address
/// itself; it is outside 127.0.0.0/8 because the resolver answers the PTR
/// of every loopback address itself (`localhost`, RFC 6761).
const EGRESS: &str = "192.0.2.25";

/// The providers (`gmail.test`, `outlook.test`, both with their mail host
/// at 127.0.0.1), the HELO name at the egress address with the matching
/// PTR, and an empty blocklist `dnsbl.test`.
fn world() -> Vec<Zone> {
    world_with_ptr(HELO)
}

/// The world, with the egress address's PTR naming `ptr`.
fn world_with_ptr(ptr: &str) -> Vec<Zone> {
    vec![
        Zone::new("gmail.test")
            .mx("gmail.test", 5, "mx.gmail.test")
            .ip("mx.gmail.test", "127.0.0.1"),
        Zone::new("outlook.test")
            .mx("outlook.test", 10, "mx.outlook.test")
            .ip("mx.outlook.test", "127.0.0.1"),
        Zone::new("mailvet.test")
            .ip(HELO, EGRESS)
            .ip("whoami.mailvet.test", "127.0.0.1"),
        Zone::new("2.0.192.in-addr.arpa").ptr(EGRESS, ptr),
        Zone::new("dnsbl.test"),
    ]
}

/// A SQLite database that `mailvet migrate` has made.
struct Database {
    url: String,
    _dir: tempfile::TempDir,
}

async fn migrated_database() -> Database {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("doctor.db").display());
    let migrate_url = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        mailvet()
            .args(["migrate", "--database-url", &migrate_url])
            .output()
            .expect("run mailvet migrate")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "{}", stderr(&output));
    Database { url, _dir: dir }
}

/// The flags of a healthy run against `dns` and the peer's port.
fn healthy_args(dns: &str, database: &str, port: u16) -> Vec<String> {
    [
        "doctor",
        "--database-url",
        database,
        "--dns-servers",
        dns,
        "--dns-timeout",
        "1s",
        "--dns-canary",
        "gmail.test",
        "--doctor-domains",
        "gmail.test,outlook.test",
        "--smtp-port",
        &port.to_string(),
        "--smtp-timeout",
        "2s",
        "--helo-name",
        HELO,
        "--allow-private-targets",
        "--public-ip",
        EGRESS,
        "--dnsbl-zones",
        "dnsbl.test",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// The flags without `--public-ip` and its value.
fn without_public_ip(mut args: Vec<String>) -> Vec<String> {
    let at = args
        .iter()
        .position(|arg| arg == "--public-ip")
        .expect("--public-ip");
    args.drain(at..at + 2);
    args
}

/// Runs doctor with `args`, where each `(flag, value)` of `changes`
/// replaces that flag's value or is added.
async fn doctor(args: Vec<String>, changes: &[(&str, &str)]) -> Output {
    let mut args = args;
    for (flag, value) in changes {
        match args.iter().position(|arg| arg == flag) {
            Some(at) if !value.is_empty() => args[at + 1] = (*value).to_owned(),
            Some(_) => {}
            None if value.is_empty() => args.push((*flag).to_owned()),
            None => args.extend([(*flag).to_owned(), (*value).to_owned()]),
        }
    }
    tokio::task::spawn_blocking(move || mailvet().args(&args).output().expect("run mailvet doctor"))
        .await
        .expect("join")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The table's line for `check` (the first column), split at its runs of
/// two or more spaces: check, result, detail, what to do.
fn row(table: &str, check: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|line| line.starts_with(&format!("{check}  ")))
        .unwrap_or_else(|| panic!("no row {check} in:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_healthy_host_passes_every_check_and_the_peers_hear_only_ehlo_and_quit() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let database = migrated_database().await;
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &database.url, peer.port()),
        &[],
    )
    .await;
    let table = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{table}\n{}",
        stderr(&output)
    );
    assert!(table.starts_with("CHECK"), "{table}");
    for check in [
        "database",
        "resolver: gmail.test",
        "resolver: negative answer",
        "public address",
        "helo name",
        "reverse dns",
        "smtp gmail.test (direct)",
        "smtp outlook.test (direct)",
        "dnsbl dnsbl.test",
    ] {
        assert_eq!(row(&table, check)[1], "pass", "{check} in:\n{table}");
    }
    assert!(
        row(&table, "smtp gmail.test (direct)")[2].contains("mx.gmail.test [127.0.0.1]:")
            && row(&table, "smtp gmail.test (direct)")[2]
                .contains("220 mx.example.test ESMTP ready"),
        "{table}"
    );
    assert!(
        row(&table, "reverse dns")[2].contains(&format!("the PTR of {EGRESS} is `{HELO}`")),
        "{table}"
    );
    assert_eq!(
        table.lines().last(),
        Some("9 passed, 0 warnings, 0 failed"),
        "{table}"
    );

    // Greeting, EHLO and QUIT at each provider, and nothing else.
    let commands = peer.commands();
    let ehlo = format!("EHLO {HELO}");
    assert_eq!(
        commands.iter().filter(|c| **c == ehlo).count(),
        2,
        "{commands:?}"
    );
    assert_eq!(
        commands.iter().filter(|c| *c == "QUIT").count(),
        2,
        "{commands:?}"
    );
    assert_eq!(commands.len(), 4, "nothing but EHLO and QUIT: {commands:?}");
    assert_eq!(peer.sessions(), 2);
}

#[tokio::test]
async fn json_output_is_an_array_of_rows() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let database = migrated_database().await;
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &database.url, peer.port()),
        &[("--json", "")],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 9, "{rows:?}");
    assert_eq!(rows[0]["check"], "database");
    assert!(rows.iter().all(|row| row["result"] == "pass"), "{rows:?}");
    assert!(rows.iter().all(|row| row["advice"].is_null()), "{rows:?}");
}

#[tokio::test]
async fn a_server_that_refuses_at_the_greeting_fails_with_its_reply() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script {
        greeting: Some("554 5.7.1 mx.example.test: your address is on our blocklist".into()),
        ..Script::mailboxes(&[])
    })
    .await;
    let database = migrated_database().await;
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &database.url, peer.port()),
        &[],
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{table}");
    let smtp = row(&table, "smtp gmail.test (direct)");
    assert_eq!(smtp[1], "fail", "{table}");
    assert!(
        smtp[2].contains("greeting refused: 554")
            && smtp[2].contains("your address is on our blocklist"),
        "{table}"
    );
    assert!(smtp[3].contains("check PTR, HELO, blocklists"), "{table}");
    assert!(
        !peer.commands().iter().any(|c| c.starts_with("EHLO")),
        "no EHLO after a refusal: {:?}",
        peer.commands()
    );
    assert!(table.contains("7 passed, 0 warnings, 2 failed"), "{table}");
}

#[tokio::test]
async fn nothing_listening_on_the_smtp_port_points_at_a_blocked_port_25() {
    let dns = TestDns::start(world()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let database = migrated_database().await;
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &database.url, closed),
        &[],
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{table}");
    for check in ["smtp gmail.test (direct)", "smtp outlook.test (direct)"] {
        let smtp = row(&table, check);
        assert_eq!(smtp[1], "fail", "{table}");
        assert!(
            smtp[3].contains("outbound port 25 looks blocked here; use --proxy"),
            "{table}"
        );
    }
}

#[tokio::test]
async fn an_egress_address_on_a_blocklist_fails_naming_the_zone_and_its_reason() {
    let dns = TestDns::start(
        world()
            .into_iter()
            .chain([
                Zone::new("listing.test")
                    .ip("25.2.0.192.listing.test", "127.0.0.4")
                    .txt(
                        "25.2.0.192.listing.test",
                        "Listed: seen sending spam, see https://listing.test/lookup",
                    ),
                // Spamhaus's "query refused" answer: not a listing.
                Zone::new("refusing.test").ip("25.2.0.192.refusing.test", "127.255.255.254"),
            ])
            .collect(),
    )
    .await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let database = migrated_database().await;
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &database.url, peer.port()),
        &[("--dnsbl-zones", "dnsbl.test,listing.test,refusing.test")],
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{table}");
    assert_eq!(row(&table, "dnsbl dnsbl.test")[1], "pass", "{table}");
    let listed = row(&table, "dnsbl listing.test");
    assert_eq!(listed[1], "fail", "{table}");
    assert!(
        listed[2].contains("192.0.2.25 is listed on listing.test (127.0.0.4)")
            && listed[2].contains("seen sending spam"),
        "{table}"
    );
    let refused = row(&table, "dnsbl refusing.test");
    assert_eq!(refused[1], "warn", "{table}");
    assert!(refused[2].contains("refused the query"), "{table}");
    assert!(table.contains("9 passed, 1 warnings, 1 failed"), "{table}");
}

#[tokio::test]
async fn a_helo_name_without_a_dot_fails() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let database = migrated_database().await;
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &database.url, peer.port()),
        &[("--helo-name", "mailhost")],
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{table}");
    let helo = row(&table, "helo name");
    assert_eq!(helo[1], "fail", "{table}");
    assert!(helo[2].contains("`mailhost`: it has no dot"), "{table}");
    assert!(helo[3].contains("--helo-name"), "{table}");
    // The PTR says which name to use.
    let reverse = row(&table, "reverse dns");
    assert_eq!(reverse[1], "warn", "{table}");
    assert!(
        reverse[3].starts_with(&format!(
            "set --helo-name {HELO} (if it resolves to {EGRESS})"
        )),
        "{table}"
    );
}

#[tokio::test]
async fn a_reverse_dns_that_names_another_host_is_a_warning() {
    let dns = TestDns::start(world_with_ptr("static-2.isp.test")).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let database = migrated_database().await;
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &database.url, peer.port()),
        &[],
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "warnings only:\n{table}");
    let reverse = row(&table, "reverse dns");
    assert_eq!(reverse[1], "warn", "{table}");
    assert!(
        reverse[2].contains(&format!("names static-2.isp.test, not `{HELO}`")),
        "{table}"
    );
    assert!(
        reverse[3].contains("ask the hosting provider to set the PTR"),
        "{table}"
    );
}

#[tokio::test]
async fn a_resolver_that_answers_nxdomain_without_an_soa_fails() {
    let lying = lying_nxdomain_server().await;
    let database = migrated_database().await;
    let output = doctor(healthy_args(&lying.to_string(), &database.url, 25), &[]).await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{table}");
    assert_eq!(row(&table, "resolver: gmail.test")[1], "fail", "{table}");
    let negative = row(&table, "resolver: negative answer");
    assert_eq!(negative[1], "fail", "{table}");
    assert!(negative[2].contains("without the zone's SOA"), "{table}");
    assert!(
        negative[2].ends_with(&format!("(asked of {lying})")),
        "{table}"
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_without_showing_its_password() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("postgres://mailvet:hunter2@127.0.0.1:{closed}/mailvet");
    let output = doctor(
        healthy_args(&dns.addr.to_string(), &url, peer.port()),
        &[("--db-acquire-timeout", "2s")],
    )
    .await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{table}");
    let database = row(&table, "database");
    assert_eq!(database[1], "fail", "{table}");
    assert!(
        database[2].contains(&format!(
            "postgres at postgres://mailvet:redacted@127.0.0.1:{closed}/mailvet: unreachable"
        )),
        "{table}"
    );
    assert!(
        database[2].to_lowercase().contains("connection refused"),
        "{table}"
    );
    assert!(database[3].contains("start the database"), "{table}");
    assert!(!table.contains("hunter2"), "{table}");
    assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
}

#[tokio::test]
async fn a_sqlite_database_without_the_schema_is_a_warning_and_is_left_unmigrated() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("empty.db").display());
    let output = doctor(healthy_args(&dns.addr.to_string(), &url, peer.port()), &[]).await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{table}");
    let database = row(&table, "database");
    assert_eq!(database[1], "warn", "{table}");
    assert!(database[3].contains("mailvet migrate"), "{table}");
    // Doctor wrote nothing: a second run finds the schema missing still.
    let again = doctor(healthy_args(&dns.addr.to_string(), &url, peer.port()), &[]).await;
    assert_eq!(
        row(&stdout(&again), "database")[1],
        "warn",
        "{}",
        stdout(&again)
    );
}

/// An HTTP server on loopback that answers every request with `body` as
/// plain text, and counts the requests.
async fn whoami_server(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (port, requests)
}

#[tokio::test]
async fn the_public_address_can_come_from_the_operators_url_resolved_through_the_resolver() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let (port, requests) = whoami_server("192.0.2.25\n").await;
    let database = migrated_database().await;
    let args = without_public_ip(healthy_args(
        &dns.addr.to_string(),
        &database.url,
        peer.port(),
    ));
    let url = format!("http://whoami.mailvet.test:{port}/ip?token=s3cret-token");
    let output = doctor(args, &[("--public-ip-url", &url)]).await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{table}");
    let public = row(&table, "public address");
    assert_eq!(public[1], "pass", "{table}");
    assert_eq!(
        public[2], "192.0.2.25 (from --public-ip-url, whoami.mailvet.test)",
        "{table}"
    );
    assert_eq!(row(&table, "reverse dns")[1], "pass", "{table}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert!(!table.contains("s3cret-token"), "{table}");
    assert!(
        !stderr(&output).contains("s3cret-token"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_public_address_url_that_answers_something_else_is_a_warning() {
    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let (port, _) = whoami_server("<html>captive portal</html>").await;
    let database = migrated_database().await;
    let args = without_public_ip(healthy_args(
        &dns.addr.to_string(),
        &database.url,
        peer.port(),
    ));
    let url = format!("http://127.0.0.1:{port}/");
    let output = doctor(args, &[("--public-ip-url", &url)]).await;
    let table = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{table}");
    let public = row(&table, "public address");
    assert_eq!(public[1], "warn", "{table}");
    assert!(public[2].contains("not an IP address"), "{table}");
    assert!(
        !table.contains("reverse dns") && !table.contains("dnsbl "),
        "nothing to look up without the address:\n{table}"
    );
}

#[tokio::test]
async fn each_proxy_is_its_own_path_and_a_dead_one_fails_without_showing_its_password() {
    use crate::common::socks::{Socks5Server, closed_port};

    let dns = TestDns::start(world()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let database = migrated_database().await;
    let auth = Some(("doctor", "pr0xy-secret"));
    let socks = Socks5Server::start("127.0.0.12", auth);
    let dead_port = closed_port();
    let live_url = socks.url(auth);
    let dead_url = format!("socks5://doctor:pr0xy-secret@127.0.0.1:{dead_port}");

    let args = healthy_args(&dns.addr.to_string(), &database.url, peer.port());
    let live = doctor(args.clone(), &[("--proxy", &live_url)]).await;
    let table = stdout(&live);
    assert_eq!(live.status.code(), Some(0), "{table}\n{}", stderr(&live));
    let through = format!("smtp gmail.test (proxy 1, socks5://{})", socks.addr);
    assert_eq!(row(&table, &through)[1], "pass", "{table}");
    assert_eq!(
        row(&table, "smtp gmail.test (direct)")[1],
        "pass",
        "{table}"
    );
    // Two providers, each greeted directly and through the proxy.
    let clients = peer.clients();
    let proxied = clients
        .iter()
        .filter(|client| client.to_string() == "127.0.0.12")
        .count();
    assert_eq!(proxied, 2, "{clients:?}");

    let dead = doctor(args, &[("--proxy", &format!("{live_url},{dead_url}"))]).await;
    let table = stdout(&dead);
    assert_eq!(dead.status.code(), Some(1), "{table}");
    let failed = row(
        &table,
        &format!("smtp gmail.test (proxy 2, socks5://127.0.0.1:{dead_port})"),
    );
    assert_eq!(failed[1], "fail", "{table}");
    assert!(failed[2].contains("SOCKS5 egress failed"), "{table}");
    for output in [&live, &dead] {
        assert!(!stdout(output).contains("pr0xy-secret"));
        assert!(!stderr(output).contains("pr0xy-secret"));
    }
}
