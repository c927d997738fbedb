//! API keys: `Authorization: Bearer <key>` (or HTTP Basic with the key as
//! the password, for webhooks). Secret keys may call every
//! endpoint; public keys only `POST /verify` (they are meant to be seen in
//! a browser's signup form). Keys are compared in constant time, by their
//! SHA-256 digests, so neither content nor length leaks through timing.
//!
//! Also the rate limits, and the client address behind trusted proxies.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::secret::{ExposeSecret, SecretString};
use crate::verify::Requester;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Secret,
    /// `POST /verify` only.
    Public,
    /// `POST /bounces/{provider}` only: the key an ESP's webhook URL holds.
    Webhook,
}

type KeyDigest = [u8; 32];

/// The configured keys, kept as digests.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    keys: Arc<Vec<Key>>,
}

/// One configured key.
#[derive(Debug)]
struct Key {
    digest: KeyDigest,
    scope: Scope,
    /// What the key is known by (see [`Caller`]), written once.
    name: Arc<str>,
}

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Equality of two digests in constant time.
fn same(a: &KeyDigest, b: &KeyDigest) -> bool {
    a[..].ct_eq(&b[..]).into()
}

impl Keys {
    pub fn new(secret: &[SecretString], public: &[SecretString], webhook: &[SecretString]) -> Self {
        let scoped = |keys: &[SecretString], scope: Scope| {
            keys.iter()
                .map(move |key| {
                    let digest = digest(key.expose_secret());
                    Key {
                        digest,
                        scope,
                        name: Arc::from(digest_prefix(&digest)),
                    }
                })
                .collect::<Vec<_>>()
        };
        let keys = scoped(secret, Scope::Secret)
            .into_iter()
            .chain(scoped(public, Scope::Public))
            .chain(scoped(webhook, Scope::Webhook))
            .collect();
        Keys {
            keys: Arc::new(keys),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The index and scope of a presented key, checking every configured
    /// key (no early exit on a match either).
    fn identify(&self, presented: &str) -> Option<(usize, Scope)> {
        let presented = digest(presented);
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            if same(&key.digest, &presented) && found.is_none() {
                found = Some((index, key.scope));
            }
        }
        found
    }

    /// The name of the key at `index`: a prefix of its digest.
    fn name_at(&self, index: usize) -> &Arc<str> {
        &self.keys[index].name
    }
}

/// Request rates allowed per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests a minute from one client IP with a public key.
    pub public_per_minute: u32,
    /// Requests a second with one secret key.
    pub secret_per_second: u32,
}

/// Keys, rate limits and the proxies whose forwarded headers are believed.
#[derive(Debug, Clone)]
pub struct Gate {
    keys: Keys,
    public: Arc<governor::DefaultKeyedRateLimiter<IpAddr>>,
    /// One limiter per key, at the key's index: secret and webhook keys
    /// are limited per key (public keys' limiters go unused).
    secret: Arc<Vec<governor::DefaultDirectRateLimiter>>,
    trusted_proxies: Arc<Vec<IpNet>>,
}

/// A trusted proxy as `--trusted-proxies` takes it: a CIDR range
/// (`10.0.0.0/8`), or an IP address, which means that one address.
pub fn parse_ip_range(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.contains('/') {
        text.parse::<IpNet>()
            .map_err(|err| format!("`{text}` is not a CIDR range: {err}"))
    } else {
        text.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|err| format!("`{text}` is not an IP address or CIDR range: {err}"))
    }
}

