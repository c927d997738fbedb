//! Bounce patterns: many recipients at one provider refused with the same
//! reply, listed by `GET /stats` (`bounce_patterns`), counted in
//! `/metrics` and shown on the dashboard's overview — from bounces and from
//! the replies to verification probes, on both backends.

use std::sync::Arc;

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use mailvet::patterns::{Pattern, sighting};
use mailvet::store::Store;

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verify, verify_batch};
use crate::common::smtp_peer::{Script, SmtpPeer};

const SPAMHAUS: &str = "Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; \
                        https://www.spamhaus.org/query/ip/{ip}";

async fn json_bounce(app: &TestApp, email: &str, status: &str, diagnostic: &str) {
    let body = json!({"email": email, "status": status, "diagnostic": diagnostic});
    let reply = app
        .send(app.request(Method::POST, "/bounces").json(&body))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// A Postfix DSN for one recipient, refused by `remote_mta`.
async fn dsn_bounce(app: &TestApp, email: &str, remote_mta: &str, diagnostic: &str) {
    let message = format!(
        "From: MAILER-DAEMON@sender.example\r\n\
         To: news@sender.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         Your message could not be delivered.\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; out.sender.example\r\n\
         \r\n\
         Final-Recipient: rfc822; {email}\r\n\
         Action: failed\r\n\
         Status: 5.7.1\r\n\
         Remote-MTA: dns; {remote_mta}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --b1--\r\n"
    );
    let reply = app
        .send(
            app.request(Method::POST, "/bounces")
                .header("content-type", "message/rfc822")
                .body(message),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

async fn patterns(app: &TestApp) -> Vec<Value> {
    let reply = app.get("/stats").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["bounce_patterns"]
        .as_array()
        .cloned()
        .expect("a bounce_patterns list")
}

#[tokio::test]
async fn bounces_that_differ_only_in_addresses_and_ids_are_one_sender_side_pattern_counted_by_recipient()
 {
    for db in [Db::Sqlite, Db::Postgres] {
        let app = TestApp::spawn_on(db).await;
        for (n, user) in ["ann", "bob", "cat", "dan", "ann"].iter().enumerate() {
            let diagnostic = format!(
                "554 5.7.1 Service unavailable; Client host [203.0.113.{n}] blocked using \
                 zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.{n}"
            );
            json_bounce(
                &app,
                &format!("{user}@shop.example.org"),
                "5.7.1",
                &diagnostic,
            )
            .await;
        }

        let found = patterns(&app).await;
        assert_eq!(found.len(), 1, "{db:?}: {found:?}");
        let pattern = &found[0];
        assert_eq!(pattern["provider"], "example.org", "{pattern}");
        assert_eq!(
            pattern["pattern"],
            json!({"code": 554, "enhanced_code": "5.7.1", "text": SPAMHAUS}),
        );
        assert_eq!(pattern["count"], 4, "ann bounced twice: {pattern}");
        assert_eq!(pattern["sender_side"], true, "{pattern}");
        assert!(
            pattern["first_seen"].as_str() <= pattern["last_seen"].as_str(),
            "{pattern}"
        );
        // About the sender: nobody was suppressed.
        let feed = app.get("/suppressions").await.json();
        assert_eq!(feed["data"], json!([]), "{feed}");
    }
}

#[tokio::test]
async fn unknown_mailbox_bounces_are_a_pattern_about_the_recipients_listed_after_the_sender_side() {
    let app = TestApp::spawn_on(Db::Sqlite).await;
    for user in ["eve", "fay", "gus"] {
        let diagnostic = format!(
            "550 5.1.1 <{user}@example.net>: Recipient address rejected: User unknown in \
             virtual mailbox table"
        );
        json_bounce(&app, &format!("{user}@example.net"), "5.1.1", &diagnostic).await;
    }
    for user in ["hal", "ivy", "jon"] {
        let diagnostic = "550 5.7.1 Message rejected due to policy; queue id 9QrS34TuVwX";
        json_bounce(&app, &format!("{user}@example.net"), "5.7.1", diagnostic).await;
    }

    let found = patterns(&app).await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0]["sender_side"], true,
        "sender-side first: {found:?}"
    );
    assert_eq!(
        found[0]["pattern"]["text"],
        "Message rejected due to policy; queue id {id}"
    );
    assert_eq!(found[1]["sender_side"], false, "{found:?}");
    assert_eq!(found[1]["provider"], "example.net");
    assert_eq!(found[1]["count"], 3);
    assert_eq!(
        found[1]["pattern"],
        json!({
            "code": 550,
            "enhanced_code": "5.1.1",
            "text": "<{address}>: Recipient address rejected: User unknown in virtual mailbox table"
        })
    );
}

#[tokio::test]
async fn the_same_reply_at_different_providers_is_kept_apart_and_two_recipients_do_not_stand_out() {
    let app = TestApp::spawn_on(Db::Postgres).await;
    let diagnostic = "550 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using \
                      zen.spamhaus.org";
    // The refusing host names the provider, whatever the recipient's domain.
    for user in ["a", "b", "c"] {
        dsn_bounce(
            &app,
            &format!("{user}@customer-one.example"),
            "mx1.provider-a.example",
            diagnostic,
        )
        .await;
    }
    for user in ["d", "e", "f"] {
        dsn_bounce(
            &app,
            &format!("{user}@customer-two.example"),
            "mx7.provider-b.example",
            diagnostic,
        )
        .await;
    }
    for user in ["g", "h"] {
        dsn_bounce(
            &app,
            &format!("{user}@customer-three.example"),
            "mx.provider-c.example",
            diagnostic,
        )
        .await;
    }

    let found = patterns(&app).await;
    let mut providers: Vec<&str> = found
        .iter()
        .map(|pattern| pattern["provider"].as_str().unwrap_or_default())
        .collect();
    providers.sort_unstable();
    assert_eq!(
        providers,
        ["provider-a.example", "provider-b.example"],
        "{found:?}"
    );
    for pattern in &found {
        assert_eq!(pattern["count"], 3, "{pattern}");
        assert_eq!(pattern["sender_side"], true, "{pattern}");
        assert_eq!(
            pattern["pattern"]["text"],
            "Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org"
        );
    }
}

#[tokio::test]
async fn verification_rejections_by_the_smtp_peer_are_counted_as_patterns_and_in_metrics() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let blocking = SmtpPeer::start(Script::rcpt_reply(
        "550 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org",
    ))
    .await;
    for db in [Db::Sqlite, Db::Postgres] {
        let app = TestApp::spawn_with(db, probe_settings(dns.addr, blocking.port())).await;
        let emails: Vec<String> = (0..4).map(|n| format!("user{n}@example.test")).collect();
        let results = verify_batch(&app, &emails).await;
        assert!(
            results.iter().all(|result| result["reason"] == "blocked"),
            "{results:?}"
        );
        // Asked again: the same recipient is not counted twice.
        let again = app
            .send(
                app.request(Method::POST, "/verify")
                    .json(&json!({"email": "user0@example.test", "fresh": true})),
            )
            .await;
        assert_eq!(again.json()["reason"], "blocked");

        let found = patterns(&app).await;
        assert_eq!(found.len(), 1, "{db:?}: {found:?}");
        assert_eq!(found[0]["provider"], "example.test");
        assert_eq!(found[0]["count"], 4, "{:?}", found[0]);
        assert_eq!(found[0]["sender_side"], true);
        assert_eq!(
            found[0]["pattern"],
            json!({
                "code": 550,
                "enhanced_code": "5.7.1",
                "text": "Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org"
            })
        );

        let metrics = app.get("/metrics").await.text();
        let line = metrics
            .lines()
            .find(|line| {
                line.starts_with("mailvet_bounce_pattern_events_total{")
                    && line.contains("source=\"verify\"")
                    && line.contains("sender_side=\"true\"")
            })
            .unwrap_or_else(|| panic!("no pattern events in /metrics:\n{metrics}"));
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|value| value.parse().ok())
            .expect("a sample");
        assert!(value >= 5.0, "{line}");
    }

    // Unknown mailboxes: a pattern about the recipients.
    let unknown = SmtpPeer::start(Script::mailboxes(&[])).await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, unknown.port())).await;
    for user in ["kim", "lee", "max"] {
        let result = verify(&app, &format!("{user}@example.test")).await;
        assert_eq!(result["reason"], "mailbox_not_found");
    }
    let found = patterns(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["sender_side"], false);
    assert_eq!(found[0]["count"], 3);
    assert_eq!(found[0]["pattern"]["enhanced_code"], "5.1.1");
}

