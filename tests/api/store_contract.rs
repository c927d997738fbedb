//! One story, told against every backend: whatever the database, the store
//! keeps the same promises. Each test runs on a fresh SQLite file and on a
//! fresh Postgres database (TEST_DATABASE_URL).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use mailvet::store::Database;
use mailvet::store::{
    CachedVerification, ChangeFilter, ChunkLimit, Evidence, EvidenceKind, ItemOutcome, JobStatus,
    NewBounce, NewBounceEvent, NewJobItem, NewSuppression, RemovalFilter, Store, Upserted,
};
use mailvet::suppress::SoftBouncePolicy;
use mailvet::vocab::{BounceKind, BounceOrigin, Diagnosis, SmtpEvidence};
use mailvet::vocab::{Reason, Status};
use mailvet::vocab::{SuppressionReason, SuppressionSource};
use serde_json::json;

/// Runs each story on both backends, as `sqlite::story` and `postgres::story`.
macro_rules! on_every_backend {
    ($($story:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $story() {
                    let db = crate::common::db::SqliteTestDb::new().await;
                    super::$story(db.store.clone() as std::sync::Arc<dyn mailvet::store::Database>).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $story() {
                    let db = crate::common::db::PgTestDb::new().await;
                    super::$story(db.store.clone() as std::sync::Arc<dyn mailvet::store::Database>).await;
                }
            )+
        }
    };
}

on_every_backend!(
    migrating_again_changes_nothing,
    a_cached_verdict_is_served_until_it_expires,
    caching_a_verdict_again_replaces_the_old_one,
    purging_deletes_only_expired_verdicts,
    a_suppression_can_be_added_read_and_removed,
    adding_an_identical_suppression_again_changes_nothing,
    a_batch_of_suppressions_is_written_as_each_alone_would_be,
    a_batch_of_addresses_is_looked_up_in_one_read,
    new_evidence_updates_an_entry_and_moves_it_in_the_feed,
    a_removed_address_can_be_suppressed_again,
    the_feed_pages_through_changes_in_order_with_tombstones,
    concurrent_writers_all_land_with_distinct_sequences,
    bounces_are_counted_by_kind_and_window,
    the_feed_filters_by_reason_and_source,
    bounces_suppress_hard_failures_complaints_and_repeated_soft_ones,
    an_import_adds_only_absent_addresses,
    an_undo_removes_only_matching_live_entries_and_their_verdicts,
    the_feed_filters_by_change_time,
    job_claims_are_exclusive_leased_and_counted_once,
    a_jobs_large_domains_are_claimed_first_largest_first,
    a_claim_takes_at_most_its_number_of_domains,
    uploads_and_finished_jobs_are_purged,
    items_cannot_be_added_to_a_discarded_job,
    daily_counts_fall_on_their_utc_days,
    recent_jobs_come_newest_first,
);

/// Times round-trip to the millisecond on every backend.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .expect("truncate to milliseconds")
}

fn verdict(
    key: &str,
    reason: Reason,
    checked_at: DateTime<Utc>,
    ttl: Duration,
) -> CachedVerification {
    CachedVerification {
        address_key: key.to_owned(),
        email: key.to_owned(),
        status: reason.status(),
        reason,
        result: json!({"email": key, "status": reason.status(), "reason": reason}),
        checked_at,
        expires_at: checked_at + ttl,
    }
}

fn suppression(key: &str, reason: SuppressionReason) -> NewSuppression {
    NewSuppression {
        address_key: key.to_owned(),
        email: key.to_owned(),
        reason,
        source: SuppressionSource::Verify,
        evidence: Evidence::smtp_reply(
            &SmtpEvidence {
                host: "mx.example.test".to_owned(),
                code: 550,
                enhanced_code: Some("5.1.1".to_owned()),
                message: format!("<{key}>: Recipient address rejected: User unknown"),
            },
            now(),
        ),
    }
}

async fn migrating_again_changes_nothing(store: Arc<dyn Database>) {
    store
        .migrate()
        .await
        .expect("a second migration run succeeds");
    store.ping().await.expect("the store answers");
}

async fn a_cached_verdict_is_served_until_it_expires(store: Arc<dyn Database>) {
    let t0 = now();
    let entry = verdict(
        "alice@example.test",
        Reason::Accepted,
        t0,
        Duration::hours(1),
    );
    store
        .record_verifications(std::slice::from_ref(&entry))
        .await
        .expect("cache");

    let hit = store
        .cached_verification("alice@example.test", t0 + Duration::minutes(59))
        .await
        .expect("read");
    assert_eq!(hit, Some(entry));
    let expired = store
        .cached_verification("alice@example.test", t0 + Duration::hours(1))
        .await
        .expect("read");
    assert_eq!(
        expired, None,
        "a verdict is not served at or after its expiry"
    );
    let other = store
        .cached_verification("bob@example.test", t0)
        .await
        .expect("read");
    assert_eq!(other, None);
}

async fn caching_a_verdict_again_replaces_the_old_one(store: Arc<dyn Database>) {
    let t0 = now();
    let first = verdict(
        "carol@example.test",
        Reason::Greylisted,
        t0,
        Duration::minutes(5),
    );
    let second = verdict(
        "carol@example.test",
        Reason::MailboxNotFound,
        t0 + Duration::minutes(1),
        Duration::days(7),
    );
    store
        .record_verifications(std::slice::from_ref(&first))
        .await
        .expect("cache");
    store
        .record_verifications(std::slice::from_ref(&second))
        .await
        .expect("cache again");
    let hit = store
        .cached_verification("carol@example.test", t0 + Duration::hours(1))
        .await
        .expect("read")
        .expect("the newer verdict is cached");
    assert_eq!(hit.status, Status::Undeliverable);
    assert_eq!(hit, second);

    // Within one batch as well: the later of two verdicts for an address
    // is kept, and every address of the batch is written.
    let batch = [
        verdict(
            "dave@example.test",
            Reason::Greylisted,
            t0,
            Duration::minutes(5),
        ),
        verdict("erin@example.test", Reason::Accepted, t0, Duration::days(7)),
        verdict("dave@example.test", Reason::Accepted, t0, Duration::days(7)),
    ];
    store
        .record_verifications(&batch)
        .await
        .expect("cache a batch");
    let later = t0 + Duration::hours(1);
    for (email, expected) in [
        ("dave@example.test", &batch[2]),
        ("erin@example.test", &batch[1]),
    ] {
        let hit = store.cached_verification(email, later).await.expect("read");
        assert_eq!(hit.as_ref(), Some(expected), "{email}");
    }
}

