//! Replicas on one Postgres database: the session caps, the probe budget,
//! catch-all answers and verifications in progress hold for all of them
//! together, and a suppression made through one reaches the others' memory
//! at once. Each test fails when the limit is kept per process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailvet::Settings;
use mailvet::store::Store;
use mailvet::store::cluster::{BudgetBucket, SessionAsk};
use reqwest::Method;
use serde_json::json;

use crate::common::app::{Db, TestApp};
use crate::common::db::PgTestDb;
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verdict, verify};
use crate::common::smtp_peer::{Script, SmtpPeer};

/// The probe settings, with the session cap and budget given.
fn replica(
    dns: &TestDns,
    peer: &SmtpPeer,
    per_host: usize,
    budget: u32,
) -> impl Fn(&mut Settings) + Clone {
    let (dns, port) = (dns.addr, peer.port());
    move |settings: &mut Settings| {
        probe_settings(dns, port)(settings);
        settings.smtp.max_sessions_per_host = per_host;
        settings.verify.probe_budget_per_domain = budget;
    }
}

async fn three_replicas(configure: impl Fn(&mut Settings) + Clone) -> [TestApp; 3] {
    let a = TestApp::spawn_with(Db::Postgres, configure.clone()).await;
    let b = a.spawn_sharing(configure.clone()).await;
    let c = a.spawn_sharing(configure).await;
    [a, b, c]
}

#[tokio::test]
async fn the_session_cap_per_mail_host_holds_across_three_replicas() {
    let dns = TestDns::start(vec![example_zone()]).await;
    // Slow replies keep sessions open long enough to overlap.
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(40),
        ..Script::mailboxes_starting_with("user")
    })
    .await;
    let replicas = Arc::new(three_replicas(replica(&dns, &peer, 2, 1_000)).await);

    // Four different addresses at each replica at once: twelve probes of
    // one host, each replica free to open two sessions of its own.
    let mut asks = Vec::new();
    for n in 0..12 {
        let replicas = replicas.clone();
        asks.push(tokio::spawn(async move {
            verify(&replicas[n % 3], &format!("user{n}@example.test")).await
        }));
    }
    for ask in asks {
        let result = ask.await.expect("the request task");
        assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
    }
    // Probes of one host on one replica may pass a session on.
    assert!(peer.sessions() <= 12, "{} sessions", peer.sessions());
    assert!(
        peer.peak_sessions() <= 2,
        "{} sessions were open at once at a host capped at 2",
        peer.peak_sessions()
    );
}

#[tokio::test]
async fn the_probe_budget_of_a_domain_is_one_for_the_cluster() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes_starting_with("user")).await;
    let replicas = three_replicas(replica(&dns, &peer, 2, 4)).await;

    let mut probed = 0;
    let mut refused = 0;
    for n in 0..12 {
        let result = verify(&replicas[n % 3], &format!("user{n}@example.test")).await;
        match verdict(&result) {
            ("deliverable", "accepted") => probed += 1,
            ("unknown", "rate_limited") => refused += 1,
            other => panic!("unexpected {other:?}: {result}"),
        }
    }
    assert_eq!(
        (probed, refused),
        (4, 8),
        "4 probes a minute for the domain, over all replicas"
    );
    assert_eq!(peer.sessions(), 4);
}

#[tokio::test]
async fn an_address_being_verified_by_one_replica_is_not_probed_by_another() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(150),
        ..Script::mailboxes(&["alice@example.test"])
    })
    .await;
    let [a, b, _c] = three_replicas(replica(&dns, &peer, 2, 1_000)).await;

    let (first, second) = tokio::join!(verify(&a, "alice@example.test"), async {
        // Asked of b while a's probe is under way.
        tokio::time::sleep(Duration::from_millis(200)).await;
        verify(&b, "alice@example.test").await
    });
    assert_eq!(verdict(&first), ("deliverable", "accepted"), "{first}");
    assert_eq!(verdict(&second), ("deliverable", "accepted"), "{second}");
    assert_eq!(
        second["cached"], true,
        "b answered with a's verdict: {second}"
    );
    let asked = peer
        .rcpts()
        .iter()
        .filter(|rcpt| *rcpt == "alice@example.test")
        .count();
    assert_eq!(asked, 1, "one RCPT TO for the address over the cluster");
    assert_eq!(peer.sessions(), 1);
}

