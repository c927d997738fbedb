//! The probe budget: new SMTP probes allowed per domain per minute, so that
//! no caller can turn mailvet into a flood of sessions at someone's mail
//! server. A GCRA limiter (governor) keyed by domain.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};

use super::evidence::BudgetRefusal;

type Limiter = governor::DefaultKeyedRateLimiter<String>;

#[derive(Debug)]
pub struct ProbeBudget {
    limiter: Limiter,
    per_minute: u32,
}

impl ProbeBudget {
    pub fn per_minute(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        let quota =
            governor::Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        ProbeBudget {
            limiter: governor::RateLimiter::keyed(quota),
            per_minute,
        }
    }

    /// Takes one probe of `domain` from its budget, or says when the next
    /// would be allowed.
    pub fn take(&self, domain: &str) -> Result<(), BudgetRefusal> {
        match self.limiter.check_key(&domain.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("mailvet_probe_budget_exceeded_total").increment(1);
                Err(BudgetRefusal {
                    per_minute: self.per_minute,
                    wait: not_until.wait_time_from(DefaultClock::default().now()),
                })
            }
        }
    }

    /// Forgets the budgets of domains not probed lately.
    pub fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_gets_its_budget_and_no_more() {
        let budget = ProbeBudget::per_minute(2);
        assert!(budget.take("example.test").is_ok());
        assert!(budget.take("example.test").is_ok());
        let refusal = budget.take("example.test").expect_err("over budget");
        assert_eq!(refusal.per_minute, 2);
        assert!(refusal.wait.as_secs() <= 30, "{refusal:?}");
        assert!(budget.take("other.test").is_ok(), "budgets are per domain");
    }
}
