//! The way out for SMTP probes: direct, or through the configured SOCKS5
//! proxies. One mail host sticks to one proxy (rendezvous hashing on the
//! host's name), so greylisting and the catch-all check see one client; a
//! proxy that fails is set aside for a while, its hosts move to the next
//! proxy in their order, and come back when it does.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::smtp::Socks5Proxy;

/// How long a proxy is set aside after its first failure in a row; each
/// further failure doubles it, up to [`MAX_SET_ASIDE`].
const FIRST_SET_ASIDE: Duration = Duration::from_secs(15);
const MAX_SET_ASIDE: Duration = Duration::from_secs(300);

/// One proxy and how it has fared.
#[derive(Debug)]
struct ProxyState {
    proxy: Socks5Proxy,
    /// `proxy` as shown in logs and metrics: no credentials.
    label: String,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Failures in a row.
    failures: u32,
    /// Until when the proxy is not used.
    set_aside_until: Option<Instant>,
}

/// What a proxy's attempt told about the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyOutcome {
    /// The proxy did its part (whatever the mail server then did).
    Worked,
    /// The proxy itself failed.
    Failed,
}

/// The proxies, in the order given. Empty: probes connect directly.
#[derive(Debug, Default)]
pub struct Egress {
    proxies: Vec<ProxyState>,
}

/// A proxy's state, for `/stats` and the doctor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProxyStatus {
    pub proxy: String,
    pub up: bool,
    pub failures_in_a_row: u32,
    /// Seconds until it is tried again, while set aside.
    pub retry_in_seconds: Option<u64>,
}

impl Egress {
    pub fn new(proxies: Vec<Socks5Proxy>) -> Self {
        let proxies: Vec<ProxyState> = proxies
            .into_iter()
            .map(|proxy| ProxyState {
                label: proxy.to_string(),
                proxy,
                health: Mutex::default(),
            })
            .collect();
        for state in &proxies {
            set_gauge(&state.label, true);
        }
        Egress { proxies }
    }

    /// Whether probes go through proxies.
    pub fn proxied(&self) -> bool {
        !self.proxies.is_empty()
    }

    /// The proxies to try for `host`, best first: its own proxy, then the
    /// next ones in its order, skipping those set aside. Empty when every
    /// proxy is set aside.
    pub fn route(&self, host: &str) -> Vec<(usize, &Socks5Proxy)> {
        let now = Instant::now();
        let mut ranked: Vec<(u64, usize)> = self
            .proxies
            .iter()
            .enumerate()
            .filter(|(_, state)| {
                let health = state.health.lock().expect("proxy health");
                health.set_aside_until.is_none_or(|until| until <= now)
            })
            .map(|(index, _)| (score(host, index), index))
            .collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        ranked
            .into_iter()
            .map(|(_, index)| (index, &self.proxies[index].proxy))
            .collect()
    }

    /// How long until the first set-aside proxy is tried again.
    pub fn next_retry(&self) -> Option<Duration> {
        let now = Instant::now();
        self.proxies
            .iter()
            .filter_map(|state| state.health.lock().expect("proxy health").set_aside_until)
            .map(|until| until.saturating_duration_since(now))
            .min()
    }

    /// Records how the proxy at `index` fared.
    pub fn report(&self, index: usize, outcome: ProxyOutcome, detail: &str) {
        let Some(state) = self.proxies.get(index) else {
            return;
        };
        let mut health = state.health.lock().expect("proxy health");
        match outcome {
            ProxyOutcome::Worked => {
                if health.failures > 0 {
                    tracing::info!(proxy = %state.label, "SOCKS5 proxy works again");
                    set_gauge(&state.label, true);
                }
                *health = Health::default();
            }
            ProxyOutcome::Failed => {
                health.failures = health.failures.saturating_add(1);
                let doublings = health.failures.saturating_sub(1).min(8);
                let pause = FIRST_SET_ASIDE
                    .saturating_mul(1 << doublings)
                    .min(MAX_SET_ASIDE);
                health.set_aside_until = Some(Instant::now() + pause);
                tracing::warn!(
                    proxy = %state.label,
                    failures_in_a_row = health.failures,
                    set_aside_seconds = pause.as_secs(),
                    error = detail,
                    "SOCKS5 proxy failed; set aside"
                );
                set_gauge(&state.label, false);
            }
        }
    }

    /// Every proxy's state.
    pub fn status(&self) -> Vec<ProxyStatus> {
        let now = Instant::now();
        self.proxies
            .iter()
            .map(|state| {
                let health = state.health.lock().expect("proxy health");
                let retry = health
                    .set_aside_until
                    .filter(|until| *until > now)
                    .map(|until| until.saturating_duration_since(now).as_secs().max(1));
                ProxyStatus {
                    proxy: state.label.clone(),
                    up: retry.is_none(),
                    failures_in_a_row: health.failures,
                    retry_in_seconds: retry,
                }
            })
            .collect()
    }
}

/// The rendezvous score of `host` on the proxy at `index`: the highest
/// score is the host's proxy. The hasher has fixed keys, so the choice is
/// the same in every process and after a restart.
fn score(host: &str, index: usize) -> u64 {
    let mut hasher = DefaultHasher::new();
    host.to_ascii_lowercase().hash(&mut hasher);
    index.hash(&mut hasher);
    hasher.finish()
}

fn set_gauge(label: &str, up: bool) {
    metrics::gauge!("mailvet_proxy_up", "proxy" => label.to_owned()).set(if up {
        1.0
    } else {
        0.0
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(count: usize) -> Egress {
        Egress::new(
            (0..count)
                .map(|i| {
                    Socks5Proxy::parse(&format!("socks5://127.0.0.1:{}", 1080 + i)).expect("valid")
                })
                .collect(),
        )
    }

    fn first(egress: &Egress, host: &str) -> Option<usize> {
        egress.route(host).first().map(|(index, _)| *index)
    }

    #[test]
    fn a_host_sticks_to_one_proxy_and_hosts_spread_over_all() {
        let egress = egress(3);
        let mut used = [0usize; 3];
        for n in 0..300 {
            let host = format!("mx{n}.example.test");
            let chosen = first(&egress, &host).expect("a proxy");
            assert_eq!(first(&egress, &host), Some(chosen));
            assert_eq!(first(&egress, &host.to_uppercase()), Some(chosen));
            used[chosen] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "{used:?}");
    }

    #[test]
    fn a_failed_proxy_is_set_aside_and_its_hosts_move_then_come_back() {
        let egress = egress(2);
        let host = "mx.example.test";
        let own = first(&egress, host).expect("a proxy");
        egress.report(own, ProxyOutcome::Failed, "refused");
        let route = egress.route(host);
        assert_eq!(route.len(), 1);
        assert_ne!(route[0].0, own);
        assert!(!egress.status()[own].up);
        assert_eq!(egress.status()[own].failures_in_a_row, 1);

        egress.report(own, ProxyOutcome::Worked, "");
        assert_eq!(first(&egress, host), Some(own));
        assert!(egress.status()[own].up);
    }

    #[test]
    fn with_every_proxy_set_aside_there_is_no_route() {
        let egress = egress(2);
        egress.report(0, ProxyOutcome::Failed, "down");
        egress.report(1, ProxyOutcome::Failed, "down");
        egress.report(1, ProxyOutcome::Failed, "down");
        assert!(egress.route("mx.example.test").is_empty());
        let retry = egress.next_retry().expect("set aside");
        assert!(retry <= FIRST_SET_ASIDE, "{retry:?}");
        assert!(egress.status()[1].retry_in_seconds.expect("set aside") > 15);
    }
}
