//! The verification pipeline for one address or a batch:
//! parse → suppressed? → cached? → local checks → DNS → SMTP probe →
//! verdict → store (cache, and the suppression list for permanent failures).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::OnceCell;

use super::dns::{DnsSettings, MailResolver, MailRoute};
use super::lists::{self, Lists};
use super::probe::{ProbeSettings, Prober, RecipientOutcome};
use super::result::{Flags, SmtpEvidence, VerifyResult};
use super::{EmailAddress, Reason, Status};
use crate::http::error_chain;
use crate::settings::Settings;
use crate::store::{self, CachedVerification, NewSuppression, Store};
use crate::suppress::{SuppressionReason, SuppressionSource};

/// Domains probed at once by a batch.
const BATCH_DOMAIN_CONCURRENCY: usize = 16;

/// How long each status's verdict is reused.
#[derive(Debug, Clone, Copy)]
pub struct CacheTtl {
    pub deliverable: Duration,
    pub undeliverable: Duration,
    pub risky: Duration,
    pub unknown: Duration,
}

impl CacheTtl {
    fn for_status(&self, status: Status) -> Duration {
        match status {
            Status::Deliverable => self.deliverable,
            Status::Undeliverable => self.undeliverable,
            Status::Risky => self.risky,
            Status::Unknown => self.unknown,
        }
    }
}

/// Everything the verifier is configured with.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub dns: DnsSettings,
    pub probe: ProbeSettings,
    pub ttl: CacheTtl,
    pub lists: Lists,
    /// New probes allowed per domain per minute.
    pub probe_budget_per_domain: u32,
}

impl VerifierSettings {
    pub fn from_settings(settings: &Settings) -> std::io::Result<Self> {
        let lists = match &settings.disposable_domains_file {
            Some(path) => Lists::from_file(path).map_err(|err| {
                std::io::Error::new(err.kind(), format!("reading {}: {err}", path.display()))
            })?,
            None => Lists::default(),
        };
        Ok(VerifierSettings {
            dns: DnsSettings {
                servers: settings.dns_servers.clone(),
                timeout: settings.dns_timeout,
            },
            probe: ProbeSettings {
                port: settings.smtp_port,
                helo_name: settings.helo_name(),
                mail_from: settings.mail_from(),
                timeout: settings.smtp_timeout,
                allow_private_targets: settings.allow_private_targets,
                max_sessions: settings.max_smtp_sessions,
                max_sessions_per_host: settings.max_smtp_sessions_per_host,
                max_rejections_per_session: 8,
            },
            ttl: CacheTtl {
                deliverable: settings.cache_ttl_deliverable,
                undeliverable: settings.cache_ttl_undeliverable,
                risky: settings.cache_ttl_risky,
                unknown: settings.cache_ttl_unknown,
            },
            lists,
            probe_budget_per_domain: settings.probe_budget_per_domain,
        })
    }
}

type DomainBudget = governor::DefaultKeyedRateLimiter<String>;

/// An address that passed the checks that need no network.
struct Candidate {
    address: EmailAddress,
    /// The result so far: flags and suggestion filled in.
    draft: VerifyResult,
}

/// Where an address stands before DNS.
enum Early {
    Done(VerifyResult),
    Needs(Candidate),
}

type InFlight = Arc<OnceCell<(VerifyResult, bool)>>;

tokio::task_local! {
    /// Set when the store failed during the current verification.
    static STORE_TROUBLE: std::cell::Cell<bool>;
}

/// An answer, and whether it was given without the database (no cache, no
/// suppression list) because the database failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub value: T,
    pub degraded: bool,
}

/// Runs `work` noting any store failure inside it.
async fn noting_store_trouble<T>(work: impl Future<Output = T>) -> (T, bool) {
    STORE_TROUBLE
        .scope(std::cell::Cell::new(false), async move {
            let value = work.await;
            (value, STORE_TROUBLE.with(std::cell::Cell::get))
        })
        .await
}

/// Verifies addresses. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Verifier {
    store: Arc<dyn Store>,
    resolver: MailResolver,
    prober: Prober,
    lists: Lists,
    ttl: CacheTtl,
    in_flight: Mutex<HashMap<String, InFlight>>,
    budget: DomainBudget,
    budget_per_minute: u32,
    memo: super::memo::Memo,
}

