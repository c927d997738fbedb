//! Probe health: per mail provider, the share of recent probes that were
//! refused (`blocked`), timed out or could not connect. From a cloud host a
//! provider may start refusing every probe; this is what tells the operator
//! which one, rather than a wall of `unknown` verdicts.
//!
//! A provider is the registrable domain of the MX host tried
//! (`mx1.mail.example.co.uk` → `example.co.uk`, from the public-suffix
//! list); a host that is an IP address, or has no registrable domain, is a
//! provider by itself. Each keeps a window of its last [`WINDOW_PROBES`]
//! outcomes no older than [`WINDOW_AGE`]; at most [`MAX_PROVIDERS`] are
//! kept, the least recently probed forgotten first, so that a list of a
//! million domains cannot grow memory.
//!
//! Every verdict that came from talking, or trying to talk, to a mail host
//! is one outcome. `accepted`, the recipient's rejections, `catch_all` and
//! `mailbox_full` are *ok*: the server answered. `greylisted` and
//! `rate_limited` are *deferred*: counted apart, in neither share, since
//! they are the server's normal pacing. `smtp_error` (a broken session) is
//! counted as an *error*, outside the refusal share too. The *failing*
//! share is that of `blocked`, `timeout` and `connection_failed` together:
//! when it reaches [`REFUSING_SHARE`] of at least [`MIN_PROBES`] recent
//! probes, a warning is logged once; when it falls below
//! [`RECOVERED_SHARE`], an info line says the provider recovered.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::evidence::ProbeEvidence;
use super::verdict::Verdict;
use crate::telemetry::help;
use crate::vocab::Reason;

/// Outcomes kept per provider.
pub const WINDOW_PROBES: usize = 200;
/// Outcomes older than this are forgotten.
pub const WINDOW_AGE: Duration = Duration::from_secs(15 * 60);
/// Providers kept at once; the least recently probed is forgotten first.
pub const MAX_PROVIDERS: usize = 1000;
/// Recent probes a provider needs before its shares are trusted: for the
/// warning and for the Prometheus gauges.
pub const MIN_PROBES: usize = 10;
/// The failing share at which a provider is said to refuse probes.
pub const REFUSING_SHARE: f64 = 0.5;
/// The failing share below which a refusing provider is said to have
/// recovered (below the warning's, so that a share hovering near it does
/// not flap).
pub const RECOVERED_SHARE: f64 = 0.25;
/// Providers shown in Prometheus, worst first: a bounded label set.
pub const METRIC_PROVIDERS: usize = 20;
/// Providers listed in `GET /stats`, worst first.
pub const STATS_PROVIDERS: usize = 100;

/// What one probe of a provider came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered the recipient (whatever it said).
    Ok,
    /// Greylisted or rate limited: try later.
    Deferred,
    /// The server refused us (blocklist, policy).
    Blocked,
    /// The server did not answer in time.
    Timeout,
    /// No connection could be made.
    ConnectionFailed,
    /// The session broke (protocol error, TLS failure).
    Error,
}

impl Outcome {
    /// The outcome of a probe verdict.
    pub fn of(reason: Reason) -> Self {
        match reason {
            Reason::Blocked => Outcome::Blocked,
            Reason::Timeout => Outcome::Timeout,
            Reason::ConnectionFailed => Outcome::ConnectionFailed,
            Reason::Greylisted | Reason::RateLimited => Outcome::Deferred,
            Reason::SmtpError => Outcome::Error,
            _ => Outcome::Ok,
        }
    }

    fn is_failing(self) -> bool {
        matches!(
            self,
            Outcome::Blocked | Outcome::Timeout | Outcome::ConnectionFailed
        )
    }
}

pub use crate::patterns::provider_of;

/// One provider's recent probes.
#[derive(Debug)]
struct Window {
    outcomes: VecDeque<(Instant, Outcome)>,
    last_seen: DateTime<Utc>,
    last_probe: Instant,
    /// Whether the refusal warning was logged and not yet taken back.
    refusing: bool,
}

impl Window {
    fn forget_before(&mut self, oldest: Option<Instant>) {
        while self.outcomes.len() > WINDOW_PROBES {
            self.outcomes.pop_front();
        }
        if let Some(oldest) = oldest {
            while self.outcomes.front().is_some_and(|(at, _)| *at < oldest) {
                self.outcomes.pop_front();
            }
        }
    }

