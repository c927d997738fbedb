//! The dashboard in a real browser (headless Chromium): sign in, the
//! overview against `GET /stats`, verifying against loopback peers, the
//! suppression list, a bulk job to 100 % and its results, CSRF and
//! sign-out. No page may log a console error or a CSP violation; each is
//! saved as a screenshot under `target/screenshots/`.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::Method;

use crate::common::app::{Db, TestApp};
use crate::common::browser::Browser;
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::probe_settings;
use crate::common::smtp_peer::{Script, SmtpPeer};

const SECRET: &str = "sk_browser_test_0123456789";

/// Checks the console and saves a screenshot named after the page.
async fn looked_at(browser: &Browser, page: &str) {
    browser.assert_clean_console(page).await;
    browser.screenshot(&format!("ui-{page}")).await;
}

async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"))
        .text()
        .await
        .expect("its text")
}

async fn fill(browser: &Browser, css: &str, text: &str) {
    let field = browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"));
    field.clear().await.ok();
    field.send_keys(text).await.expect("type into the field");
}

/// Clicks a link or a submit button and waits for the next page.
async fn click(browser: &Browser, css: &str) {
    let old = browser
        .client
        .find(Locator::Css("html"))
        .await
        .expect("a page");
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"))
        .click()
        .await
        .expect("click");
    let deadline = Instant::now() + Duration::from_secs(15);
    // The old page's root goes stale once the next page has replaced it.
    while old.text().await.is_ok() {
        assert!(Instant::now() < deadline, "clicking `{css}` led nowhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ticks a checkbox (no page load).
async fn tick(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"))
        .click()
        .await
        .expect("click");
}

async fn path_of(browser: &Browser) -> String {
    browser
        .client
        .current_url()
        .await
        .expect("the page's URL")
        .path()
        .to_owned()
}

/// A reqwest client request carrying the browser's session cookie.
fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str) -> reqwest::RequestBuilder {
    app.request(method, path).header("cookie", cookie)
}

#[tokio::test]
async fn an_operator_signs_in_verifies_suppresses_runs_a_job_and_signs_out() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let probe = probe_settings(dns.addr, peer.port());
    let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
        probe(settings);
        settings.keys.secret_keys = vec![SECRET.into()];
    })
    .await;
    // Some history for the overview.
    for email in ["alice@example.test", "nobody@example.test"] {
        let reply = app
            .send(
                app.request(Method::POST, "/verify")
                    .bearer_auth(SECRET)
                    .json(&serde_json::json!({ "email": email })),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let browser = Browser::start().await;
    let base = format!("http://{}", app.address);

    // Signing in.
    browser
        .client
        .goto(&format!("{base}/"))
        .await
        .expect("open /");
    assert_eq!(path_of(&browser).await, "/ui/login");
    looked_at(&browser, "login").await;
    fill(&browser, "#key", "sk_not_this_one").await;
    click(&browser, "form.card button[type=submit]").await;
    assert!(
        text_of(&browser, ".notice.error")
            .await
            .contains("not a secret key")
    );
    browser.assert_clean_console("login refused").await;
    fill(&browser, "#key", SECRET).await;
    click(&browser, "form.card button[type=submit]").await;
    assert_eq!(text_of(&browser, "h1").await, "Overview");
    let cookies = browser.client.get_all_cookies().await.expect("the cookies");
    let session = cookies
        .iter()
        .find(|cookie| cookie.name() == "mailvet_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert!(
        format!("{:?}", session.same_site()).contains("Strict"),
        "{session:?}"
    );
    let cookie = format!("mailvet_session={}", session.value());

    // The overview's numbers are those of GET /stats.
    let stats = app
        .send(app.request(Method::GET, "/stats").bearer_auth(SECRET))
        .await
        .json();
    for (id, value) in [
        (
            "verifications-30d",
            &stats["windows"]["30d"]["verifications"]["total"],
        ),
        (
            "verifications-24h",
            &stats["windows"]["24h"]["verifications"]["total"],
        ),
        (
            "undeliverable-30d",
            &stats["windows"]["30d"]["verifications"]["by_status"]["undeliverable"],
        ),
        (
            "deliverable-30d",
            &stats["windows"]["30d"]["verifications"]["by_status"]["deliverable"],
        ),
        (
            "suppressions-30d",
            &stats["windows"]["30d"]["suppressions"]["total"],
        ),
    ] {
        assert_eq!(
            text_of(&browser, &format!("#{id}")).await,
            value.to_string(),
            "{id}"
        );
    }
    assert_eq!(text_of(&browser, "#verifications-30d").await, "2");
    // One refused recipient is no pattern (GET /stats lists none).
    assert_eq!(stats["bounce_patterns"], serde_json::json!([]));
    assert_eq!(
        text_of(&browser, "#no-patterns").await,
        "No pattern stands out."
    );
    assert!(
        browser
            .client
            .find(Locator::Css("figure.chart svg rect"))
            .await
            .is_ok(),
        "the charts have bars"
    );
    looked_at(&browser, "overview").await;

    // Verify, with the evidence.
    click(&browser, "nav a[href='/ui/verify']").await;
    fill(
        &browser,
        "#emails",
        "alice@example.test\nbob@example.test\nnobody@example.test",
    )
    .await;
    tick(&browser, "#fresh").await;
    click(&browser, "form.card button[type=submit]").await;
    let verdicts = text_of(&browser, "section[aria-label=Verdicts]").await;
    assert!(verdicts.contains("deliverable"), "{verdicts}");
    assert!(verdicts.contains("mailbox_not_found"), "{verdicts}");
    assert!(verdicts.contains("mx.example.test"), "{verdicts}");
    assert!(verdicts.contains("550 5.1.1"), "{verdicts}");
    // Each exchange with the mail server, in order.
    let conversation = text_of(&browser, "article.verdict table.transcript").await;
    let order = [
        "The conversation with the mail servers",
        "220 mx.example.test ESMTP ready",
        "EHLO verifier.example.test",
        "MAIL FROM:<probe@verifier.example.test>",
        // Known from the probe of bob above: not asked again.
        "(the catch-all check)",
        "an earlier probe found that example.test refuses unknown addresses",
        "RCPT TO:<alice@example.test>",
        "250 2.1.5 Ok",
    ];
    let mut at = 0;
    for part in order {
        let found = conversation[at..]
            .find(part)
            .unwrap_or_else(|| panic!("{part:?} after byte {at} of:\n{conversation}"));
        at += found + part.len();
    }
    assert!(
        verdicts.contains("answered that this mailbox does not exist"),
        "{verdicts}"
    );
    // Suppressed by its earlier verdict, with the reason why.
    assert!(
        verdicts.contains("on the suppression list (mailbox_not_found)"),
        "{verdicts}"
    );
    looked_at(&browser, "verify").await;

    // Add, find, export and remove a suppression.
    click(&browser, "nav a[href='/ui/suppressions']").await;
    fill(&browser, "#add-email", "carol@example.org").await;
    fill(&browser, "#add-note", "asked to stop").await;
    click(&browser, "form[action='/ui/suppressions/add'] button").await;
    assert!(
        text_of(&browser, ".notice")
            .await
            .contains("carol@example.org is now suppressed")
    );
    fill(&browser, "#q", "example.org").await;
    click(&browser, "form.search button[type=submit]").await;
    let results = text_of(&browser, "#results").await;
    assert!(results.contains("carol@example.org"), "{results}");
    assert!(!results.contains("nobody@example.test"), "{results}");
    // Each entry's evidence opens in place.
    browser
        .client
        .find(Locator::Css("#results details summary"))
        .await
        .expect("an evidence toggle")
        .click()
        .await
        .expect("open the evidence");
    let evidence = text_of(&browser, "#results details dl.evidence").await;
    assert!(evidence.contains("asked to stop"), "{evidence}");
    looked_at(&browser, "suppressions").await;
    let export_href = browser
        .client
        .find(Locator::Css("#export"))
        .await
        .expect("an export link")
        .attr("href")
        .await
        .expect("its href")
        .expect("an href");
    let export = app
        .send_unchecked(with_cookie(&app, Method::GET, &export_href, &cookie))
        .await;
    assert_eq!(export.status, 200);
    let csv = export.text();
    assert!(csv.starts_with("email,reason,source"), "{csv}");
    assert!(csv.contains("carol@example.org,manual,api"), "{csv}");
    assert!(!csv.contains("nobody@example.test"), "{csv}");
    click(&browser, "button[aria-label='Remove carol@example.org']").await;
    assert!(text_of(&browser, ".notice").await.contains("was removed"));
    fill(&browser, "#q", "carol@example.org").await;
    click(&browser, "form.search button[type=submit]").await;
    assert_eq!(text_of(&browser, "#results").await, "No entries match.");
    browser
        .assert_clean_console("suppressions after removal")
        .await;

    // Import a CSV, then undo it as a batch.
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let import = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("a file");
    std::fs::write(
        import.path(),
        "email,reason\nerin@example.org,manual\nfrank@example.org,complaint\n",
    )
    .expect("write the import");
    browser
        .client
        .find(Locator::Css("#import-file"))
        .await
        .expect("a file input")
        .send_keys(&import.path().display().to_string())
        .await
        .expect("choose the file");
    click(&browser, "form[action='/ui/suppressions/import'] button").await;
    assert_eq!(
        text_of(&browser, ".notice").await,
        "Imported: 2 added, 0 already on the list."
    );
    fill(&browser, "#q", "example.org").await;
    click(&browser, "form.search button[type=submit]").await;
    let results = text_of(&browser, "#results").await;
    assert!(
        results.contains("erin@example.org") && results.contains("frank@example.org"),
        "{results}"
    );
    tick(&browser, "#undo-source option[value=api]").await;
    fill(
        &browser,
        "#undo-since",
        &started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
    .await;
    click(&browser, "form[action='/ui/suppressions/undo'] button").await;
    assert_eq!(text_of(&browser, ".notice").await, "2 entries removed.");
    let left = app
        .send_unchecked(
            app.request(Method::GET, "/suppressions/erin@example.org")
                .bearer_auth(SECRET),
        )
        .await;
    assert_eq!(left.status, 404, "the import was undone");
    browser
        .assert_clean_console("suppressions after undo")
        .await;

    // Upload a CSV and watch it reach 100 %.
    let list = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("a file");
    std::fs::write(
        list.path(),
        "email\nalice@example.test\nnobody@example.test\nnot-an-address\n",
    )
    .expect("write the list");
    click(&browser, "nav a[href='/ui/jobs']").await;
    looked_at(&browser, "jobs").await;
    browser
        .client
        .find(Locator::Css("#list"))
        .await
        .expect("a file input")
        .send_keys(&list.path().display().to_string())
        .await
        .expect("choose the file");
    click(&browser, "#upload button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let percent = text_of(&browser, "#percent").await;
        if percent == "100.0 %" && text_of(&browser, "#status").await == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the job stayed at {percent}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(text_of(&browser, "#count-deliverable").await, "1");
    assert_eq!(text_of(&browser, "#count-undeliverable").await, "2");
    assert_eq!(
        text_of(&browser, "#announce").await,
        "The job is completed."
    );
    looked_at(&browser, "job").await;
    let results_href = browser
        .client
        .find(Locator::Css("#download"))
        .await
        .expect("a download link")
        .attr("href")
        .await
        .expect("its href")
        .expect("an href");
    let results = app
        .send_unchecked(with_cookie(&app, Method::GET, &results_href, &cookie))
        .await;
    assert_eq!(results.status, 200);
    assert!(
        results
            .header("content-disposition")
            .is_some_and(|value| value.contains(".csv"))
    );
    let csv = results.text();
    assert!(csv.contains("alice@example.test"), "{csv}");
    assert!(csv.contains("not-an-address"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // Dropping a file on the form uploads it too (the page's drop
    // handler, given a file as a browser gives one).
    click(&browser, "a[href='/ui/jobs']").await;
    let old = browser
        .client
        .find(Locator::Css("html"))
        .await
        .expect("a page");
    browser
        .client
        .execute(
            "const list = new DataTransfer();
             list.items.add(new File(['email\\nalice@example.test\\n'], 'dropped.csv', {type: 'text/csv'}));
             document.getElementById('drop').dispatchEvent(
                 new DragEvent('drop', {dataTransfer: list, bubbles: true, cancelable: true}));",
            Vec::new(),
        )
        .await
        .expect("drop a file");
    let deadline = Instant::now() + Duration::from_secs(15);
    while old.text().await.is_ok() {
        assert!(Instant::now() < deadline, "the drop uploaded nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(path_of(&browser).await.starts_with("/ui/jobs/"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while text_of(&browser, "#status").await != "completed" {
        assert!(Instant::now() < deadline, "the dropped job did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(text_of(&browser, "#processed").await, "1 of 1");
    browser.assert_clean_console("job after a drop").await;

    // On a phone's width.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("a narrow window");
    browser
        .client
        .goto(&format!("{base}/ui/"))
        .await
        .expect("open the overview");
    looked_at(&browser, "overview-phone").await;
    browser
        .client
        .set_window_size(1280, 900)
        .await
        .expect("a wide window");

    // A form without its token is refused, even with the session.
    let refused = app
        .send_unchecked(
            with_cookie(&app, Method::POST, "/ui/suppressions/add", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("email=dave%40example.org&reason=manual"),
        )
        .await;
    assert_eq!(refused.status, 403);

    // Signing out ends the session.
    click(&browser, "form.logout button").await;
    assert_eq!(path_of(&browser).await, "/ui/login");
    let cookies = browser.client.get_all_cookies().await.expect("the cookies");
    assert!(
        cookies
            .iter()
            .all(|cookie| cookie.name() != "mailvet_session"),
        "{cookies:?}"
    );
    browser
        .client
        .goto(&format!("{base}/ui/jobs"))
        .await
        .expect("open a page");
    assert_eq!(path_of(&browser).await, "/ui/login");
    let stale = app
        .send_unchecked(with_cookie(&app, Method::GET, "/ui/", &cookie))
        .await;
    // (The test client follows the redirect to the sign-in form.)
    assert!(
        stale.text().contains("<h1>Sign in</h1>"),
        "the old cookie opens nothing"
    );
    looked_at(&browser, "signed-out").await;
    browser.close().await;
}

#[tokio::test]
async fn the_signup_form_page_shows_the_snippet_and_its_preview_suggests() {
    use crate::common::dns::Zone;
    let gmail = Zone::new("gmail.com")
        .mx("gmail.com", 5, "mx.gmail.com")
        .ip("mx.gmail.com", "127.0.0.1");
    let dns = TestDns::start(vec![example_zone(), gmail]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@gmail.com"])).await;
    let probe = probe_settings(dns.addr, peer.port());
    let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
        probe(settings);
        settings.keys.secret_keys = vec![mailvet::secret::SecretString::from(SECRET)];
        settings.keys.public_keys = vec![mailvet::secret::SecretString::from(
            "pk_browser_signup_form",
        )];
        settings.http.cors_origins = vec!["https://shop.example".to_owned()];
    })
    .await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&app.url("/ui/login"))
        .await
        .expect("open the sign-in page");
    fill(&browser, "#key", SECRET).await;
    click(&browser, "form.card button[type=submit]").await;
    click(&browser, "nav a[href='/ui/signup']").await;
    assert_eq!(path_of(&browser).await, "/ui/signup");

    let snippet = text_of(&browser, "#snippet").await;
    assert_eq!(
        snippet,
        format!(
            r#"<script src="http://{}/widget.js" data-key="pk_browser_signup_form" defer></script>"#,
            app.address
        )
    );
    let page = browser.client.source().await.expect("the page");
    assert!(page.contains("https://shop.example"), "the allowed origins");
    assert!(!page.contains(SECRET), "a secret key on the page");

    // The preview: the widget of this server on this page's form.
    fill(&browser, "#preview-email", "alice@gmial.com").await;
    let suggestion = text_of(&browser, ".mailvet-suggestion .mailvet-accept").await;
    assert_eq!(suggestion, "alice@gmail.com");
    looked_at(&browser, "signup").await;
    browser.close().await;
}