async fn purging_deletes_only_expired_verdicts(store: Arc<dyn Database>) {
    let t0 = now();
    for (i, ttl) in [1, 2, 30, 60].into_iter().enumerate() {
        let key = format!("user{i}@example.test");
        store
            .record_verifications(std::slice::from_ref(&verdict(
                &key,
                Reason::Accepted,
                t0,
                Duration::minutes(ttl),
            )))
            .await
            .expect("cache");
    }
    let purged = store
        .purge_expired_verifications(t0 + Duration::minutes(10))
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    let later = t0 + Duration::minutes(20);
    assert!(
        store
            .cached_verification("user0@example.test", t0)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .cached_verification("user2@example.test", later)
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .cached_verification("user3@example.test", later)
            .await
            .expect("read")
            .is_some()
    );
}

async fn a_suppression_can_be_added_read_and_removed(store: Arc<dyn Database>) {
    let t0 = now();
    let entry = suppression("dave@example.test", SuppressionReason::MailboxNotFound);
    let (stored, outcome) = store.upsert_suppression(&entry, t0).await.expect("add");
    assert_eq!(outcome, Upserted::Created);
    assert_eq!(stored.email, "dave@example.test");
    assert_eq!(stored.reason, SuppressionReason::MailboxNotFound);
    assert_eq!(stored.evidence.as_ref(), Some(&entry.evidence));
    assert_eq!(stored.diagnosis, entry.evidence.diagnosis());
    assert_eq!(stored.diagnosis.smtp_code, Some(550));
    assert_eq!((stored.created_at, stored.updated_at), (t0, t0));
    assert!(!stored.deleted);

    let read = store.suppression("dave@example.test").await.expect("read");
    assert_eq!(read.as_ref(), Some(&stored));

    let t1 = t0 + Duration::seconds(5);
    let tombstone = store
        .remove_suppression("dave@example.test", t1)
        .await
        .expect("remove")
        .expect("the address was suppressed");
    assert!(tombstone.deleted);
    assert!(tombstone.seq > stored.seq);
    assert_eq!(tombstone.updated_at, t1);
    assert_eq!(
        store.suppression("dave@example.test").await.expect("read"),
        None
    );
    assert_eq!(
        store
            .remove_suppression("dave@example.test", t1)
            .await
            .expect("remove again"),
        None,
        "removing an address that is not suppressed reports that"
    );
    assert_eq!(
        store
            .remove_suppression("nobody@example.test", t1)
            .await
            .expect("remove"),
        None
    );
}

async fn adding_an_identical_suppression_again_changes_nothing(store: Arc<dyn Database>) {
    let t0 = now();
    let entry = suppression("erin@example.test", SuppressionReason::Manual);
    let (first, _) = store.upsert_suppression(&entry, t0).await.expect("add");
    let (again, outcome) = store
        .upsert_suppression(&entry, t0 + Duration::minutes(1))
        .await
        .expect("add again");
    assert_eq!(outcome, Upserted::Unchanged);
    assert_eq!(again, first, "same sequence, same times");
    let feed = store
        .suppression_changes(0, 100, &ChangeFilter::default())
        .await
        .expect("feed");
    assert_eq!(feed.len(), 1);
    // The sequence given back was not consumed: the next change follows on.
    let (other, _) = store
        .upsert_suppression(
            &suppression("frank@example.test", SuppressionReason::Manual),
            t0,
        )
        .await
        .expect("add another");
    assert_eq!(other.seq, first.seq + 1);
}

async fn a_batch_of_suppressions_is_written_as_each_alone_would_be(store: Arc<dyn Database>) {
    let t0 = now();
    let (ivan, _) = store
        .upsert_suppression(
            &suppression("ivan@example.test", SuppressionReason::Manual),
            t0,
        )
        .await
        .expect("add");
    let t1 = t0 + Duration::minutes(1);
    let mut judy_again = suppression("judy@example.test", SuppressionReason::MailboxDisabled);
    judy_again.source = SuppressionSource::Bounce;
    let batch = [
        // New.
        suppression("judy@example.test", SuppressionReason::MailboxNotFound),
        // Identical to a live entry: left as it is.
        suppression("ivan@example.test", SuppressionReason::Manual),
        // The same address again, with other evidence: it sees the first.
        judy_again,
        suppression("kate@example.test", SuppressionReason::MailboxNotFound),
    ];
    let upserted = store.upsert_suppressions(&batch, t1).await.expect("batch");
    let outcomes: Vec<Upserted> = upserted.iter().map(|(_, outcome)| *outcome).collect();
    assert_eq!(
        outcomes,
        [
            Upserted::Created,
            Upserted::Unchanged,
            Upserted::Updated,
            Upserted::Created
        ]
    );
    assert_eq!(upserted[1].0, ivan, "an unchanged entry keeps its sequence");
    let seqs: Vec<i64> = [0, 2, 3].iter().map(|&i| upserted[i].0.seq).collect();
    assert_eq!(
        seqs,
        [ivan.seq + 1, ivan.seq + 2, ivan.seq + 3],
        "one sequence per change, in the batch's order, none for the unchanged"
    );
    let judy = store
        .suppression("judy@example.test")
        .await
        .expect("read")
        .expect("judy is suppressed");
    assert_eq!(judy.reason, SuppressionReason::MailboxDisabled);
    assert_eq!(judy.created_at, t1);
    let feed: Vec<String> = store
        .suppression_changes(ivan.seq, 100, &ChangeFilter::default())
        .await
        .expect("feed")
        .into_iter()
        .map(|entry| entry.email)
        .collect();
    assert_eq!(feed, ["judy@example.test", "kate@example.test"]);

    // A batch that changes nothing takes no sequence.
    let unchanged = store
        .upsert_suppressions(
            &[suppression("ivan@example.test", SuppressionReason::Manual)],
            t1,
        )
        .await
        .expect("batch");
    assert_eq!(unchanged[0].1, Upserted::Unchanged);
    let (next, _) = store
        .upsert_suppression(
            &suppression("liam@example.test", SuppressionReason::Manual),
            t1,
        )
        .await
        .expect("add");
    assert_eq!(next.seq, ivan.seq + 4);
    assert!(
        store
            .upsert_suppressions(&[], t1)
            .await
            .expect("an empty batch")
            .is_empty()
    );
}

