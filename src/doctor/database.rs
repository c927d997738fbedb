//! The database: reachable, and with mailvet's schema in place. Nothing is
//! written: a missing schema is reported (`mailvet migrate` applies it).

use std::time::Duration;

use super::Row;
use crate::error::error_chain;
use crate::secret::{ExposeSecret, redact_url};
use crate::settings::DatabaseArgs;
use crate::store::{self, Backend};

const CHECK: &str = "database";

/// Connects, asks a trivial query, then reads the suppression list's
/// change sequence (which exists once the migrations are applied).
pub(super) async fn check(database: &DatabaseArgs) -> Vec<Row> {
    let url = redact_url(database.url.expose_secret());
    let backend = match Backend::for_url(database.url.expose_secret()) {
        Ok(backend) => backend,
        Err(err) => {
            return vec![Row::fail(
                CHECK,
                err.to_string(),
                "set --database-url to postgres://user:password@host/db or sqlite://FILE",
            )];
        }
    };
    let what = format!("{backend} at {url}");
    let unreachable = |detail: String| {
        Row::fail(
            CHECK,
            format!("{what}: unreachable: {detail}"),
            match backend {
                Backend::Postgres => {
                    "start the database, or fix --database-url (host, port, user, password)"
                }
                Backend::Sqlite => {
                    "fix --database-url: the file's directory must exist and be writable"
                }
            },
        )
    };
    // The pool waits this long for a connection; the whole check no longer.
    let limit = database.acquire_timeout + Duration::from_secs(1);
    let store = match tokio::time::timeout(limit, store::connect(&database.store())).await {
        Ok(Ok(store)) => store,
        Ok(Err(err)) => return vec![unreachable(error_chain(&err))],
        Err(_) => return vec![unreachable(format!("no connection within {limit:?}"))],
    };
    let row = match tokio::time::timeout(limit, store.ping()).await {
        Err(_) => unreachable(format!("no answer within {limit:?}")),
        Ok(Err(err)) => {
            let mut detail = error_chain(&err);
            if backend == Backend::Postgres
                && let Some(why) = tcp_failure(database.url.expose_secret()).await
            {
                // The pool says only that it timed out; say why.
                detail = format!("{detail} ({why})");
            }
            unreachable(detail)
        }
        Ok(Ok(())) => match store.suppression_seq().await {
            Ok(_) => Row::pass(CHECK, format!("{what}: reachable, schema in place")),
            Err(err) => Row::warn(
                CHECK,
                format!(
                    "{what}: reachable, but mailvet's tables do not answer ({})",
                    error_chain(&err)
                ),
                "run `mailvet migrate` (serve also migrates at start-up)",
            ),
        },
    };
    store.close().await;
    vec![row]
}

/// Why a TCP connection to the Postgres server of `url` fails, if it
/// does: the pool's own error says only that it timed out.
async fn tcp_failure(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())?
        .to_owned();
    let port = parsed.port().unwrap_or(5432);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some(format!("{host}:{port}: {err}")),
        Err(_) => Some(format!("{host}:{port}: no answer to a TCP connection")),
    }
}
