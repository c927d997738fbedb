//! `POST /verify` and `POST /verify/batch` end to end: a DNS server and SMTP
//! peers of the test's own on loopback, the real router, a fresh database.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, Reply, TestApp};
use crate::common::dns::{
    TestDns, Zone, example_zone, garbage_server, lying_nodata_server, lying_nxdomain_server,
    servfail_server, silent_server,
};
use crate::common::probe::{probe_settings, verdict, verify, verify_batch};
use crate::common::smtp_peer::{Script, SmtpPeer, raw_peer, self_signed_tls};

async fn app_for(dns: &TestDns, peer: &SmtpPeer) -> TestApp {
    TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, peer.port())).await
}

async fn verify_reply(app: &TestApp, body: Value) -> Reply {
    app.send(app.request(Method::POST, "/verify").json(&body))
        .await
}

#[tokio::test]
async fn an_existing_mailbox_is_deliverable() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = app_for(&dns, &peer).await;

    let result = verify(&app, "Alice@Example.TEST").await;
    assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
    assert_eq!(result["email"], "Alice@Example.TEST");
    assert_eq!(result["normalized"], "Alice@example.test");
    assert_eq!(result["mx"], json!(["mx.example.test"]));
    assert_eq!(result["smtp"]["code"], 250);
    assert_eq!(result["smtp"]["enhanced_code"], "2.1.5");
    assert_eq!(result["smtp"]["host"], "mx.example.test");
    assert_eq!(result["cached"], false);
    assert_eq!(result["flags"]["catch_all"], false);

    let commands = peer.commands();
    assert!(
        commands[0].starts_with("EHLO verifier.example.test"),
        "{commands:?}"
    );
    assert_eq!(commands[1], "MAIL FROM:<probe@verifier.example.test>");
    assert!(
        commands[2].starts_with("RCPT TO:<mailvet-"),
        "the catch-all probe, before the recipient: {commands:?}"
    );
    assert_eq!(commands[3], "RCPT TO:<Alice@example.test>");
    assert!(commands.contains(&"QUIT".to_owned()));
    assert!(
        !commands.iter().any(|c| c.eq_ignore_ascii_case("DATA")),
        "never DATA"
    );
}

#[tokio::test]
async fn an_unknown_mailbox_is_undeliverable_with_the_servers_words_and_is_suppressed() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = app_for(&dns, &peer).await;

    let result = verify(&app, "bob@example.test").await;
    assert_eq!(
        verdict(&result),
        ("undeliverable", "mailbox_not_found"),
        "{result}"
    );
    assert_eq!(result["smtp"]["code"], 550);
    assert_eq!(result["smtp"]["enhanced_code"], "5.1.1");
    assert_eq!(
        result["smtp"]["message"],
        "<bob@example.test>: Recipient address rejected: User unknown in virtual mailbox table"
    );

    let entry = app.get("/suppressions/bob@example.test").await;
    assert_eq!(entry.status, 200);
    let entry = entry.json();
    assert_eq!(entry["reason"], "mailbox_not_found");
    assert_eq!(entry["source"], "verify");
    assert_eq!(entry["smtp_code"], 550);
    assert_eq!(entry["enhanced_code"], "5.1.1");
    assert_eq!(entry["mx_host"], "mx.example.test");

    // Suppressed now: answered without the network.
    let sessions = peer.sessions();
    let again = verify(&app, "BOB@example.test").await;
    assert_eq!(verdict(&again), ("undeliverable", "suppressed"));
    assert_eq!(again["suppressed"], true);
    assert_eq!(again["suppression_reason"], "mailbox_not_found");
    assert_eq!(peer.sessions(), sessions);
}