async fn a_batch_of_addresses_is_looked_up_in_one_read(store: Arc<dyn Database>) {
    let t0 = now();
    let fresh = verdict("mia@example.test", Reason::Accepted, t0, Duration::hours(1));
    let stale = verdict(
        "ned@example.test",
        Reason::Accepted,
        t0,
        Duration::minutes(1),
    );
    store
        .record_verifications(&[fresh.clone(), stale])
        .await
        .expect("cache");
    for key in ["mia@example.test", "olive@example.test", "pat@example.test"] {
        store
            .upsert_suppression(&suppression(key, SuppressionReason::Manual), t0)
            .await
            .expect("add");
    }
    store
        .remove_suppression("pat@example.test", t0)
        .await
        .expect("remove")
        .expect("pat was suppressed");
    let keys: Vec<String> = [
        "mia@example.test",
        "ned@example.test",
        "olive@example.test",
        "pat@example.test",
        "quinn@example.test",
    ]
    .map(str::to_owned)
    .to_vec();

    let cached = store
        .cached_verifications_among(&keys, t0 + Duration::minutes(5))
        .await
        .expect("read");
    assert_eq!(cached, [fresh], "only verdicts that have not expired");

    let mut live: Vec<String> = store
        .suppressions_among(&keys)
        .await
        .expect("read")
        .into_iter()
        .map(|entry| entry.address_key)
        .collect();
    live.sort();
    assert_eq!(
        live,
        ["mia@example.test", "olive@example.test"],
        "live entries only: a tombstone is not a suppression"
    );
    // More keys than one statement's chunk.
    let many: Vec<String> = (0..2_500)
        .map(|n| format!("nobody{n}@example.test"))
        .chain(keys)
        .collect();
    assert_eq!(
        store.suppressions_among(&many).await.expect("read").len(),
        2
    );
    assert_eq!(
        store
            .cached_verifications_among(&many, t0)
            .await
            .expect("read")
            .len(),
        2
    );
}

async fn new_evidence_updates_an_entry_and_moves_it_in_the_feed(store: Arc<dyn Database>) {
    let t0 = now();
    let (first, _) = store
        .upsert_suppression(
            &suppression("gina@example.test", SuppressionReason::Manual),
            t0,
        )
        .await
        .expect("add");
    store
        .upsert_suppression(
            &suppression("hank@example.test", SuppressionReason::Manual),
            t0,
        )
        .await
        .expect("add");
    let t1 = t0 + Duration::hours(1);
    let mut bounce = suppression("gina@example.test", SuppressionReason::MailboxDisabled);
    bounce.source = SuppressionSource::Bounce;
    bounce.evidence.enhanced_code = Some("5.2.1".to_owned());
    let (updated, outcome) = store.upsert_suppression(&bounce, t1).await.expect("update");
    assert_eq!(outcome, Upserted::Updated);
    assert_eq!(updated.reason, SuppressionReason::MailboxDisabled);
    assert_eq!(updated.source, SuppressionSource::Bounce);
    assert_eq!(updated.created_at, t0, "an update keeps the creation time");
    assert_eq!(updated.updated_at, t1);
    let feed: Vec<_> = store
        .suppression_changes(first.seq, 100, &ChangeFilter::default())
        .await
        .expect("feed")
        .into_iter()
        .map(|entry| entry.email)
        .collect();
    assert_eq!(feed, ["hank@example.test", "gina@example.test"]);
}

async fn a_removed_address_can_be_suppressed_again(store: Arc<dyn Database>) {
    let t0 = now();
    let entry = suppression("ivan@example.test", SuppressionReason::Complaint);
    store.upsert_suppression(&entry, t0).await.expect("add");
    store
        .remove_suppression("ivan@example.test", t0 + Duration::minutes(1))
        .await
        .expect("remove");
    let t2 = t0 + Duration::minutes(2);
    let (again, outcome) = store
        .upsert_suppression(&entry, t2)
        .await
        .expect("add again");
    assert_eq!(outcome, Upserted::Created);
    assert!(!again.deleted);
    assert_eq!(again.created_at, t2, "a re-added address is a new entry");
    let feed = store
        .suppression_changes(0, 100, &ChangeFilter::default())
        .await
        .expect("feed");
    assert_eq!(feed.len(), 1, "one row per address, at its latest change");
    assert!(!feed[0].deleted);
}

async fn the_feed_pages_through_changes_in_order_with_tombstones(store: Arc<dyn Database>) {
    let t0 = now();
    for i in 0..25 {
        let key = format!("user{i:02}@example.test");
        store
            .upsert_suppression(&suppression(&key, SuppressionReason::MailboxNotFound), t0)
            .await
            .expect("add");
    }
    for i in (0..25).step_by(5) {
        store
            .remove_suppression(&format!("user{i:02}@example.test"), t0)
            .await
            .expect("remove");
    }
    // A client pages with the last sequence it saw as its cursor.
    let mut seen = BTreeMap::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let page = store
            .suppression_changes(cursor, 7, &ChangeFilter::default())
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        pages += 1;
        assert!(page.len() <= 7);
        assert!(
            page.windows(2).all(|pair| pair[0].seq < pair[1].seq),
            "in change order"
        );
        assert!(page[0].seq > cursor);
        cursor = page.last().map(|entry| entry.seq).unwrap_or(cursor);
        for entry in page {
            seen.insert(entry.email.clone(), entry.deleted);
        }
    }
    assert_eq!(pages, 4, "25 addresses in pages of 7");
    assert_eq!(seen.len(), 25);
    let tombstones: Vec<_> = seen
        .iter()
        .filter(|(_, deleted)| **deleted)
        .map(|(e, _)| e.as_str())
        .collect();
    assert_eq!(
        tombstones,
        [
            "user00@example.test",
            "user05@example.test",
            "user10@example.test",
            "user15@example.test",
            "user20@example.test"
        ]
    );
    assert!(
        store
            .suppression_changes(cursor, 7, &ChangeFilter::default())
            .await
            .expect("poll")
            .is_empty()
    );
}

