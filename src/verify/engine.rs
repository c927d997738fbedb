//! The verification pipeline for one address or a batch:
//! parse → suppressed? → cached? → local checks → DNS → SMTP probe →
//! verdict → record. Each stage gathers evidence; `verdict::decide` turns
//! it into the answer; `record.rs` keeps it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;

use super::budget::{ProbeBudget, Requester};
use super::cluster::{Cluster, WAIT_FOR_OTHER};
use super::degraded::{Answer, noting_store_trouble, warn_store};
use super::dns::{DnsError, DnsSettings, MailResolver, MailRoute};
use super::evidence::{DnsEvidence, Evidence, Exchange};
use super::health::ProbeHealth;
use super::lists::{self, Lists};
use super::memo::Memo;
use super::probe::{ProbeSettings, Prober};
use super::record::{CacheTtl, Recorder, count_verdict};
use super::resolver_watch::ResolverWatch;
use super::result::{Flags, SmtpExchange, VerifyResult};
use super::suggest::nearby_mail_domain;
use super::verdict::{Verdict, decide};
use crate::address::{EmailAddress, SyntaxError};
use crate::patterns::BouncePatterns;
use crate::store::{CachedVerification, EvidenceKind, Store, Suppression};
use crate::suppress::SuppressionList;
use crate::vocab::{Reason, bounded_text};

/// Domains probed at once by a batch.
const BATCH_DOMAIN_CONCURRENCY: usize = 16;
/// The longest a finished verification stays shareable when the request
/// that made it was cancelled before it could drop it.
const IN_FLIGHT_TTL: std::time::Duration = std::time::Duration::from_secs(120);

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

/// An address that passed the checks that need no network.
struct Candidate {
    address: EmailAddress,
    /// The result so far: flags and suggestion filled in.
    draft: VerifyResult,
}

/// Where `early` finds what the store knows of an address.
enum Lookups {
    /// Asked address by address.
    OneByOne,
    /// Read beforehand for a whole batch; each address's entries are
    /// taken out as it is looked at.
    Read {
        suppressions: HashMap<String, Suppression>,
        cached: HashMap<String, CachedVerification>,
    },
}

/// Where an address stands before DNS.
enum Early {
    Done(VerifyResult),
    Needs(Candidate),
}

/// Verifies addresses. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Verifier {
    store: Arc<dyn Store>,
    suppressions: Arc<SuppressionList>,
    resolver: MailResolver,
    prober: Prober,
    lists: Lists,
    memo: Memo,
    /// Verifications in progress, shared by concurrent requests for one
    /// address (single-flight), keyed by the address and the suppression
    /// list's version: a request made after the list changed never shares
    /// an answer made before.
    in_flight: moka::future::Cache<(String, u64, bool), (VerifyResult, bool)>,
    recorder: Recorder,
    watch: Arc<ResolverWatch>,
    /// Recent probe outcomes per mail provider.
    health: ProbeHealth,
    /// What replicas sharing the database coordinate through (Postgres).
    cluster: Option<Cluster>,
    /// Rejections grouped by provider and reply.
    patterns: Arc<BouncePatterns>,
    /// Whether probes may reach private addresses: a suggested domain's
    /// mail hosts must be reachable under the same rule.
    allow_private_targets: bool,
}

impl Verifier {
    pub fn new(
        settings: VerifierSettings,
        store: Arc<dyn Store>,
        suppressions: Arc<SuppressionList>,
    ) -> Result<Self, DnsError> {
        let watch = Arc::new(ResolverWatch::new(&settings.dns)?);
        let patterns = BouncePatterns::new(store.clone());
        let cluster = store
            .coordination()
            .map(|coordination| Cluster::start(coordination, suppressions.clone()));
        Ok(Verifier {
            resolver: MailResolver::new(&settings.dns)?,
            allow_private_targets: settings.probe.allow_private_targets,
            prober: Prober::new(
                settings.probe,
                ProbeBudget::per_minute(settings.probe_budget_per_domain),
                cluster.clone(),
            ),
            lists: settings.lists,
            memo: Memo::new(),
            // Entries are dropped when their verification ends; the time to
            // live only frees what a cancelled request left behind.
            in_flight: moka::future::Cache::builder()
                .time_to_live(IN_FLIGHT_TTL)
                .build(),
            recorder: Recorder {
                store: store.clone(),
                suppressions: suppressions.clone(),
                ttl: settings.ttl,
                watch: watch.clone(),
                patterns: patterns.clone(),
            },
            watch,
            health: ProbeHealth::new(),
            cluster,
            patterns,
            store,
            suppressions,
        })
    }

