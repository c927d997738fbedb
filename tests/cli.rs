//! The `mailvet` binary as an operator runs it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::db::{PgTestDb, pg_socket_addr, via};
use common::proxy::TcpProxy;

const MAILVET: &str = env!("CARGO_BIN_EXE_mailvet");

fn mailvet() -> Command {
    let mut command = Command::new(MAILVET);
    // The operator's own configuration must not leak into these runs.
    for (name, _) in std::env::vars() {
        if name.starts_with("MAILVET_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "info");
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
    use common::dns::{TestDns, example_zone};
    use common::smtp_peer::{Script, SmtpPeer};

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
