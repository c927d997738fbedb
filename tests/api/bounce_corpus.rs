//! 629 real bounces (the Sisimai corpus) through `POST /bounces`, compared
//! recipient by recipient with an independent reading of the same messages:
//! `tests/fixtures/bounces/reference.json`, written by Sisimai 4.25.15
//! (`tests/fixtures/bounces/reference.pl`). Every DSN must also yield its
//! recipients with a status code. The figures:
//! `cargo test --test api bounce_corpus -- --nocapture`

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;

use crate::common::app::TestApp;

const CORPUS: &str = "tests/fixtures/bounces/sisimai/maildir";
const REFERENCE: &str = "tests/fixtures/bounces/reference.json";

/// What the reference's reason says about the recipient's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    /// The address cannot receive mail: it must be suppressed.
    Permanent,
    /// A failure that says nothing against the mailbox: it must not be.
    Transient,
    /// Neither, or the reference cannot tell.
    Other,
}

/// Sisimai's reasons (libsisimai.org/en/reason), sorted by what they say
/// about the mailbox.
///
/// - Permanent: the mailbox or its domain is gone or refuses all mail —
///   `userunknown`, `hostunknown` (the domain does not exist), `hasmoved`
///   (5.1.6), `suspend` (a disabled or suspended account), `notaccept`
///   (a null MX or a host that accepts no mail).
/// - Transient: the failure is about our message or our sending, or is
///   temporary — a full mailbox (`mailboxfull`), size and rate limits
///   (`exceedlimit`, `mesgtoobig`, `toomanyconn`, `speeding`), delivery
///   time expired (`expired`), content and spam (`contenterror`,
///   `spamdetected`, `virusdetected`), policy (`policyviolation`),
///   blocklists and authentication (`blocked`, `securityerror`,
///   `norelaying`, and `rejected`: our envelope sender refused), network
///   errors (`networkerror`), a full remote disk (`systemfull`).
/// - Other: reasons that are neither, or that the reference uses for
///   both kinds. `filtered` is Sisimai's name for a refusal after `DATA`
///   or by the recipient's own filter, and most of the corpus's `filtered`
///   messages say "user unknown"; `onhold` and `undefined` are Sisimai
///   unable to decide; `mailererror`, `systemerror` and `syntaxerror` are
///   faults of a program or a server; `delivered`, `vacation` and
///   `feedback` are not failures.
fn truth(reason: &str) -> Truth {
    match reason {
        "userunknown" | "hostunknown" | "hasmoved" | "suspend" | "notaccept" => Truth::Permanent,
        "mailboxfull" | "exceedlimit" | "mesgtoobig" | "toomanyconn" | "speeding" | "expired"
        | "contenterror" | "spamdetected" | "virusdetected" | "policyviolation" | "blocked"
        | "securityerror" | "norelaying" | "rejected" | "networkerror" | "systemfull" => {
            Truth::Transient
        }
        "filtered" | "onhold" | "undefined" | "mailererror" | "systemerror" | "syntaxerror"
        | "delivered" | "vacation" | "feedback" => Truth::Other,
        other => panic!("the reference uses a reason this test does not sort: {other}"),
    }
}

