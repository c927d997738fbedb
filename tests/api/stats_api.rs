//! `GET /stats`: what a user watches to see the bounce rate.

use reqwest::Method;
use serde_json::json;

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verify};
use crate::common::smtp_peer::{Script, SmtpPeer};

#[tokio::test]
async fn stats_count_verifications_suppressions_and_bounces_per_window() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    for db in [Db::Sqlite, Db::Postgres] {
        let app = TestApp::spawn_with(db, probe_settings(dns.addr, peer.port())).await;
        verify(&app, "alice@example.test").await;
        verify(&app, "bob@example.test").await;
        verify(&app, "alice@example.test").await; // cached: not a new check
        let bounce = json!({"email": "carol@example.test", "status": "4.2.2", "diagnostic": "452 4.2.2 Mailbox full"});
        app.send(app.request(Method::POST, "/bounces").json(&bounce))
            .await;
        let manual = json!({"email": "dave@example.test"});
        app.send(app.request(Method::POST, "/suppressions").json(&manual))
            .await;

        let reply = app.get("/stats").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let stats = reply.json();
        for window in ["24h", "7d", "30d"] {
            let w = &stats["windows"][window];
            assert_eq!(w["verifications"]["total"], 2, "{db:?} {window}: {w}");
            assert_eq!(
                w["verifications"]["by_status"],
                json!({"deliverable": 1, "undeliverable": 1})
            );
            assert_eq!(
                w["suppressions"]["total"], 2,
                "bob (verify) and dave (api): {w}"
            );
            assert_eq!(
                w["suppressions"]["by_reason"],
                json!({"mailbox_not_found": 1, "manual": 1})
            );
            assert_eq!(
                w["suppressions"]["by_source"],
                json!({"api": 1, "verify": 1})
            );
            assert_eq!(w["bounces"]["total"], 1);
            assert_eq!(w["bounces"]["by_kind"], json!({"soft": 1}));
        }
        // Two probes of the provider, both answered (accepted, unknown
        // user); the cached third made none.
        let health = &stats["probe_health"];
        assert_eq!(health.as_array().map(Vec::len), Some(1), "{db:?}: {health}");
        assert_eq!(health[0]["provider"], "example.test");
        assert_eq!(health[0]["probes"], 2, "{health}");
        assert_eq!(health[0]["ok"], 2, "{health}");
        assert_eq!(health[0]["failing_share"], 0.0, "{health}");
        assert_eq!(health[0]["refusing"], false, "{health}");
    }
}
