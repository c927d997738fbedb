//! The resolver, judged as the service judges it (`verify/dns.rs`,
//! `verify/resolver_watch.rs`): canary names must resolve to mail hosts,
//! and a name that cannot exist must get a negative answer that carries
//! the zone's SOA. A resolver that fails either never lets DNS make an
//! address `undeliverable`.

use rand::Rng as _;
use rand::distr::Alphanumeric;

use super::Row;
use crate::verify::dns::{DnsSettings, MailResolver, MailRoute};
use crate::verify::resolver_watch::describe;

const CHECK: &str = "resolver";
const ADVICE_LYING: &str = "use a resolver that answers honestly (--dns-servers with your own \
                            recursive resolver); behind a captive portal or a filtering \
                            network, DNS verdicts cannot be trusted";

/// A row per canary, then one for the negative answer. With no canary
/// configured, the negative answer is tried under the first doctor
/// domain.
pub(super) async fn check(
    resolver: &MailResolver,
    settings: &DnsSettings,
    domains: &[String],
) -> Vec<Row> {
    let canaries = &settings.canaries;
    let mut rows = Vec::new();
    let mut resolving = Vec::new();
    for canary in canaries {
        match resolver.mail_route(canary).await {
            Ok(MailRoute::Hosts { hosts, .. }) => {
                resolving.push(canary.clone());
                rows.push(Row::pass(
                    format!("{CHECK}: {canary}"),
                    format!("{} mail host(s), first {}", hosts.len(), hosts[0].name),
                ));
            }
            Ok(other) => rows.push(canary_failure(canary, describe(&other).to_owned())),
            Err(err) => rows.push(canary_failure(canary, err.detail)),
        }
    }
    if canaries.is_empty() {
        rows.push(Row::warn(
            format!("{CHECK}: canaries"),
            "no canary name configured: every negative answer is believed",
            "set --dns-canary to names that must resolve (the default gmail.com,outlook.com,yahoo.com)",
        ));
    } else if resolving.is_empty() {
        // The service stops trusting negative answers: say it once, as a failure.
        for row in &mut rows {
            row.result = super::Outcome::Fail;
        }
    }
    let parent = resolving
        .first()
        .or_else(|| canaries.first())
        .or_else(|| domains.first());
    if let Some(parent) = parent {
        let mut row = negative_answer(resolver, parent).await;
        row.detail = format!("{} (asked of {})", row.detail, servers(settings));
        rows.push(row);
    }
    rows
}

/// The servers the resolver asks, as the operator configured them.
fn servers(settings: &DnsSettings) -> String {
    if settings.servers.is_empty() {
        return "the system resolver".to_owned();
    }
    let servers: Vec<String> = settings.servers.iter().map(ToString::to_string).collect();
    servers.join(", ")
}

fn canary_failure(canary: &str, detail: String) -> Row {
    Row::warn(
        format!("{CHECK}: {canary}"),
        format!("does not resolve to a mail host: {detail}"),
        "while no canary resolves, no DNS answer makes an address undeliverable: \
         check --dns-servers and the network, or choose --dns-canary names that resolve",
    )
}

/// A random name under `parent` must be answered NXDOMAIN (or "no
/// records") with the zone's SOA.
async fn negative_answer(resolver: &MailResolver, parent: &str) -> Row {
    let label: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(16)
        .map(|byte| char::from(byte).to_ascii_lowercase())
        .collect();
    let name = format!("mailvet-doctor-{label}.{parent}");
    let check = format!("{CHECK}: negative answer");
    match resolver.mail_route(&name).await {
        Ok(MailRoute::NoSuchDomain) => Row::pass(
            check,
            format!("a name that cannot exist under {parent}: NXDOMAIN with the zone's SOA"),
        ),
        Ok(MailRoute::NoMailServer | MailRoute::NullMx) => Row::pass(
            check,
            format!("a name that cannot exist under {parent}: no records, with the zone's SOA"),
        ),
        Ok(MailRoute::Hosts { hosts, .. }) => Row::fail(
            check,
            format!(
                "a name that cannot exist under {parent} resolves to mail host {}: \
                 the resolver answers every name",
                hosts[0].name
            ),
            ADVICE_LYING,
        ),
        Err(err) if err.detail.contains("SOA") => Row::fail(check, err.detail, ADVICE_LYING),
        Err(err) => Row::fail(
            check,
            format!("no answer for a name under {parent}: {}", err.detail),
            "check --dns-servers and that this host may send DNS queries to them",
        ),
    }
}