impl Gate {
    pub fn new(keys: Keys, limits: RateLimits, trusted_proxies: Vec<IpNet>) -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        let per_key = governor::Quota::per_second(nonzero(limits.secret_per_second));
        let secret = (0..keys.len())
            .map(|_| governor::RateLimiter::direct(per_key))
            .collect();
        Gate {
            keys,
            public: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                nonzero(limits.public_per_minute),
            ))),
            secret: Arc::new(secret),
            trusted_proxies: Arc::new(trusted_proxies),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether `presented` is one of the secret keys (checked as every key
    /// is, in constant time).
    pub(crate) fn is_secret_key(&self, presented: &str) -> bool {
        matches!(self.keys.identify(presented), Some((_, Scope::Secret)))
    }

    /// The client's address, as the rate limits know it.
    pub(crate) fn client_of(&self, request: &Request) -> IpAddr {
        self.client_ip(request)
            .map_or(IpAddr::from([0, 0, 0, 0]), client_network)
    }

    /// Whether the request came over TLS: said by `X-Forwarded-Proto:
    /// https` from a trusted proxy (this server itself speaks plain HTTP).
    pub(crate) fn came_over_tls(&self, request: &Request) -> bool {
        let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
            return false;
        };
        self.is_trusted_proxy(&peer.0.ip())
            && request
                .headers()
                .get("x-forwarded-proto")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    /// Forgets callers not seen lately.
    pub fn housekeeping(&self) {
        self.public.retain_recent();
    }

    /// Whether `ip` is in one of the trusted proxies' ranges.
    fn is_trusted_proxy(&self, ip: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|range| range.contains(ip))
    }

    /// The client's address: the TCP peer, or — only when the peer is a
    /// trusted proxy — the last address in `X-Forwarded-For` that is not a
    /// trusted proxy itself.
    fn client_ip(&self, request: &Request) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip();
        if !self.is_trusted_proxy(&peer) {
            return Some(peer);
        }
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|item| item.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !self.is_trusted_proxy(ip))
                .unwrap_or(peer),
        )
    }
}

/// The address a client is known by: an IPv4 address, or an IPv6
/// client's /64 (a host is usually given a whole /64, and can rotate
/// through it at will).
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

