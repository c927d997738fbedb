//! Taking a job's list in: addresses arrive in the store byte for byte
//! (Postgres takes them with COPY), and an upload that fails halfway
//! leaves no row behind, however much of it was already written.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, Reply, TestApp};
use crate::common::dns::{TestDns, Zone};
use crate::common::probe::probe_settings;
use crate::common::smtp_peer::{Script, SmtpPeer};
use crate::jobs_api::{results_ndjson, upload_json, wait_finished};

/// Addresses that a careless encoding of rows would change: quotes,
/// backslashes (`\N` is NULL and `\.` the end of data in COPY's text
/// format), a tab and a line break inside, characters beyond ASCII, an
/// address that does not parse.
const AWKWARD: [&str; 14] = [
    r#""quoted\"local"@d0.test"#,
    r"back\slash@d0.test",
    r"\N",
    r"\N@d0.test",
    r"\.",
    "tab\there@d0.test",
    "line\nbreak@d0.test",
    "o'brien@d0.test",
    "comma,semi;colon@d0.test",
    "jöhn.dœ@bücher.test",
    "用户@d0.test",
    "emoji😀@d0.test",
    "not an address",
    "PGCOPY\n\u{ff}\r\n@d0.test",
];

async fn app(db: Db, dns: &TestDns, peer: &SmtpPeer) -> TestApp {
    let probe = probe_settings(dns.addr, peer.port());
    TestApp::spawn_with(db, move |settings| {
        probe(settings);
        settings.verify.probe_budget_per_domain = 10_000;
    })
    .await
}

fn d0() -> Vec<Zone> {
    vec![
        Zone::new("d0.test")
            .mx("d0.test", 10, "mx.d0.test")
            .ip("mx.d0.test", "127.0.0.1"),
    ]
}

/// The `email` of each result, in order, once the job has finished.
async fn finished_emails(app: &TestApp, reply: &Reply, expected: usize) -> (String, Vec<String>) {
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().expect("an id").to_owned();
    assert_eq!(reply.json()["total"], expected);
    let job = wait_finished(app, &id, std::time::Duration::from_secs(30)).await;
    assert_eq!(job["status"], "completed", "{job}");
    let emails = results_ndjson(app, &id)
        .await
        .iter()
        .map(|result: &Value| result["email"].as_str().expect("an email").to_owned())
        .collect();
    (id, emails)
}

async fn awkward_addresses_come_back_exactly_as_uploaded(db: Db) -> TestApp {
    let dns = TestDns::start(d0()).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app(db, &dns, &peer).await;

    let reply = upload_json(&app, &json!({ "emails": AWKWARD })).await;
    let (_, emails) = finished_emails(&app, &reply, AWKWARD.len()).await;
    assert_eq!(emails, AWKWARD, "JSON upload");

    // The same through CSV: quoted cells, doubled quotes, and a row whose
    // address cell is empty, which the reader skips.
    let mut csv = String::from("name,email\n");
    for (n, email) in AWKWARD.iter().enumerate() {
        csv.push_str(&format!("p{n},\"{}\"\n", email.replace('"', "\"\"")));
        if n == 3 {
            csv.push_str("nobody,\n");
        }
    }
    let reply = app
        .send(
            app.request(Method::POST, "/jobs")
                .header("content-type", "text/csv")
                .body(csv),
        )
        .await;
    let (_, emails) = finished_emails(&app, &reply, AWKWARD.len()).await;
    assert_eq!(emails, AWKWARD, "CSV upload");
    app
}

#[tokio::test]
async fn sqlite_awkward_addresses_come_back_exactly_as_uploaded() {
    awkward_addresses_come_back_exactly_as_uploaded(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_awkward_addresses_come_back_exactly_as_uploaded() {
    let app = awkward_addresses_come_back_exactly_as_uploaded(Db::Postgres).await;
    // The rows as stored: numbered in input order, grouped by the ASCII
    // domain, or by none when the address does not parse.
    let pool = sqlx::PgPool::connect(&app.database_url)
        .await
        .expect("connect");
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "select i.seq, i.email, i.domain from job_items i join jobs j on j.id = i.job_id \
         order by j.created_at, i.seq",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    pool.close().await;
    assert_eq!(rows.len(), 2 * AWKWARD.len());
    for (n, (seq, email, domain)) in rows.iter().enumerate() {
        let n = n % AWKWARD.len();
        assert_eq!((*seq, email.as_str()), (n as i64, AWKWARD[n]));
        let expected = mailvet::address::EmailAddress::parse(AWKWARD[n])
            .map(|address| address.domain().to_owned())
            .unwrap_or_default();
        assert_eq!(domain, &expected, "{email:?}");
    }
    assert!(
        rows.iter()
            .any(|(_, _, domain)| domain == "xn--bcher-kva.test")
    );
}

/// The rows of `jobs` and `job_items` in the app's Postgres database.
async fn postgres_rows(app: &TestApp) -> (i64, i64) {
    let pool = sqlx::PgPool::connect(&app.database_url)
        .await
        .expect("connect");
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "select count(*) from {table}"
            )))
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    let counts = (count("jobs").await, count("job_items").await);
    pool.close().await;
    counts
}

