//! `GET /suppressions`, the change feed CRMs sync from: paging, filters,
//! tombstones, CSV, and no change lost when writers commit out of order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mailvet::secret::{ExposeSecret, SecretString};
use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, TestApp};
use crate::common::db::{pg_socket_addr, via};
use crate::common::proxy::TcpProxy;

async fn add(app: &TestApp, email: &str, reason: &str) {
    let reply = app
        .send(
            app.request(Method::POST, "/suppressions")
                .json(&json!({"email": email, "reason": reason})),
        )
        .await;
    assert!(
        reply.status == 201 || reply.status == 200,
        "{}",
        reply.text()
    );
}

async fn remove(app: &TestApp, email: &str) -> u16 {
    app.send(app.request(Method::DELETE, &format!("/suppressions/{email}")))
        .await
        .status
}

async fn page(app: &TestApp, query: &str) -> Value {
    let reply = app.get(&format!("/suppressions{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn the_feed_pages_through_changes_with_tombstones_and_a_cursor_to_keep() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        add(&app, &format!("user{i}@example.test"), "manual").await;
    }
    assert_eq!(remove(&app, "user1@example.test").await, 204);

    let first = page(&app, "?limit=3").await;
    let emails: Vec<&str> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        [
            "user0@example.test",
            "user2@example.test",
            "user3@example.test"
        ]
    );
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();

    let second = page(&app, &format!("?limit=3&cursor={cursor}")).await;
    let data = second["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["email"], "user4@example.test");
    assert_eq!(data[1]["email"], "user1@example.test");
    assert_eq!(data[1]["deleted"], true, "the removal comes as a tombstone");
    assert_eq!(second["has_more"], false);

    // Polling with the last cursor: nothing new, the same cursor back; then
    // a later change appears.
    let cursor = second["next_cursor"].as_str().expect("a cursor").to_owned();
    let idle = page(&app, &format!("?cursor={cursor}")).await;
    assert_eq!(idle["data"], json!([]));
    assert_eq!(idle["next_cursor"], cursor.as_str());
    add(&app, "late@example.test", "complaint").await;
    let later = page(&app, &format!("?cursor={cursor}")).await;
    assert_eq!(later["data"][0]["email"], "late@example.test");
    assert_eq!(later["data"][0]["reason"], "complaint");
}

#[tokio::test]
async fn the_feed_filters_by_reason_and_source() {
    let app = TestApp::spawn().await;
    add(&app, "a@example.test", "manual").await;
    add(&app, "b@example.test", "complaint").await;
    let complaints = page(&app, "?reason=complaint").await;
    assert_eq!(complaints["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(complaints["data"][0]["email"], "b@example.test");
    let from_api = page(&app, "?source=api").await;
    assert_eq!(from_api["data"].as_array().map(Vec::len), Some(2));
    let from_bounces = page(&app, "?source=bounce").await;
    assert_eq!(from_bounces["data"], json!([]));
}

#[tokio::test]
async fn bad_feed_parameters_are_400s_that_say_which() {
    let app = TestApp::spawn().await;
    for (query, mentions) in [
        ("?cursor=not-a-cursor", "cursor"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
        ("?reason=angry", "reason"),
        ("?source=carrier-pigeon", "source"),
    ] {
        let reply = app.get(&format!("/suppressions{query}")).await;
        reply.assert_error(400, "bad_request");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(mentions), "{query}: {message}");
    }
}

/// Now, as a query parameter: RFC 3339 with milliseconds.
fn now_param() -> String {
    chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace('+', "%2B")
}

fn emails(page: &Value) -> Vec<(&str, bool)> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|entry| {
            (
                entry["email"].as_str().unwrap_or_default(),
                entry["deleted"] == true,
            )
        })
        .collect()
}

async fn the_feed_filters_by_change_time(db: Db) {
    let app = TestApp::spawn_on(db).await;
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    add(&app, "early@example.test", "manual").await;
    pause().await;
    let t1 = now_param();
    pause().await;
    add(&app, "middle@example.test", "manual").await;
    assert_eq!(remove(&app, "early@example.test").await, 204);
    pause().await;
    let t2 = now_param();
    pause().await;
    add(&app, "late@example.test", "complaint").await;

    let since = page(&app, &format!("?since={t1}")).await;
    assert_eq!(
        emails(&since),
        [
            ("middle@example.test", false),
            ("early@example.test", true),
            ("late@example.test", false)
        ],
        "a removal is a change at the time it was made"
    );
    let span = page(&app, &format!("?since={t1}&until={t2}")).await;
    assert_eq!(
        emails(&span),
        [("middle@example.test", false), ("early@example.test", true)]
    );
    let before = page(&app, &format!("?until={t1}")).await;
    assert_eq!(emails(&before), Vec::<(&str, bool)>::new());
    let with_reason = page(&app, &format!("?since={t1}&reason=complaint")).await;
    assert_eq!(emails(&with_reason), [("late@example.test", false)]);

    // With a cursor, the span narrows what comes after it.
    let first = page(&app, &format!("?since={t1}&limit=1")).await;
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().expect("a cursor");
    let rest = page(&app, &format!("?since={t1}&until={t2}&cursor={cursor}")).await;
    assert_eq!(emails(&rest), [("early@example.test", true)]);

    for (query, says) in [
        ("?since=last-week", "`since` must be an RFC 3339 time"),
        ("?until=2026-11-28", "`until` must be an RFC 3339 time"),
        (
            "?since=2026-11-28T10:00:00Z&until=2026-11-28T09:00:00Z",
            "must be later than `since`",
        ),
    ] {
        let reply = app.get(&format!("/suppressions{query}")).await;
        reply.assert_error(400, "bad_request");
        let message = reply.json()["error"]["message"].to_string();
        assert!(message.contains(says), "{query}: {message}");
    }
}

#[tokio::test]
async fn the_feed_filters_by_change_time_on_sqlite() {
    the_feed_filters_by_change_time(Db::Sqlite).await;
}

#[tokio::test]
async fn the_feed_filters_by_change_time_on_postgres() {
    the_feed_filters_by_change_time(Db::Postgres).await;
}

#[tokio::test]
async fn the_feed_comes_as_csv_for_crms_that_import_files() {
    let app = TestApp::spawn().await;
    add(&app, "Alice@Example.test", "manual").await;
    add(&app, "bob@example.test", "complaint").await;
    remove(&app, "bob@example.test").await;
    let reply = app
        .send(
            app.request(Method::GET, "/suppressions?limit=1")
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(reply.header("has-more"), Some("true"));
    let text = reply.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "email,reason,source,smtp_code,enhanced_code,diagnostic,mx_host,created_at,updated_at,deleted"
    );
    assert!(
        lines[1].starts_with("Alice@example.test,manual,api,,,,,"),
        "{text}"
    );
    assert!(lines[1].ends_with(",false"));
    let cursor = reply
        .header("next-cursor")
        .expect("a Next-Cursor header")
        .to_owned();
    let rest = app
        .send(
            app.request(Method::GET, &format!("/suppressions?cursor={cursor}"))
                .header("accept", "text/csv"),
        )
        .await;
    let text = rest.text();
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|line| line.starts_with("bob@example.test,complaint,api")
                && line.ends_with(",true")),
        "{text}"
    );
    assert_eq!(rest.header("has-more"), Some("false"));
}