#[tokio::test]
async fn removing_a_suppression_makes_verify_probe_again() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let app = app_for(&dns, &peer).await;
    let created = app
        .send(
            app.request(Method::POST, "/suppressions")
                .json(&json!({"email": "carol@example.test"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let result = verify(&app, "carol@example.test").await;
    assert_eq!(verdict(&result), ("undeliverable", "suppressed"));
    assert_eq!(peer.sessions(), 0, "no probe for a suppressed address");

    let removed = app
        .send(app.request(Method::DELETE, "/suppressions/carol@example.test"))
        .await;
    assert_eq!(removed.status, 204);
    let result = verify(&app, "carol@example.test").await;
    assert_eq!(verdict(&result), ("undeliverable", "mailbox_not_found"));
    assert_eq!(peer.sessions(), 1);
}

#[tokio::test]
async fn a_verdict_is_served_from_the_cache_until_fresh_is_asked() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["dave@example.test"])).await;
    let app = app_for(&dns, &peer).await;
    let first = verify(&app, "dave@example.test").await;
    let second = verify(&app, "Dave@example.test").await;
    assert_eq!(second["cached"], true);
    assert_eq!(second["email"], "Dave@example.test");
    assert_eq!(second["checked_at"], first["checked_at"]);
    assert_eq!(peer.sessions(), 1);
    let fresh = verify_reply(&app, json!({"email": "dave@example.test", "fresh": true}))
        .await
        .json();
    assert_eq!(fresh["cached"], false);
    assert_eq!(peer.sessions(), 2);
}

#[tokio::test]
async fn a_blocklisted_probe_is_unknown_and_never_suppressed() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::rcpt_reply(
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
    ))
    .await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "erin@example.test").await;
    assert_eq!(verdict(&result), ("unknown", "blocked"), "{result}");
    assert_eq!(app.get("/suppressions/erin@example.test").await.status, 404);
}

#[tokio::test]
async fn a_greylisted_recipient_is_unknown_and_never_suppressed() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::rcpt_reply(
        "450 4.2.0 <frank@example.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.test.html",
    ))
    .await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "frank@example.test").await;
    assert_eq!(verdict(&result), ("unknown", "greylisted"), "{result}");
    assert_eq!(
        app.get("/suppressions/frank@example.test").await.status,
        404
    );
}

#[tokio::test]
async fn a_full_mailbox_is_risky() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::rcpt_reply(
        "552 5.2.2 <gina@example.test>: Recipient address rejected: Mailbox full",
    ))
    .await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "gina@example.test").await;
    assert_eq!(verdict(&result), ("risky", "mailbox_full"), "{result}");
    assert_eq!(app.get("/suppressions/gina@example.test").await.status, 404);
}

#[tokio::test]
async fn a_catch_all_domain_is_risky() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "anyone@example.test").await;
    assert_eq!(verdict(&result), ("risky", "catch_all"), "{result}");
    assert_eq!(result["flags"]["catch_all"], true);
}

#[tokio::test]
async fn disposable_and_role_addresses_are_flagged_and_disposable_ones_not_probed() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["info@example.test"])).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "someone@mailinator.com").await;
    assert_eq!(verdict(&result), ("risky", "disposable"));
    assert_eq!(result["flags"]["disposable"], true);
    assert_eq!(peer.sessions(), 0);

    let role = verify(&app, "info@example.test").await;
    assert_eq!(verdict(&role), ("deliverable", "accepted"));
    assert_eq!(role["flags"]["role_account"], true);
}

#[tokio::test]
async fn invalid_syntax_is_a_verdict_not_an_error() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "john..doe@example.test").await;
    assert_eq!(verdict(&result), ("undeliverable", "invalid_syntax"));
    assert_eq!(result["normalized"], Value::Null);
    assert!(
        result["message"]
            .as_str()
            .is_some_and(|m| m.contains("dot")),
        "{result}"
    );
}

#[tokio::test]
async fn a_typo_of_a_known_provider_gets_a_suggestion() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "user@gmial.com").await;
    assert_eq!(result["suggestion"], "user@gmail.com");
    // gmial.com is outside the test's DNS zones: a DNS failure, never a
    // verdict against the address.
    assert_ne!(result["status"], "undeliverable", "{result}");
}

