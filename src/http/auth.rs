//! API keys: `Authorization: Bearer <key>` (or HTTP Basic with the key as
//! the password, for webhooks). Secret keys may call every
//! endpoint; public keys only `POST /verify` (they are meant to be seen in
//! a browser's signup form). Keys are compared in constant time, by their
//! SHA-256 digests, so neither content nor length leaks through timing.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::settings::Secret;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Secret,
    /// `POST /verify` only.
    Public,
}

type KeyDigest = [u8; 32];

/// The configured keys, kept as digests.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    keys: Arc<Vec<(KeyDigest, Scope)>>,
}

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Equality of two digests without an early exit.
fn same(a: &KeyDigest, b: &KeyDigest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Keys {
    pub fn new(secret: &[Secret], public: &[Secret]) -> Self {
        let keys = secret
            .iter()
            .map(|key| (digest(key.expose()), Scope::Secret))
            .chain(
                public
                    .iter()
                    .map(|key| (digest(key.expose()), Scope::Public)),
            )
            .collect();
        Keys {
            keys: Arc::new(keys),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The scope of a presented key, checking every configured key.
    fn scope_of(&self, presented: &str) -> Option<Scope> {
        let presented = digest(presented);
        let mut found = None;
        for (key, scope) in self.keys.iter() {
            if same(key, &presented) && found.is_none() {
                found = Some(*scope);
            }
        }
        found
    }
}

/// Routes anyone may call: probes for orchestrators and the contract.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.yaml")
}

/// The key a request presents: `Authorization: Bearer <key>`, or HTTP
/// Basic with the key as the password (for ESP webhooks, which can only put
/// credentials in the URL: `https://mailvet:<key>@host/bounces/ses`).
fn presented_key(request: &Request) -> Option<String> {
    use base64::Engine;
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':')?.1.to_owned()
    } else {
        return None;
    };
    (!key.is_empty()).then_some(key)
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mailvet\""),
    );
    response
}

/// Checks the key of every request to a protected route. With no keys
/// configured (only allowed on a loopback address) everything is open.
pub async fn require_key(State(keys): State<Keys>, request: Request, next: Next) -> Response {
    if keys.is_empty() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let Some(route) = route else {
        // No route matched: the fallback answers 404.
        return next.run(request).await;
    };
    if is_open(&route) {
        return next.run(request).await;
    }
    let Some(presented) = presented_key(&request) else {
        return unauthorized("this endpoint needs an API key: Authorization: Bearer <key>");
    };
    match keys.scope_of(&presented) {
        None => unauthorized("the API key is not known"),
        Some(Scope::Secret) => next.run(request).await,
        Some(Scope::Public) if route == "/verify" && request.method() == Method::POST => {
            next.run(request).await
        }
        Some(Scope::Public) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a public key may only call POST /verify; use a secret key",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_to_their_scope() {
        let keys = Keys::new(&[Secret::new("sk_1")], &[Secret::new("pk_1")]);
        assert_eq!(keys.scope_of("sk_1"), Some(Scope::Secret));
        assert_eq!(keys.scope_of("pk_1"), Some(Scope::Public));
        assert_eq!(keys.scope_of("sk_"), None);
        assert_eq!(keys.scope_of("sk_11"), None);
        assert_eq!(keys.scope_of(""), None);
        assert!(Keys::default().is_empty());
    }
}
