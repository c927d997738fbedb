//! The browser harness itself: Chromium opens a page of the test's own
//! and reports what its console says.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use fantoccini::Locator;

use crate::common::browser::Browser;

#[tokio::test]
async fn chromium_renders_a_loopback_page_and_reports_console_errors() {
    let app = Router::new()
        .route("/", get(|| async { Html("<link rel=\"icon\" href=\"data:,\"><h1>hello</h1>") }))
        .route(
            "/broken",
            get(|| async { Html("<link rel=\"icon\" href=\"data:,\"><h1>broken</h1><script>console.error('boom')</script>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("http://{addr}/"))
        .await
        .expect("open the page");
    let heading = browser
        .client
        .find(Locator::Css("h1"))
        .await
        .expect("a heading")
        .text()
        .await
        .expect("its text");
    assert_eq!(heading, "hello");
    browser.assert_clean_console("/").await;

    browser
        .client
        .goto(&format!("http://{addr}/broken"))
        .await
        .expect("open the page");
    let console = browser.console().await;
    assert!(
        console
            .iter()
            .any(|line| line.starts_with("SEVERE") && line.contains("boom")),
        "{console:?}"
    );
    browser.close().await;
}