/// The store marks a pattern announced once per window, whichever replica
/// asks: the warning is logged once.
async fn a_pattern_is_announced_once_when_it_stands_out(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let pattern = Pattern::of(554, Some("5.7.1"), "blocked using zen.spamhaus.org");
    let key = pattern.key();
    let seen = |user: &str| {
        sighting(
            "example.org".into(),
            pattern.clone(),
            true,
            &format!("{user}@example.org"),
            now,
        )
    };
    store
        .record_sightings(&[seen("a"), seen("b"), seen("b")])
        .await
        .expect("recorded");
    let announced = store
        .announce_pattern("example.org", &key, since, 3, now)
        .await
        .expect("asked");
    assert_eq!(announced, None, "two recipients do not stand out");

    store
        .record_sightings(&[seen("c")])
        .await
        .expect("recorded");
    let announced = store
        .announce_pattern("example.org", &key, since, 3, now)
        .await
        .expect("asked")
        .expect("three recipients stand out");
    assert_eq!(announced.recipients, 3);
    assert!(announced.sender_side);
    let again = store
        .announce_pattern("example.org", &key, since, 3, now)
        .await
        .expect("asked");
    assert_eq!(again, None, "announced once");
    // A day later, still standing out: announced again.
    let later = now + Duration::hours(25);
    store
        .record_sightings(&[
            sighting("example.org".into(), pattern.clone(), true, "d@x", later),
            sighting("example.org".into(), pattern.clone(), true, "e@x", later),
            sighting("example.org".into(), pattern.clone(), true, "f@x", later),
        ])
        .await
        .expect("recorded");
    assert!(
        store
            .announce_pattern("example.org", &key, later - Duration::hours(24), 3, later)
            .await
            .expect("asked")
            .is_some()
    );

    // Old sightings are purged, and patterns left without any.
    let purged = store
        .purge_patterns(later - Duration::hours(1))
        .await
        .expect("purged");
    assert_eq!(purged, 3, "a, b and c");
    let left = store
        .standing_out_patterns(now - Duration::hours(48), 1, 10)
        .await
        .expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].recipients, 3, "d, e and f");
}

