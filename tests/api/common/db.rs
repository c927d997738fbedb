//! Fresh databases for tests: a temporary SQLite file, or a Postgres
//! database created for one test and dropped afterwards.

use std::sync::Arc;
use std::time::Duration;

use mailvet::secret::SecretString;
use mailvet::store::{PgStore, SqliteStore, Store, StoreSettings};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Where the Postgres test databases are created.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn settings(url: String) -> StoreSettings {
    StoreSettings {
        url: SecretString::from(url),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
    }
}

/// A migrated SQLite store in a temporary directory, deleted on drop.
pub struct SqliteTestDb {
    pub url: String,
    pub store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl SqliteTestDb {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("mailvet.db").display());
        let store = SqliteStore::connect(&settings(url.clone()))
            .await
            .expect("open the SQLite store");
        store.migrate().await.expect("migrate SQLite");
        SqliteTestDb {
            url,
            store: Arc::new(store),
            _dir: dir,
        }
    }
}

/// A migrated Postgres database of its own, dropped when this value is.
pub struct PgTestDb {
    pub url: String,
    pub store: Arc<PgStore>,
    name: String,
}

impl PgTestDb {
    pub async fn new() -> Self {
        let admin = admin_url();
        let mut conn = connect_admin(&admin).await;
        let name = format!("mailvet_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        let url = url.to_string();
        let store = PgStore::connect(&settings(url.clone())).expect("open the Postgres store");
        store.migrate().await.expect("migrate Postgres");
        PgTestDb {
            url,
            store: Arc::new(store),
            name,
        }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        // Drop runs outside async code; use a thread with its own runtime.
        let name = self.name.clone();
        let admin = admin_url();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "drop database if exists {name} with (force)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("could not drop test database {}: {err}", self.name);
        }
    }
}

async fn connect_admin(admin: &str) -> PgConnection {
    let attempt = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(admin)).await;
    match attempt {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => panic!("{}", unreachable_message(admin, &err.to_string())),
        Err(_) => panic!("{}", unreachable_message(admin, "timed out after 10 s")),
    }
}

fn unreachable_message(admin: &str, why: &str) -> String {
    format!(
        "\n\nThe Postgres tests need a server, and {admin} is unreachable: {why}.\n\
         Start one, then run the tests again:\n  \
         - Debian/Ubuntu with the postgresql package: \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n  \
         - Docker: docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:17\n\
         or point TEST_DATABASE_URL at a server where the user may create databases.\n"
    )
}

/// The address of the Postgres server the tests use.
pub fn pg_socket_addr() -> std::net::SocketAddr {
    let url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .expect("TEST_DATABASE_URL names an IP address and port")
}

/// `url` with its host and port replaced by `addr`.
pub fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let mut url = url::Url::parse(url).expect("a database URL");
    url.set_ip_host(addr.ip()).expect("a URL with a host");
    url.set_port(Some(addr.port())).expect("a URL with a port");
    url.to_string()
}
