//! "Did you mean …?" from DNS facts: an address whose domain has no mail
//! route gets the address at its registrable domain, or with a slip of the
//! TLD fixed, when DNS shows that domain takes mail. Each rule against the
//! loopback DNS server; the verdict itself never changes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::mailvet;
use crate::common::app::{Db, TestApp};
use crate::common::dns::{Fault, TestDns, Zone, example_zone};
use crate::common::probe::{probe_settings, verdict, verify, verify_batch};
use crate::common::smtp_peer::{Script, SmtpPeer};

async fn app_for(dns: &TestDns, peer: &SmtpPeer) -> TestApp {
    TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, peer.port())).await
}

/// The top-level zone `com`, where `example.com` takes mail at
/// `mx.example.com` (127.0.0.1) and nothing else exists.
fn com_zone() -> Zone {
    Zone::new("com")
        .mx("example.com", 10, "mx.example.com")
        .ip("mx.example.com", "127.0.0.1")
}

#[tokio::test]
async fn a_subdomain_without_mail_gets_the_address_at_its_registrable_domain() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;

    let result = verify(&app, "Alice@Mail.Example.TEST").await;
    assert_eq!(
        verdict(&result),
        ("undeliverable", "no_such_domain"),
        "the verdict is the typed domain's: {result}"
    );
    assert_eq!(
        result["suggestion"], "Alice@example.test",
        "the local part as typed, at the registrable domain: {result}"
    );
    assert_eq!(result["mx"], json!([]));
    assert_eq!(peer.sessions(), 0, "the suggested domain is not probed");
}

#[tokio::test]
async fn a_null_mx_or_no_mail_host_at_a_subdomain_leads_to_the_registrable_domain() {
    let zone = example_zone()
        .mx("lists.example.test", 0, ".")
        .txt("www.example.test", "v=spf1 -all");
    let dns = TestDns::start(vec![zone]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;

    let null_mx = verify(&app, "bob@lists.example.test").await;
    assert_eq!(verdict(&null_mx), ("undeliverable", "no_mail_server"));
    assert_eq!(null_mx["suggestion"], "bob@example.test", "{null_mx}");

    let no_host = verify(&app, "bob@www.example.test").await;
    assert_eq!(verdict(&no_host), ("undeliverable", "no_mail_server"));
    assert_eq!(no_host["suggestion"], "bob@example.test", "{no_host}");
    assert_eq!(peer.sessions(), 0);
}

#[tokio::test]
async fn a_parent_that_takes_no_mail_is_not_suggested() {
    let zones = vec![
        // No MX and no address.
        Zone::new("bare.test"),
        // Null MX.
        Zone::new("nullmx.test").mx("nullmx.test", 0, "."),
        // An address and no MX: a web site, not put forward as mail.
        Zone::new("web.test").ip("web.test", "127.0.0.1"),
        // MX records naming a host without an address.
        Zone::new("dangling.test").mx("dangling.test", 10, "gone.dangling.test"),
    ];
    let dns = TestDns::start(zones).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;

    for email in [
        "carol@mail.bare.test",
        "carol@mail.nullmx.test",
        "carol@mail.web.test",
        "carol@mail.dangling.test",
    ] {
        let result = verify(&app, email).await;
        assert_eq!(verdict(&result), ("undeliverable", "no_such_domain"));
        assert_eq!(result["suggestion"], Value::Null, "{email}: {result}");
    }
}

#[tokio::test]
async fn a_parent_whose_mail_hosts_a_probe_may_not_reach_is_not_suggested() {
    // The same zone that gives a suggestion when private targets are
    // allowed (above); here the guard refuses mx.example.test (127.0.0.1).
    let dns = TestDns::start(vec![example_zone()]).await;
    let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
        settings.dns.servers = vec![dns.addr];
        settings.dns.timeout = Duration::from_secs(1);
        settings.smtp.allow_private_targets = false;
    })
    .await;

    let result = verify(&app, "alice@mail.example.test").await;
    assert_eq!(verdict(&result), ("undeliverable", "no_such_domain"));
    assert_eq!(result["suggestion"], Value::Null, "{result}");
}

