//! The probe budget: new SMTP probes allowed per domain per minute, so that
//! no caller can turn mailvet into a flood of sessions at someone's mail
//! server — and so that no one caller can spend it for everyone else.
//!
//! A domain's budget (`--probe-budget-per-domain`) is split by who asks:
//! - trusted callers (secret keys, jobs, the command line, an open server
//!   on loopback) may use all of it;
//! - callers with a public key together use at most half of it, and each
//!   public client (public key and client address) at most a tenth.
//!
//! So a browser draining one domain with random addresses gets its tenth,
//! other browsers share what is left of the public half, and secret keys
//! and jobs always find the other half free. GCRA limiters (governor),
//! keyed by domain, and by client and domain — or, when replicas share a
//! Postgres database, the same buckets there (`SharedAsk`), taken with the
//! probe's first session slot (`verify/cluster.rs`), so that the budget is
//! one for the cluster.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};

use super::evidence::BudgetRefusal;
use crate::store::cluster::BudgetBucket;

type Limiter<K> = governor::DefaultKeyedRateLimiter<K>;

/// Who a verification is for, as the budget sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requester {
    /// A secret key, a job, the command line, an open server: the whole
    /// budget.
    Trusted,
    /// A browser with a public key: `client` names the key and the client's
    /// address (an IPv6 client by its /64).
    Public { client: String },
}

impl Requester {
    pub fn is_public(&self) -> bool {
        matches!(self, Requester::Public { .. })
    }
}

#[derive(Debug)]
pub struct ProbeBudget {
    all: Limiter<String>,
    public: Limiter<String>,
    per_client: Limiter<(String, String)>,
    shares: Shares,
}

/// Probes a minute per domain, for each kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shares {
    all: u32,
    public: u32,
    client: u32,
}

impl Shares {
    fn of(per_minute: u32) -> Self {
        let all = per_minute.max(1);
        Shares {
            all,
            public: (all / 2).max(1),
            client: (all / 10).max(1),
        }
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Limiter<K> {
    let quota =
        governor::Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN));
    governor::RateLimiter::keyed(quota)
}

impl ProbeBudget {
    pub fn per_minute(per_minute: u32) -> Self {
        let shares = Shares::of(per_minute);
        ProbeBudget {
            all: limiter(shares.all),
            public: limiter(shares.public),
            per_client: limiter(shares.client),
            shares,
        }
    }

    /// Takes one probe of `domain` from the budget `requester` may use, or
    /// says when the next would be allowed.
    pub fn take(&self, domain: &str, requester: &Requester) -> Result<(), BudgetRefusal> {
        let domain = domain.to_owned();
        if let Requester::Public { client } = requester {
            let key = (client.clone(), domain.clone());
            check(&self.per_client, &key, self.shares.client)?;
            check(&self.public, &domain, self.shares.public)?;
        }
        check(&self.all, &domain, self.shares.all)
    }

    /// The buckets `requester` draws from for `domain`, as the shared
    /// budget keys them: the same shares as [`Self::take`]'s.
    pub fn shared_ask(&self, domain: &str, requester: &Requester) -> SharedAsk {
        let mut ask = SharedAsk::default();
        if let Requester::Public { client } = requester {
            ask.push(format!("client:{client}/{domain}"), self.shares.client);
            ask.push(format!("public:{domain}"), self.shares.public);
        }
        ask.push(format!("all:{domain}"), self.shares.all);
        ask
    }

    /// Forgets the budgets of domains and clients not seen lately.
    pub fn housekeeping(&self) {
        self.all.retain_recent();
        self.all.shrink_to_fit();
        self.public.retain_recent();
        self.public.shrink_to_fit();
        self.per_client.retain_recent();
        self.per_client.shrink_to_fit();
    }
}

/// A probe's draw on the shared budget: its buckets, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedAsk {
    pub buckets: Vec<BudgetBucket>,
    per_minute: Vec<u32>,
}

impl SharedAsk {
    fn push(&mut self, key: String, per_minute: u32) {
        let emission = std::time::Duration::from_secs(60) / per_minute.max(1);
        self.buckets.push(BudgetBucket { key, emission });
        self.per_minute.push(per_minute);
    }

    /// The refusal of the bucket at `index`, which allows the next probe
    /// after `wait`.
    pub fn refusal(&self, index: usize, wait: std::time::Duration) -> BudgetRefusal {
        metrics::counter!("mailvet_probe_budget_exceeded_total").increment(1);
        BudgetRefusal {
            per_minute: self.per_minute.get(index).copied().unwrap_or(1),
            wait,
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Limiter<K>,
    key: &K,
    per_minute: u32,
) -> Result<(), BudgetRefusal> {
    limiter.check_key(key).map_err(|not_until| {
        metrics::counter!("mailvet_probe_budget_exceeded_total").increment(1);
        BudgetRefusal {
            per_minute,
            wait: not_until.wait_time_from(DefaultClock::default().now()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(client: &str) -> Requester {
        Requester::Public {
            client: client.to_owned(),
        }
    }

    #[test]
    fn a_domain_gets_its_budget_and_no_more() {
        let budget = ProbeBudget::per_minute(2);
        let trusted = Requester::Trusted;
        assert!(budget.take("example.test", &trusted).is_ok());
        assert!(budget.take("example.test", &trusted).is_ok());
        let refusal = budget
            .take("example.test", &trusted)
            .expect_err("over budget");
        assert_eq!(refusal.per_minute, 2);
        assert!(refusal.wait.as_secs() <= 30, "{refusal:?}");
        assert!(
            budget.take("other.test", &trusted).is_ok(),
            "budgets are per domain"
        );
    }

    #[test]
    fn public_clients_get_a_share_and_leave_half_to_trusted_callers() {
        let budget = ProbeBudget::per_minute(60);
        // One browser: six probes of a domain a minute.
        for _ in 0..6 {
            assert!(
                budget
                    .take("gmail.test", &public("pk/198.51.100.7"))
                    .is_ok()
            );
        }
        let refusal = budget
            .take("gmail.test", &public("pk/198.51.100.7"))
            .expect_err("one client's share is spent");
        assert_eq!(refusal.per_minute, 6);
        // Many browsers together: thirty, the public half.
        let mut granted = 6;
        for n in 0..100 {
            if budget
                .take("gmail.test", &public(&format!("pk/203.0.113.{n}")))
                .is_ok()
            {
                granted += 1;
            }
        }
        assert_eq!(granted, 30, "the public half and no more");
        // Trusted callers still have the other half.
        for n in 0..30 {
            assert!(
                budget.take("gmail.test", &Requester::Trusted).is_ok(),
                "trusted probe {n}"
            );
        }
        assert!(budget.take("gmail.test", &Requester::Trusted).is_err());
    }
}
