//! `kill -9` in the middle of a burst of suppression writes (API and bounce
//! intake) loses no write that was acknowledged with a 2xx, on SQLite and on
//! Postgres.
//!
//! In a test binary of its own: the burst lasts a fixed 700 ms and must
//! reach the mailvet child's CPU, which other tests of a shared binary (the
//! million-row `mailvet check` of `cli`) would take on a two-core machine.

#[path = "api/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::db::{PgTestDb, SqliteTestDb};
use mailvet::store::Store;
use serde_json::json;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Runs mailvet on `database_url`, writes from 8 clients, kills the process
/// with SIGKILL mid-burst, and returns the addresses whose writes were
/// acknowledged.
async fn burst_then_kill(database_url: &str) -> Vec<String> {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailvet"))
        .arg("serve")
        .env_remove("MAILVET_SECRET_KEYS")
        .env("DATABASE_URL", database_url)
        .env("MAILVET_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env("MAILVET_DNS_CANARY", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mailvet");
    let base = format!("http://127.0.0.1:{port}");
    let client = common::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
    {
        assert!(Instant::now() < deadline, "mailvet did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for writer in 0..8 {
        let client = client.clone();
        let base = base.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let email = format!("crash{writer}-{i}@example.test");
                let request = if i % 2 == 0 {
                    client.post(format!("{base}/suppressions")).json(&json!({"email": email}))
                } else {
                    client
                        .post(format!("{base}/bounces"))
                        .json(&json!({"email": email, "status": "5.1.1", "diagnostic": "550 5.1.1 User unknown"}))
                };
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        acknowledged.lock().expect("list").push(email);
                    }
                    Ok(response) => panic!("a write failed before the crash: {}", response.status()),
                    // The process is gone: this write was never acknowledged.
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill it mid-burst, once a fair number of writes are acknowledged
    // (however slow the machine), while more are in flight.
    let deadline = Instant::now() + Duration::from_secs(15);
    while acknowledged.lock().expect("list").len() < 60 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let _ = child.wait();
    for writer in writers {
        writer.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("list").clone();
    assert!(
        acknowledged.len() > 20,
        "only {} writes before the kill",
        acknowledged.len()
    );
    println!("{} writes acknowledged before SIGKILL", acknowledged.len());
    acknowledged
}

async fn assert_all_present(store: &dyn Store, acknowledged: &[String]) {
    let mut missing = Vec::new();
    for email in acknowledged {
        if store.suppression(email).await.expect("read").is_none() {
            missing.push(email.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_on_sqlite() {
    let db = SqliteTestDb::new().await;
    let acknowledged = burst_then_kill(&db.url).await;
    // Reopen the file as a new process would.
    let reopened = mailvet::store::SqliteStore::connect(&mailvet::store::StoreSettings {
        url: mailvet::secret::SecretString::from(db.url.clone()),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
    })
    .await
    .expect("reopen the database");
    assert_all_present(&reopened, &acknowledged).await;
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_on_postgres() {
    let db = PgTestDb::new().await;
    let acknowledged = burst_then_kill(&db.url).await;
    assert_all_present(db.store.as_ref(), &acknowledged).await;
}