async fn concurrent_writers_all_land_with_distinct_sequences(store: Arc<dyn Database>) {
    let t0 = now();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..20 {
                // Writers share half of their addresses, so they contend.
                let key = format!("user{}@example.test", (writer % 2) * 100 + i);
                let reason = if writer % 3 == 0 {
                    SuppressionReason::Manual
                } else {
                    SuppressionReason::MailboxNotFound
                };
                store
                    .upsert_suppression(&suppression(&key, reason), t0)
                    .await
                    .expect("concurrent add");
                if i % 4 == writer % 4 {
                    store
                        .remove_suppression(&key, t0)
                        .await
                        .expect("concurrent remove");
                }
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
    let feed = store
        .suppression_changes(0, 1000, &ChangeFilter::default())
        .await
        .expect("feed");
    assert_eq!(feed.len(), 40, "every address written appears once");
    let mut seqs: Vec<_> = feed.iter().map(|entry| entry.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 40, "sequences are distinct");
    for entry in &feed {
        let live = store.suppression(&entry.address_key).await.expect("read");
        assert_eq!(live.is_some(), !entry.deleted, "{}", entry.email);
    }
}

async fn bounces_are_counted_by_kind_and_window(store: Arc<dyn Database>) {
    let t0 = now();
    let event = |kind, days_ago: i64| NewBounceEvent {
        address_key: "jane@example.test".to_owned(),
        email: "jane@example.test".to_owned(),
        kind,
        origin: BounceOrigin::Message,
        evidence: Diagnosis {
            smtp_code: Some(452),
            enhanced_code: Some("4.2.2".to_owned()),
            diagnostic: Some("Mailbox full".to_owned()),
            mx_host: Some("mx.example.test".to_owned()),
        },
        received_at: t0 - Duration::days(days_ago),
    };
    let first = store
        .record_bounce(&event(BounceKind::Soft, 1))
        .await
        .expect("record");
    assert_eq!(first.kind, BounceKind::Soft);
    assert_eq!(first.evidence.smtp_code, Some(452));
    assert_eq!(first.received_at, t0 - Duration::days(1));
    for (kind, days_ago) in [
        (BounceKind::Soft, 3),
        (BounceKind::Soft, 10),
        (BounceKind::Hard, 2),
    ] {
        store
            .record_bounce(&event(kind, days_ago))
            .await
            .expect("record");
    }
    let week = t0 - Duration::days(7);
    assert_eq!(
        store
            .count_bounces("jane@example.test", BounceKind::Soft, week)
            .await
            .expect("count"),
        2
    );
    assert_eq!(
        store
            .count_bounces("jane@example.test", BounceKind::Hard, week)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .count_bounces("jane@example.test", BounceKind::Complaint, week)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        store
            .count_bounces("kim@example.test", BounceKind::Soft, week)
            .await
            .expect("count"),
        0
    );
}

async fn the_feed_filters_by_reason_and_source(store: Arc<dyn Database>) {
    let t0 = now();
    let mut bounce = suppression("kate@example.test", SuppressionReason::MailboxNotFound);
    bounce.source = SuppressionSource::Bounce;
    store.upsert_suppression(&bounce, t0).await.expect("add");
    store
        .upsert_suppression(
            &suppression("liam@example.test", SuppressionReason::Manual),
            t0,
        )
        .await
        .expect("add");
    store
        .upsert_suppression(
            &suppression("mona@example.test", SuppressionReason::MailboxNotFound),
            t0,
        )
        .await
        .expect("add");
    let emails = |entries: Vec<mailvet::store::Suppression>| {
        entries
            .into_iter()
            .map(|entry| entry.email)
            .collect::<Vec<_>>()
    };
    let by_reason = ChangeFilter {
        reason: Some(SuppressionReason::MailboxNotFound),
        ..ChangeFilter::default()
    };
    assert_eq!(
        emails(
            store
                .suppression_changes(0, 100, &by_reason)
                .await
                .expect("feed")
        ),
        ["kate@example.test", "mona@example.test"]
    );
    let by_both = ChangeFilter {
        reason: Some(SuppressionReason::MailboxNotFound),
        source: Some(SuppressionSource::Verify),
        ..ChangeFilter::default()
    };
    assert_eq!(
        emails(
            store
                .suppression_changes(0, 100, &by_both)
                .await
                .expect("feed")
        ),
        ["mona@example.test"]
    );
}

fn bounce(
    email: &str,
    kind: BounceKind,
    suppress_as: Option<SuppressionReason>,
    at: DateTime<Utc>,
) -> NewBounce {
    NewBounce {
        event: NewBounceEvent {
            address_key: email.to_owned(),
            email: email.to_owned(),
            kind,
            origin: BounceOrigin::Message,
            evidence: Diagnosis {
                smtp_code: Some(if kind == BounceKind::Soft { 452 } else { 550 }),
                enhanced_code: Some(
                    if kind == BounceKind::Soft {
                        "4.2.2"
                    } else {
                        "5.1.1"
                    }
                    .to_owned(),
                ),
                diagnostic: Some("from a bounce".to_owned()),
                mx_host: Some("mx.example.test".to_owned()),
            },
            received_at: at,
        },
        suppress_as,
    }
}

async fn bounces_suppress_hard_failures_complaints_and_repeated_soft_ones(
    store: Arc<dyn Database>,
) {
    let t0 = now();
    let policy = SoftBouncePolicy::default();
    let report = [
        bounce(
            "hard@example.test",
            BounceKind::Hard,
            Some(SuppressionReason::MailboxNotFound),
            t0,
        ),
        bounce(
            "angry@example.test",
            BounceKind::Complaint,
            Some(SuppressionReason::Complaint),
            t0,
        ),
        bounce("soft@example.test", BounceKind::Soft, None, t0),
        bounce("blocked@example.test", BounceKind::Undetermined, None, t0),
    ];
    let suppressed = store
        .record_bounces(&report, &policy, t0)
        .await
        .expect("record");
    assert_eq!(suppressed, [true, true, false, false]);
    let hard = store
        .suppression("hard@example.test")
        .await
        .expect("read")
        .expect("suppressed");
    assert_eq!(hard.reason, SuppressionReason::MailboxNotFound);
    assert_eq!(hard.source, SuppressionSource::Bounce);
    assert_eq!(hard.diagnosis.enhanced_code.as_deref(), Some("5.1.1"));
    let evidence = hard
        .evidence
        .clone()
        .expect("a bounce's suppression keeps its report");
    assert_eq!(evidence.kind, EvidenceKind::Dsn);
    assert_eq!(evidence.origin, Some(BounceOrigin::Message));
    assert_eq!(
        (evidence.code, evidence.enhanced_code.as_deref()),
        (Some(550), Some("5.1.1"))
    );
    assert_eq!(evidence.text.as_deref(), Some("from a bounce"));
    assert_eq!(evidence.observed_at, t0);
    assert!(
        store
            .suppression("blocked@example.test")
            .await
            .expect("read")
            .is_none()
    );

    // Two more soft bounces within the week: the third suppresses.
    let second = [bounce(
        "soft@example.test",
        BounceKind::Soft,
        None,
        t0 + Duration::days(2),
    )];
    assert_eq!(
        store
            .record_bounces(&second, &policy, t0 + Duration::days(2))
            .await
            .expect("record"),
        [false]
    );
    let third = [bounce(
        "soft@example.test",
        BounceKind::Soft,
        None,
        t0 + Duration::days(3),
    )];
    assert_eq!(
        store
            .record_bounces(&third, &policy, t0 + Duration::days(3))
            .await
            .expect("record"),
        [true]
    );
    let soft = store
        .suppression("soft@example.test")
        .await
        .expect("read")
        .expect("suppressed");
    assert_eq!(soft.reason, SuppressionReason::SoftBounceLimit);

    // Soft bounces spread over more than the window never add up.
    for day in [0, 8, 16] {
        let at = t0 + Duration::days(day);
        let spread = [bounce("slow@example.test", BounceKind::Soft, None, at)];
        assert_eq!(
            store
                .record_bounces(&spread, &policy, at)
                .await
                .expect("record"),
            [false]
        );
    }

    // A later bounce never overwrites the first evidence.
    let later = [bounce(
        "hard@example.test",
        BounceKind::Complaint,
        Some(SuppressionReason::Complaint),
        t0,
    )];
    assert_eq!(
        store
            .record_bounces(&later, &policy, t0)
            .await
            .expect("record"),
        [true]
    );
    let hard_again = store
        .suppression("hard@example.test")
        .await
        .expect("read")
        .expect("suppressed");
    assert_eq!(hard_again, hard);
    assert_eq!(
        store
            .count_bounces("hard@example.test", BounceKind::Complaint, t0)
            .await
            .expect("count"),
        1,
        "the event itself is still recorded"
    );
}

/// A queued job of `count` addresses over three domains.
async fn queued_job(store: &dyn Store, count: u64, at: DateTime<Utc>) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    store.create_job(id, at).await.expect("create");
    let items: Vec<NewJobItem> = (0..count)
        .map(|n| NewJobItem {
            email: format!("u{n}@d{}.test", n % 3),
            domain: format!("d{}.test", n % 3),
        })
        .collect();
    store.add_job_items(id, 0, &items, at).await.expect("items");
    assert_eq!(
        store.job(id).await.expect("read"),
        None,
        "uploading jobs are not shown"
    );
    let job = store
        .seal_job(id, count, None, &[], at)
        .await
        .expect("seal");
    assert_eq!((job.status, job.total), (JobStatus::Queued, count));
    id
}

