//! A real browser: Debian's headless Chromium, driven over WebDriver
//! (Debian's chromedriver, started by the test on a loopback port) with
//! fantoccini. Chromium is kept off the network: every host name but
//! `localhost` fails to resolve, and its background services are off, so
//! the only pages it can reach are the test's own on 127.0.0.0/8. See
//! README.md, "Running the tests".

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn require_chromium() {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "\n\nThe browser tests need Debian's Chromium and ChromeDriver ({path} is missing).\n\
             On Debian: sudo apt-get install -y --no-install-recommends chromium chromium-driver\n"
        );
    }
}

/// `POST /session/{id}/se/log`: the browser's console messages since the
/// last call (ChromeDriver's extension of WebDriver).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session.
    pub async fn start() -> Self {
        require_chromium();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_owned(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,900",
                    // Nothing beyond the test's own servers.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-default-apps",
                    "--disable-domain-reliability",
                    "--disable-sync",
                    "--disable-extensions",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--metrics-recording-only",
                    "--safebrowsing-disable-auto-update",
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with Chromium");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The console messages logged since the last call, as
    /// `LEVEL message` (CSP violations are logged as errors).
    pub async fn console(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("read the browser's console");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry: &Value| {
                format!(
                    "{} {}",
                    entry["level"].as_str().unwrap_or_default(),
                    entry["message"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// Fails the test if the console holds an error or a warning (a CSP
    /// violation, a failed script, an exception) since the last call.
    pub async fn assert_clean_console(&self, page: &str) {
        let bad: Vec<String> = self
            .console()
            .await
            .into_iter()
            .filter(|line| line.starts_with("SEVERE") || line.starts_with("WARNING"))
            .collect();
        assert!(bad.is_empty(), "console errors on {page}: {bad:#?}");
    }

    /// Saves a screenshot of the page as `target/screenshots/{name}.png`
    /// for a reviewer to look at.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked before `close` still ends its driver (and
        // with it the browser).
        let _ = self.driver.kill();
    }
}