#[tokio::test]
async fn a_parent_whose_dns_fails_gives_no_suggestion_and_leaves_the_verdict() {
    for fault in [Fault::ServFail, Fault::Silence] {
        let dns =
            TestDns::start_with_faults(vec![example_zone()], &[("example.test", fault)]).await;
        let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
            settings.dns.servers = vec![dns.addr];
            settings.dns.timeout = Duration::from_millis(300);
            settings.smtp.allow_private_targets = true;
        })
        .await;

        let result = verify(&app, "alice@mail.example.test").await;
        assert_eq!(
            verdict(&result),
            ("undeliverable", "no_such_domain"),
            "{fault:?}: the typed domain's own answer stands: {result}"
        );
        assert_eq!(result["suggestion"], Value::Null, "{fault:?}: {result}");
    }
}

#[tokio::test]
async fn the_harness_fails_only_the_names_it_is_told_to() {
    // The check behind the test above: the parent fails, its subdomains
    // are answered.
    let dns =
        TestDns::start_with_faults(vec![example_zone()], &[("example.test", Fault::ServFail)])
            .await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;
    let failed = verify(&app, "alice@example.test").await;
    assert_eq!(verdict(&failed), ("unknown", "dns_error"), "{failed}");
    let answered = verify(&app, "alice@mail.example.test").await;
    assert_eq!(verdict(&answered), ("undeliverable", "no_such_domain"));
}

#[tokio::test]
async fn a_slip_of_com_is_corrected_only_when_the_com_domain_takes_mail() {
    let dns = TestDns::start(vec![Zone::new("con"), com_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;

    let slip = verify(&app, "bob@example.con").await;
    assert_eq!(verdict(&slip), ("undeliverable", "no_such_domain"));
    assert_eq!(slip["suggestion"], "bob@example.com", "{slip}");

    let both = verify(&app, "bob@mail.example.con").await;
    assert_eq!(
        both["suggestion"], "bob@example.com",
        "the TLD fixed, then the registrable domain: {both}"
    );

    let nowhere = verify(&app, "bob@other.con").await;
    assert_eq!(verdict(&nowhere), ("undeliverable", "no_such_domain"));
    assert_eq!(
        nowhere["suggestion"],
        Value::Null,
        "other.com does not exist: {nowhere}"
    );
    assert_eq!(peer.sessions(), 0);
}

#[tokio::test]
async fn a_co_domain_with_its_own_mail_is_probed_as_usual_and_gets_no_suggestion() {
    let co = Zone::new("co")
        .mx("example.co", 10, "mx.example.co")
        .ip("mx.example.co", "127.0.0.1");
    let com = com_zone()
        .mx("gone.com", 10, "mx.gone.com")
        .ip("mx.gone.com", "127.0.0.1");
    let dns = TestDns::start(vec![co, com]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["bob@example.co"])).await;
    let app = app_for(&dns, &peer).await;

    let real = verify(&app, "bob@example.co").await;
    assert_eq!(verdict(&real), ("deliverable", "accepted"), "{real}");
    assert_eq!(real["suggestion"], Value::Null, "{real}");
    let unknown = verify(&app, "carol@example.co").await;
    assert_eq!(
        verdict(&unknown),
        ("undeliverable", "mailbox_not_found"),
        "{unknown}"
    );
    assert_eq!(unknown["suggestion"], Value::Null, "{unknown}");

    // A .co domain that does not exist, where the .com takes mail.
    let slip = verify(&app, "dan@gone.co").await;
    assert_eq!(verdict(&slip), ("undeliverable", "no_such_domain"));
    assert_eq!(slip["suggestion"], "dan@gone.com", "{slip}");
}

#[tokio::test]
async fn a_typo_of_a_known_provider_wins_over_a_dns_suggestion() {
    // hotmial.com takes mail here, so DNS alone would suggest it.
    let com = com_zone()
        .mx("hotmial.com", 10, "mx.hotmial.com")
        .ip("mx.hotmial.com", "127.0.0.1");
    let dns = TestDns::start(vec![Zone::new("co"), com]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = app_for(&dns, &peer).await;

    let result = verify(&app, "bob@hotmial.co").await;
    assert_eq!(verdict(&result), ("undeliverable", "no_such_domain"));
    assert_eq!(result["suggestion"], "bob@hotmail.com", "{result}");
    let other = verify(&app, "bob@hotmial.con").await;
    assert_eq!(other["suggestion"], "bob@hotmail.com", "{other}");
}

#[tokio::test]
async fn while_the_resolver_fails_its_canaries_dns_suggests_nothing() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.dns.canaries = vec!["canary.test".into()];
    })
    .await;

    let result = verify(&app, "alice@mail.example.test").await;
    assert_eq!(verdict(&result), ("unknown", "dns_error"), "{result}");
    assert_eq!(result["suggestion"], Value::Null, "{result}");
}