    /// Forgets the probe budgets of domains not probed lately, and the
    /// session pool's state of hosts no longer in use.
    pub fn housekeeping(&self) {
        self.prober.housekeeping();
    }

    /// Whether other replicas' changes are heard as they happen (the
    /// database's notifications): the suppression list then needs polling
    /// only as a safety net.
    pub fn hears_changes(&self) -> bool {
        self.cluster.as_ref().is_some_and(Cluster::listening)
    }

    /// The state of each SOCKS5 proxy probes go through (empty without).
    pub fn proxy_status(&self) -> Vec<super::egress::ProxyStatus> {
        self.prober.proxy_status()
    }

    /// Rejections (probe replies and bounces) grouped by provider and
    /// reply.
    pub fn bounce_patterns(&self) -> &Arc<BouncePatterns> {
        &self.patterns
    }

    /// Recent probe outcomes per mail provider.
    pub fn probe_health(&self) -> &ProbeHealth {
        &self.health
    }

    /// The watch on the resolver's canary names.
    pub fn resolver_watch(&self) -> &Arc<ResolverWatch> {
        &self.watch
    }

    /// An answer kept in memory for the address, as an answer to `input`.
    fn remembered(&self, input: &str, key: &str, version: u64) -> Option<VerifyResult> {
        let remembered = self.memo.get(key, version)?;
        remembered.count();
        Some(VerifyResult {
            email: input.to_owned(),
            ..remembered.result().clone()
        })
    }

    /// The answer for `input` when it is in memory, as the JSON that
    /// serializing [`Self::answer_at_once`]'s answer gives, made without
    /// copying or serializing the answer. `None`: ask `answer_at_once`.
    pub fn remembered_json(&self, input: &str, fresh: bool) -> Option<Vec<u8>> {
        if fresh {
            return None;
        }
        let key = EmailAddress::parse(input).ok()?.key();
        let remembered = self.memo.get(&key, self.suppressions.version())?;
        remembered.count();
        Some(remembered.json_for(input))
    }

    /// The answer for `input` when it needs no work: an invalid address,
    /// or one answered from memory. `None`: call [`Verifier::verify`].
    pub fn answer_at_once(&self, input: &str, fresh: bool) -> Option<VerifyResult> {
        match EmailAddress::parse(input) {
            Err(err) => Some(invalid(input, &err)),
            Ok(_) if fresh => None,
            Ok(address) => self.remembered(input, &address.key(), self.suppressions.version()),
        }
    }

    /// Verifies one address for `requester`, within the part of the probe
    /// budget it may use. Requests for an address already being verified
    /// (for the same kind of caller) wait for that verification instead of
    /// probing again.
    pub async fn verify(
        &self,
        input: &str,
        fresh: bool,
        requester: &Requester,
    ) -> Answer<VerifyResult> {
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
        // Read before the list is: an answer made now is good under it.
        let version = self.suppressions.version();
        if !fresh && let Some(result) = self.remembered(input, &key, version) {
            return Answer {
                value: result,
                degraded: false,
            };
        }
        // A public caller's answer may be "over its share of the budget":
        // never handed to a trusted caller, nor the other way round.
        let flight = (key, version, requester.is_public());
        let (result, degraded) = self
            .in_flight
            .get_with(
                flight.clone(),
                noting_store_trouble(self.verify_one(input, address, fresh, version, requester)),
            )
            .await;
        self.in_flight.invalidate(&flight).await;
        Answer {
            value: VerifyResult {
                email: input.to_owned(),
                ..result
            },
            degraded,
        }
    }

    async fn verify_one(
        &self,
        input: &str,
        address: EmailAddress,
        fresh: bool,
        version: u64,
        requester: &Requester,
    ) -> VerifyResult {
        let key = address.key();
        let waiting_since = std::time::Instant::now();
        let mut waited = false;
        let (candidate, _turn) = loop {
            // After waiting for another replica's verification, its verdict
            // is the fresh one.
            let fresh = fresh && !waited;
            let candidate = match self
                .early(
                    input,
                    address.clone(),
                    fresh,
                    version,
                    &mut Lookups::OneByOne,
                )
                .await
            {
                Early::Done(result) => return result,
                Early::Needs(candidate) => candidate,
            };
            if waiting_since.elapsed() >= WAIT_FOR_OTHER {
                break (candidate, None);
            }
            match self.turn(&key).await {
                Turn::Ours(turn) => break (candidate, turn),
                Turn::Waited => waited = true,
            }
        };
        let domain = candidate.address.domain().to_owned();
        let route = self.resolver.mail_route(&domain).await;
        let mut results = self
            .finish(
                &domain,
                route,
                vec![candidate],
                version,
                requester,
                Transcribe::Yes,
            )
            .await;
        results.pop().expect("one result per candidate")
    }