#[tokio::test]
async fn a_pattern_is_announced_once_when_it_stands_out_on_sqlite() {
    let db = crate::common::db::SqliteTestDb::new().await;
    a_pattern_is_announced_once_when_it_stands_out(db.store.clone()).await;
}

#[tokio::test]
async fn a_pattern_is_announced_once_when_it_stands_out_on_postgres() {
    let db = crate::common::db::PgTestDb::new().await;
    a_pattern_is_announced_once_when_it_stands_out(db.store.clone()).await;
}

#[tokio::test]
async fn the_dashboard_overview_shows_the_patterns_that_stand_out() {
    const SECRET: &str = "sk_patterns_test_0123456789";
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.secret_keys = vec![SECRET.into()];
    })
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let signed_in = client
        .post(app.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={SECRET}"))
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let overview = |cookie: String| {
        let client = client.clone();
        let url = app.url("/ui/");
        async move {
            let page = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("mailvet answers");
            assert_eq!(page.status(), 200);
            page.text().await.expect("a page")
        }
    };

    let page = overview(cookie.clone()).await;
    assert!(page.contains("Bounce patterns"), "{page}");
    assert!(page.contains("No pattern stands out."), "{page}");

    for user in ["ann", "bob", "cat"] {
        let diagnostic = format!(
            "550 5.7.1 Unfortunately, messages from [40.92.10.{}] weren't sent. Please contact \
             your Internet service provider since part of their network is on our block list \
             (S3150).",
            user.len()
        );
        let body = json!({"email": format!("{user}@outlook.example"), "status": "5.7.1", "diagnostic": diagnostic});
        let reply = app
            .send(
                app.request(Method::POST, "/bounces")
                    .bearer_auth(SECRET)
                    .json(&body),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let page = overview(cookie).await;
    assert!(!page.contains("No pattern stands out."), "{page}");
    let table = &page[page
        .find("id=\"bounce-patterns\"")
        .expect("the patterns table")..];
    assert!(table.contains("outlook.example"), "{table}");
    assert!(
        table.contains("Unfortunately, messages from [{ip}] weren&#39;t sent")
            || table.contains("Unfortunately, messages from [{ip}] weren't sent"),
        "{table}"
    );
    assert!(table.contains("the sender"), "{table}");
}

#[tokio::test]
async fn esp_webhook_bounces_are_grouped_too() {
    let app = TestApp::spawn_on(Db::Sqlite).await;
    let events: Vec<Value> = ["ann", "bob", "cat"]
        .iter()
        .enumerate()
        .map(|(n, user)| {
            json!({
                "email": format!("{user}@example.net"),
                "timestamp": 1_764_480_000 + n,
                "event": "bounce",
                "type": "blocked",
                "sg_event_id": format!("evt-{n}"),
                "reason": format!(
                    "550 5.7.1 [203.0.113.{n}] Messages from 203.0.113.{n} blocked due to \
                     DMARC policy; message id {n}ZkQ7x3rP{n}"
                ),
                "status": "5.7.1",
            })
        })
        .collect();
    let reply = app
        .send(
            app.request(Method::POST, "/bounces/sendgrid")
                .json(&Value::Array(events)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let found = patterns(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["provider"], "example.net");
    assert_eq!(found[0]["count"], 3);
    assert_eq!(found[0]["sender_side"], true);
    assert_eq!(
        found[0]["pattern"]["text"],
        "[{ip}] Messages from {ip} blocked due to DMARC policy; message id {id}"
    );
}