impl Verifier {
    pub fn new(
        settings: VerifierSettings,
        store: Arc<dyn Store>,
    ) -> Result<Self, super::dns::DnsError> {
        Ok(Verifier {
            store,
            resolver: MailResolver::new(&settings.dns)?,
            prober: Prober::new(settings.probe),
            lists: settings.lists,
            ttl: settings.ttl,
            in_flight: Mutex::default(),
            budget: governor::RateLimiter::keyed(governor::Quota::per_minute(
                std::num::NonZeroU32::new(settings.probe_budget_per_domain.max(1))
                    .unwrap_or(std::num::NonZeroU32::MIN),
            )),
            budget_per_minute: settings.probe_budget_per_domain.max(1),
            memo: super::memo::Memo::new(),
        })
    }

    /// Forgets the answers kept in memory: the suppression list changed.
    pub fn suppressions_changed(&self) {
        self.memo.clear();
    }

    /// Notes the suppression list's change sequence (polled from the
    /// database): a change by another replica empties the memory too.
    pub fn saw_suppression_seq(&self, seq: i64) {
        self.memo.saw_suppression_seq(seq);
    }

    /// An answer kept in memory for the address, as an answer to `input`.
    fn remembered(&self, input: &str, key: &str) -> Option<VerifyResult> {
        let result = self.memo.get(key)?;
        metrics::counter!("mailvet_verify_cache_hits_total").increment(1);
        count_verdict(&result);
        Some(VerifyResult {
            email: input.to_owned(),
            ..result
        })
    }

    /// Forgets the probe budgets of domains not probed lately.
    pub fn housekeeping(&self) {
        self.budget.retain_recent();
        self.budget.shrink_to_fit();
    }

    /// `None` when a new probe of `domain` is within its budget; else the
    /// answer to give instead.
    fn over_budget(&self, domain: &str) -> Option<RecipientOutcome> {
        use governor::clock::Clock;
        let wait = match self.budget.check_key(&domain.to_owned()) {
            Ok(()) => return None,
            Err(not_until) => {
                not_until.wait_time_from(governor::clock::DefaultClock::default().now())
            }
        };
        metrics::counter!("mailvet_probe_budget_exceeded_total").increment(1);
        if self.prober.cached_catch_all(domain) == Some(true) {
            return Some(RecipientOutcome {
                reason: Reason::CatchAll,
                smtp: None,
                message: Some(format!(
                    "{domain} accepts every address (known from an earlier probe)"
                )),
                catch_all: true,
            });
        }
        Some(outcome(
            Reason::RateLimited,
            format!(
                "mailvet's probe budget for {domain} ({} new probes a minute) is used up; try again in {} s",
                self.budget_per_minute,
                wait.as_secs().max(1)
            ),
        ))
    }

