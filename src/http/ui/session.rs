//! Dashboard sessions: a random 256-bit id in the `mailvet_session`
//! cookie (`HttpOnly; SameSite=Strict; Path=/ui`, and `Secure` behind TLS),
//! kept in memory. A session ends after an hour without use, at the
//! latest after `--ui-session-ttl`, or at logout. Each holds the CSRF token
//! that every state-changing form carries in a hidden field.
//!
//! Also the dashboard's error, [`UiError`] (drawn as a page by `layout.rs`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE_NAME: &str = "mailvet_session";
/// A session unused this long ends.
const IDLE: Duration = Duration::from_secs(3600);
/// Login attempts allowed a minute from one client address.
const LOGINS_PER_MINUTE: u32 = 10;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session(Arc<SessionInner>);

#[derive(Debug)]
struct SessionInner {
    id: String,
    csrf: String,
}

/// 256 random bits, URL-safe base64.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Session {
    /// The token a form must send back.
    pub fn csrf(&self) -> &str {
        &self.0.csrf
    }

    /// Whether a form's token is this session's (compared in constant
    /// time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.0.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// Refuses a form without this session's token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), UiError> {
        if self.csrf_matches(presented) {
            Ok(())
        } else {
            Err(UiError::forbidden(
                "The form's security token is missing or out of date; reload the page and try again.",
                Some(self.clone()),
            ))
        }
    }

    /// The `Set-Cookie` value that hands this session to the browser.
    pub fn cookie(&self, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/ui{secure}",
            self.0.id
        )
    }
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn expired_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0{secure}")
}

/// The live sessions, and the limit on login attempts.
#[derive(Debug, Clone)]
pub struct Sessions {
    live: moka::future::Cache<String, Session>,
    logins: Arc<governor::DefaultKeyedRateLimiter<IpAddr>>,
}

impl Sessions {
    /// Sessions that end after an hour idle, or `ttl` after they began.
    pub fn new(ttl: Duration) -> Self {
        let per_minute = NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Sessions {
            live: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(IDLE.min(ttl))
                .time_to_live(ttl)
                .build(),
            logins: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute,
            ))),
        }
    }

    /// Begins a session.
    pub async fn start(&self) -> Session {
        let session = Session(Arc::new(SessionInner {
            id: random_token(),
            csrf: random_token(),
        }));
        self.live
            .insert(session.0.id.clone(), session.clone())
            .await;
        session
    }

    /// Ends a session.
    pub async fn end(&self, session: &Session) {
        self.live.invalidate(&session.0.id).await;
    }

    /// The live session the request's cookie names.
    pub async fn of_request(&self, headers: &HeaderMap) -> Option<Session> {
        let id = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE_NAME)
            .map(|(_, value)| value.to_owned())?;
        self.live.get(&id).await
    }

    /// Takes one login attempt from `client`; `false` when it is over its
    /// limit.
    pub fn may_try_login(&self, client: IpAddr) -> bool {
        self.logins.check_key(&client).is_ok()
    }
}

/// An error as the dashboard shows it: an HTML page with a heading and a
/// sentence, and the status (drawn in the page frame, `layout.rs`).
#[derive(Debug)]
pub struct UiError {
    pub(super) status: StatusCode,
    pub(super) title: &'static str,
    pub(super) message: String,
    pub(super) session: Option<Session>,
}

impl UiError {
    pub fn new(
        status: StatusCode,
        title: &'static str,
        message: impl Into<String>,
        session: Option<Session>,
    ) -> Self {
        UiError {
            status,
            title,
            message: message.into(),
            session,
        }
    }

    pub fn forbidden(message: impl Into<String>, session: Option<Session>) -> Self {
        UiError::new(StatusCode::FORBIDDEN, "Refused", message, session)
    }

    /// An API error (a bad form value, the database down) as a page.
    pub fn from_api(err: crate::http::ApiError, session: &Session) -> Self {
        let title = if err.status.is_server_error() {
            "Something went wrong"
        } else {
            "That did not work"
        };
        UiError::new(err.status, title, err.message, Some(session.clone()))
    }
}