#[tokio::test]
async fn dns_answers_decide_domains_without_mail() {
    let zone = example_zone()
        .mx("nullmx.example.test", 0, ".")
        .txt("nomx.example.test", "v=spf1 -all")
        .ip("implicit.example.test", "127.0.0.1")
        .mx("cname.example.test", 10, "alias.example.test")
        .cname("alias.example.test", "mx.example.test")
        .mx("dangling.example.test", 10, "gone.example.test");
    let dns = TestDns::start(vec![zone]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;

    let cases = [
        (
            "a@nonexistent.example.test",
            ("undeliverable", "no_such_domain"),
        ),
        ("a@nullmx.example.test", ("undeliverable", "no_mail_server")),
        ("a@nomx.example.test", ("undeliverable", "no_mail_server")),
        (
            "a@dangling.example.test",
            ("undeliverable", "no_mail_server"),
        ),
        ("a@implicit.example.test", ("risky", "catch_all")),
        ("a@cname.example.test", ("risky", "catch_all")),
    ];
    for (email, expected) in cases {
        let result = verify(&app, email).await;
        assert_eq!(verdict(&result), expected, "{email}: {result}");
    }
    let implicit = verify(&app, "b@implicit.example.test").await;
    assert_eq!(implicit["mx"], json!(["implicit.example.test"]));
    assert_eq!(
        app.get("/suppressions/a@nullmx.example.test").await.status,
        200
    );
}

#[tokio::test]
async fn a_failing_dns_server_is_unknown_never_undeliverable() {
    let servfail = servfail_server().await;
    let (silent, _socket) = silent_server().await;
    let garbage = garbage_server().await;
    for server in [servfail, silent, garbage] {
        let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
            settings.dns.servers = vec![server];
            settings.dns.timeout = Duration::from_millis(300);
            settings.smtp.allow_private_targets = true;
        })
        .await;
        let result = verify(&app, "someone@example.test").await;
        assert_eq!(verdict(&result), ("unknown", "dns_error"), "{result}");
        assert_eq!(
            app.get("/suppressions/someone@example.test").await.status,
            404
        );
    }
}

#[tokio::test]
async fn a_resolver_that_denies_every_name_without_an_soa_proves_nothing() {
    // A captive or broken network: NXDOMAIN, or "no records", for every
    // name, with no SOA in the authority section (RFC 2308).
    for server in [lying_nxdomain_server().await, lying_nodata_server().await] {
        let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
            settings.dns.servers = vec![server];
            settings.dns.timeout = Duration::from_millis(300);
            settings.smtp.allow_private_targets = true;
        })
        .await;
        for email in ["someone@example.test", "else@gmail.com"] {
            let result = verify(&app, email).await;
            assert_eq!(verdict(&result), ("unknown", "dns_error"), "{result}");
            assert!(
                result["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("SOA")),
                "{result}"
            );
            assert_eq!(app.get(&format!("/suppressions/{email}")).await.status, 404);
        }
    }
}

#[tokio::test]
async fn while_the_resolver_fails_its_canaries_nothing_is_undeliverable_by_dns_or_suppressed() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    // Canaries the test's DNS server does not know: the resolver fails them.
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.dns.canaries = vec!["canary-one.test".into(), "canary-two.test".into()];
    })
    .await;

    let gone = verify(&app, "a@nonexistent.example.test").await;
    assert_eq!(verdict(&gone), ("unknown", "dns_error"), "{gone}");
    assert!(
        gone["message"]
            .as_str()
            .is_some_and(|message| message.contains("canary")),
        "{gone}"
    );
    let unknown_user = verify(&app, "bob@example.test").await;
    assert_eq!(
        verdict(&unknown_user),
        ("undeliverable", "mailbox_not_found"),
        "the server's own answer still stands: {unknown_user}"
    );
    for email in ["a@nonexistent.example.test", "bob@example.test"] {
        assert_eq!(
            app.get(&format!("/suppressions/{email}")).await.status,
            404,
            "{email} is not suppressed while the resolver is not trusted"
        );
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["dns"]["state"], "failing", "{}", ready.text());
    assert!(
        ready.json()["dns"]["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("canary-one.test")),
        "{}",
        ready.text()
    );

    // The same with a canary that resolves: DNS and the server are believed.
    let trusting = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.dns.canaries = vec!["canary-one.test".into(), "example.test".into()];
    })
    .await;
    let gone = verify(&trusting, "a@nonexistent.example.test").await;
    assert_eq!(
        verdict(&gone),
        ("undeliverable", "no_such_domain"),
        "{gone}"
    );
    verify(&trusting, "bob@example.test").await;
    assert_eq!(
        trusting.get("/suppressions/bob@example.test").await.status,
        200
    );
    assert_eq!(
        trusting.get("/readyz").await.json()["dns"]["state"],
        "healthy"
    );
}

