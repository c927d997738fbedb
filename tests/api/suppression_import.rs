//! `POST /suppressions` with a list: a CRM's import, as JSON or CSV, in one
//! transaction, all or nothing, idempotent, at most 10,000 entries.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, Reply, TestApp};

async fn import_json(app: &TestApp, entries: Value) -> Reply {
    app.send(
        app.request(Method::POST, "/suppressions")
            .json(&json!({ "suppressions": entries })),
    )
    .await
}

async fn import_csv(app: &TestApp, csv: impl Into<String>) -> Reply {
    app.send(
        app.request(Method::POST, "/suppressions")
            .header("content-type", "text/csv")
            .body(csv.into()),
    )
    .await
}

async fn entry(app: &TestApp, email: &str) -> Option<Value> {
    let reply = app.get(&format!("/suppressions/{email}")).await;
    (reply.status == 200).then(|| reply.json())
}

/// Every entry of the feed, tombstones included.
async fn feed(app: &TestApp) -> Vec<Value> {
    let reply = app.get("/suppressions?limit=1000").await;
    assert_eq!(reply.status, 200);
    reply.json()["data"].as_array().cloned().unwrap_or_default()
}

async fn a_json_import_adds_the_new_and_keeps_the_existing(db: Db) {
    let app = TestApp::spawn_on(db).await;
    let bounce = app
        .send(app.request(Method::POST, "/bounces").json(
            &json!({"email": "gone@example.test", "status": "5.1.1", "diagnostic": "User unknown"}),
        ))
        .await;
    assert_eq!(bounce.json()["recipients"][0]["suppressed"], true);
    let before = entry(&app, "gone@example.test").await.expect("suppressed");

    let list = json!([
        {"email": "amy@example.test", "reason": "complaint"},
        {"email": "GONE@example.test"},
        {"email": "ben@example.test", "diagnostic": "unsubscribed in 2019"},
        {"email": "amy@example.test", "reason": "manual"},
    ]);
    let reply = import_json(&app, list.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"added": 2, "existing": 2}));

    let amy = entry(&app, "amy@example.test").await.expect("imported");
    assert_eq!(
        amy["reason"], "complaint",
        "the first entry for an address counts"
    );
    assert_eq!(amy["source"], "api");
    assert_eq!(amy["evidence"]["kind"], "note");
    let ben = entry(&app, "ben@example.test").await.expect("imported");
    assert_eq!(ben["reason"], "manual");
    assert_eq!(ben["evidence"]["text"], "unsubscribed in 2019");
    assert_eq!(
        entry(&app, "gone@example.test").await,
        Some(before),
        "an entry on the list keeps its reason and evidence"
    );

    // Importing again adds nothing and changes nothing in the feed.
    let feed_before = feed(&app).await;
    let again = import_json(&app, list).await;
    assert_eq!(again.json(), json!({"added": 0, "existing": 4}));
    assert_eq!(feed(&app).await, feed_before);
}

#[tokio::test]
async fn a_json_import_adds_the_new_and_keeps_the_existing_on_sqlite() {
    a_json_import_adds_the_new_and_keeps_the_existing(Db::Sqlite).await;
}

#[tokio::test]
async fn a_json_import_adds_the_new_and_keeps_the_existing_on_postgres() {
    a_json_import_adds_the_new_and_keeps_the_existing(Db::Postgres).await;
}