/// Recipients whose reference reason the messages themselves contradict:
/// (file, recipient, why). They count for "found" but in neither tally,
/// and the test prints how mailvet reads them.
const DISPUTED: &[(&str, &str, &str)] = &[
    (
        "lhost-postfix-80.eml",
        "xxxx@xxxx.com",
        "\"MailFrom domain is listed in Spamhaus\": a refusal of our sender, not an unknown user",
    ),
    (
        "lhost-exim-37.eml",
        "kijitora@example.net",
        "\"553 neko.example.com does not exist\" after DATA names the envelope sender's domain, not the recipient's",
    ),
    (
        "lhost-postfix-05.eml",
        "kijitora@example.org",
        "a 450 4.1.1 reply: temporary, and a 4xx is never permanent",
    ),
    (
        "lhost-amazonses-19.eml",
        "kijitora@example.com",
        "\"temporary locked. Please try again later!\": temporary by its own words",
    ),
    (
        "rhost-aol-06.eml",
        "neko@libsisimai.org",
        "\"Malformed or unexpected name server reply\": a resolver failure, which the reference calls networkerror in lhost-postfix-17.eml",
    ),
    (
        "lhost-postfix-13.eml",
        "kijitora@example.jp",
        "its DSN fields say \"5.2.1 … User Unknown\"; the reference gave it the other recipient's \"Mailbox Full\"",
    ),
    (
        "rfc3464-01.eml",
        "userunknown@bouncehammer.jp",
        "its DSN fields say \"Status: 5.1.1\" and \"User Unknown\", not a full mailbox",
    ),
];

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

/// One recipient as the reference reads it.
struct Expected {
    /// The final recipient …
    email: String,
    /// … and the original one, when a DSN gives both and they differ.
    alias: Option<String>,
    reason: String,
    status: String,
}

impl Expected {
    /// Whether an address (lower case) names this recipient: its final
    /// address, or the original one the sender used.
    fn is(&self, email: &str) -> bool {
        self.email == email || self.alias.as_deref() == Some(email)
    }
}

/// An address in lower case, its local part unquoted: `"a..b"@example.org`
/// and `a..b@example.org` name one mailbox.
fn unquoted(email: &str) -> String {
    email.replace('"', "").to_ascii_lowercase()
}

fn reference() -> BTreeMap<String, Vec<Expected>> {
    let text = std::fs::read_to_string(REFERENCE).expect("the reference is in the repository");
    let json: Value = serde_json::from_str(&text).expect("the reference is JSON");
    let messages = json["messages"].as_object().expect("messages by file name");
    messages
        .iter()
        .map(|(file, recipients)| {
            let recipients = recipients
                .as_array()
                .expect("a list of recipients")
                .iter()
                // Where a message names no recipient (`To: Undisclosed
                // Recipients`), the reference puts a placeholder in the
                // reserved `.invalid` domain: there is nothing to find.
                .filter(|recipient| {
                    !recipient["recipient"]
                        .as_str()
                        .unwrap_or_default()
                        .ends_with(".invalid")
                })
                .map(|recipient| Expected {
                    email: unquoted(recipient["recipient"].as_str().expect("an address")),
                    alias: recipient["alias"]
                        .as_str()
                        .filter(|alias| !alias.is_empty())
                        .map(unquoted),
                    reason: recipient["reason"].as_str().expect("a reason").to_owned(),
                    status: recipient["status"].as_str().unwrap_or_default().to_owned(),
                })
                .collect();
            (file.clone(), recipients)
        })
        .collect()
}

/// A count and the misses behind it.
#[derive(Default)]
struct Tally {
    hits: usize,
    total: usize,
    misses: Vec<String>,
}

impl Tally {
    fn record(&mut self, hit: bool, miss: impl FnOnce() -> String) {
        self.total += 1;
        if hit {
            self.hits += 1;
        } else {
            self.misses.push(miss());
        }
    }

    fn percent(&self) -> f64 {
        if self.total == 0 {
            return 100.0;
        }
        100.0 * self.hits as f64 / self.total as f64
    }

    fn print(&self, what: &str) {
        println!(
            "{what}: {} of {} ({:.1} %)",
            self.hits,
            self.total,
            self.percent()
        );
        for miss in &self.misses {
            println!("    {miss}");
        }
    }
}