#[tokio::test]
async fn mx_hosts_are_tried_in_order_past_refusals_and_dead_hosts() {
    // 127.0.0.2 answers 421 at the greeting, nothing listens on 127.0.0.3,
    // 127.0.0.4 works.
    let good = SmtpPeer::start(Script::mailboxes(&["hank@example.test"])).await;
    let port = good.port();
    let busy = SmtpPeer::start_at(
        "127.0.0.2",
        port,
        Script {
            greeting: Some("421 4.3.2 Service not available, closing transmission channel".into()),
            ..Script::mailboxes(&[])
        },
    )
    .await;
    let good_at_4 =
        SmtpPeer::start_at("127.0.0.4", port, Script::mailboxes(&["hank@example.test"])).await;
    let zone = Zone::new("example.test")
        .mx("example.test", 10, "busy.example.test")
        .mx("example.test", 20, "dead.example.test")
        .mx("example.test", 30, "good.example.test")
        .ip("busy.example.test", "127.0.0.2")
        .ip("dead.example.test", "127.0.0.3")
        .ip("good.example.test", "127.0.0.4");
    let dns = TestDns::start(vec![zone]).await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, port)).await;
    let result = verify(&app, "hank@example.test").await;
    assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
    assert_eq!(result["smtp"]["host"], "good.example.test");
    assert_eq!(
        result["mx"],
        json!([
            "busy.example.test",
            "dead.example.test",
            "good.example.test"
        ])
    );
    assert_eq!(busy.sessions(), 1);
    assert_eq!(good_at_4.sessions(), 1);
    assert_eq!(good.sessions(), 0);
}

#[tokio::test]
async fn smtp_faults_give_honest_unknowns() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let faults: Vec<(&str, Script, (&str, &str))> = vec![
        (
            "tarpit",
            Script {
                greeting: None,
                ..Script::mailboxes(&[])
            },
            ("unknown", "timeout"),
        ),
        (
            "slow replies",
            Script {
                delay: Duration::from_millis(900),
                ..Script::mailboxes(&["x@example.test"])
            },
            ("unknown", "timeout"),
        ),
        (
            "drops mid-session",
            Script {
                drop_after_rcpts: Some(0),
                ..Script::mailboxes(&[])
            },
            ("unknown", "smtp_error"),
        ),
        (
            "refuses at greeting",
            Script {
                greeting: Some("554 5.7.1 No SMTP service for you".into()),
                ..Script::mailboxes(&[])
            },
            ("unknown", "blocked"),
        ),
    ];
    for (name, script, expected) in faults {
        let peer = SmtpPeer::start(script).await;
        let app = TestApp::spawn_with(Db::Sqlite, |settings| {
            probe_settings(dns.addr, peer.port())(settings);
            settings.smtp.timeout = Duration::from_millis(400);
        })
        .await;
        let result = verify(&app, "x@example.test").await;
        assert_eq!(verdict(&result), expected, "{name}: {result}");
        assert_eq!(
            app.get("/suppressions/x@example.test").await.status,
            404,
            "{name}"
        );
    }
}

