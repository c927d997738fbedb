//! `DELETE /suppressions?source=&since=`: undoing a bad batch. A mail
//! server refuses every recipient for a while; the verifications suppress
//! them; the operator undoes exactly that batch, and the addresses verify
//! again once the server is fixed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use mailvet::secret::SecretString;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, Reply, TestApp};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verdict};
use crate::common::smtp_peer::{Script, SmtpPeer};

const SECRET: &str = "sk_test_undo_0123456789";
const PUBLIC: &str = "pk_test_undo";

/// A server that knows `alice`, `bob` and `carol`, or, while `broken`,
/// refuses every recipient as unknown.
fn flaky_server(broken: Arc<AtomicBool>) -> Script {
    Script {
        rcpt: Arc::new(move |address: &str| {
            let known = [
                "alice@example.test",
                "bob@example.test",
                "carol@example.test",
            ];
            if !broken.load(Ordering::SeqCst) && known.contains(&address) {
                "250 2.1.5 Ok".into()
            } else {
                format!("550 5.1.1 <{address}>: Recipient address rejected: User unknown")
            }
        }),
        ..Script::mailboxes(&[])
    }
}

struct Undo {
    app: TestApp,
}

impl Undo {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.app.request(method, path).bearer_auth(SECRET);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.app.send(request).await
    }

    async fn verify(&self, email: &str) -> Value {
        let reply = self
            .send(Method::POST, "/verify", Some(json!({"email": email})))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    async fn suppressed(&self, email: &str) -> bool {
        let reply = self
            .send(Method::GET, &format!("/suppressions/{email}"), None)
            .await;
        assert!(matches!(reply.status, 200 | 404), "{}", reply.text());
        reply.status == 200
    }

    async fn undo(&self, query: &str) -> Reply {
        self.send(Method::DELETE, &format!("/suppressions?{query}"), None)
            .await
    }

    async fn feed_after(&self, cursor: &str) -> Vec<(String, bool)> {
        let reply = self
            .send(Method::GET, &format!("/suppressions?cursor={cursor}"), None)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|entry| {
                (
                    entry["email"].as_str().unwrap_or_default().to_owned(),
                    entry["deleted"] == true,
                )
            })
            .collect()
    }

    async fn cursor(&self) -> String {
        let reply = self
            .send(Method::GET, "/suppressions?limit=1000", None)
            .await;
        reply.json()["next_cursor"]
            .as_str()
            .expect("a cursor")
            .to_owned()
    }
}

/// Now, as a query parameter: RFC 3339 with milliseconds.
fn now_param() -> String {
    Utc::now()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
        .replace('+', "%2B")
}

async fn undoing_a_bad_batch_removes_exactly_it(db: Db) {
    let dns = TestDns::start(vec![example_zone()]).await;
    let broken = Arc::new(AtomicBool::new(false));
    let peer = SmtpPeer::start(flaky_server(broken.clone())).await;
    let app = TestApp::spawn_with(db, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.keys.secret_keys = vec![SecretString::from(SECRET)];
        settings.keys.public_keys = vec![SecretString::from(PUBLIC)];
    })
    .await;
    let undo = Undo { app };

    // Before the incident: a mailbox that truly does not exist.
    let old = undo.verify("old@example.test").await;
    assert_eq!(verdict(&old), ("undeliverable", "mailbox_not_found"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = now_param();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The incident: the server refuses everyone.
    broken.store(true, Ordering::SeqCst);
    for email in [
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
    ] {
        let result = undo.verify(email).await;
        assert_eq!(verdict(&result), ("undeliverable", "mailbox_not_found"));
        assert!(undo.suppressed(email).await);
    }
    // Meanwhile, entries from other sources.
    let bounce = undo
        .send(
            Method::POST,
            "/bounces",
            Some(json!({"email": "dave@example.test", "status": "5.1.1", "diagnostic": "User unknown"})),
        )
        .await;
    assert_eq!(bounce.json()["recipients"][0]["suppressed"], true);
    let manual = undo
        .send(
            Method::POST,
            "/suppressions",
            Some(json!({"email": "erin@example.test"})),
        )
        .await;
    assert_eq!(manual.status, 201);
    broken.store(false, Ordering::SeqCst);
    // Asked again, each is answered from the list, and that answer is kept
    // in memory.
    let remembered = undo.verify("alice@example.test").await;
    assert_eq!(verdict(&remembered), ("undeliverable", "suppressed"));
    let cursor = undo.cursor().await;

    // Who may undo: secret keys only.
    let path = format!("/suppressions?source=verify&since={since}");
    let anonymous = undo.app.send(undo.app.request(Method::DELETE, &path)).await;
    anonymous.assert_error(401, "unauthorized");
    let public = undo
        .app
        .send(undo.app.request(Method::DELETE, &path).bearer_auth(PUBLIC))
        .await;
    public.assert_error(403, "forbidden");

    // A reason that matches none of them removes nothing.
    let none = undo
        .undo(&format!(
            "source=verify&since={since}&reason=no_such_domain"
        ))
        .await;
    assert_eq!(none.status, 200, "{}", none.text());
    assert_eq!(none.json(), json!({"removed": 0}));

    // As an operator types it: `verification` is taken for `verify`.
    let done = undo
        .undo(&format!("source=verification&since={since}"))
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json(), json!({"removed": 3}));

    for (email, still) in [
        ("old@example.test", true),
        ("alice@example.test", false),
        ("bob@example.test", false),
        ("carol@example.test", false),
        ("dave@example.test", true),
        ("erin@example.test", true),
    ] {
        assert_eq!(undo.suppressed(email).await, still, "{email}");
    }
    let mut tombstones = undo.feed_after(&cursor).await;
    tombstones.sort();
    assert_eq!(
        tombstones,
        [
            ("alice@example.test".to_owned(), true),
            ("bob@example.test".to_owned(), true),
            ("carol@example.test".to_owned(), true),
        ],
        "the feed reports each removal, and nothing else"
    );

    // The next verification looks again (neither the answer in memory nor
    // the cached verdict is used), and the fixed server says yes.
    let sessions = peer.sessions();
    let alice = undo.verify("alice@example.test").await;
    assert_eq!(verdict(&alice), ("deliverable", "accepted"), "{alice}");
    assert_eq!(alice["suppressed"], false);
    assert_eq!(alice["cached"], false);
    assert!(peer.sessions() > sessions, "probed again");
    let old = undo.verify("old@example.test").await;
    assert_eq!(verdict(&old), ("undeliverable", "suppressed"));

    // Undoing again finds nothing more.
    let again = undo.undo(&format!("source=verify&since={since}")).await;
    assert_eq!(again.json(), json!({"removed": 0}));
}

