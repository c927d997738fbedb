//! The dashboard over plain HTTP: its security headers, the redirect from
//! `/`, sign-in refusals, CSRF refusals, and `GET /stats/daily` and
//! `GET /jobs` of the API behind its charts and lists.

use reqwest::Method;
use reqwest::redirect::Policy;

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verify};
use crate::common::smtp_peer::{Script, SmtpPeer};

const SECRET: &str = "sk_dashboard_test_0123456789";

async fn app_with_key(db: Db) -> TestApp {
    TestApp::spawn_with(db, |settings| {
        settings.keys.secret_keys = vec![SECRET.into()];
    })
    .await
}

/// A form's body, URL-encoded.
fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("a client")
}

/// Signs in; the session cookie (`name=value`).
async fn sign_in(app: &TestApp) -> String {
    let response = client()
        .post(app.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", SECRET)]))
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(response.status(), 303);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    cookie.split(';').next().expect("name=value").to_owned()
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client().get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.expect("mailvet answers")
}

/// The page's CSRF token, from its first hidden field.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().expect("a token").to_owned()
}

#[tokio::test]
async fn the_root_redirects_to_the_dashboard_and_every_page_sends_a_strict_csp() {
    let app = app_with_key(Db::Sqlite).await;
    let root = get(&app, "/", None).await;
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/ui/");

    // Without a session the pages send the visitor to sign in.
    let page = get(&app, "/ui/", None).await;
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/ui/login");

    let cookie = sign_in(&app).await;
    for path in [
        "/ui/login",
        "/ui/",
        "/ui/verify",
        "/ui/jobs",
        "/ui/suppressions",
        "/ui/suppressions?q=example.com",
        "/ui/no-such-page",
        "/ui/assets/ui.css",
    ] {
        let response = get(&app, path, Some(&cookie)).await;
        let headers = response.headers();
        let csp = headers
            .get("content-security-policy")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("{path} has no CSP"));
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        let status = response.status();
        let body = response.text().await.expect("a body");
        if path == "/ui/no-such-page" {
            assert_eq!(status, 404);
            assert!(body.contains("<h1>Not found</h1>"), "{body}");
        } else if path.starts_with("/ui/assets") {
            assert_eq!(status, 200);
        } else {
            assert!(status == 200 || status == 303, "{path}: {status}");
            assert!(!body.contains(" style="), "{path} has a style attribute");
            assert!(!body.contains("<script>"), "{path} has an inline script");
            assert!(!body.contains(SECRET), "{path} shows the secret key");
        }
    }

    // Assets are cached by their digest.
    let css = get(&app, "/ui/assets/ui.css", None).await;
    let etag = css.headers()["etag"].to_str().expect("an ETag").to_owned();
    let again = client()
        .get(app.url("/ui/assets/ui.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn a_wrong_key_or_a_public_key_does_not_sign_in() {
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.secret_keys = vec![SECRET.into()];
        settings.keys.public_keys = vec!["pk_public_0123456789".into()];
    })
    .await;
    for key in ["sk_wrong", "pk_public_0123456789", ""] {
        let response = client()
            .post(app.url("/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[("key", key)]))
            .send()
            .await
            .expect("mailvet answers");
        assert_eq!(response.status(), 303, "{key}");
        assert_eq!(
            response.headers()["location"],
            "/ui/login?error=key",
            "{key}"
        );
        assert!(response.headers().get("set-cookie").is_none(), "{key}");
        // And no session: the dashboard still sends the visitor to sign in.
        assert_eq!(get(&app, "/ui/", None).await.status(), 303);
    }
    let form = get(&app, "/ui/login?error=key", None).await;
    let body = form.text().await.expect("a body");
    assert!(body.contains("not a secret key"), "{body}");
    // Sign-in attempts are limited per client address.
    let mut limited = false;
    for _ in 0..12 {
        let response = client()
            .post(app.url("/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[("key", "sk_guess")]))
            .send()
            .await
            .expect("mailvet answers");
        limited |= response.status() == 429;
    }
    assert!(
        limited,
        "twelve more attempts within a minute are not all taken"
    );
    // The API's own routes still want a key.
    let api = get(&app, "/stats", None).await;
    assert_eq!(api.status(), 401);
}

#[tokio::test]
async fn a_form_without_the_csrf_token_or_from_another_origin_is_refused() {
    let app = app_with_key(Db::Sqlite).await;
    let cookie = sign_in(&app).await;
    let page = get(&app, "/ui/suppressions", Some(&cookie)).await;
    let token = csrf_of(&page.text().await.expect("a body"));

    let add = |csrf: Option<&str>, origin: Option<&str>| {
        let mut form = vec![("email", "someone@example.com"), ("reason", "manual")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let mut request = client()
            .post(app.url("/ui/suppressions/add"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&form));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let refused = add(None, None).await.expect("mailvet answers");
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .expect("a body")
            .contains("security token")
    );
    let wrong = add(Some("not-the-token"), None)
        .await
        .expect("mailvet answers");
    assert_eq!(wrong.status(), 403);
    let elsewhere = add(Some(&token), Some("https://evil.example"))
        .await
        .expect("mailvet answers");
    assert_eq!(elsewhere.status(), 403);
    let lookup = app
        .send_unchecked(
            app.request(Method::GET, "/suppressions/someone@example.com")
                .bearer_auth(SECRET),
        )
        .await;
    assert_eq!(lookup.status, 404, "nothing was added");

    let origin = format!("http://{}", app.address);
    let accepted = add(Some(&token), Some(&origin))
        .await
        .expect("mailvet answers");
    assert_eq!(accepted.status(), 303);
    let lookup = app
        .send_unchecked(
            app.request(Method::GET, "/suppressions/someone@example.com")
                .bearer_auth(SECRET),
        )
        .await;
    assert_eq!(lookup.status, 200);

    // After sign-out the cookie opens nothing.
    let logout = client()
        .post(app.url("/ui/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", token.as_str())]))
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(logout.status(), 303);
    assert!(
        logout.headers()["set-cookie"]
            .to_str()
            .expect("text")
            .contains("Max-Age=0")
    );
    let after = get(&app, "/ui/", Some(&cookie)).await;
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()["location"], "/ui/login");
}

async fn daily_stats_count_each_day(db: Db) {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = TestApp::spawn_with(db, probe_settings(dns.addr, peer.port())).await;
    let reply = app.get("/stats/daily?days=0").await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    let reply = app.get("/stats/daily?days=91").await;
    assert_eq!(reply.status, 422, "{}", reply.text());

    verify(&app, "alice@example.test").await;
    verify(&app, "nobody@example.test").await;
    let reply = app
        .send(
            app.request(Method::POST, "/suppressions")
                .json(&serde_json::json!({"email": "gone@example.com", "reason": "manual"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let reply = app
        .send(app.request(Method::DELETE, "/suppressions/gone@example.com"))
        .await;
    assert_eq!(reply.status, 204);

    let reply = app.get("/stats/daily?days=7").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let days = body["days"].as_array().expect("days");
    assert_eq!(days.len(), 7);
    let today = chrono::Utc::now().date_naive().to_string();
    let last = &days[6];
    assert_eq!(last["date"], today.as_str());
    assert_eq!(last["verifications"]["total"], 2, "{last}");
    assert_eq!(last["verifications"]["by_status"]["undeliverable"], 1);
    assert_eq!(last["verifications"]["by_status"]["deliverable"], 1);
    assert_eq!(last["verifications"]["by_status"]["risky"], 0);
    assert_eq!(last["bounces"]["total"], 0);
    assert_eq!(last["bounce_rate"], 0.0);
    // The missing mailbox was suppressed by its verdict; the manual entry
    // was added and removed.
    assert_eq!(last["suppressions"]["added"], 2);
    assert_eq!(last["suppressions"]["removed"], 1);
    assert!(days[0]["bounce_rate"].is_null(), "{}", days[0]);
    assert_eq!(
        app.get("/stats/daily").await.json()["days"]
            .as_array()
            .map(Vec::len),
        Some(30)
    );
}

#[tokio::test]
async fn daily_stats_count_each_day_on_sqlite() {
    daily_stats_count_each_day(Db::Sqlite).await;
}

#[tokio::test]
async fn daily_stats_count_each_day_on_postgres() {
    daily_stats_count_each_day(Db::Postgres).await;
}

#[tokio::test]
async fn jobs_are_listed_newest_first() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let reply = app
            .send(
                app.request(Method::POST, "/jobs")
                    .header("content-type", "text/csv")
                    .body("email\nnot-an-address\n"),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text());
        ids.push(reply.json()["id"].as_str().expect("an id").to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let listed = app.get("/jobs?limit=1").await.json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["jobs"][0]["id"], ids[1].as_str());
    let all = app.get("/jobs").await.json();
    assert_eq!(all["jobs"][1]["id"], ids[0].as_str());
    assert_eq!(app.get("/jobs?limit=0").await.status, 422);
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_a_trusted_tls_proxy() {
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.secret_keys = vec![SECRET.into()];
        settings.http.trusted_proxies =
            vec![mailvet::http::parse_ip_range("127.0.0.1").expect("a range")];
    })
    .await;
    let response = client()
        .post(app.url("/ui/login"))
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", SECRET)]))
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().expect("text");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_session_ends_after_its_time_to_live() {
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.secret_keys = vec![SECRET.into()];
        settings.http.ui_session_ttl = std::time::Duration::from_millis(500);
    })
    .await;
    let cookie = sign_in(&app).await;
    assert_eq!(get(&app, "/ui/", Some(&cookie)).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let after = get(&app, "/ui/", Some(&cookie)).await;
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()["location"], "/ui/login");
}

#[tokio::test]
async fn without_keys_the_dashboard_is_open_and_a_job_can_be_cancelled() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script {
        delay: std::time::Duration::from_millis(300),
        ..Script::catch_all()
    })
    .await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, peer.port())).await;
    // No keys: the first page hands out a session, for its CSRF token.
    let page = get(&app, "/ui/jobs", None).await;
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let token = csrf_of(&page.text().await.expect("a body"));

    let list: String = std::iter::once("email".to_owned())
        .chain((0..50).map(|n| format!("u{n}@example.test")))
        .collect::<Vec<_>>()
        .join("\n");
    let boundary = "mailvet-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"list\"; filename=\"list.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{list}\n\r\n--{boundary}--\r\n"
    );
    let upload = client()
        .post(app.url("/ui/jobs"))
        .header("cookie", &cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body.clone())
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(upload.status(), 303);
    let location = upload.headers()["location"]
        .to_str()
        .expect("text")
        .to_owned();
    let id = location.trim_start_matches("/ui/jobs/").to_owned();
    let progress = get(&app, &format!("/ui/jobs/{id}/progress"), Some(&cookie)).await;
    assert_eq!(progress.status(), 200);
    let job: serde_json::Value = progress.json().await.expect("JSON");
    assert_eq!(job["total"], 50);

    let cancel = client()
        .post(app.url(&format!("/ui/jobs/{id}/cancel")))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", token.as_str())]))
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(cancel.status(), 303);
    let job = app.get(&format!("/jobs/{id}")).await.json();
    assert_eq!(job["status"], "cancelled", "{job}");
    let detail = get(&app, &location, Some(&cookie)).await;
    let html = detail.text().await.expect("a body");
    assert!(html.contains("cancelled"), "{html}");
    assert!(!html.contains("Cancel the job"), "{html}");

    // An upload without the token is refused and queues nothing.
    let forged = body.replace(&token, "forged");
    let refused = client()
        .post(app.url("/ui/jobs"))
        .header("cookie", &cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(forged)
        .send()
        .await
        .expect("mailvet answers");
    assert_eq!(refused.status(), 403);
    let jobs = app.get("/jobs").await.json();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
}