#[tokio::test]
async fn garbage_from_the_server_is_an_smtp_error() {
    let dns = TestDns::start(vec![example_zone()]).await;
    for garbage in [
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
        vec![b'A'; 100_000],
        b"220-multi\r\n550 mixed codes\r\n".to_vec(),
        // A greeting, then 10 MB of reply lines that never end.
        [
            b"220 mx.example.test ESMTP\r\n".to_vec(),
            b"250-x\r\n".repeat(1_500_000),
        ]
        .concat(),
    ] {
        let addr = raw_peer(garbage).await;
        let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, addr.port())).await;
        let result = verify(&app, "x@example.test").await;
        assert_eq!(verdict(&result), ("unknown", "smtp_error"), "{result}");
    }
}

#[tokio::test]
async fn replies_split_across_packets_and_multi_line_replies_are_read_whole() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let script = Script {
        split: true,
        greeting: Some("220-mx.example.test ESMTP\r\n220-second line\r\n220 ready".into()),
        ..Script::mailboxes(&["ivan@example.test"])
    };
    let peer = SmtpPeer::start(script).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "ivan@example.test").await;
    assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
}

#[tokio::test]
async fn a_server_that_requires_starttls_gets_it() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let script = Script {
        tls: Some(self_signed_tls()),
        ..Script::mailboxes(&["jane@example.test"])
    };
    let peer = SmtpPeer::start(script).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "jane@example.test").await;
    assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
    let commands = peer.commands();
    assert!(commands.contains(&"STARTTLS".to_owned()), "{commands:?}");
    let ehlos = commands.iter().filter(|c| c.starts_with("EHLO")).count();
    assert_eq!(ehlos, 2, "EHLO again after STARTTLS: {commands:?}");
}

#[tokio::test]
async fn utf8_addresses_use_smtputf8_and_get_an_honest_answer_without_it() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["josé@example.test"])).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "josé@example.test").await;
    assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
    assert!(peer.commands().iter().any(|c| c.ends_with(" SMTPUTF8")));

    let no_utf8 = Script {
        ehlo: "250-mx.example.test\r\n250 8BITMIME".into(),
        ..Script::mailboxes(&["josé@example.test"])
    };
    let peer = SmtpPeer::start(no_utf8).await;
    let app = app_for(&dns, &peer).await;
    let result = verify(&app, "josé@example.test").await;
    assert_eq!(verdict(&result), ("unknown", "smtp_error"), "{result}");
    assert!(
        result["message"]
            .as_str()
            .is_some_and(|m| m.contains("SMTPUTF8"))
    );
    assert!(
        peer.rcpts().is_empty(),
        "not asked about an address it cannot take"
    );
}

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let zone = example_zone()
        .mx("metadata.example.test", 10, "imds.example.test")
        .ip("imds.example.test", "169.254.169.254");
    let dns = TestDns::start(vec![zone]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.smtp.allow_private_targets = false;
    })
    .await;
    for (email, kind) in [
        ("x@example.test", "loopback"),
        ("x@metadata.example.test", "link-local"),
    ] {
        let result = verify(&app, email).await;
        assert_eq!(
            verdict(&result),
            ("unknown", "connection_failed"),
            "{result}"
        );
        let message = result["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(kind) && message.contains("--allow-private-targets"),
            "{message}"
        );
    }
    assert_eq!(peer.sessions(), 0);
}

#[tokio::test]
async fn concurrent_requests_for_one_address_probe_it_once() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(50),
        ..Script::mailboxes(&["kim@example.test"])
    })
    .await;
    let app = app_for(&dns, &peer).await;
    let requests: Vec<_> = (0..100)
        .map(|_| {
            app.request(Method::POST, "/verify")
                .json(&json!({"email": "kim@example.test", "fresh": true}))
                .send()
        })
        .collect();
    let responses = futures::future::join_all(requests).await;
    for response in responses {
        let response = response.expect("answered");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(verdict(&body), ("deliverable", "accepted"));
    }
    let asked: Vec<_> = peer
        .rcpts()
        .into_iter()
        .filter(|r| r == "kim@example.test")
        .collect();
    assert_eq!(asked.len(), 1, "one RCPT TO for 100 concurrent requests");
}