#[tokio::test]
async fn a_batch_gets_the_suggestion_for_each_address_at_a_domain_without_mail() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = app_for(&dns, &peer).await;

    let emails = [
        "alice@mail.example.test",
        "alice@example.test",
        "bob@mail.example.test",
    ]
    .map(str::to_owned);
    let results = verify_batch(&app, &emails).await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["suggestion"], "alice@example.test");
    assert_eq!(verdict(&results[1]), ("deliverable", "accepted"));
    assert_eq!(results[1]["suggestion"], Value::Null);
    assert_eq!(results[2]["suggestion"], "bob@example.test");
}

async fn a_suggestion_is_kept_with_the_verdict(db: Db) {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = TestApp::spawn_with(db, probe_settings(dns.addr, peer.port())).await;

    let first = verify(&app, "alice@mail.example.test").await;
    assert_eq!(verdict(&first), ("undeliverable", "no_such_domain"));
    assert_eq!(first["suggestion"], "alice@example.test");

    // The DNS answer put the address on the list, which answers for it
    // from now on, without network.
    let again = verify(&app, "alice@mail.example.test").await;
    assert_eq!(verdict(&again), ("undeliverable", "suppressed"), "{again}");
    assert_eq!(again["suggestion"], "alice@example.test", "{again}");

    // Another process on the same database, with nothing in memory and a
    // DNS server that no longer answers.
    drop(dns);
    let restarted = app
        .spawn_sharing(probe_settings("127.0.0.1:9".parse().expect("address"), 9))
        .await;
    let later = verify(&restarted, "alice@mail.example.test").await;
    assert_eq!(verdict(&later), ("undeliverable", "suppressed"), "{later}");
    assert_eq!(later["suggestion"], "alice@example.test", "{later}");
}

#[tokio::test]
async fn a_suggestion_is_kept_with_the_verdict_on_sqlite() {
    a_suggestion_is_kept_with_the_verdict(Db::Sqlite).await;
}

#[tokio::test]
async fn a_suggestion_is_kept_with_the_verdict_on_postgres() {
    a_suggestion_is_kept_with_the_verdict(Db::Postgres).await;
}

#[tokio::test]
async fn check_shows_the_suggestion_and_keeps_it_on_the_next_run() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let args = vec![
        "check".to_owned(),
        "--json".to_owned(),
        "--database-url".to_owned(),
        format!("sqlite://{}", dir.path().join("check.db").display()),
        "--dns-servers".to_owned(),
        dns.addr.to_string(),
        "--smtp-port".to_owned(),
        peer.port().to_string(),
        "--allow-private-targets".to_owned(),
        "--helo-name".to_owned(),
        "verifier.example.test".to_owned(),
        "alice@mail.example.test".to_owned(),
    ];
    for (run, reason) in [(1, "no_such_domain"), (2, "suppressed")] {
        let args = args.clone();
        let output = tokio::task::spawn_blocking(move || {
            mailvet().args(&args).output().expect("run mailvet check")
        })
        .await
        .expect("join");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = String::from_utf8_lossy(&output.stdout).into_owned();
        let result: Value = serde_json::from_str(line.trim()).expect("one JSON result");
        assert_eq!(verdict(&result), ("undeliverable", reason), "run {run}");
        assert_eq!(
            result["suggestion"], "alice@example.test",
            "run {run}: {result}"
        );
    }
}