#[tokio::test]
async fn every_real_bounce_is_read_as_the_reference_reads_it() {
    let app = TestApp::spawn().await;
    let reference = reference();
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .expect("the corpus is in the repository")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 629);
    assert_eq!(
        reference.len(),
        files.len(),
        "the reference covers the corpus"
    );

    let mut problems = Vec::new();
    let mut found = Tally::default();
    let mut permanent_hard = Tally::default();
    // Hits are transient failures called hard: the goal is none.
    let mut transient_hard = Tally::default();
    let mut extra = Vec::new();
    let mut disputed = Vec::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        let raw = std::fs::read(path).expect("read a message");
        let reply = app
            .send(
                app.request(Method::POST, "/bounces")
                    .header("content-type", "message/rfc822")
                    .body(raw.clone()),
            )
            .await;
        if reply.status != 200 {
            problems.push(format!("{name}: {} {}", reply.status, reply.text()));
            continue;
        }
        let got: Vec<Value> = reply.json()["recipients"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if has_delivery_status_part(&raw) {
            // Every DSN yields its recipients, each with a status code (the
            // DSN's Status, or the reply code of its Diagnostic-Code).
            if got.is_empty() {
                problems.push(format!("{name}: a DSN with no recipient found"));
            }
            for recipient in &got {
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
        let expected = &reference[&name];
        for recipient in &got {
            let kind = recipient["kind"].as_str().unwrap_or("?");
            *kinds.entry(kind.to_owned()).or_default() += 1;
            let email = unquoted(recipient["email"].as_str().unwrap_or_default());
            if !expected.iter().any(|e| e.is(&email)) {
                extra.push(format!("{name}: {email} ({kind})"));
            }
        }
        for wanted in expected {
            let ours = got.iter().find(|recipient| {
                recipient["email"]
                    .as_str()
                    .is_some_and(|email| wanted.is(&unquoted(email)))
            });
            let describe = || {
                let ours = ours.map_or("not found".to_owned(), |r| {
                    format!(
                        "{} / {} ({} {})",
                        r["kind"].as_str().unwrap_or("?"),
                        r["reason"].as_str().unwrap_or("none"),
                        r["smtp_code"],
                        r["status"]
                    )
                });
                format!(
                    "{name}: {} — reference {} {}, ours {ours}",
                    wanted.email, wanted.reason, wanted.status
                )
            };
            found.record(ours.is_some(), describe);
            let hard = ours.is_some_and(|r| r["kind"] == "hard");
            if let Some((_, _, why)) = DISPUTED
                .iter()
                .find(|(file, email, _)| *file == name && *email == wanted.email)
            {
                disputed.push(format!("{} ({why})", describe()));
                continue;
            }
            match truth(&wanted.reason) {
                Truth::Permanent => permanent_hard.record(hard, describe),
                Truth::Transient => transient_hard.record(!hard, describe),
                Truth::Other => {}
            }
        }
    }

    println!("bounce corpus ({CORPUS}) against {REFERENCE}:");
    found.print("recipients found");
    permanent_hard.print("permanent failures called hard");
    println!(
        "transient failures called hard: {} of {}",
        transient_hard.misses.len(),
        transient_hard.total
    );
    for miss in &transient_hard.misses {
        println!("    {miss}");
    }
    println!(
        "disputed readings of the reference, in neither tally: {}",
        disputed.len()
    );
    for line in &disputed {
        println!("    {line}");
    }
    println!(
        "recipients found that the reference does not name: {}",
        extra.len()
    );
    for line in &extra {
        println!("    {line}");
    }
    println!("all recipients found, by kind: {kinds:?}");

    assert_eq!(
        disputed.len(),
        DISPUTED.len(),
        "every disputed reading names a recipient of the reference"
    );
    assert!(
        problems.is_empty(),
        "{} problems (refused messages, DSNs read short):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        found.percent() >= 99.0,
        "recipients found: {:.1} % (goal 99 %)",
        found.percent()
    );
    assert!(
        permanent_hard.percent() >= 97.0,
        "permanent failures called hard: {:.1} % (goal 97 %)",
        permanent_hard.percent()
    );
    assert!(
        transient_hard.misses.is_empty(),
        "transient failures called hard: {} (goal none)",
        transient_hard.misses.len()
    );
    assert_eq!(app.get("/healthz").await.status, 200);
}