    fn counts(&self, provider: &str) -> ProviderHealth {
        let mut health = ProviderHealth {
            provider: provider.to_owned(),
            probes: self.outcomes.len() as u64,
            ok: 0,
            deferred: 0,
            blocked: 0,
            timeout: 0,
            connection_failed: 0,
            errors: 0,
            blocked_share: 0.0,
            timeout_share: 0.0,
            connection_failed_share: 0.0,
            failing_share: 0.0,
            refusing: self.refusing,
            last_seen: self.last_seen,
        };
        let mut failing = 0;
        for (_, outcome) in &self.outcomes {
            if outcome.is_failing() {
                failing += 1;
            }
            match outcome {
                Outcome::Ok => health.ok += 1,
                Outcome::Deferred => health.deferred += 1,
                Outcome::Blocked => health.blocked += 1,
                Outcome::Timeout => health.timeout += 1,
                Outcome::ConnectionFailed => health.connection_failed += 1,
                Outcome::Error => health.errors += 1,
            }
        }
        if health.probes > 0 {
            let share = |count: u64| count as f64 / health.probes as f64;
            health.blocked_share = share(health.blocked);
            health.timeout_share = share(health.timeout);
            health.connection_failed_share = share(health.connection_failed);
            health.failing_share = share(failing);
        }
        health
    }
}

/// A provider's recent probes, as `GET /stats` shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderHealth {
    /// The MX hosts' registrable domain (or the host, or its IP address).
    pub provider: String,
    /// Probes in the window.
    pub probes: u64,
    pub ok: u64,
    /// Greylisted or rate limited.
    pub deferred: u64,
    pub blocked: u64,
    pub timeout: u64,
    pub connection_failed: u64,
    /// Sessions that broke (`smtp_error`).
    pub errors: u64,
    pub blocked_share: f64,
    pub timeout_share: f64,
    pub connection_failed_share: f64,
    /// `blocked`, `timeout` and `connection_failed` together.
    pub failing_share: f64,
    /// Whether the provider is taken to be refusing probes now.
    pub refusing: bool,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub last_seen: DateTime<Utc>,
}

/// A change in a provider's standing, logged outside the lock.
enum Change {
    Refusing(ProviderHealth),
    Recovered(ProviderHealth),
}

/// The recent probe outcomes of every provider. Cheap to record into from
/// many tasks (one short lock).
#[derive(Debug, Default)]
pub struct ProbeHealth {
    providers: Mutex<HashMap<String, Window>>,
}