#[tokio::test]
async fn a_batch_shares_sessions_and_answers_in_input_order() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let known: Vec<String> = (0..100).map(|i| format!("user{i}@example.test")).collect();
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    let peer = SmtpPeer::start(Script::mailboxes(&known_refs)).await;
    let app = app_for(&dns, &peer).await;
    // 200 addresses: the even ones exist, the odd ones do not.
    let emails: Vec<String> = (0..200)
        .map(|i| {
            if i % 2 == 0 {
                format!("user{}@example.test", i / 2)
            } else {
                format!("nobody{i}@example.test")
            }
        })
        .collect();
    let results = verify_batch(&app, &emails).await;
    assert_eq!(results.len(), 200);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["email"], emails[i]);
        let expected = if i % 2 == 0 {
            "accepted"
        } else {
            "mailbox_not_found"
        };
        assert_eq!(result["reason"], expected, "{i}: {result}");
    }
    // 100 rejections at most 8 per session, plus slack for the catch-all
    // probe: a dozen or so sessions, not 200.
    assert!(
        peer.sessions() <= 20,
        "{} sessions for 200 addresses",
        peer.sessions()
    );
    assert_eq!(
        peer.rcpts()
            .iter()
            .filter(|r| !r.starts_with("mailvet-"))
            .count(),
        200
    );
}

#[tokio::test]
async fn batch_limits_are_enforced() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let app = app_for(&dns, &peer).await;
    let too_many: Vec<String> = (0..1001).map(|i| format!("u{i}@example.test")).collect();
    app.send(
        app.request(Method::POST, "/verify/batch")
            .json(&json!({"emails": too_many})),
    )
    .await
    .assert_error(422, "invalid_request");
    app.send(
        app.request(Method::POST, "/verify/batch")
            .json(&json!({"emails": []})),
    )
    .await
    .assert_error(422, "invalid_request");
    app.send(
        app.request(Method::POST, "/verify")
            .json(&json!({"mail": "x@example.test"})),
    )
    .await
    .assert_error(422, "invalid_request");
    assert_eq!(peer.sessions(), 0);
}

#[tokio::test]
async fn a_flood_of_new_addresses_at_one_domain_stays_within_the_probe_budget() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.verify.probe_budget_per_domain = 20;
        // The HTTP rate limit is not what this test is about.
        settings.http.rate_limit_public = 100_000;
        settings.keys.secret_keys =
            vec![mailvet::secret::SecretString::from("sk_ops_0123456789ab")];
        settings.keys.public_keys = vec![mailvet::secret::SecretString::from("pk_form")];
    })
    .await;
    // 2,000 random addresses through a public key, 50 at a time.
    let emails: Vec<String> = (0..2000)
        .map(|i| format!("random{i}-{}@example.test", rand::random::<u32>()))
        .collect();
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let started = std::time::Instant::now();
    for chunk in emails.chunks(50) {
        let requests = chunk.iter().map(|email| {
            app.request(Method::POST, "/verify")
                .bearer_auth("pk_form")
                .json(&json!({"email": email}))
                .send()
        });
        for response in futures::future::join_all(requests).await {
            let response = response.expect("answered");
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.expect("JSON");
            *reasons
                .entry(body["reason"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    // 20 a minute: a burst of 20, then one more every 3 s.
    let allowed = 20 + started.elapsed().as_secs() as usize / 3 + 1;
    // What the mail server was asked: one RCPT per probed address (plus
    // mailvet's catch-all checks, which are not addresses of the caller).
    let probed = peer
        .rcpts()
        .iter()
        .filter(|rcpt| !rcpt.starts_with("mailvet-"))
        .count();
    assert!(
        probed <= allowed,
        "{probed} addresses probed, budget {allowed}"
    );
    assert!(peer.sessions() <= probed, "{} sessions", peer.sessions());
    assert_eq!(
        reasons.get("mailbox_not_found"),
        Some(&probed),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.get("rate_limited").copied().unwrap_or(0),
        2000 - probed,
        "{reasons:?}"
    );
    // Budget refusals are not verdicts about the address: nothing cached.
    let again = app
        .send(
            app.request(Method::POST, "/verify")
                .bearer_auth("sk_ops_0123456789ab")
                .json(&json!({"email": emails[1999]})),
        )
        .await
        .json();
    assert_eq!(again["cached"], false);
}

#[tokio::test]
async fn past_the_budget_a_known_catch_all_domain_is_answered_without_a_probe() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.verify.probe_budget_per_domain = 1;
    })
    .await;
    assert_eq!(
        verdict(&verify(&app, "first@example.test").await),
        ("risky", "catch_all")
    );
    let second = verify(&app, "second@example.test").await;
    assert_eq!(verdict(&second), ("risky", "catch_all"), "{second}");
    assert_eq!(second["flags"]["catch_all"], true);
    assert_eq!(
        peer.sessions(),
        1,
        "the second answer came from the catch-all result"
    );
}