#[tokio::test]
async fn a_catch_all_answer_found_by_one_replica_serves_the_others() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes_starting_with("user")).await;
    let [a, b, _c] = three_replicas(replica(&dns, &peer, 2, 1_000)).await;

    let first = verify(&a, "user1@example.test").await;
    assert_eq!(verdict(&first), ("deliverable", "accepted"), "{first}");
    // The answer is shared in the background; wait until it is.
    let db = sqlx::PgPool::connect(&a.database_url)
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let shared: Option<(bool,)> =
            sqlx::query_as("select catch_all from catch_all_domains where domain = 'example.test'")
                .fetch_optional(&db)
                .await
                .expect("read catch_all_domains");
        if let Some((catch_all,)) = shared {
            assert!(!catch_all, "example.test refuses unknown addresses");
            break;
        }
        assert!(Instant::now() < deadline, "the answer was never shared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let second = b
        .send(
            b.request(Method::POST, "/verify")
                .json(&json!({"email": "user2@example.test"})),
        )
        .await
        .json();
    assert_eq!(verdict(&second), ("deliverable", "accepted"), "{second}");
    let checks = peer
        .rcpts()
        .iter()
        .filter(|rcpt| rcpt.starts_with("mailvet-"))
        .count();
    assert_eq!(checks, 1, "b asked no catch-all question of its own");
    let said = second["transcript"].to_string();
    assert!(said.contains("an earlier probe found"), "{said}");
}

#[tokio::test]
async fn a_suppression_made_through_one_replica_reaches_another_at_once() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let [a, b, _c] = three_replicas(replica(&dns, &peer, 2, 1_000)).await;

    assert_eq!(
        verdict(&verify(&b, "alice@example.test").await),
        ("deliverable", "accepted")
    );
    assert_eq!(verify(&b, "alice@example.test").await["cached"], true);
    // b hears changes as they happen (its poll is then a safety net, 15 s).
    let added = a
        .send(
            a.request(Method::POST, "/suppressions")
                .json(&json!({"email": "alice@example.test", "reason": "manual"})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let asked = Instant::now();
    loop {
        let result = verify(&b, "alice@example.test").await;
        if result["reason"] == "suppressed" {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_millis(200),
            "200 ms after the change b still answers {result}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The claim itself: a full scope refuses, a lapsed lease is taken over,
/// a release frees the slot, and the budget refuses without taking a slot.
#[tokio::test]
async fn session_slots_are_leases_that_lapse_and_budgets_refuse_before_claiming() {
    let db = PgTestDb::new().await;
    let replica = db.store.coordination().expect("Postgres coordinates");
    let scopes = ["host:mx.example.test".to_owned(), "ip:192.0.2.1".to_owned()];
    let ask = |lease_id: i64, lease: Duration| SessionAsk {
        lease_id,
        scopes: &scopes,
        cap: 2,
        lease,
        budget: &[],
        domain: "example.test",
    };
    let long = Duration::from_secs(60);
    assert!(
        replica
            .claim_session(&ask(1, long))
            .await
            .expect("the database answers")
            .granted
    );
    let short = replica
        .claim_session(&ask(2, Duration::from_millis(300)))
        .await
        .expect("the database answers");
    assert!(short.granted);
    assert!(
        !replica
            .claim_session(&ask(3, long))
            .await
            .expect("the database answers")
            .granted,
        "a third session at a host capped at 2"
    );
    // The second lease lapses (its replica died): its slot is free again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        replica
            .claim_session(&ask(3, long))
            .await
            .expect("the database answers")
            .granted
    );
    assert!(
        !replica
            .claim_session(&ask(4, long))
            .await
            .expect("the database answers")
            .granted
    );
    replica
        .release_sessions(&[1])
        .await
        .expect("the database answers");
    assert!(
        replica
            .claim_session(&ask(4, long))
            .await
            .expect("the database answers")
            .granted
    );
    let held: i64 = sqlx::query_scalar("select count(*) from session_leases")
        .fetch_one(db.store.pool())
        .await
        .expect("the database answers");
    assert_eq!(held, 4, "two scopes, two slots each: {held}");

    // A budget of 2 a minute: two probes, then a refusal that takes no slot.
    replica
        .release_sessions(&[3, 4])
        .await
        .expect("the database answers");
    let budget = [BudgetBucket {
        key: "all:example.test".to_owned(),
        emission: Duration::from_secs(30),
    }];
    let with_budget = |lease_id: i64| SessionAsk {
        budget: &budget,
        ..ask(lease_id, long)
    };
    assert!(
        replica
            .claim_session(&with_budget(5))
            .await
            .expect("the database answers")
            .granted
    );
    replica
        .release_sessions(&[5])
        .await
        .expect("the database answers");
    assert!(
        replica
            .claim_session(&with_budget(6))
            .await
            .expect("the database answers")
            .granted
    );
    replica
        .release_sessions(&[6])
        .await
        .expect("the database answers");
    let refused = replica
        .claim_session(&with_budget(7))
        .await
        .expect("the database answers");
    assert!(!refused.granted);
    let (bucket, wait) = refused.budget_refused.expect("the budget refuses");
    assert_eq!(bucket, 0);
    assert!(
        wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    let held: i64 = sqlx::query_scalar("select count(*) from session_leases")
        .fetch_one(db.store.pool())
        .await
        .expect("the database answers");
    assert_eq!(held, 0, "a refused budget claims nothing");
}
