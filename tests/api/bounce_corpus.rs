//! 629 real bounces (the Sisimai corpus) through `POST /bounces`: none may
//! fail or panic, and every DSN must yield its recipients and status codes.
//! Run with `--nocapture` to see the counts:
//! `cargo test --test api bounce_corpus:: -- --nocapture`

use std::collections::BTreeMap;

use reqwest::Method;

use crate::common::app::TestApp;

const CORPUS: &str = "tests/fixtures/bounces/sisimai/maildir";

/// Whether a message carries an RFC 3464 delivery-status part with
/// per-recipient fields, judged from its bytes independently of the parser
/// under test.
fn has_delivery_status_part(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    let has_part = text.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("content-type:")
            && (line.contains("message/delivery-status")
                || line.contains("message/global-delivery-status"))
    });
    has_part
        && text.lines().any(|line| {
            (line.starts_with("final-recipient:") || line.starts_with("original-recipient:"))
                && line.contains('@')
        })
}

/// Whether the DSN states a status code at all (some leave `Status:` empty).
fn states_a_status(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    text.lines().any(|line| {
        line.strip_prefix("status:")
            .map(str::trim_start)
            .is_some_and(|value| value.starts_with(['2', '4', '5']))
    })
}

#[tokio::test]
async fn every_real_bounce_is_read_and_every_dsn_yields_recipients_with_status_codes() {
    let app = TestApp::spawn().await;
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .expect("the corpus is in the repository")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 629);

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let raw = std::fs::read(path).expect("read a message");
        let reply = app
            .send(
                app.request(Method::POST, "/bounces")
                    .header("content-type", "message/rfc822")
                    .body(raw.clone()),
            )
            .await;
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        if reply.status != 200 {
            problems.push(format!("{name}: {} {}", reply.status, reply.text()));
            continue;
        }
        *counts.entry("messages").or_default() += 1;
        let recipients = reply.json()["recipients"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let is_dsn = has_delivery_status_part(&raw);
        if is_dsn {
            *counts.entry("messages with a DSN part").or_default() += 1;
            if recipients.is_empty() {
                problems.push(format!("{name}: a DSN with no recipient found"));
            }
            for recipient in &recipients {
                // A status code: the DSN's Status, or the SMTP reply code of
                // its Diagnostic-Code when it gives no Status.
                if recipient["status"].is_null()
                    && recipient["smtp_code"].is_null()
                    && states_a_status(&raw)
                {
                    problems.push(format!(
                        "{name}: DSN recipient {} without a status code",
                        recipient["email"]
                    ));
                }
            }
        }
        if !recipients.is_empty() {
            *counts.entry("messages with recipients found").or_default() += 1;
        }
        for recipient in &recipients {
            *counts.entry("recipients found").or_default() += 1;
            let kind = recipient["kind"].as_str().unwrap_or("?");
            let key = match kind {
                "hard" => "recipients classified hard",
                "soft" => "recipients classified soft",
                "complaint" => "recipients classified complaint",
                _ => "recipients classified none (undetermined)",
            };
            *counts.entry(key).or_default() += 1;
            let reason = recipient["reason"].as_str().unwrap_or("none");
            *by_reason.entry(format!("{kind} / {reason}")).or_default() += 1;
            if recipient["suppressed"] == true {
                *counts.entry("recipients suppressed").or_default() += 1;
            }
        }
    }
    println!("bounce corpus ({CORPUS}):");
    for (what, count) in &counts {
        println!("  {what}: {count}");
    }
    println!("by kind / reason:");
    for (what, count) in &by_reason {
        println!("  {what}: {count}");
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(app.get("/healthz").await.status, 200);
}