#[tokio::test]
async fn postgres_an_upload_that_fails_halfway_leaves_no_rows() {
    // The parser runs at most a write (20,000 addresses), its queue
    // (32,000) and a batch ahead of the store, so a limit reached after
    // 73,000 addresses comes once some rows have been written.
    let dns = TestDns::start(d0()).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let probe = probe_settings(dns.addr, peer.port());
    let app = TestApp::spawn_with(Db::Postgres, move |settings| {
        probe(settings);
        settings.jobs.workers = Some(0);
        settings.jobs.max_addresses = 80_000;
        settings.jobs.max_upload_bytes = 75_000 * 24;
    })
    .await;
    let upload = |body: String| {
        app.send(
            app.request(Method::POST, "/jobs")
                .header("content-type", "text/csv")
                .body(body),
        )
    };
    // 24 bytes a line: the byte limit comes at the 75,000th address.
    let wide: String = (0..100_000)
        .map(|n| format!("wide{n:07}.xxx@d0.test\n"))
        .collect();
    upload(wide).await.assert_error(413, "payload_too_large");
    assert_eq!(postgres_rows(&app).await, (0, 0), "over the byte limit");

    // 16 bytes a line: within the byte limit, over the address limit.
    let narrow =
        |count: u32| -> String { (0..count).map(|n| format!("u{n:06}@d0.test\n")).collect() };
    upload(narrow(85_000))
        .await
        .assert_error(413, "too_many_addresses");
    assert_eq!(postgres_rows(&app).await, (0, 0), "over the address limit");

    let reply = upload(narrow(60_000)).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json()["total"], 60_000);
    assert_eq!(postgres_rows(&app).await, (1, 60_000));
}

/// A job whose largest domain sorts last: with one worker claiming a few
/// addresses at a time, the mail server sees that domain's recipients
/// first, so a domain capped at a few sessions does not start last.
async fn the_largest_domain_is_verified_first(db: Db) {
    let zones: Vec<Zone> = ["a.test", "b.test", "zz.test"]
        .iter()
        .map(|domain| {
            Zone::new(domain)
                .mx(domain, 10, &format!("mx.{domain}"))
                .ip(&format!("mx.{domain}"), "127.0.0.1")
        })
        .collect();
    let dns = TestDns::start(zones).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let probe = probe_settings(dns.addr, peer.port());
    let app = TestApp::spawn_with(db, move |settings| {
        probe(settings);
        settings.verify.probe_budget_per_domain = 10_000;
        settings.jobs.workers = Some(1);
        settings.jobs.chunk_size = 20;
    })
    .await;
    let mut emails: Vec<String> = Vec::new();
    for n in 0..5 {
        emails.push(format!("a{n}@a.test"));
        emails.push(format!("b{n}@b.test"));
    }
    emails.extend((0..120).map(|n| format!("z{n}@zz.test")));
    let reply = upload_json(&app, &json!({ "emails": emails })).await;
    let (_, results) = finished_emails(&app, &reply, emails.len()).await;
    assert_eq!(results, emails, "results stay in input order");

    // The domain of each recipient the mail server saw, in order, with
    // repeats run together.
    let mut domains: Vec<String> = peer
        .rcpts()
        .iter()
        .map(|rcpt| rcpt.rsplit('@').next().unwrap_or_default().to_owned())
        .collect();
    domains.dedup();
    assert_eq!(
        domains.first().map(String::as_str),
        Some("zz.test"),
        "{domains:?}"
    );
}

#[tokio::test]
async fn sqlite_the_largest_domain_is_verified_first() {
    the_largest_domain_is_verified_first(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_largest_domain_is_verified_first() {
    the_largest_domain_is_verified_first(Db::Postgres).await;
}