fn done(seq: u64) -> ItemOutcome {
    ItemOutcome::Done {
        seq,
        status: Status::Deliverable,
        result: format!("{{\"seq\": {seq}}}"),
    }
}

fn hand_made(key: &str) -> NewSuppression {
    NewSuppression {
        address_key: key.to_owned(),
        email: key.to_owned(),
        reason: SuppressionReason::Manual,
        source: SuppressionSource::Api,
        evidence: Evidence::note(None, now()),
    }
}

fn live_emails(entries: Vec<mailvet::store::Suppression>) -> Vec<String> {
    entries
        .into_iter()
        .filter(|entry| !entry.deleted)
        .map(|entry| entry.email)
        .collect()
}

async fn an_import_adds_only_absent_addresses(store: Arc<dyn Database>) {
    let t0 = now();
    let (bounced, _) = store
        .upsert_suppression(
            &suppression("olga@example.test", SuppressionReason::MailboxNotFound),
            t0,
        )
        .await
        .expect("add");
    let import = [
        hand_made("olga@example.test"),
        hand_made("pete@example.test"),
        hand_made("quin@example.test"),
        hand_made("pete@example.test"),
    ];
    let added = store
        .import_suppressions(&import, t0)
        .await
        .expect("import");
    assert_eq!(added, [false, true, true, false]);
    let olga = store.suppression("olga@example.test").await.expect("read");
    assert_eq!(
        olga,
        Some(bounced),
        "an entry on the list keeps its evidence"
    );
    let pete = store
        .suppression("pete@example.test")
        .await
        .expect("read")
        .expect("imported");
    assert_eq!(pete.source, SuppressionSource::Api);
    assert_eq!(
        pete.evidence.map(|evidence| evidence.kind),
        Some(EvidenceKind::Note)
    );
    let feed = store
        .suppression_changes(0, 100, &ChangeFilter::default())
        .await
        .expect("feed");
    assert_eq!(
        live_emails(feed.clone()),
        [
            "olga@example.test",
            "pete@example.test",
            "quin@example.test"
        ]
    );
    let seqs: Vec<i64> = feed.iter().map(|entry| entry.seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");

    // Importing again adds nothing and takes no change sequence.
    let last = store.suppression_seq().await.expect("seq");
    let again = store
        .import_suppressions(&import, t0 + Duration::minutes(1))
        .await
        .expect("import again");
    assert_eq!(again, [false; 4]);
    assert_eq!(store.suppression_seq().await.expect("seq"), last);
}

async fn an_undo_removes_only_matching_live_entries_and_their_verdicts(store: Arc<dyn Database>) {
    let t0 = now();
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let add = |key: &'static str, reason, source, minutes| {
        let store = store.clone();
        async move {
            let mut entry = suppression(key, reason);
            entry.source = source;
            store
                .upsert_suppression(&entry, at(minutes))
                .await
                .expect("add");
        }
    };
    use SuppressionReason::{MailboxNotFound, NoSuchDomain};
    use SuppressionSource::{Bounce, Verify};
    add("before@example.test", NoSuchDomain, Verify, 0).await;
    add("bad1@example.test", NoSuchDomain, Verify, 10).await;
    add("bad2@example.test", MailboxNotFound, Verify, 11).await;
    add("bounced@example.test", NoSuchDomain, Bounce, 12).await;
    add("after@example.test", NoSuchDomain, Verify, 30).await;
    add("gone@example.test", NoSuchDomain, Verify, 13).await;
    store
        .remove_suppression("gone@example.test", at(14))
        .await
        .expect("remove");
    store
        .record_verifications(&[
            verdict(
                "bad1@example.test",
                Reason::NoSuchDomain,
                at(10),
                Duration::days(1),
            ),
            verdict(
                "before@example.test",
                Reason::NoSuchDomain,
                at(0),
                Duration::days(1),
            ),
        ])
        .await
        .expect("cache");
    let seq_before = store.suppression_seq().await.expect("seq");

    // Only one reason: one entry.
    let only_mailbox = RemovalFilter {
        source: Verify,
        reason: Some(MailboxNotFound),
        since: at(5),
        until: Some(at(20)),
    };
    assert_eq!(
        store
            .remove_suppressions(&only_mailbox, at(40))
            .await
            .expect("undo"),
        1
    );
    let window = RemovalFilter {
        reason: None,
        ..only_mailbox
    };
    assert_eq!(
        store
            .remove_suppressions(&window, at(41))
            .await
            .expect("undo"),
        1,
        "bad2 is gone already, gone was removed before, the bounce is another source"
    );
    assert_eq!(
        store
            .remove_suppressions(&window, at(42))
            .await
            .expect("undo"),
        0,
        "an undo done twice removes nothing more"
    );
    for (key, live) in [
        ("before@example.test", true),
        ("bad1@example.test", false),
        ("bad2@example.test", false),
        ("bounced@example.test", true),
        ("after@example.test", true),
        ("gone@example.test", false),
    ] {
        let entry = store.suppression(key).await.expect("read");
        assert_eq!(entry.is_some(), live, "{key}");
    }
    // Two tombstones, each with a sequence of its own, after every earlier change.
    let tombstones: Vec<_> = store
        .suppression_changes(seq_before, 100, &ChangeFilter::default())
        .await
        .expect("feed");
    let removed: Vec<(&str, bool)> = tombstones
        .iter()
        .map(|entry| (entry.email.as_str(), entry.deleted))
        .collect();
    assert_eq!(
        removed,
        [("bad2@example.test", true), ("bad1@example.test", true)]
    );
    assert_eq!(tombstones[1].updated_at, at(41));
    // The verdict behind an undone suppression is forgotten; others stay.
    assert!(
        store
            .cached_verification("bad1@example.test", at(43))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .cached_verification("before@example.test", at(43))
            .await
            .expect("read")
            .is_some()
    );
}

