//! When the database goes away: verification still answers (from the
//! network, with a `Warning`), the suppression endpoints answer 503, and
//! everything works again when it is back, without a restart.

use std::time::Duration;

use mailvet::secret::{ExposeSecret, SecretString};
use reqwest::Method;
use serde_json::json;

use crate::common::app::{Db, TestApp};
use crate::common::db::{pg_socket_addr, via};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verdict};
use crate::common::proxy::TcpProxy;
use crate::common::smtp_peer::{Script, SmtpPeer};

#[tokio::test]
async fn verification_answers_without_the_database_and_says_so() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let mut proxy = TcpProxy::start(pg_socket_addr()).await;
    let proxy_addr = proxy.addr;
    let app = TestApp::spawn_with(Db::Postgres, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.database.url =
            SecretString::from(via(settings.database.url.expose_secret(), proxy_addr));
        settings.database.acquire_timeout = Duration::from_secs(1);
    })
    .await;

    proxy.down();
    let verify = |email: &str| {
        app.request(Method::POST, "/verify")
            .json(&json!({"email": email}))
    };
    let reply = app.send(verify("bob@example.test")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let result = reply.json();
    assert_eq!(
        verdict(&result),
        ("undeliverable", "mailbox_not_found"),
        "{result}"
    );
    assert_eq!(result["cached"], false);
    let warning = reply.header("warning").expect("a Warning header");
    assert!(
        warning.starts_with("199 mailvet") && warning.contains("database unavailable"),
        "{warning}"
    );

    let batch = app
        .send(
            app.request(Method::POST, "/verify/batch")
                .json(&json!({"emails": ["alice@example.test"]})),
        )
        .await;
    assert_eq!(batch.status, 200);
    assert!(batch.header("warning").is_some());

    app.send(
        app.request(Method::POST, "/suppressions")
            .json(&json!({"email": "carol@example.test"})),
    )
    .await
    .assert_error(503, "database_unavailable");
    app.get("/suppressions")
        .await
        .assert_error(503, "database_unavailable");

    proxy.up().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        let reply = app.send(verify("bob@example.test")).await;
        if reply.header("warning").is_none() {
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(recovered.json()["reason"], "mailbox_not_found");
    // Recorded now that the database is back: suppressed.
    assert_eq!(app.get("/suppressions/bob@example.test").await.status, 200);
}