    /// Whether this replica may verify the address now: with one process,
    /// always; with replicas sharing a database, unless another replica is
    /// verifying it, whose verdict is then waited for (a notification, or
    /// a second).
    async fn turn(&self, key: &str) -> Turn {
        let Some(cluster) = &self.cluster else {
            return Turn::Ours(None);
        };
        let mut finished = cluster.finished_verifications();
        match cluster.claim_verification(key).await {
            Ok(true) => {
                return Turn::Ours(Some(VerifyingHere {
                    cluster: cluster.clone(),
                    key: key.to_owned(),
                }));
            }
            Ok(false) => {}
            Err(err) => {
                warn_store("claiming a verification", &err);
                return Turn::Ours(None);
            }
        }
        let heard = async {
            loop {
                match finished.recv().await {
                    Ok(done) if done.is_empty() || &*done == key => return,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), heard).await;
        Turn::Waited
    }

    /// Verifies up to a batch of addresses, in input order, for a trusted
    /// caller (a secret key, a job, the command line). Addresses at one
    /// domain share DNS lookups and SMTP sessions.
    pub async fn verify_batch(&self, inputs: &[String], fresh: bool) -> Answer<Vec<VerifyResult>> {
        let (value, degraded) = noting_store_trouble(self.batch(inputs, fresh)).await;
        Answer { value, degraded }
    }

    async fn batch(&self, inputs: &[String], fresh: bool) -> Vec<VerifyResult> {
        let version = self.suppressions.version();
        let mut results: Vec<Option<VerifyResult>> = vec![None; inputs.len()];
        // Checks without network, and duplicates folded onto their first.
        let mut by_domain: HashMap<String, Vec<(usize, Candidate)>> = HashMap::new();
        let mut first_of_key: HashMap<String, usize> = HashMap::new();
        let mut duplicates: Vec<(usize, usize)> = Vec::new();
        let mut unknown: Vec<(usize, EmailAddress)> = Vec::new();
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
                self.remembered(input, &key, version)
            };
            first_of_key.insert(key, index);
            if let Some(result) = remembered {
                results[index] = Some(result);
                continue;
            }
            unknown.push((index, address));
        }
        // What the store knows of the rest, in two queries for the batch
        // rather than two for each address.
        let keys: Vec<String> = unknown.iter().map(|(_, address)| address.key()).collect();
        let mut lookups = self.read_lookups(&keys, fresh).await;
        for (index, address) in unknown {
            match self
                .early(&inputs[index], address, fresh, version, &mut lookups)
                .await
            {
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
                // Batch answers stay small: no transcripts.
                let verdicts = self
                    .finish(
                        &domain,
                        route,
                        candidates,
                        version,
                        &Requester::Trusted,
                        Transcribe::No,
                    )
                    .await;
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
                    let mut missing = VerifyResult::new(input, None, Reason::SmtpError);
                    missing.message = Some("not verified".to_owned());
                    missing
                })
            })
            .collect()
    }

    /// The live suppressions and the cached verdicts of a batch's
    /// addresses (no verdicts when `fresh`). A failed read is warned of and
    /// leaves nothing known, as a failed lookup of one address does.
    async fn read_lookups(&self, keys: &[String], fresh: bool) -> Lookups {
        if keys.is_empty() {
            return Lookups::OneByOne;
        }
        let suppressions = match self.suppressions.get_among(keys).await {
            Ok(entries) => entries
                .into_iter()
                .map(|entry| (entry.address_key.clone(), entry))
                .collect(),
            Err(err) => {
                warn_store("reading the suppression list", &err);
                HashMap::new()
            }
        };
        let cached = if fresh {
            HashMap::new()
        } else {
            match self
                .store
                .cached_verifications_among(keys, Utc::now())
                .await
            {
                Ok(entries) => entries
                    .into_iter()
                    .map(|entry| (entry.address_key.clone(), entry))
                    .collect(),
                Err(err) => {
                    warn_store("reading the verdict cache", &err);
                    HashMap::new()
                }
            }
        };
        Lookups::Read {
            suppressions,
            cached,
        }
    }

    /// The suppression list, the cache and the local checks.
    async fn early(
        &self,
        input: &str,
        address: EmailAddress,
        fresh: bool,
        version: u64,
        lookups: &mut Lookups,
    ) -> Early {
        let key = address.key();
        let normalized = address.normalized();
        let suppression = match lookups {
            Lookups::OneByOne => self.suppressions.get(&address).await,
            Lookups::Read { suppressions, .. } => Ok(suppressions.remove(&key)),
        };
        match suppression {
            Ok(Some(entry)) => {
                let verdict = decide(&Evidence::Suppressed(&entry));
                let mut result = concluded(input, Some(normalized), &verdict);
                result.checked_at = entry.updated_at;
                result.suggestion = self.suggestion_when_suppressed(&address, &entry).await;
                count_verdict(&result);
                // Good until the list changes.
                self.memo.put(
                    key,
                    result.clone(),
                    Utc::now() + chrono::Duration::days(1),
                    version,
                );
                return Early::Done(result);
            }
            Ok(None) => {}
            Err(err) => warn_store("reading the suppression list", &err),
        }
        if !fresh {
            let cached = match lookups {
                Lookups::OneByOne => self.store.cached_verification(&key, Utc::now()).await,
                Lookups::Read { cached, .. } => Ok(cached.remove(&key)),
            };
            match cached {
                Ok(Some(cached)) => match serde_json::from_value::<VerifyResult>(cached.result) {
                    Ok(result) => {
                        metrics::counter!("mailvet_verify_cache_hits_total").increment(1);
                        let result = VerifyResult {
                            email: input.to_owned(),
                            cached: true,
                            ..result
                        };
                        count_verdict(&result);
                        self.memo
                            .put(key, result.clone(), cached.expires_at, version);
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
            let result = apply(draft, Vec::new(), &decide(&Evidence::Disposable));
            self.recorder
                .record(&[(&address, &result)], &self.memo, version)
                .await;
            return Early::Done(result);
        }
        Early::Needs(Candidate { address, draft })
    }

    /// The suggestion for a suppressed address, which is answered without
    /// network: a provider's typo, or else, when a DNS answer put the
    /// address on the list, the suggestion its verification found then
    /// (kept with the cached verdict).
    async fn suggestion_when_suppressed(
        &self,
        address: &EmailAddress,
        entry: &Suppression,
    ) -> Option<String> {
        let local = address.local_part();
        if let Some(fixed) = lists::suggest_domain(address.domain()) {
            return Some(format!("{local}@{fixed}"));
        }
        if entry.evidence.as_ref()?.kind != EvidenceKind::Dns {
            return None;
        }
        let cached = match self
            .store
            .cached_verification(&address.key(), Utc::now())
            .await
        {
            Ok(cached) => cached?,
            Err(err) => {
                warn_store("reading the verdict cache", &err);
                return None;
            }
        };
        if !matches!(cached.reason, Reason::NoSuchDomain | Reason::NoMailServer) {
            return None;
        }
        serde_json::from_value::<VerifyResult>(cached.result)
            .ok()?
            .suggestion
    }

    /// The DNS answer and the SMTP probe, to verdicts, recorded.
    async fn finish(
        &self,
        domain: &str,
        route: Result<MailRoute, DnsError>,
        mut candidates: Vec<Candidate>,
        version: u64,
        requester: &Requester,
        transcribe: Transcribe,
    ) -> Vec<VerifyResult> {
        let count = candidates.len();
        let mut transcript = Vec::new();
        let (mx, verdicts): (Vec<String>, Vec<Verdict>) = match DnsEvidence::of(&route) {
            Err(dns) => {
                // A failure proves nothing anyway; a denial only while the
                // resolver passes its canary checks.
                let failed = matches!(dns, DnsEvidence::Failed(_));
                let trusted = failed || self.watch.trusted().await;
                if !failed && trusted {
                    self.suggest_nearby(domain, &mut candidates).await;
                }
                let evidence = Evidence::Dns {
                    domain,
                    dns,
                    trusted,
                };
                (Vec::new(), vec![decide(&evidence); count])
            }
            Ok(hosts) => {
                let mx = hosts.iter().map(|host| host.name.clone()).collect();
                let addresses: Vec<EmailAddress> = candidates
                    .iter()
                    .map(|candidate| candidate.address.clone())
                    .collect();
                let probed = self
                    .prober
                    .probe(
                        domain,
                        hosts,
                        &addresses,
                        transcribe == Transcribe::Yes,
                        requester,
                    )
                    .await;
                let verdicts = match probed.over_budget {
                    Some(refusal) => {
                        let evidence = Evidence::OverBudget {
                            domain,
                            refusal: &refusal,
                            known_catch_all: self.prober.known_catch_all(domain),
                        };
                        vec![decide(&evidence); count]
                    }
                    None => {
                        transcript = probed.transcript;
                        probed
                            .evidence
                            .iter()
                            .map(|evidence| {
                                let verdict = decide(&Evidence::Probe(evidence));
                                self.health.observe(evidence, &verdict);
                                verdict
                            })
                            .collect()
                    }
                };
                (mx, verdicts)
            }
        };
        self.conclude(candidates, mx, verdicts, version, transcript)
            .await
    }

    /// For a domain that DNS shows to have no mail route: the address at a
    /// nearby domain that has one (`suggest.rs`), for every candidate
    /// without a suggestion yet (a provider's typo comes first).
    async fn suggest_nearby(&self, domain: &str, candidates: &mut [Candidate]) {
        if candidates
            .iter()
            .all(|candidate| candidate.draft.suggestion.is_some())
        {
            return;
        }
        let Some(nearby) =
            nearby_mail_domain(&self.resolver, domain, self.allow_private_targets).await
        else {
            return;
        };
        for candidate in candidates {
            if candidate.draft.suggestion.is_none() {
                candidate.draft.suggestion =
                    Some(format!("{}@{nearby}", candidate.address.local_part()));
            }
        }
    }

    /// Verdicts onto their drafts (with the transcript, when one address
    /// was probed for it); the cacheable ones recorded.
    async fn conclude(
        &self,
        candidates: Vec<Candidate>,
        mx: Vec<String>,
        verdicts: Vec<Verdict>,
        version: u64,
        transcript: Vec<Exchange>,
    ) -> Vec<VerifyResult> {
        let mut results = Vec::with_capacity(candidates.len());
        let mut addresses = Vec::with_capacity(candidates.len());
        for (candidate, verdict) in candidates.into_iter().zip(&verdicts) {
            results.push(apply(candidate.draft, mx.clone(), verdict));
            addresses.push(candidate.address);
        }
        if let [only] = results.as_mut_slice() {
            only.transcript = transcript.into_iter().map(exchange).collect();
        }
        let mut to_record = Vec::with_capacity(results.len());
        for ((address, result), verdict) in addresses.iter().zip(&results).zip(&verdicts) {
            if verdict.cacheable {
                to_record.push((address, result));
            } else {
                count_verdict(result);
            }
        }
        if !to_record.is_empty() {
            self.recorder.record(&to_record, &self.memo, version).await;
        }
        results
    }
}

/// Whether a verification goes ahead here.
enum Turn {
    /// It does; with replicas, holding the address's claim.
    Ours(Option<VerifyingHere>),
    /// Another replica verified it, or a second passed: look again.
    Waited,
}

/// This replica's claim on an address's verification, ended (and the
/// replicas waiting for it woken) when the verification is over — after
/// its verdict was recorded.
struct VerifyingHere {
    cluster: Cluster,
    key: String,
}

impl Drop for VerifyingHere {
    fn drop(&mut self) {
        self.cluster.finish_verification(&self.key);
    }
}

/// A result made of a verdict alone (nothing else known of the address).
fn concluded(input: &str, normalized: Option<String>, verdict: &Verdict) -> VerifyResult {
    let draft = VerifyResult::new(input, normalized, verdict.reason);
    apply(draft, Vec::new(), verdict)
}

/// The answer for an address that cannot be parsed.
fn invalid(input: &str, err: &SyntaxError) -> VerifyResult {
    let result = concluded(input, None, &decide(&Evidence::InvalidSyntax(err)));
    count_verdict(&result);
    result
}

/// The draft with the verdict's status, reason and evidence.
/// Whether a verification keeps the transcript of its SMTP exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transcribe {
    Yes,
    No,
}

/// An exchange as the answer shows it: the reply's text bounded and
/// cleaned like any text from someone else's server.
fn exchange(exchange: Exchange) -> SmtpExchange {
    match exchange.heard {
        Ok(reply) => SmtpExchange {
            host: exchange.host,
            sent: exchange.sent,
            code: Some(reply.code()),
            enhanced_code: reply.enhanced().map(|code| code.to_string()),
            message: bounded_text(&reply.message()),
        },
        Err(why) => SmtpExchange {
            host: exchange.host,
            sent: exchange.sent,
            code: None,
            enhanced_code: None,
            message: bounded_text(&why),
        },
    }
}

fn apply(mut result: VerifyResult, mx: Vec<String>, verdict: &Verdict) -> VerifyResult {
    result.status = verdict.status();
    result.reason = verdict.reason;
    result.mx = mx;
    result.smtp = verdict.smtp.clone();
    result.message = verdict.message.clone();
    result.flags.catch_all = verdict.catch_all;
    result.suppressed = verdict.suppressed.is_some();
    result.suppression_reason = verdict.suppressed;
    result.checked_at = Utc::now();
    result
}