#[tokio::test]
async fn a_csv_import_reads_email_and_an_optional_reason() {
    let app = TestApp::spawn().await;
    let with_header = "\u{feff}email,reason\r\ncara@example.test,complaint\r\n\r\n dora@example.test , \r\neve@example.test,hard_bounce\r\n";
    let reply = import_csv(&app, with_header).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"added": 3, "existing": 0}));
    let reasons: Vec<(String, String)> = feed(&app)
        .await
        .iter()
        .map(|entry| {
            (
                entry["email"].as_str().unwrap_or_default().to_owned(),
                entry["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("cara@example.test".into(), "complaint".into()),
            ("dora@example.test".into(), "manual".into()),
            ("eve@example.test".into(), "hard_bounce".into()),
        ]
    );

    // No header: the address first, the reason second when there is one.
    let bare = import_csv(&app, "fay@example.test\ncara@example.test,manual\n").await;
    assert_eq!(bare.json(), json!({"added": 1, "existing": 1}));
    assert_eq!(
        entry(&app, "cara@example.test").await.expect("kept")["reason"],
        "complaint"
    );
}

#[tokio::test]
async fn one_invalid_entry_refuses_the_whole_import_and_names_it() {
    let app = TestApp::spawn().await;
    let json_cases = [
        (
            json!([{"email": "ok1@example.test"}, {"email": "ok2@example.test"}, {"email": "not an address"}]),
            "entry 3 (`suppressions[2]`)",
        ),
        (
            json!([{"email": "ok1@example.test"}, {"email": "ok2@example.test", "reason": "bored"}]),
            "`suppressions[1]`",
        ),
        (
            json!([{"email": "ok1@example.test", "emial": "typo@example.test"}]),
            "`suppressions[0]`",
        ),
        (json!([]), "no entries"),
    ];
    for (list, names) in json_cases {
        let reply = import_json(&app, list.clone()).await;
        reply.assert_error(422, "invalid_request");
        let message = reply.json()["error"]["message"].to_string();
        assert!(message.contains(names), "{list}: {message}");
    }
    let csv_cases = [
        (
            "email,reason\nok1@example.test,manual\nok2@example.test\nbroken@\n",
            "row 4",
        ),
        ("ok1@example.test\nok2@example.test,sad\n", "row 2"),
        ("ok1@example.test,manual,extra\n", "row 1"),
        ("email,name\nok1@example.test,Ok\n", "row 1"),
        ("email\n\n", "no entries"),
    ];
    for (csv, names) in csv_cases {
        let reply = import_csv(&app, csv).await;
        reply.assert_error(422, "invalid_request");
        let message = reply.json()["error"]["message"].to_string();
        assert!(message.contains(names), "{csv:?}: {message}");
    }
    assert!(
        feed(&app).await.is_empty(),
        "nothing of a refused import is added"
    );
    assert!(entry(&app, "ok1@example.test").await.is_none());

    // A body that is neither JSON nor CSV.
    app.send(
        app.request(Method::POST, "/suppressions")
            .header("content-type", "text/plain")
            .body("ok1@example.test"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
}

async fn an_import_takes_at_most_ten_thousand_entries(db: Db) {
    let app = TestApp::spawn_on(db).await;
    let rows = |count: usize| -> String {
        (0..count)
            .map(|n| format!("user{n}@bulk.example.test\n"))
            .collect()
    };
    let too_many = import_csv(&app, rows(10_001)).await;
    too_many.assert_error(422, "invalid_request");
    assert!(too_many.text().contains("10000"), "{}", too_many.text());
    let too_many_json: Vec<Value> = (0..10_001)
        .map(|n| json!({"email": format!("user{n}@bulk.example.test")}))
        .collect();
    import_json(&app, Value::Array(too_many_json))
        .await
        .assert_error(422, "invalid_request");
    assert!(feed(&app).await.is_empty());

    let full = import_csv(&app, rows(10_000)).await;
    assert_eq!(full.status, 200, "{}", full.text());
    assert_eq!(full.json(), json!({"added": 10_000, "existing": 0}));
    assert!(entry(&app, "user9999@bulk.example.test").await.is_some());
    let again = import_csv(&app, rows(10_000)).await;
    assert_eq!(again.json(), json!({"added": 0, "existing": 10_000}));
}

#[tokio::test]
async fn an_import_takes_at_most_ten_thousand_entries_on_sqlite() {
    an_import_takes_at_most_ten_thousand_entries(Db::Sqlite).await;
}

#[tokio::test]
async fn an_import_takes_at_most_ten_thousand_entries_on_postgres() {
    an_import_takes_at_most_ten_thousand_entries(Db::Postgres).await;
}