impl ProbeHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the outcome of one probe verdict, if it came from a mail
    /// host: a refusal by mailvet's own SSRF guard, or a domain none of
    /// whose hosts could be tried, says nothing about a provider.
    pub fn observe(&self, evidence: &ProbeEvidence, verdict: &Verdict) {
        let host = match evidence {
            ProbeEvidence::Answered { host, .. }
            | ProbeEvidence::NotAsked { host, .. }
            | ProbeEvidence::Refused { host, .. }
            | ProbeEvidence::Failed { host, .. }
            | ProbeEvidence::NoSmtputf8 { host } => host,
            ProbeEvidence::ForbiddenTarget { .. } | ProbeEvidence::NoHostTried => return,
        };
        self.record(
            &provider_of(host),
            Outcome::of(verdict.reason),
            Instant::now(),
        );
    }

    /// Records one outcome for `provider` at `now`, and logs when the
    /// provider starts or stops refusing probes.
    pub fn record(&self, provider: &str, outcome: Outcome, now: Instant) {
        let change = {
            let mut providers = self.providers.lock().expect("probe health");
            if !providers.contains_key(provider) && providers.len() >= MAX_PROVIDERS {
                let stalest = providers
                    .iter()
                    .min_by_key(|(_, window)| window.last_probe)
                    .map(|(name, _)| name.clone());
                if let Some(stalest) = stalest {
                    providers.remove(&stalest);
                }
            }
            let window = providers
                .entry(provider.to_owned())
                .or_insert_with(|| Window {
                    outcomes: VecDeque::with_capacity(16),
                    last_seen: Utc::now(),
                    last_probe: now,
                    refusing: false,
                });
            window.outcomes.push_back((now, outcome));
            window.last_seen = Utc::now();
            window.last_probe = now;
            window.forget_before(now.checked_sub(WINDOW_AGE));
            let health = window.counts(provider);
            let enough = health.probes as usize >= MIN_PROBES;
            if !window.refusing && enough && health.failing_share >= REFUSING_SHARE {
                window.refusing = true;
                Some(Change::Refusing(ProviderHealth {
                    refusing: true,
                    ..health
                }))
            } else if window.refusing && enough && health.failing_share < RECOVERED_SHARE {
                window.refusing = false;
                Some(Change::Recovered(ProviderHealth {
                    refusing: false,
                    ..health
                }))
            } else {
                None
            }
        };
        match change {
            Some(Change::Refusing(health)) => tracing::warn!(
                provider = %health.provider,
                probes = health.probes,
                blocked = health.blocked,
                timeout = health.timeout,
                connection_failed = health.connection_failed,
                "mail provider {} is refusing probes: {:.0}% of its last {} probes were blocked, \
                 timed out or could not connect; check the HELO name, the sending IP's reputation \
                 and reverse DNS, or send probes through a proxy",
                health.provider,
                health.failing_share * 100.0,
                health.probes,
            ),
            Some(Change::Recovered(health)) => tracing::info!(
                provider = %health.provider,
                probes = health.probes,
                "mail provider {} answers probes again: {:.0}% of its last {} probes failed",
                health.provider,
                health.failing_share * 100.0,
                health.probes,
            ),
            None => {}
        }
    }

    /// Every provider probed within the window, worst first: by failing
    /// share, then by probes, then by name.
    pub fn snapshot(&self, now: Instant) -> Vec<ProviderHealth> {
        let mut providers = self.providers.lock().expect("probe health");
        providers.retain(|_, window| {
            window.forget_before(now.checked_sub(WINDOW_AGE));
            !window.outcomes.is_empty()
        });
        let mut all: Vec<ProviderHealth> = providers
            .iter()
            .map(|(name, window)| window.counts(name))
            .collect();
        drop(providers);
        all.sort_by(|a, b| {
            b.failing_share
                .total_cmp(&a.failing_share)
                .then(b.probes.cmp(&a.probes))
                .then_with(|| a.provider.cmp(&b.provider))
        });
        all
    }

    /// Prometheus text for the [`METRIC_PROVIDERS`] worst providers with at
    /// least [`MIN_PROBES`] recent probes: `mailvet_probe_health_share`
    /// per outcome and `mailvet_probe_health_probes`. Rendered from the
    /// window at each scrape, so a provider that drops out leaves no stale
    /// series behind.
    pub fn render_prometheus(&self, now: Instant) -> String {
        let shown: Vec<ProviderHealth> = self
            .snapshot(now)
            .into_iter()
            .filter(|health| health.probes as usize >= MIN_PROBES)
            .take(METRIC_PROVIDERS)
            .collect();
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# HELP mailvet_probe_health_share {}",
            help("mailvet_probe_health_share")
        );
        let _ = writeln!(text, "# TYPE mailvet_probe_health_share gauge");
        for health in &shown {
            let provider = escape_label(&health.provider);
            for (outcome, share) in [
                ("blocked", health.blocked_share),
                ("timeout", health.timeout_share),
                ("connection_failed", health.connection_failed_share),
                ("failing", health.failing_share),
            ] {
                let _ = writeln!(
                    text,
                    "mailvet_probe_health_share{{provider=\"{provider}\",outcome=\"{outcome}\"}} {share}"
                );
            }
        }
        let _ = writeln!(
            text,
            "# HELP mailvet_probe_health_probes {}",
            help("mailvet_probe_health_probes")
        );
        let _ = writeln!(text, "# TYPE mailvet_probe_health_probes gauge");
        for health in &shown {
            let _ = writeln!(
                text,
                "mailvet_probe_health_probes{{provider=\"{}\"}} {}",
                escape_label(&health.provider),
                health.probes
            );
        }
        text
    }
}

