//! The pool of SMTP sessions: a cap on sessions open at once, overall, per
//! mail host name and per IP address (a thousand names pointing at one
//! address share that address's cap), and sessions handed from one probe
//! of a host to the next, with the permits (and, across replicas, the
//! shared slot) they hold.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::cluster::Lease;

use crate::smtp::Session;

/// How long a session handed off to the next probe of its host waits to be
/// taken before it is closed.
const HANDOFF_WAIT: Duration = Duration::from_secs(2);

/// A session left open for the next probe of the same host. It keeps its
/// permits: an idle session counts against the caps as an active one.
pub struct IdleSession {
    id: u64,
    pub session: Session,
    /// Recipients the server rejected in this session so far.
    pub rejections: usize,
    pub permits: SessionPermits,
}

/// One mail host: its session limit, the probes that want it, and sessions
/// handed off between them.
struct HostState {
    limit: Arc<Semaphore>,
    /// Probes of this host in progress or waiting.
    wanted: AtomicUsize,
    idle: Mutex<Vec<IdleSession>>,
    /// Told when a session is handed off.
    handed_off: Notify,
    next_id: AtomicU64,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

impl HostState {
    fn new(max_sessions: usize) -> Self {
        HostState {
            limit: Arc::new(Semaphore::new(max_sessions.max(1))),
            wanted: AtomicUsize::new(0),
            idle: Mutex::default(),
            handed_off: Notify::new(),
            next_id: AtomicU64::new(0),
        }
    }
}

/// The session caps, and the state of every mail host probed.
#[derive(Debug)]
pub struct HostPool {
    sessions: Arc<Semaphore>,
    max_per_host: usize,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
    /// The per-address caps.
    addresses: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl HostPool {
    pub fn new(max_sessions: usize, max_per_host: usize) -> Self {
        HostPool {
            sessions: Arc::new(Semaphore::new(max_sessions.max(1))),
            max_per_host,
            hosts: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// Forgets hosts and addresses nobody is probing, holding a session
    /// with, or handing one off at.
    pub fn prune(&self) {
        let max = self.max_per_host.max(1);
        self.hosts.lock().expect("host pool").retain(|_, state| {
            state.wanted.load(Ordering::SeqCst) > 0
                || state.limit.available_permits() < max
                || !state.idle.lock().expect("idle sessions").is_empty()
        });
        self.addresses
            .lock()
            .expect("address pool")
            .retain(|_, limit| limit.available_permits() < max);
    }

    /// Sessions allowed at once to one host, and to one address.
    pub fn max_per_host(&self) -> usize {
        self.max_per_host.max(1)
    }

    /// Hosts and addresses whose state is kept.
    #[cfg(test)]
    pub fn tracked(&self) -> (usize, usize) {
        (
            self.hosts.lock().expect("host pool").len(),
            self.addresses.lock().expect("address pool").len(),
        )
    }

    /// Registers a probe's interest in a host while the returned value
    /// lives.
    pub fn want(&self, host: &str) -> HostClaim {
        let state = {
            let mut hosts = self.hosts.lock().expect("host pool");
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(HostState::new(self.max_per_host)))
                .clone()
        };
        state.wanted.fetch_add(1, Ordering::SeqCst);
        HostClaim { state }
    }

    /// Waits for a session slot at the claim's host, at the address `ip`
    /// and a global one. The host's and the address's first, so that
    /// waiting for a busy host holds no global slot.
    pub async fn permits(&self, claim: &HostClaim, ip: IpAddr) -> SessionPermits {
        let host = claim
            .state
            .limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphores are never closed");
        let limit = self
            .addresses
            .lock()
            .expect("address pool")
            .entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(self.max_per_host.max(1))))
            .clone();
        let address = limit
            .acquire_owned()
            .await
            .expect("semaphores are never closed");
        let global = self
            .sessions
            .clone()
            .acquire_owned()
            .await
            .expect("semaphores are never closed");
        metrics::gauge!("mailvet_smtp_sessions_in_use").increment(1.0);
        SessionPermits {
            _host: host,
            _address: address,
            _global: global,
            lease: None,
        }
    }
}

/// The right to hold one session open, at one host and overall (and, when
/// replicas share a database, a slot there). Counted in
/// `mailvet_smtp_sessions_in_use` while it lives.
#[derive(Debug)]
pub struct SessionPermits {
    _host: OwnedSemaphorePermit,
    _address: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
    lease: Option<Lease>,
}

impl SessionPermits {
    /// Holds the shared slot with the permits: it is released with them.
    pub fn hold(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }
}

impl Drop for SessionPermits {
    fn drop(&mut self) {
        metrics::gauge!("mailvet_smtp_sessions_in_use").decrement(1.0);
    }
}

/// A probe's interest in a host, counted while it lives.
#[derive(Debug)]
pub struct HostClaim {
    state: Arc<HostState>,
}

impl HostClaim {
    /// Whether another probe wants the host too.
    pub fn shared(&self) -> bool {
        self.state.wanted.load(Ordering::SeqCst) > 1
    }

    /// A session to `addr` handed off by an earlier probe, if any.
    pub fn take_idle(&self, addr: SocketAddr) -> Option<IdleSession> {
        let mut idle = self.state.idle.lock().expect("idle sessions");
        let at = idle.iter().position(|entry| entry.session.peer() == addr)?;
        Some(idle.swap_remove(at))
    }

    /// Waits for a session to `addr` handed off by another probe of the
    /// host. Cancel-safe.
    pub async fn handed_off(&self, addr: SocketAddr) -> IdleSession {
        loop {
            let notified = self.state.handed_off.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(idle) = self.take_idle(addr) {
                return idle;
            }
            notified.await;
        }
    }

    /// Leaves a session open, with its permits, for the next probe of this
    /// host; closes it if no probe takes it within [`HANDOFF_WAIT`].
    pub fn hand_off(&self, session: Session, rejections: usize, permits: SessionPermits) {
        let id = self.state.next_id.fetch_add(1, Ordering::Relaxed);
        self.state
            .idle
            .lock()
            .expect("idle sessions")
            .push(IdleSession {
                id,
                session,
                rejections,
                permits,
            });
        self.state.handed_off.notify_waiters();
        let state = self.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(HANDOFF_WAIT).await;
            let expired = {
                let mut idle = state.idle.lock().expect("idle sessions");
                idle.iter()
                    .position(|entry| entry.id == id)
                    .map(|at| idle.swap_remove(at))
            };
            if let Some(entry) = expired {
                entry.session.quit().await;
            }
        });
    }
}

impl Drop for HostClaim {
    fn drop(&mut self) {
        self.state.wanted.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_pointing_at_one_address_share_its_cap_and_idle_state_is_pruned() {
        let pool = Arc::new(HostPool::new(100, 2));
        let ip: IpAddr = [192, 0, 2, 1].into();
        let first = pool.want("mx1.one.test");
        let second = pool.want("mx2.two.test");
        let third = pool.want("mx3.three.test");
        let _a = pool.permits(&first, ip).await;
        let _b = pool.permits(&second, ip).await;
        // A third name at the same address waits for a slot there.
        let waiting = tokio::time::timeout(Duration::from_millis(100), pool.permits(&third, ip));
        assert!(waiting.await.is_err(), "a third session at one address");
        assert_eq!(pool.tracked(), (3, 1));
        drop((_a, _b));
        let _c = pool.permits(&third, ip).await;
        drop(_c);
        drop((first, second, third));
        pool.prune();
        assert_eq!(pool.tracked(), (0, 0), "nothing in use is kept");
    }
}