async fn the_feed_filters_by_change_time(store: Arc<dyn Database>) {
    let t0 = now();
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    for (key, minutes) in [
        ("early@example.test", 0),
        ("middle@example.test", 10),
        ("late@example.test", 20),
    ] {
        store
            .upsert_suppression(&hand_made(key), at(minutes))
            .await
            .expect("add");
    }
    // Removing `early` at minute 15 is a change at minute 15.
    store
        .remove_suppression("early@example.test", at(15))
        .await
        .expect("remove");
    let changed = |since: Option<i64>, until: Option<i64>| {
        let store = store.clone();
        async move {
            let filter = ChangeFilter {
                since: since.map(at),
                until: until.map(at),
                ..ChangeFilter::default()
            };
            store
                .suppression_changes(0, 100, &filter)
                .await
                .expect("feed")
                .into_iter()
                .map(|entry| entry.email)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        changed(Some(10), None).await,
        [
            "middle@example.test",
            "late@example.test",
            "early@example.test"
        ]
    );
    assert_eq!(
        changed(Some(10), Some(20)).await,
        ["middle@example.test", "early@example.test"],
        "`since` is inclusive, `until` exclusive"
    );
    assert_eq!(changed(None, Some(10)).await, Vec::<String>::new());
    assert_eq!(changed(Some(16), None).await, ["late@example.test"]);
}

/// A queued job of one address per domain in `domains` (`u{n}@{domain}`,
/// `seq` n), with `large` as its large domains.
async fn job_over(
    store: &dyn Store,
    domains: &[&str],
    large: &[&str],
    at: DateTime<Utc>,
) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    store.create_job(id, at).await.expect("create");
    let items: Vec<NewJobItem> = domains
        .iter()
        .enumerate()
        .map(|(n, domain)| NewJobItem {
            email: format!("u{n}@{domain}"),
            domain: (*domain).to_owned(),
        })
        .collect();
    store.add_job_items(id, 0, &items, at).await.expect("items");
    let large: Vec<String> = large.iter().map(|domain| (*domain).to_owned()).collect();
    store
        .seal_job(id, items.len() as u64, None, &large, at)
        .await
        .expect("seal");
    id
}

/// A claim limited only by its number of addresses.
fn addresses(addresses: usize) -> ChunkLimit {
    ChunkLimit {
        addresses,
        domains: usize::MAX,
    }
}

/// The `seq`s of each chunk claimed with `limit` until none is left.
async fn claim_all(store: &dyn Store, limit: ChunkLimit, at: DateTime<Utc>) -> Vec<Vec<u64>> {
    let mut order = Vec::new();
    while let Some(chunk) = store
        .claim_job_items("a", limit, at, at + Duration::minutes(5))
        .await
        .expect("claim")
    {
        let mut seqs: Vec<u64> = chunk.items.iter().map(|item| item.seq).collect();
        seqs.sort_unstable();
        order.push(seqs);
    }
    order
}

async fn a_jobs_large_domains_are_claimed_first_largest_first(store: Arc<dyn Database>) {
    let t0 = now();
    // a.test sorts first but is small; z.test is the largest, m.test next.
    let domains = [
        "a.test", "m.test", "z.test", "z.test", "m.test", "z.test", "b.test",
    ];
    job_over(&*store, &domains, &["z.test", "m.test"], t0).await;
    assert_eq!(
        claim_all(&*store, addresses(2), t0).await,
        [vec![2, 3], vec![1, 5], vec![0, 4], vec![6]],
        "z.test's three, then m.test's two, then the rest (a.test, b.test) by domain"
    );
}

async fn a_claim_takes_at_most_its_number_of_domains(store: Arc<dyn Database>) {
    let t0 = now();
    let domains = [
        "a.test", "m.test", "z.test", "c.test", "z.test", "m.test", "z.test", "b.test", "a.test",
    ];
    job_over(&*store, &domains, &["z.test", "m.test"], t0).await;
    let two = ChunkLimit {
        addresses: 100,
        domains: 2,
    };
    assert_eq!(
        claim_all(&*store, two, t0).await,
        [vec![1, 2, 4, 5, 6], vec![0, 7, 8], vec![3]],
        "z.test and m.test; a.test and b.test; c.test"
    );

    // Addresses limit a claim too, even within a domain: a.test's second
    // address waits for the next claim.
    job_over(&*store, &domains, &["z.test"], t0).await;
    let four = ChunkLimit {
        addresses: 4,
        domains: 2,
    };
    assert_eq!(
        claim_all(&*store, four, t0).await,
        [vec![0, 2, 4, 6], vec![7, 8], vec![1, 3, 5]],
        "z.test's three and one of a.test; a.test's other and b.test (not c.test, \
         though the addresses allow); c.test and m.test"
    );
}