    /// Verifies one address. Requests for an address already being
    /// verified wait for that verification instead of probing again.
    pub async fn verify(&self, input: &str, fresh: bool) -> Answer<VerifyResult> {
        let address = match EmailAddress::parse(input) {
            Ok(address) => address,
            Err(err) => {
                return Answer {
                    value: invalid(input, &err),
                    degraded: false,
                };
            }
        };
        let key = address.key();
        if !fresh && let Some(result) = self.remembered(input, &key) {
            return Answer {
                value: result,
                degraded: false,
            };
        }
        let cell = {
            let mut in_flight = self.in_flight.lock().expect("in-flight map");
            in_flight.entry(key.clone()).or_default().clone()
        };
        let (result, degraded) = cell
            .get_or_init(|| noting_store_trouble(self.verify_one(input, address, fresh)))
            .await
            .clone();
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight map");
            if in_flight
                .get(&key)
                .is_some_and(|current| Arc::ptr_eq(current, &cell))
            {
                in_flight.remove(&key);
            }
        }
        Answer {
            value: VerifyResult {
                email: input.to_owned(),
                ..result
            },
            degraded,
        }
    }

    async fn verify_one(&self, input: &str, address: EmailAddress, fresh: bool) -> VerifyResult {
        let candidate = match self.early(input, address, fresh).await {
            Early::Done(result) => return result,
            Early::Needs(candidate) => candidate,
        };
        let domain = candidate.address.domain().to_owned();
        let route = self.resolver.mail_route(&domain).await;
        let mut results = self.finish(&domain, route, vec![candidate]).await;
        results.pop().expect("one result per candidate")
    }

    /// Verifies up to a batch of addresses, in input order. Addresses at one
    /// domain share DNS lookups and SMTP sessions.
    pub async fn verify_batch(&self, inputs: &[String], fresh: bool) -> Answer<Vec<VerifyResult>> {
        let (value, degraded) = noting_store_trouble(self.batch(inputs, fresh)).await;
        Answer { value, degraded }
    }

    async fn batch(&self, inputs: &[String], fresh: bool) -> Vec<VerifyResult> {
        let mut results: Vec<Option<VerifyResult>> = vec![None; inputs.len()];
        // Checks without network, and duplicates folded onto their first.
        let mut by_domain: HashMap<String, Vec<(usize, Candidate)>> = HashMap::new();
        let mut first_of_key: HashMap<String, usize> = HashMap::new();
        let mut duplicates: Vec<(usize, usize)> = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            let address = match EmailAddress::parse(input) {
                Ok(address) => address,
                Err(err) => {
                    results[index] = Some(invalid(input, &err));
                    continue;
                }
            };
            let key = address.key();
            if let Some(&first) = first_of_key.get(&key) {
                duplicates.push((index, first));
                continue;
            }
            let remembered = if fresh {
                None
            } else {
                self.remembered(input, &key)
            };
            first_of_key.insert(key, index);
            if let Some(result) = remembered {
                results[index] = Some(result);
                continue;
            }
            match self.early(input, address, fresh).await {
                Early::Done(result) => results[index] = Some(result),
                Early::Needs(candidate) => by_domain
                    .entry(candidate.address.domain().to_owned())
                    .or_default()
                    .push((index, candidate)),
            }
        }
        let finished: Vec<Vec<(usize, VerifyResult)>> = futures::stream::iter(by_domain)
            .map(|(domain, group)| async move {
                let route = self.resolver.mail_route(&domain).await;
                let (indexes, candidates): (Vec<usize>, Vec<Candidate>) = group.into_iter().unzip();
                let verdicts = self.finish(&domain, route, candidates).await;
                indexes.into_iter().zip(verdicts).collect()
            })
            .buffer_unordered(BATCH_DOMAIN_CONCURRENCY)
            .collect()
            .await;
        for (index, result) in finished.into_iter().flatten() {
            results[index] = Some(result);
        }
        for (index, first) in duplicates {
            let result = results[first].clone().map(|result| VerifyResult {
                email: inputs[index].clone(),
                ..result
            });
            results[index] = result;
        }
        results
            .into_iter()
            .zip(inputs)
            .map(|(result, input)| {
                result.unwrap_or_else(|| {
                    VerifyResult::new(input, None, Reason::SmtpError).with_message("not verified")
                })
            })
            .collect()
    }

    /// The suppression list, the cache and the local checks.
    async fn early(&self, input: &str, address: EmailAddress, fresh: bool) -> Early {
        let key = address.key();
        let normalized = address.normalized();
        match self.store.suppression(&key).await {
            Ok(Some(entry)) => {
                let mut result = VerifyResult::new(input, Some(normalized), Reason::Suppressed);
                result.suppressed = true;
                result.suppression_reason = Some(entry.reason);
                result.smtp = entry.evidence.smtp_code.map(|code| SmtpEvidence {
                    host: entry.evidence.mx_host.clone().unwrap_or_default(),
                    code,
                    enhanced_code: entry.evidence.enhanced_code.clone(),
                    message: entry.evidence.diagnostic.clone().unwrap_or_default(),
                });
                result.checked_at = entry.updated_at;
                count_verdict(&result);
                // Good until the list changes (which empties the memo).
                self.memo
                    .put(key, result.clone(), Utc::now() + chrono::Duration::days(1));
                return Early::Done(result);
            }
            Ok(None) => {}
            Err(err) => warn_store("reading the suppression list", &err),
        }
        if !fresh {
            match self.store.cached_verification(&key, Utc::now()).await {
                Ok(Some(cached)) => match serde_json::from_value::<VerifyResult>(cached.result) {
                    Ok(result) => {
                        metrics::counter!("mailvet_verify_cache_hits_total").increment(1);
                        let result = VerifyResult {
                            email: input.to_owned(),
                            cached: true,
                            ..result
                        };
                        count_verdict(&result);
                        self.memo.put(key, result.clone(), cached.expires_at);
                        return Early::Done(result);
                    }
                    Err(err) => tracing::warn!(%err, "unreadable cached verdict; verifying again"),
                },
                Ok(None) => {}
                Err(err) => warn_store("reading the verdict cache", &err),
            }
            metrics::counter!("mailvet_verify_cache_misses_total").increment(1);
        }

        let domain = address.domain();
        let mut draft = VerifyResult::new(input, Some(normalized), Reason::Accepted);
        draft.flags = Flags {
            disposable: self.lists.is_disposable(domain),
            role_account: lists::is_role_account(address.local_part()),
            free_provider: lists::is_free_provider(domain),
            catch_all: false,
        };
        draft.suggestion =
            lists::suggest_domain(domain).map(|fixed| format!("{}@{fixed}", address.local_part()));
        if draft.flags.disposable {
            let result = draft
                .with_reason(Reason::Disposable)
                .with_message("the domain is a disposable-mail service");
            self.record(&address, &result).await;
            return Early::Done(result);
        }
        Early::Needs(Candidate { address, draft })
    }

    /// DNS answer and SMTP probe to verdicts, recorded.
    async fn finish(
        &self,
        domain: &str,
        route: Result<MailRoute, super::dns::DnsError>,
        candidates: Vec<Candidate>,
    ) -> Vec<VerifyResult> {
        let count = candidates.len();
        let budget_refusal = match &route {
            Ok(MailRoute::Hosts { .. }) => self.over_budget(domain),
            _ => None,
        };
        let outcomes: Vec<(Vec<String>, RecipientOutcome)> = match route {
            Err(err) => {
                let outcome = outcome(Reason::DnsError, err.to_string());
                vec![(Vec::new(), outcome); count]
            }
            Ok(MailRoute::NoSuchDomain) => {
                let outcome = outcome(
                    Reason::NoSuchDomain,
                    format!("{domain} does not exist (NXDOMAIN)"),
                );
                vec![(Vec::new(), outcome); count]
            }
            Ok(MailRoute::NullMx) => {
                let outcome = outcome(
                    Reason::NoMailServer,
                    format!("{domain} accepts no mail (null MX)"),
                );
                vec![(Vec::new(), outcome); count]
            }
            Ok(MailRoute::NoMailServer) => {
                let outcome = outcome(
                    Reason::NoMailServer,
                    format!("{domain} has no MX record and no address to deliver to"),
                );
                vec![(Vec::new(), outcome); count]
            }
            Ok(MailRoute::Hosts { hosts, .. }) => {
                let mx: Vec<String> = hosts.iter().map(|host| host.name.clone()).collect();
                if let Some(refusal) = budget_refusal {
                    return self
                        .conclude(candidates, vec![(mx, refusal); count], false)
                        .await;
                }
                let addresses: Vec<EmailAddress> = candidates
                    .iter()
                    .map(|candidate| candidate.address.clone())
                    .collect();
                self.prober
                    .probe(domain, &hosts, &addresses)
                    .await
                    .into_iter()
                    .map(|outcome| (mx.clone(), outcome))
                    .collect()
            }
        };
        self.conclude(candidates, outcomes, true).await
    }

    /// Verdicts from outcomes, recorded (cached only when `cache`: an
    /// answer that is no check of the address, such as a budget refusal,
    /// is not kept).
    async fn conclude(
        &self,
        candidates: Vec<Candidate>,
        outcomes: Vec<(Vec<String>, RecipientOutcome)>,
        cache: bool,
    ) -> Vec<VerifyResult> {
        let mut addresses = Vec::with_capacity(candidates.len());
        let mut results = Vec::with_capacity(candidates.len());
        for (candidate, (mx, outcome)) in candidates.into_iter().zip(outcomes) {
            let mut result = candidate.draft.with_reason(outcome.reason);
            result.mx = mx;
            result.smtp = outcome.smtp;
            result.message = outcome.message;
            result.flags.catch_all = outcome.catch_all;
            result.checked_at = Utc::now();
            addresses.push(candidate.address);
            results.push(result);
        }
        if cache {
            let verdicts: Vec<(&EmailAddress, &VerifyResult)> =
                addresses.iter().zip(&results).collect();
            self.record_all(&verdicts).await;
        } else {
            results.iter().for_each(count_verdict);
        }
        results
    }

    /// Caches a fresh verdict and suppresses a permanent recipient failure.
    async fn record(&self, address: &EmailAddress, result: &VerifyResult) {
        self.record_all(&[(address, result)]).await;
    }

    /// Caches fresh verdicts (one transaction for the lot) and suppresses
    /// permanent recipient failures.
    async fn record_all(&self, verdicts: &[(&EmailAddress, &VerifyResult)]) {
        let entries: Vec<CachedVerification> = verdicts
            .iter()
            .map(|(address, result)| {
                count_verdict(result);
                let ttl = chrono::Duration::from_std(self.ttl.for_status(result.status))
                    .unwrap_or(chrono::Duration::zero());
                CachedVerification {
                    address_key: address.key(),
                    email: address.normalized(),
                    status: result.status,
                    reason: result.reason,
                    result: serde_json::to_value(result).unwrap_or_default(),
                    checked_at: result.checked_at,
                    expires_at: result.checked_at + ttl,
                }
            })
            .collect();
        match self.store.record_verifications(&entries).await {
            Ok(()) => {
                for ((_, result), entry) in verdicts.iter().zip(entries) {
                    if SuppressionReason::from_verdict(result.reason).is_none() {
                        let kept = VerifyResult {
                            cached: true,
                            ..(*result).clone()
                        };
                        self.memo.put(entry.address_key, kept, entry.expires_at);
                    }
                }
            }
            Err(err) => warn_store("caching verdicts", &err),
        }
        for (address, result) in verdicts {
            self.suppress_if_permanent(address, result).await;
        }
    }

    async fn suppress_if_permanent(&self, address: &EmailAddress, result: &VerifyResult) {
        let Some(reason) = SuppressionReason::from_verdict(result.reason) else {
            return;
        };
        let suppression = NewSuppression {
            address_key: address.key(),
            email: address.normalized(),
            reason,
            source: SuppressionSource::Verify,
            evidence: store::SmtpEvidence {
                smtp_code: result.smtp.as_ref().map(|smtp| smtp.code),
                enhanced_code: result
                    .smtp
                    .as_ref()
                    .and_then(|smtp| smtp.enhanced_code.clone()),
                diagnostic: result
                    .smtp
                    .as_ref()
                    .map(|smtp| smtp.message.clone())
                    .or_else(|| result.message.clone()),
                mx_host: result.smtp.as_ref().map(|smtp| smtp.host.clone()),
            },
        };
        match self
            .store
            .upsert_suppression(&suppression, Utc::now())
            .await
        {
            Ok(_) => {
                self.suppressions_changed();
                metrics::counter!("mailvet_suppressions_added_total", "source" => "verify")
                    .increment(1);
            }
            Err(err) => warn_store("suppressing an undeliverable address", &err),
        }
    }
}

fn outcome(reason: Reason, message: String) -> RecipientOutcome {
    RecipientOutcome {
        reason,
        smtp: None,
        message: Some(message),
        catch_all: false,
    }
}

fn invalid(input: &str, err: &super::SyntaxError) -> VerifyResult {
    let result =
        VerifyResult::new(input, None, Reason::InvalidSyntax).with_message(err.to_string());
    count_verdict(&result);
    result
}

fn count_verdict(result: &VerifyResult) {
    metrics::counter!(
        "mailvet_verdicts_total",
        "status" => result.status.as_str(),
        "reason" => result.reason.as_str(),
    )
    .increment(1);
}

fn warn_store(what: &str, err: &store::StoreError) {
    let _ = STORE_TROUBLE.try_with(|trouble| trouble.set(true));
    tracing::warn!(error = %error_chain(err), "{what} failed; answering without the database");
}