#[tokio::test]
async fn domains_sharing_a_mail_host_reuse_its_sessions() {
    // Eight domains hosted by one provider: every MX is mx.provider.test.
    let mut zones: Vec<Zone> = (0..8)
        .map(|n| {
            let domain = format!("customer{n}.test");
            Zone::new(&domain).mx(&domain, 10, "mx.provider.test")
        })
        .collect();
    zones.push(Zone::new("provider.test").ip("mx.provider.test", "127.0.0.1"));
    let dns = TestDns::start(zones).await;
    let known: Vec<String> = (0..8).map(|n| format!("alice@customer{n}.test")).collect();
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(5),
        ..Script::mailboxes(&known_refs)
    })
    .await;
    let app = app_for(&dns, &peer).await;
    let emails: Vec<String> = (0..8)
        .flat_map(|n| {
            [
                format!("alice@customer{n}.test"),
                format!("bob@customer{n}.test"),
            ]
        })
        .collect();
    let results = verify_batch(&app, &emails).await;
    for (result, email) in results.iter().zip(&emails) {
        let expected = if email.starts_with("alice") {
            ("deliverable", "accepted")
        } else {
            ("undeliverable", "mailbox_not_found")
        };
        assert_eq!(verdict(result), expected, "{email}: {result}");
    }
    // Each domain had its own transaction (and catch-all check), but the
    // host's two sessions carried them all instead of one session each.
    let commands = peer.commands();
    let mail_froms = commands
        .iter()
        .filter(|c| c.starts_with("MAIL FROM"))
        .count();
    let catch_all_checks = commands
        .iter()
        .filter(|c| c.starts_with("RCPT TO:<mailvet-"))
        .count();
    assert_eq!(mail_froms, 8, "{commands:?}");
    assert_eq!(catch_all_checks, 8);
    assert!(
        peer.sessions() <= 3,
        "{} sessions for 8 domains on one host: {commands:?}",
        peer.sessions()
    );
}