/// Writers add and remove addresses concurrently while a reader polls the
/// feed with its cursor; at the end the reader's picture equals the table.
async fn no_change_is_lost(app: &TestApp, writers: usize, changes_per_writer: usize) {
    let addresses: Vec<String> = (0..200).map(|i| format!("user{i}@example.test")).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let reader = {
        let url = app.url("/suppressions");
        let client = app.client.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: BTreeMap<String, bool> = BTreeMap::new();
            let mut cursor = String::new();
            let mut polls = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                loop {
                    let page: Value = client
                        .get(format!("{url}?limit=250&cursor={cursor}"))
                        .send()
                        .await
                        .expect("poll")
                        .json()
                        .await
                        .expect("a page");
                    polls += 1;
                    for entry in page["data"].as_array().expect("data") {
                        let email = entry["email"].as_str().expect("email").to_owned();
                        seen.insert(email, entry["deleted"].as_bool().expect("deleted"));
                    }
                    cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
                    if page["has_more"] == false {
                        break;
                    }
                }
                if finished {
                    return (seen, polls);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let mut tasks = Vec::new();
    for _ in 0..writers {
        let client = app.client.clone();
        let base = app.url("");
        let addresses = addresses.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..changes_per_writer {
                let (email, add) = {
                    let mut rng = rand::rng();
                    (
                        addresses[rng.random_range(0..addresses.len())].clone(),
                        rng.random_bool(0.6),
                    )
                };
                let response = if add {
                    let reason = if rand::random::<bool>() {
                        "manual"
                    } else {
                        "complaint"
                    };
                    client
                        .post(format!("{base}/suppressions"))
                        .json(&json!({"email": email, "reason": reason}))
                        .send()
                        .await
                } else {
                    client
                        .delete(format!("{base}/suppressions/{email}"))
                        .send()
                        .await
                };
                let status = response.expect("a write is answered").status().as_u16();
                assert!(
                    matches!(status, 200 | 201 | 204 | 404),
                    "write answered {status}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, polls) = reader.await.expect("reader");
    assert!(
        polls > 10,
        "the reader polled while writers wrote ({polls} polls)"
    );

    let reader_live: BTreeSet<String> = seen
        .into_iter()
        .filter(|(_, deleted)| !deleted)
        .map(|(email, _)| email)
        .collect();
    // The table itself, read from scratch.
    let mut table_live = BTreeSet::new();
    for email in &addresses {
        if app.get(&format!("/suppressions/{email}")).await.status == 200 {
            table_live.insert(email.clone());
        }
    }
    assert!(!table_live.is_empty());
    assert_eq!(reader_live, table_live, "the feed lost or invented changes");
}

#[tokio::test]
async fn a_polling_reader_loses_no_change_under_concurrent_writers_on_postgres() {
    // Every database round trip of the service gets a random delay, so
    // concurrent write transactions finish in random order.
    let proxy = TcpProxy::start(pg_socket_addr()).await;
    proxy.set_jitter(Duration::from_millis(3));
    let proxy_addr = proxy.addr;
    let app = TestApp::spawn_with(Db::Postgres, |settings| {
        settings.database.url =
            SecretString::from(via(settings.database.url.expose_secret(), proxy_addr));
        settings.database.max_connections = 16;
    })
    .await;
    no_change_is_lost(&app, 8, 500).await;
}

#[tokio::test]
async fn a_polling_reader_loses_no_change_under_concurrent_writers_on_sqlite() {
    let app = TestApp::spawn().await;
    no_change_is_lost(&app, 8, 500).await;
}