/// A label value in the Prometheus text format: backslash, double quote
/// and newline escaped.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_registrable_domains_or_the_host_itself() {
        assert_eq!(provider_of("MX1.Mail.Example.co.uk."), "example.co.uk");
        assert_eq!(provider_of("aspmx.l.google.com"), "google.com");
        assert_eq!(provider_of("mx.example.test"), "example.test");
        assert_eq!(provider_of("192.0.2.7"), "192.0.2.7");
        assert_eq!(provider_of("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(provider_of("localhost"), "localhost");
    }

    #[test]
    fn a_provider_is_refusing_at_half_of_ten_probes_and_recovers_below_a_quarter() {
        let health = ProbeHealth::new();
        let start = Instant::now();
        for n in 0..9 {
            health.record(
                "example.com",
                Outcome::Blocked,
                start + Duration::from_secs(n),
            );
        }
        assert!(
            !health.snapshot(start)[0].refusing,
            "nine probes are too few"
        );
        health.record(
            "example.com",
            Outcome::Timeout,
            start + Duration::from_secs(9),
        );
        let shown = health.snapshot(start + Duration::from_secs(10));
        assert!(shown[0].refusing);
        assert_eq!((shown[0].blocked, shown[0].timeout), (9, 1));
        assert!((shown[0].failing_share - 1.0).abs() < f64::EPSILON);
        // Answers again: 10 failing of 40 is 25 %, still refusing; one more
        // ok brings it below.
        for n in 0..30 {
            health.record(
                "example.com",
                Outcome::Ok,
                start + Duration::from_secs(20 + n),
            );
        }
        assert!(health.snapshot(start + Duration::from_secs(60))[0].refusing);
        health.record("example.com", Outcome::Ok, start + Duration::from_secs(61));
        assert!(!health.snapshot(start + Duration::from_secs(62))[0].refusing);
    }

    use crate::test_log::logged;

    #[test]
    fn a_refusing_provider_is_warned_about_once_and_its_recovery_noted_once() {
        let health = ProbeHealth::new();
        let start = Instant::now();
        let log = logged(|| {
            for n in 0..50 {
                let at = start + Duration::from_millis(n);
                health.record("example.com", Outcome::Blocked, at);
            }
            for n in 0..200 {
                let at = start + Duration::from_millis(100 + n);
                health.record("example.com", Outcome::Ok, at);
            }
        });
        assert_eq!(log.matches("WARN").count(), 1, "{log}");
        assert_eq!(
            log.matches("mail provider example.com is refusing probes: 100% of its last 10 probes")
                .count(),
            1,
            "{log}"
        );
        assert_eq!(log.matches("INFO").count(), 1, "{log}");
        assert_eq!(
            log.matches("mail provider example.com answers probes again")
                .count(),
            1,
            "{log}"
        );
    }

    #[test]
    fn the_window_is_bounded_in_length_and_age() {
        let health = ProbeHealth::new();
        let start = Instant::now();
        for n in 0..(WINDOW_PROBES as u64 + 50) {
            health.record("example.com", Outcome::Ok, start + Duration::from_millis(n));
        }
        assert_eq!(health.snapshot(start)[0].probes, WINDOW_PROBES as u64);
        let later = start + WINDOW_AGE + Duration::from_secs(1);
        assert!(
            health.snapshot(later).is_empty(),
            "old outcomes are forgotten"
        );
    }

    #[test]
    fn the_least_recently_probed_provider_is_forgotten_first() {
        let health = ProbeHealth::new();
        let start = Instant::now();
        for n in 0..MAX_PROVIDERS as u64 {
            let at = start + Duration::from_millis(n);
            health.record(&format!("p{n}.example"), Outcome::Ok, at);
        }
        // p0 is probed again, so p1 is the stalest when a new one comes.
        let at = start + Duration::from_secs(10);
        health.record("p0.example", Outcome::Ok, at);
        health.record("new.example", Outcome::Ok, at);
        let names: Vec<String> = health
            .snapshot(at)
            .into_iter()
            .map(|health| health.provider)
            .collect();
        assert_eq!(names.len(), MAX_PROVIDERS);
        assert!(names.iter().any(|name| name == "p0.example"));
        assert!(names.iter().any(|name| name == "new.example"));
        assert!(!names.iter().any(|name| name == "p1.example"));
    }

    #[test]
    fn worst_first_and_only_providers_with_enough_probes_in_prometheus() {
        let health = ProbeHealth::new();
        let now = Instant::now();
        for _ in 0..10 {
            health.record("good.example", Outcome::Ok, now);
            health.record("bad.example", Outcome::ConnectionFailed, now);
        }
        health.record("few.example", Outcome::Blocked, now);
        let order: Vec<String> = health
            .snapshot(now)
            .into_iter()
            .map(|health| health.provider)
            .collect();
        // Equal shares: the provider with more probes first.
        assert_eq!(order, ["bad.example", "few.example", "good.example"]);
        let text = health.render_prometheus(now);
        assert!(text.contains(
            "mailvet_probe_health_share{provider=\"bad.example\",outcome=\"connection_failed\"} 1\n"
        ));
        assert!(text.contains(
            "mailvet_probe_health_share{provider=\"good.example\",outcome=\"failing\"} 0\n"
        ));
        assert!(text.contains("mailvet_probe_health_probes{provider=\"bad.example\"} 10\n"));
        assert!(
            !text.contains("few.example"),
            "one probe is too few: {text}"
        );
    }

    #[test]
    fn deferrals_and_errors_are_outside_the_failing_share() {
        assert_eq!(Outcome::of(Reason::Greylisted), Outcome::Deferred);
        assert_eq!(Outcome::of(Reason::RateLimited), Outcome::Deferred);
        assert_eq!(Outcome::of(Reason::MailboxNotFound), Outcome::Ok);
        assert_eq!(Outcome::of(Reason::CatchAll), Outcome::Ok);
        assert_eq!(Outcome::of(Reason::SmtpError), Outcome::Error);
        assert!(!Outcome::Deferred.is_failing());
        assert!(Outcome::Blocked.is_failing());
    }
}
