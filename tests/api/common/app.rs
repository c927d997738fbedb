//! A mailvet served on a loopback port for one test, on a fresh database,
//! and a client whose every response is checked against `openapi.yaml`.

use std::net::SocketAddr;

use mailvet::secret::SecretString;
use mailvet::{Application, Settings};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::db::{PgTestDb, SqliteTestDb};
use super::spec;

/// The database a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

enum TestDb {
    Sqlite(SqliteTestDb),
    Postgres(PgTestDb),
    /// Another app's database, which that app owns.
    Shared,
}

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    pub database_url: String,
    _db: TestDb,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the status and that the body is the API's error body with
    /// this code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        spec::assert_matches_schema("Error", &body);
        assert_eq!(body["error"]["code"], code, "body: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "an error message says what went wrong: {body}"
        );
    }
}

pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.http.listen = "127.0.0.1:0".parse().expect("a socket address");
    settings.database.url = SecretString::from(database_url);
    // The resolver's canaries are large providers' domains: never asked in
    // tests, which only talk to servers of their own.
    settings.dns.canaries.clear();
    // Amazon SNS messages in tests are signed with a certificate of the
    // test run's own.
    settings.keys.sns_certificates = super::sns::SnsSigner::shared().preloaded();
    settings
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Db::Sqlite, |_| {}).await
    }

    pub async fn spawn_on(db: Db) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Starts mailvet on a fresh database, with settings adjusted by
    /// `configure`.
    pub async fn spawn_with(db: Db, configure: impl FnOnce(&mut Settings)) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            mailvet::telemetry::init_tracing(mailvet::telemetry::LogFormat::Text);
        }
        let (test_db, url) = match db {
            Db::Sqlite => {
                let db = SqliteTestDb::new().await;
                let url = db.url.clone();
                (TestDb::Sqlite(db), url)
            }
            Db::Postgres => {
                let db = PgTestDb::new().await;
                let url = db.url.clone();
                (TestDb::Postgres(db), url)
            }
        };
        Self::serve(test_db, url, configure).await
    }

    /// Starts another mailvet on this app's database (a second replica, or
    /// the same service restarted). The database lives as long as `self`.
    pub async fn spawn_sharing(&self, configure: impl FnOnce(&mut Settings)) -> Self {
        Self::serve(TestDb::Shared, self.database_url.clone(), configure).await
    }

    async fn serve(test_db: TestDb, url: String, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings(&url);
        configure(&mut settings);
        let app = Application::build(&settings)
            .await
            .expect("the application starts");
        let address = app.local_addr();
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stop.await;
        }));
        TestApp {
            address,
            client: super::client(),
            shutdown: Some(shutdown),
            server: Some(server),
            database_url: url,
            _db: test_db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a request and checks the response against the spec.
    pub async fn send(&self, request: RequestBuilder) -> Reply {
        let (method, path, reply) = self.exchange(request).await;
        let content_type = reply.header(CONTENT_TYPE.as_str()).unwrap_or_default();
        spec::assert_conforms(&method, &path, reply.status, content_type, &reply.body);
        reply
    }

    /// Sends a request that the spec does not describe (an unknown route, a
    /// method a route lacks); no spec check.
    pub async fn send_unchecked(&self, request: RequestBuilder) -> Reply {
        self.exchange(request).await.2
    }

    async fn exchange(&self, request: RequestBuilder) -> (String, String, Reply) {
        let request = request.build().expect("a well-formed request");
        let method = request.method().to_string();
        let path = request.url().path().to_owned();
        let response = self.client.execute(request).await.expect("mailvet answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("read the body").to_vec();
        (
            method,
            path,
            Reply {
                status,
                headers,
                body,
            },
        )
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// Asks the server to shut down gracefully and waits until it has.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("the server task does not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