fn too_many(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests; try again in {seconds} s"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// The 429 answer when `key` is over its limit, `None` when it may go on.
fn over_limit<K: std::hash::Hash + Eq + Clone>(
    limiter: &governor::DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Option<Response> {
    limited(limiter.check_key(key).err()?)
}

/// The 429 answer when the key at `index` is over its limit, `None` when
/// it may go on.
fn key_over_limit(gate: &Gate, index: usize) -> Option<Response> {
    limited(gate.secret.get(index)?.check().err()?)
}

fn limited(
    not_until: governor::NotUntil<
        <governor::clock::DefaultClock as governor::clock::Clock>::Instant,
    >,
) -> Option<Response> {
    use governor::clock::Clock;
    metrics::counter!("mailvet_http_rate_limited_total").increment(1);
    Some(too_many(not_until.wait_time_from(
        governor::clock::DefaultClock::default().now(),
    )))
}

/// Routes anyone may call: probes for orchestrators, the contract, the
/// signup-form script (loaded by every visitor of the form's page), and
/// the link of a confirmation message (its token is the credential).
fn is_open(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/openapi.yaml" | "/widget.js" | "/confirm/{token}"
    )
}

/// Routes a public key may call (with `POST`).
fn is_public_route(path: &str) -> bool {
    matches!(path, "/verify" | "/confirmations")
}

/// The secret key a request came with, by a prefix of its digest: what
/// per-key limits kept in the database count by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Arc<str>);

/// The first six bytes of a key's digest, in hex.
fn digest_prefix(digest: &KeyDigest) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a request presents: `Authorization: Bearer <key>`, or HTTP
/// Basic with the key as the password (for ESP webhooks, which can only put
/// credentials in the URL: `https://mailvet:<key>@host/bounces/ses`).
fn presented_key(request: &Request) -> Option<Cow<'_, str>> {
    use base64::Engine;
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        Cow::Borrowed(credentials)
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        Cow::Owned(text.split_once(':')?.1.to_owned())
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
pub async fn require_key(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let keys = &gate.keys;
    if keys.is_empty() {
        return next.run(request).await;
    }
    // A cheap copy (the template is shared), so that the request can be
    // changed below.
    let Some(route) = request.extensions().get::<MatchedPath>().cloned() else {
        // No route matched: the fallback answers 404.
        return next.run(request).await;
    };
    let route = route.as_str();
    if is_open(route) || super::ui::is_ui_path(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(identified) = presented_key(&request).map(|presented| keys.identify(&presented))
    else {
        return unauthorized("this endpoint needs an API key: Authorization: Bearer <key>");
    };
    match identified {
        None => unauthorized("the API key is not known"),
        Some((index, Scope::Secret)) => match key_over_limit(&gate, index) {
            None => {
                request.extensions_mut().insert(Requester::Trusted);
                request
                    .extensions_mut()
                    .insert(Caller(keys.name_at(index).clone()));
                next.run(request).await
            }
            Some(limited) => limited,
        },
        Some((index, Scope::Public))
            if is_public_route(route) && request.method() == Method::POST =>
        {
            // Public keys are shared by every visitor of a page: the limit
            // is per client address (an IPv6 client's /64).
            let client = gate
                .client_ip(&request)
                .map_or(IpAddr::from([0, 0, 0, 0]), client_network);
            match over_limit(&gate.public, &client) {
                None => {
                    let key = keys.name_at(index);
                    request.extensions_mut().insert(Requester::Public {
                        client: format!("{key}/{client}"),
                    });
                    next.run(request).await
                }
                Some(limited) => limited,
            }
        }
        Some((_, Scope::Public)) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a public key may only call POST /verify and POST /confirmations; use a secret key",
        )
        .into_response(),
        Some((index, Scope::Webhook))
            if route == "/bounces/{provider}" && request.method() == Method::POST =>
        {
            match key_over_limit(&gate, index) {
                None => next.run(request).await,
                Some(limited) => limited,
            }
        }
        Some((_, Scope::Webhook)) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a webhook key may only deliver ESP webhooks (POST /bounces/{provider}); use a secret key",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_known_by_their_64() {
        let network = |ip: &str| client_network(ip.parse().expect("an address")).to_string();
        assert_eq!(network("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(network("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::");
        assert_eq!(network("198.51.100.7"), "198.51.100.7");
        assert_eq!(network("::ffff:198.51.100.7"), "198.51.100.7");
    }

    #[test]
    fn keys_resolve_to_their_scope() {
        let keys = Keys::new(
            &[SecretString::from("sk_1")],
            &[SecretString::from("pk_1")],
            &[SecretString::from("wk_1")],
        );
        let scope_of = |key: &str| keys.identify(key).map(|(_, scope)| scope);
        assert_eq!(scope_of("sk_1"), Some(Scope::Secret));
        assert_eq!(scope_of("pk_1"), Some(Scope::Public));
        assert_eq!(scope_of("wk_1"), Some(Scope::Webhook));
        assert_eq!(scope_of("sk_"), None);
        assert_eq!(scope_of("sk_11"), None);
        assert_eq!(scope_of(""), None);
        assert!(Keys::default().is_empty());
    }

    fn gate(trusted_proxies: &str) -> Gate {
        let ranges = trusted_proxies
            .split(',')
            .map(|range| parse_ip_range(range).expect("a range"))
            .collect();
        let limits = RateLimits {
            public_per_minute: 60,
            secret_per_second: 200,
        };
        Gate::new(Keys::default(), limits, ranges)
    }

    /// The client address of a request from `peer` forwarded for `client`.
    fn client_of(gate: &Gate, peer: &str, client: &str) -> IpAddr {
        let mut request = Request::new(axum::body::Body::empty());
        let peer: IpAddr = peer.parse().expect("an IP");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer, 40000)));
        request.headers_mut().insert(
            "x-forwarded-for",
            HeaderValue::from_str(client).expect("a header value"),
        );
        gate.client_ip(&request).expect("a client address")
    }

    #[test]
    fn trusted_proxies_are_ranges_or_single_addresses() {
        let gate = gate("10.0.0.0/8,192.168.1.7,fd00::/8");
        let client: IpAddr = "203.0.113.9".parse().expect("an IP");
        // Inside a range: the forwarded address is believed.
        assert_eq!(client_of(&gate, "10.1.2.3", "203.0.113.9"), client);
        assert_eq!(client_of(&gate, "fd12::1", "203.0.113.9"), client);
        // A bare address is that one address.
        assert_eq!(client_of(&gate, "192.168.1.7", "203.0.113.9"), client);
        // Outside every range: the peer itself, whatever the header says.
        for outside in ["11.0.0.1", "192.168.1.8", "fe80::1"] {
            let peer: IpAddr = outside.parse().expect("an IP");
            assert_eq!(client_of(&gate, outside, "203.0.113.9"), peer);
        }
        // A trusted proxy named in the header is skipped, from the right.
        assert_eq!(
            client_of(&gate, "10.0.0.1", "203.0.113.9, 10.9.9.9"),
            client
        );
    }

    #[test]
    fn a_proxy_range_must_be_well_formed() {
        assert!(parse_ip_range("10.0.0.0/8").is_ok());
        assert!(parse_ip_range(" 192.168.1.7 ").is_ok());
        assert!(parse_ip_range("::1").is_ok());
        for bad in ["10.0.0.0/33", "10.0.0", "proxy.example", ""] {
            assert!(parse_ip_range(bad).is_err(), "{bad}");
        }
    }
}