#[tokio::test]
async fn a_suppression_made_by_another_replica_reaches_answers_kept_in_memory() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let a = TestApp::spawn_with(Db::Postgres, probe_settings(dns.addr, peer.port())).await;
    let b = a.spawn_sharing(probe_settings(dns.addr, peer.port())).await;

    assert_eq!(
        verdict(&verify(&a, "alice@example.test").await),
        ("deliverable", "accepted")
    );
    let again = verify(&a, "alice@example.test").await;
    assert_eq!(again["cached"], true, "answered from what a remembers");

    // Suppressed through replica b: a notices within about a second.
    let added = b
        .send(
            b.request(Method::POST, "/suppressions")
                .json(&json!({"email": "alice@example.test", "reason": "manual"})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let result = verify(&a, "alice@example.test").await;
        if result["reason"] == "suppressed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a still answers {result}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // On the replica that made the change, at once.
    assert_eq!(
        verify(&b, "alice@example.test").await["reason"],
        "suppressed"
    );
    assert_eq!(
        peer.rcpts()
            .iter()
            .filter(|r| *r == "alice@example.test")
            .count(),
        1
    );
}

#[tokio::test]
async fn the_catch_all_check_comes_first_and_sessions_carry_at_most_100_recipients() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;
    let emails: Vec<String> = (0..250).map(|i| format!("user{i}@example.test")).collect();
    let results = verify_batch(&app, &emails).await;
    assert_eq!(results.len(), 250);
    for result in &results {
        assert_eq!(verdict(result), ("risky", "catch_all"), "{result}");
    }
    // The commands of each session, split at its EHLO.
    let mut sessions: Vec<Vec<String>> = Vec::new();
    for command in peer.commands() {
        if command.starts_with("EHLO") {
            sessions.push(Vec::new());
        } else if let Some(session) = sessions.last_mut() {
            session.push(command);
        }
    }
    let rcpts = |session: &Vec<String>| -> Vec<String> {
        session
            .iter()
            .filter(|command| command.starts_with("RCPT TO"))
            .cloned()
            .collect()
    };
    assert!(sessions.len() >= 3, "{} sessions", sessions.len());
    for session in &sessions {
        assert!(
            rcpts(session).len() <= 100,
            "{} recipients",
            rcpts(session).len()
        );
    }
    let first = rcpts(&sessions[0]);
    assert!(
        first[0].contains("<mailvet-"),
        "the random address is asked before any recipient: {}",
        first[0]
    );
    let random_probes = peer
        .rcpts()
        .iter()
        .filter(|rcpt| rcpt.starts_with("mailvet-"))
        .count();
    assert_eq!(random_probes, 1, "the answer is kept for the domain");
}

/// A transcript entry as `(sent, code)`.
fn exchanges(result: &Value) -> Vec<(String, Option<u64>)> {
    result["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| {
            (
                step["sent"].as_str().unwrap_or_default().to_owned(),
                step["code"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test]
async fn one_address_comes_with_the_transcript_of_its_probe_and_a_batch_without() {
    let dns = TestDns::start(vec![
        example_zone(),
        // The first MX refuses connections; the second answers.
        Zone::new("two.test")
            .mx("two.test", 5, "mx1.two.test")
            .ip("mx1.two.test", "127.0.0.9")
            .mx("two.test", 10, "mx2.two.test")
            .ip("mx2.two.test", "127.0.0.1"),
    ])
    .await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test", "bob@two.test"])).await;
    let app = app_for(&dns, &peer).await;

    let bob = verify(&app, "bob@two.test").await;
    assert_eq!(verdict(&bob), ("deliverable", "accepted"), "{bob}");
    let steps = exchanges(&bob);
    let port = peer.port();
    assert_eq!(
        steps[0],
        (format!("connect 127.0.0.9:{port}"), None),
        "{bob}"
    );
    assert!(
        bob["transcript"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{bob}"
    );
    assert_eq!(steps[1], (format!("connect 127.0.0.1:{port}"), Some(220)));
    assert_eq!(
        steps[2],
        ("EHLO verifier.example.test".to_owned(), Some(250))
    );
    assert_eq!(
        steps[3],
        (
            "MAIL FROM:<probe@verifier.example.test>".to_owned(),
            Some(250)
        )
    );
    assert!(steps[4].0.starts_with("RCPT TO:<mailvet-"), "{bob}");
    assert_eq!(steps[4].1, Some(550), "the catch-all check");
    assert_eq!(steps[5], ("RCPT TO:<bob@two.test>".to_owned(), Some(250)));
    assert_eq!(steps.len(), 6, "{bob}");
    assert_eq!(bob["transcript"][5]["host"], "mx2.two.test");
    assert_eq!(bob["transcript"][5]["enhanced_code"], "2.1.5");

    // Kept with the cached answer.
    let again = verify(&app, "bob@two.test").await;
    assert_eq!(again["cached"], true);
    assert_eq!(again["transcript"], bob["transcript"]);

    let batch = verify_batch(
        &app,
        &[
            "alice@example.test".to_owned(),
            "carol@example.test".to_owned(),
        ],
    )
    .await;
    for result in &batch {
        assert!(result.get("transcript").is_none(), "{result}");
    }
}