async fn job_claims_are_exclusive_leased_and_counted_once(store: Arc<dyn Database>) {
    let t0 = now();
    let lease = Duration::minutes(5);
    let id = queued_job(&*store, 9, t0).await;

    // Grouped by domain: the first chunk is d0's addresses, then d1's.
    let a = store
        .claim_job_items("a", addresses(4), t0, t0 + lease)
        .await
        .expect("claim")
        .expect("work");
    assert_eq!(a.job_id, id);
    let seqs: Vec<u64> = a.items.iter().map(|item| item.seq).collect();
    assert_eq!(
        seqs,
        [0, 1, 3, 6],
        "d0's three addresses, then d1's first, in input order"
    );
    assert_eq!(
        store.job(id).await.expect("read").expect("job").status,
        JobStatus::Running
    );
    let b = store
        .claim_job_items("b", addresses(10), t0, t0 + lease)
        .await
        .expect("claim")
        .expect("work");
    assert_eq!(b.items.len(), 5, "the rest, nothing of a's");
    assert!(
        store
            .claim_job_items("c", addresses(10), t0, t0 + lease)
            .await
            .expect("claim")
            .is_none()
    );

    // A live worker renews its lease: b's items stay b's past its first
    // lease, while a's (not renewed) go to c.
    let renewed = store
        .renew_job_claims("b", t0 + Duration::hours(2))
        .await
        .expect("renew");
    assert_eq!(renewed, 5);
    // a dies; once its lease ends, c takes its items over.
    let later = t0 + lease + Duration::seconds(1);
    let c = store
        .claim_job_items("c", addresses(10), later, later + lease)
        .await
        .expect("claim")
        .expect("work");
    assert_eq!(c.items.len(), 4);
    // a's late results are ignored; c's count.
    let outcomes: Vec<ItemOutcome> = a.items.iter().map(|item| done(item.seq)).collect();
    assert_eq!(
        store
            .finish_job_items("a", id, &outcomes, later)
            .await
            .expect("finish"),
        None
    );
    assert_eq!(
        store.job(id).await.expect("read").expect("job").processed,
        0
    );
    let outcomes: Vec<ItemOutcome> = c.items.iter().map(|item| done(item.seq)).collect();
    store
        .finish_job_items("c", id, &outcomes, later)
        .await
        .expect("finish");
    assert_eq!(
        store.job(id).await.expect("read").expect("job").processed,
        4
    );

    // b retries one item later (greylisting) and finishes the others.
    let mut outcomes: Vec<ItemOutcome> = b.items[1..].iter().map(|item| done(item.seq)).collect();
    outcomes.push(ItemOutcome::Retry {
        seq: b.items[0].seq,
        at: later + Duration::minutes(5),
        counts_as_attempt: true,
    });
    assert_eq!(
        store
            .finish_job_items("b", id, &outcomes, later)
            .await
            .expect("finish"),
        None
    );
    assert!(
        store
            .claim_job_items("b", addresses(10), later, later + lease)
            .await
            .expect("claim")
            .is_none()
    );
    let retry_at = later + Duration::minutes(5);
    let retry = store
        .claim_job_items("b", addresses(10), retry_at, retry_at + lease)
        .await
        .expect("claim")
        .expect("the retry is due");
    assert_eq!(retry.items.len(), 1);
    assert_eq!(retry.items[0].attempts, 1);
    let completed = store
        .finish_job_items("b", id, &[done(retry.items[0].seq)], retry_at)
        .await
        .expect("finish")
        .expect("the last item completes the job");
    assert_eq!(
        (completed.status, completed.processed),
        (JobStatus::Completed, 9)
    );
    assert_eq!(completed.counts.deliverable, 9);

    let results = store.job_results(id, None, 5).await.expect("results");
    assert_eq!(
        results.iter().map(|row| row.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let rest = store.job_results(id, Some(4), 100).await.expect("results");
    assert_eq!(rest.len(), 4);
    assert_eq!(rest[0].result, "{\"seq\": 5}");
}

async fn uploads_and_finished_jobs_are_purged(store: Arc<dyn Database>) {
    let long_ago = now() - Duration::days(40);
    let old = queued_job(&*store, 1, long_ago).await;
    let item = store
        .claim_job_items("w", addresses(1), long_ago, long_ago + Duration::minutes(1))
        .await
        .expect("claim")
        .expect("work");
    store
        .finish_job_items("w", old, &[done(item.items[0].seq)], long_ago)
        .await
        .expect("finish");
    let abandoned = uuid::Uuid::new_v4();
    store.create_job(abandoned, long_ago).await.expect("create");
    let running = queued_job(&*store, 1, long_ago).await;
    let purged = store
        .purge_jobs(now() - Duration::days(30), now() - Duration::days(1))
        .await
        .expect("purge");
    assert_eq!(purged, 2, "the finished job and the abandoned upload");
    assert_eq!(store.job(old).await.expect("read"), None);
    assert!(
        store.job(running).await.expect("read").is_some(),
        "a job still to do is kept"
    );
}

async fn items_cannot_be_added_to_a_discarded_job(store: Arc<dyn Database>) {
    let id = uuid::Uuid::new_v4();
    store.create_job(id, now()).await.expect("create");
    let item = |n: u64| NewJobItem {
        email: format!("u{n}@d.test"),
        domain: "d.test".into(),
    };
    store
        .add_job_items(id, 0, &[item(0)], now())
        .await
        .expect("items while uploading");
    store.discard_job(id).await.expect("discard");
    assert!(
        store.add_job_items(id, 1, &[item(1)], now()).await.is_err(),
        "items added to a discarded job"
    );
    assert!(store.seal_job(id, 2, None, &[], now()).await.is_err());
}

/// The items of each job, as Postgres holds them.
async fn postgres_items(db: &crate::common::db::PgTestDb) -> BTreeMap<uuid::Uuid, i64> {
    sqlx::query_as::<_, (uuid::Uuid, i64)>("select job_id, count(*) from job_items group by job_id")
        .fetch_all(db.store.pool())
        .await
        .expect("count")
        .into_iter()
        .collect()
}

/// Postgres's job items have no foreign key to their job: deleting a job
/// deletes its items, including those an upload still writing to it
/// commits while the delete waits.
#[tokio::test]
async fn postgres_deleting_a_job_deletes_its_items() {
    let db = crate::common::db::PgTestDb::new().await;
    let shared: Arc<dyn Database> = db.store.clone();
    let store = &*shared;
    let long_ago = now() - Duration::days(40);
    let kept = queued_job(store, 3, now()).await;
    let discarded = uuid::Uuid::new_v4();
    store.create_job(discarded, now()).await.expect("create");
    let items: Vec<NewJobItem> = (0..4)
        .map(|n| NewJobItem {
            email: format!("u{n}@d.test"),
            domain: "d.test".into(),
        })
        .collect();
    store
        .add_job_items(discarded, 0, &items, now())
        .await
        .expect("items");
    store.discard_job(discarded).await.expect("discard");
    assert_eq!(postgres_items(&db).await, BTreeMap::from([(kept, 3)]));

    // An abandoned upload, with an upload's transaction still open on it:
    // its job locked as `add_job_items` locks it, and a row written.
    let abandoned = uuid::Uuid::new_v4();
    store.create_job(abandoned, long_ago).await.expect("create");
    store
        .add_job_items(abandoned, 0, &items[..2], long_ago)
        .await
        .expect("items");
    let mut upload = db.store.pool().begin().await.expect("begin");
    sqlx::query("select 1 from jobs where id = $1 and status = 'uploading' for key share")
        .bind(abandoned)
        .fetch_one(&mut *upload)
        .await
        .expect("lock");
    let purge = {
        let store = shared.clone();
        tokio::spawn(async move {
            store
                .purge_jobs(now() - Duration::days(30), now() - Duration::days(1))
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!purge.is_finished(), "the purge waits for the upload");
    sqlx::query(
        "insert into job_items (job_id, seq, email, domain, available_at) \
         values ($1, 2, 'late@d.test', 'd.test', now())",
    )
    .bind(abandoned)
    .execute(&mut *upload)
    .await
    .expect("a late row");
    upload.commit().await.expect("commit");
    let purged = purge.await.expect("join").expect("purge");
    assert_eq!(purged, 1);
    assert_eq!(postgres_items(&db).await, BTreeMap::from([(kept, 3)]));
}

/// Noon (UTC) `days_ago` days ago, and a minute before the next midnight.
fn day_at(days_ago: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = Utc::now().date_naive() - Duration::days(days_ago);
    let noon = date.and_hms_opt(12, 0, 0).expect("a time").and_utc();
    (noon, noon + Duration::hours(11) + Duration::minutes(59))
}

async fn daily_counts_fall_on_their_utc_days(store: Arc<dyn Database>) {
    let (two_days_ago, late_two_days_ago) = day_at(2);
    let (yesterday, _) = day_at(1);
    let (long_ago, _) = day_at(40);
    let ttl = Duration::days(30);
    store
        .record_verifications(&[
            verdict("a@example.test", Reason::Accepted, two_days_ago, ttl),
            verdict(
                "b@example.test",
                Reason::MailboxNotFound,
                late_two_days_ago,
                ttl,
            ),
            verdict("c@example.test", Reason::Accepted, yesterday, ttl),
            verdict("old@example.test", Reason::Accepted, long_ago, ttl),
        ])
        .await
        .expect("record");
    let bounce = |kind, at| NewBounceEvent {
        address_key: "b@example.test".to_owned(),
        email: "b@example.test".to_owned(),
        kind,
        origin: BounceOrigin::Message,
        evidence: Diagnosis::default(),
        received_at: at,
    };
    store
        .record_bounce(&bounce(BounceKind::Hard, late_two_days_ago))
        .await
        .expect("bounce");
    store
        .record_bounce(&bounce(BounceKind::Soft, yesterday))
        .await
        .expect("bounce");
    // Added two days ago and removed yesterday; another added yesterday.
    store
        .upsert_suppression(&hand_made("b@example.test"), two_days_ago)
        .await
        .expect("add");
    store
        .remove_suppression("b@example.test", yesterday)
        .await
        .expect("remove");
    store
        .upsert_suppression(&hand_made("d@example.test"), yesterday)
        .await
        .expect("add");

    let days = store
        .daily_stats(Utc::now() - Duration::days(7))
        .await
        .expect("daily stats");
    let day = |at: DateTime<Utc>| days.get(&at.date_naive()).cloned().unwrap_or_default();
    let first = day(two_days_ago);
    assert_eq!(
        first.verifications_by_status,
        BTreeMap::from([
            ("deliverable".to_owned(), 1),
            ("undeliverable".to_owned(), 1)
        ])
    );
    assert_eq!(
        first.bounces_by_kind,
        BTreeMap::from([("hard".to_owned(), 1)])
    );
    assert_eq!(
        (first.suppressions_added, first.suppressions_removed),
        (1, 0)
    );
    let second = day(yesterday);
    assert_eq!(
        second.verifications_by_status,
        BTreeMap::from([("deliverable".to_owned(), 1)])
    );
    assert_eq!(
        second.bounces_by_kind,
        BTreeMap::from([("soft".to_owned(), 1)])
    );
    assert_eq!(
        (second.suppressions_added, second.suppressions_removed),
        (1, 1)
    );
    assert!(
        !days.contains_key(&long_ago.date_naive()),
        "days before the window are left out: {days:?}"
    );
    assert_eq!(days.len(), 2, "{days:?}");
}

async fn recent_jobs_come_newest_first(store: Arc<dyn Database>) {
    let t0 = now();
    let older = queued_job(store.as_ref(), 2, t0 - Duration::minutes(5)).await;
    let newer = queued_job(store.as_ref(), 1, t0).await;
    // Still uploading: not listed.
    store
        .create_job(uuid::Uuid::new_v4(), t0 + Duration::minutes(1))
        .await
        .expect("create");
    let ids =
        |jobs: Vec<mailvet::store::Job>| jobs.into_iter().map(|job| job.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.recent_jobs(10).await.expect("list")),
        vec![newer, older]
    );
    assert_eq!(ids(store.recent_jobs(1).await.expect("list")), vec![newer]);
}