#[tokio::test]
async fn undoing_a_bad_batch_removes_exactly_it_on_sqlite() {
    undoing_a_bad_batch_removes_exactly_it(Db::Sqlite).await;
}

#[tokio::test]
async fn undoing_a_bad_batch_removes_exactly_it_on_postgres() {
    undoing_a_bad_batch_removes_exactly_it(Db::Postgres).await;
}

#[tokio::test]
async fn an_undo_stays_within_until() {
    let app = TestApp::spawn().await;
    let add = |email: &'static str| {
        app.send(
            app.request(Method::POST, "/suppressions")
                .json(&json!({ "email": email })),
        )
    };
    let since = now_param();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(add("first@example.test").await.status, 201);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let until = now_param();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(add("second@example.test").await.status, 201);

    let reply = app
        .send(app.request(
            Method::DELETE,
            &format!("/suppressions?source=api&since={since}&until={until}"),
        ))
        .await;
    assert_eq!(reply.json(), json!({"removed": 1}), "{}", reply.text());
    assert_eq!(
        app.get("/suppressions/first@example.test").await.status,
        404
    );
    assert_eq!(
        app.get("/suppressions/second@example.test").await.status,
        200
    );
}

#[tokio::test]
async fn an_undo_that_is_not_precise_is_refused_and_removes_nothing() {
    let app = TestApp::spawn().await;
    let added = app
        .send(
            app.request(Method::POST, "/suppressions")
                .json(&json!({"email": "kept@example.test"})),
        )
        .await;
    assert_eq!(added.status, 201);
    let since = "2020-01-01T00:00:00Z";
    for (query, says) in [
        ("source=api", "`since` is required"),
        (&format!("since={since}") as &str, "`source` is required"),
        (
            "source=api&since=yesterday",
            "`since` must be an RFC 3339 time",
        ),
        (
            "source=api&since=2020-01-01",
            "`since` must be an RFC 3339 time",
        ),
        (
            &format!("source=mailvet&since={since}"),
            "unknown suppression source `mailvet`",
        ),
        (
            &format!("source=api&since={since}&reason=bogus"),
            "unknown suppression reason `bogus`",
        ),
        (
            &format!("source=api&since={since}&until=2019-01-01T00:00:00Z"),
            "must be later than `since`",
        ),
        (
            &format!("source=api&since={since}&untill=2030-01-01T00:00:00Z"),
            "untill",
        ),
    ] {
        let reply = app
            .send(app.request(Method::DELETE, &format!("/suppressions?{query}")))
            .await;
        reply.assert_error(400, "bad_request");
        let message = reply.json()["error"]["message"].to_string();
        assert!(message.contains(says), "{query}: {message}");
    }
    assert_eq!(app.get("/suppressions/kept@example.test").await.status, 200);
}
