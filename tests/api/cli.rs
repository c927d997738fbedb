//! The `mailvet` binary as an operator runs it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::db::{PgTestDb, pg_socket_addr, via};
use crate::common::proxy::TcpProxy;

const MAILVET: &str = env!("CARGO_BIN_EXE_mailvet");

/// The binary, with none of the operator's configuration.
pub(crate) fn mailvet() -> Command {
    let mut command = Command::new(MAILVET);
    // The operator's own configuration must not leak into these runs.
    for (name, _) in std::env::vars() {
        if name.starts_with("MAILVET_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "info");
    // No resolver canaries: the tests' DNS servers know only their own zones.
    command.env("MAILVET_DNS_CANARY", "none");
    command
}

async fn applied_migrations_sqlite(url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url)
        .await
        .expect("open the file");
    sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&mut conn)
        .await
        .expect("the migrations table exists")
}

#[tokio::test]
async fn migrate_twice_in_a_row_succeeds_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    for run in 1..=2 {
        let output = mailvet()
            .args(["migrate", "--database-url", &url])
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let migrations = std::fs::read_dir("migrations/sqlite")
        .expect("migrations")
        .count();
    assert_eq!(applied_migrations_sqlite(&url).await, migrations as i64);
}

#[tokio::test]
async fn migrate_twice_in_a_row_succeeds_on_postgres() {
    let db = PgTestDb::new().await;
    for run in 1..=2 {
        let output = mailvet()
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(db.store.pool())
        .await
        .expect("count");
    let migrations = std::fs::read_dir("migrations/postgres")
        .expect("migrations")
        .count();
    assert_eq!(applied, migrations as i64);
}

#[test]
fn help_never_shows_secret_values_from_the_environment() {
    let output = mailvet()
        .arg("--help")
        .env("DATABASE_URL", "postgres://mailvet:hunter2@db/mailvet")
        .env("MAILVET_SECRET_KEYS", "sk_live_topsecret")
        .env("MAILVET_PUBLIC_KEYS", "pk_live_notforhelp")
        .output()
        .expect("run");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--database-url"), "{help}");
    assert!(help.contains("MAILVET_SECRET_KEYS"), "{help}");
    for secret in ["hunter2", "sk_live_topsecret", "pk_live_notforhelp"] {
        assert!(!help.contains(secret), "{secret} shown in --help");
    }
}

#[test]
fn a_bad_database_url_is_reported_without_its_password() {
    let output = mailvet()
        .args([
            "migrate",
            "--database-url",
            "mysql://mailvet:hunter2@db/mailvet",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("unsupported database URL"), "{log}");
    assert!(log.contains("mysql://mailvet:redacted@db/mailvet"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let db = PgTestDb::new().await;
    let proxy = TcpProxy::start(pg_socket_addr()).await;
    let port = free_port();
    let mut child = mailvet()
        .arg("serve")
        .env("DATABASE_URL", via(&db.url, proxy.addr))
        .env("MAILVET_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mailvet");
    let client = common::client();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = client.get(format!("{base}/readyz")).send().await;
        if up.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "mailvet did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The database's answers are held back: these requests stay in flight.
    proxy.hold();
    let in_flight: Vec<_> = (0..3)
        .map(|_| tokio::spawn(client.get(format!("{base}/readyz")).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().expect("wait").is_none(),
        "mailvet waits for its in-flight requests"
    );
    proxy.release();

    for request in in_flight {
        let response = request
            .await
            .expect("join")
            .expect("answered despite SIGTERM");
        assert_eq!(response.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "mailvet did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn check_prints_the_verdicts_of_the_same_engine() {
    use crate::common::dns::{TestDns, example_zone};
    use crate::common::smtp_peer::{Script, SmtpPeer};

    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("check.db").display());
    let args = vec![
        "check".to_owned(),
        "--database-url".to_owned(),
        url,
        "--dns-servers".to_owned(),
        dns.addr.to_string(),
        "--smtp-port".to_owned(),
        peer.port().to_string(),
        "--allow-private-targets".to_owned(),
        "--helo-name".to_owned(),
        "verifier.example.test".to_owned(),
    ];
    let run = |extra: Vec<&'static str>| {
        let mut args = args.clone();
        args.extend(extra.into_iter().map(str::to_owned));
        tokio::task::spawn_blocking(move || {
            mailvet().args(&args).output().expect("run mailvet check")
        })
    };

    let output = run(vec![
        "alice@example.test",
        "bob@example.test",
        "not-an-address",
    ])
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("EMAIL"), "{table}");
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(lines[1])[..5],
        [
            "alice@example.test",
            "deliverable",
            "accepted",
            "250",
            "2.1.5"
        ],
        "{table}"
    );
    assert_eq!(
        words(lines[2])[..5],
        [
            "bob@example.test",
            "undeliverable",
            "mailbox_not_found",
            "550",
            "5.1.1"
        ],
        "{table}"
    );
    assert_eq!(
        words(lines[3])[..3],
        ["not-an-address", "undeliverable", "invalid_syntax"],
        "{table}"
    );

    let output = run(vec!["--json", "alice@example.test"])
        .await
        .expect("join");
    assert!(output.status.success());
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    let result: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON result");
    assert_eq!(result["status"], "deliverable");
    assert_eq!(
        result["cached"], true,
        "the same store as the service: the first run cached it"
    );
}

/// `mailvet check` pointed at a loopback DNS server and SMTP peer, with its
/// own SQLite file.
fn check_command(dns: std::net::SocketAddr, smtp_port: u16, database: &std::path::Path) -> Command {
    let mut command = mailvet();
    command.args([
        "check",
        "--database-url",
        &format!("sqlite://{}", database.display()),
        "--dns-servers",
        &dns.to_string(),
        "--smtp-port",
        &smtp_port.to_string(),
        "--allow-private-targets",
        "--helo-name",
        "verifier.example.test",
    ]);
    command
}

/// The second cell of the stderr line whose first cell is `name` (a row of
/// the summary table).
fn summary_count(stderr: &str, name: &str) -> Option<String> {
    stderr.lines().find_map(|line| {
        let mut cells = line.split_whitespace();
        (cells.next() == Some(name)).then(|| cells.next().unwrap_or_default().to_owned())
    })
}

/// The recipients the peer was asked about, sorted, without the catch-all
/// test's random `mailvet-…` address.
fn probed(peer: &common::smtp_peer::SmtpPeer) -> Vec<String> {
    let mut rcpts: Vec<String> = peer
        .rcpts()
        .into_iter()
        .filter(|rcpt| !rcpt.starts_with("mailvet-"))
        .map(|rcpt| rcpt.to_ascii_lowercase())
        .collect();
    rcpts.sort();
    rcpts
}

#[tokio::test]
async fn check_file_writes_a_csv_row_per_address_in_input_order_and_a_summary() {
    use crate::common::dns::{TestDns, example_zone};
    use crate::common::smtp_peer::{Script, SmtpPeer};

    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("list.csv");
    std::fs::write(
        &list,
        "name,email\n\
         Alice,alice@example.test\n\
         Bob,bob@example.test\n\
         Nobody,not-an-address\n\
         \n\
         Carol,\n\
         Alice again,Alice@Example.test\n",
    )
    .expect("write the list");
    let results = dir.path().join("results.csv");
    let mut command = check_command(dns.addr, peer.port(), &dir.path().join("check.db"));
    command
        .arg("--file")
        .arg(&list)
        .arg("--output")
        .arg(&results);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run mailvet check"))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "results go to --output only: {}",
        String::from_utf8_lossy(&output.stdout)
    );

    let mut reader = csv::Reader::from_path(&results).expect("the results file");
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, mailvet::verify::export::CSV_COLUMNS, "every field");
    let column = |name: &str| header.iter().position(|cell| cell == name).expect(name);
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|row| {
            let row = row.expect("a valid row");
            [
                "email",
                "status",
                "reason",
                "smtp_code",
                "smtp_enhanced_code",
            ]
            .iter()
            .map(|name| row[column(name)].to_owned())
            .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            [
                "alice@example.test",
                "deliverable",
                "accepted",
                "250",
                "2.1.5"
            ],
            [
                "bob@example.test",
                "undeliverable",
                "mailbox_not_found",
                "550",
                "5.1.1"
            ],
            ["not-an-address", "undeliverable", "invalid_syntax", "", ""],
            [
                "Alice@Example.test",
                "deliverable",
                "accepted",
                "250",
                "2.1.5"
            ],
        ]
        .map(|row| row.map(str::to_owned).to_vec())
    );
    assert_eq!(
        probed(&peer),
        ["alice@example.test", "bob@example.test"],
        "the duplicate is folded onto the first, not probed again"
    );

    for (name, count) in [
        ("deliverable", "2"),
        ("undeliverable", "2"),
        ("risky", "0"),
        ("unknown", "0"),
        ("accepted", "2"),
        ("mailbox_not_found", "1"),
        ("invalid_syntax", "1"),
        ("TOTAL", "4"),
    ] {
        assert_eq!(
            summary_count(&stderr, name).as_deref(),
            Some(count),
            "{name}: {stderr}"
        );
    }
    assert_eq!(summary_count(&stderr, "timeout"), None, "{stderr}");
    assert!(
        stderr.contains("skipped 1 row without an address"),
        "{stderr}"
    );
    assert!(stderr.contains("addresses/s)"), "{stderr}");
    assert!(
        stderr.contains(&format!("results written to {}", results.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn check_file_reads_standard_input_in_chunks_and_writes_json_lines() {
    use crate::common::dns::{TestDns, example_zone};
    use crate::common::smtp_peer::{Script, SmtpPeer};

    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // No header; more rows than one chunk (500), with the real addresses at
    // both ends and at the start of the second chunk.
    let mut inputs: Vec<String> = (0..1100).map(|row| format!("row-{row}")).collect();
    inputs[0] = "alice@example.test".into();
    inputs[1] = "bob@example.test".into();
    inputs[500] = "alice@example.test".into();
    inputs[1099] = "bob@example.test".into();
    let list = inputs.join("\n") + "\n";
    let mut command = check_command(dns.addr, peer.port(), &dir.path().join("check.db"));
    command
        .args(["--file", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = command.spawn().expect("start mailvet check");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(list.as_bytes()).expect("write the list");
        drop(stdin);
        child.wait_with_output().expect("run mailvet check")
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");

    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON result"))
        .collect();
    let emails: Vec<&str> = results
        .iter()
        .map(|result| result["email"].as_str().expect("an email"))
        .collect();
    assert_eq!(emails, inputs, "one result per row, in input order");
    let verdict = |row: usize| {
        let result = &results[row];
        (
            result["status"].as_str().unwrap_or_default(),
            result["reason"].as_str().unwrap_or_default(),
            result["cached"].as_bool().unwrap_or_default(),
        )
    };
    assert_eq!(verdict(0), ("deliverable", "accepted", false));
    assert_eq!(verdict(1), ("undeliverable", "mailbox_not_found", false));
    assert_eq!(verdict(2), ("undeliverable", "invalid_syntax", false));
    assert_eq!(
        verdict(500),
        ("deliverable", "accepted", true),
        "a later chunk answers from the store the first one filled"
    );
    assert_eq!(
        verdict(1099),
        ("undeliverable", "suppressed", false),
        "the first chunk's 550 put bob on the suppression list"
    );
    assert_eq!(
        probed(&peer),
        ["alice@example.test", "bob@example.test"],
        "each address asked once over the whole run"
    );
    assert_eq!(
        summary_count(&stderr, "TOTAL").as_deref(),
        Some("1100"),
        "{stderr}"
    );
    assert_eq!(
        summary_count(&stderr, "invalid_syntax").as_deref(),
        Some("1096"),
        "{stderr}"
    );
}

#[test]
fn check_file_reports_a_missing_file_and_touches_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("check.db");
    let missing = dir.path().join("missing.csv");
    let output = mailvet()
        .args(["check", "--dns-servers", "127.0.0.1:9", "--database-url"])
        .arg(format!("sqlite://{}", database.display()))
        .arg("--file")
        .arg(&missing)
        .output()
        .expect("run mailvet check");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot open {}", missing.display())),
        "{stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(!database.exists(), "the database is not opened for nothing");
}

#[test]
fn check_file_refuses_a_csv_without_an_address_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("check.db");
    let list = dir.path().join("people.csv");
    std::fs::write(&list, "name,phone\nAlice,555 0100\n").expect("write the list");
    let output = mailvet()
        .args(["check", "--dns-servers", "127.0.0.1:9", "--database-url"])
        .arg(format!("sqlite://{}", database.display()))
        .arg("--file")
        .arg(&list)
        .output()
        .expect("run mailvet check");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("people.csv has no usable column"),
        "{stderr}"
    );
    assert!(!database.exists());
}

#[test]
fn check_file_refuses_a_list_that_is_not_utf8_naming_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("check.db");
    let list = dir.path().join("latin1.csv");
    std::fs::write(&list, b"email\nbob@example.test\nren\xe9@example.test\n")
        .expect("write the list");
    let output = mailvet()
        .args(["check", "--dns-servers", "127.0.0.1:9", "--database-url"])
        .arg(format!("sqlite://{}", database.display()))
        .arg("--file")
        .arg(&list)
        .output()
        .expect("run mailvet check");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("line 3 of {} is not valid UTF-8", list.display())),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    assert!(!database.exists(), "refused before the database is opened");
}

/// The peak resident memory of a running process, in KiB (Linux).
#[cfg(target_os = "linux")]
fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn check_file_streams_a_million_rows_in_bounded_memory() {
    use std::io::{BufRead as _, Write as _};

    let dns = common::dns::TestDns::start(Vec::new()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("big.csv");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&list).expect("create"));
        writeln!(file, "email").expect("write");
        // Addresses without an @: answered locally, so the run measures the
        // reading and writing rather than the network.
        for row in 0..1_000_000 {
            writeln!(file, "user{row}.example.test").expect("write");
        }
    }
    let mut command = check_command(dns.addr, 25, &dir.path().join("check.db"));
    command
        .arg("--file")
        .arg(&list)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (rows, peak, status, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("start mailvet check");
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout");
        let counter = std::thread::spawn(move || {
            let mut rows = 0u64;
            let mut last = String::new();
            for line in std::io::BufReader::new(stdout).lines() {
                last = line.expect("a line");
                rows += 1;
            }
            (rows, last)
        });
        let mut peak = 0;
        while child.try_wait().expect("wait").is_none() {
            peak = peak.max(peak_memory_kib(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().expect("collect");
        let (rows, last) = counter.join().expect("count");
        (
            (rows, last),
            peak,
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("join");
    assert!(status.success(), "{stderr}");
    assert_eq!(rows.0, 1_000_001, "a header and a row per address");
    assert!(rows.1.starts_with("user999999.example.test,"), "{}", rows.1);
    assert_eq!(summary_count(&stderr, "TOTAL").as_deref(), Some("1000000"));
    assert!(peak > 0, "the memory was measured");
    // Holding the list (27 MB of text) and its results would take hundreds
    // of megabytes; streaming stays near the process's baseline.
    assert!(peak < 100 * 1024, "peak resident memory {peak} KiB");
}

#[tokio::test]
async fn check_fail_on_exits_3_when_an_address_has_a_named_status() {
    use crate::common::dns::{TestDns, example_zone};
    use crate::common::smtp_peer::{Script, SmtpPeer};

    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("check.db");
    let list = dir.path().join("list.csv");
    std::fs::write(&list, "email\nalice@example.test\nbob@example.test\n").expect("write");
    let run = |extra: Vec<String>| {
        let mut command = check_command(dns.addr, peer.port(), &database);
        command.args(extra);
        tokio::task::spawn_blocking(move || command.output().expect("run mailvet check"))
    };
    let args = |words: &[&str]| words.iter().map(|word| (*word).to_owned()).collect();

    // Addresses: one deliverable, one undeliverable.
    let output = run(args(&[
        "--fail-on",
        "undeliverable,risky",
        "alice@example.test",
        "bob@example.test",
    ]))
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("1 of 2 addresses are undeliverable (--fail-on)"),
        "{stderr}"
    );
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        table.contains("alice@example.test") && table.contains("bob@example.test"),
        "the results are printed in full: {table}"
    );

    // No result has a named status: success.
    let output = run(args(&[
        "--fail-on",
        "risky,unknown",
        "alice@example.test",
        "bob@example.test",
    ]))
    .await
    .expect("join");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A list, with the summary before the verdict of --fail-on.
    let list = list.display().to_string();
    let output = run(args(&["--file", &list, "--fail-on", "undeliverable"]))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let summary = stderr.find("TOTAL").expect("a summary");
    let failed = stderr.find("(--fail-on)").expect("the --fail-on line");
    assert!(summary < failed, "{stderr}");

    // A status that does not exist is a usage error, not a failed address.
    let output = run(args(&["--fail-on", "bouncy", "alice@example.test"]))
        .await
        .expect("join");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown status `bouncy`"));
}

#[test]
fn each_subcommand_help_lists_only_its_own_flags() {
    let help = |subcommand: &str| {
        let output = mailvet()
            .args([subcommand, "--help"])
            .output()
            .expect("run");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let check = help("check");
    for flag in [
        "--fail-on",
        "--file",
        "--dns-servers",
        "--helo-name",
        "Exit status:",
    ] {
        assert!(
            check.contains(flag),
            "{flag} missing from check --help:\n{check}"
        );
    }
    for flag in [
        "--listen",
        "--secret-keys",
        "--metrics-sample-interval",
        "--job-workers",
    ] {
        assert!(!check.contains(flag), "{flag} in check --help:\n{check}");
    }
    let migrate = help("migrate");
    assert!(migrate.contains("--database-url"), "{migrate}");
    for flag in ["--listen", "--dns-servers", "--helo-name", "--fail-on"] {
        assert!(
            !migrate.contains(flag),
            "{flag} in migrate --help:\n{migrate}"
        );
    }
    let serve = help("serve");
    for flag in [
        "--listen",
        "--secret-keys",
        "--metrics-sample-interval",
        "--helo-name",
    ] {
        assert!(
            serve.contains(flag),
            "{flag} missing from serve --help:\n{serve}"
        );
    }
    for flag in ["--fail-on", "--file", "--json"] {
        assert!(!serve.contains(flag), "{flag} in serve --help:\n{serve}");
    }
}

/// Starts `mailvet serve` with `env`, reads its log until it serves, stops
/// it, and returns the log.
async fn serve_log(env: &[(&str, &str)]) -> String {
    use std::io::BufRead as _;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = mailvet()
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("serve.db").display()),
        )
        .env("MAILVET_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailvet");
    let stderr = child.stderr.take().expect("stderr");
    // Reads until the service says it serves, or exits.
    let reader = tokio::task::spawn_blocking(move || {
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            log.push_str(&line);
            log.push('\n');
            if line.contains("mailvet is serving") {
                break;
            }
        }
        log
    });
    let log = tokio::time::timeout(Duration::from_secs(30), reader).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = log.expect("mailvet starts within 30 s").expect("join");
    assert!(
        log.contains("mailvet is serving"),
        "mailvet did not start:\n{log}"
    );
    log
}

#[tokio::test]
async fn serve_warns_about_a_bare_helo_name_missing_and_weak_keys() {
    let weak = "sk_aaaaaaaaaaaaaaaaaaa";
    let log = serve_log(&[
        ("MAILVET_HELO_NAME", "3f2a9c0d1e7b"),
        ("MAILVET_SECRET_KEYS", weak),
    ])
    .await;
    assert!(log.contains("WARN"), "{log}");
    assert!(
        log.contains("\"3f2a9c0d1e7b\" is not a fully qualified domain name"),
        "{log}"
    );
    assert!(log.contains("secret key 1 of 1 is weak"), "{log}");
    assert!(
        !log.contains(weak),
        "the key itself is never logged:\n{log}"
    );

    let log = serve_log(&[]).await;
    assert!(log.contains("no API keys are configured"), "{log}");

    let strong = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c";
    let log = serve_log(&[
        ("MAILVET_HELO_NAME", "verify.example.com"),
        ("MAILVET_SECRET_KEYS", strong),
    ])
    .await;
    assert!(
        !log.contains("WARN"),
        "no warning for good settings:\n{log}"
    );
}
