//! (e) Scale-out: one bulk job verified by 1, then 2, then 3 mailvet
//! replicas sharing one Postgres database, against a loopback mail farm
//! (`farm.rs`) where every domain has its own MX host name and address.
//!
//! Each configuration gets a fresh database and a fresh farm; the replicas
//! all answer `/readyz` before the job is uploaded to the first one, which
//! is polled until the job completes. Measured per configuration:
//!
//! - wall time and addresses a second, and the throughput against one
//!   replica's (goals: 2 replicas ≥ 1.8×, 3 replicas ≥ 2.5×);
//! - SMTP sessions per address over the domains with at least 20
//!   addresses (goal ≤ 0.05: a domain's addresses share sessions);
//! - the most sessions any one domain's server saw open at once, against
//!   `--max-smtp-sessions-per-host` (2): the cap is a promise to the mail
//!   server, so a domain above it is a violation whatever the replica count;
//! - the wall time against the least time the work allows:
//!
//! ```text
//! bound = max( waited / C ,  longest session's wait ,  max over domains of waited(domain) / cap )
//! C     = replicas × min( --max-smtp-sessions , --job-workers )
//! ```
//!
//! where `waited` is the time the farm's servers spent before their
//! replies (each domain's delay, and error sleeps). The first term is the
//! sessions the replicas may hold; the second, that a session's replies
//! come one after another; the third, that one domain never gets more than
//! `cap` sessions at once — for one replica that is its own cap, for more it
//! holds once the cap is kept across the cluster. Goal for one replica:
//! wall ≤ 1.3 × bound.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::dns::{Dns, ORIGIN};
use crate::farm::{self, Farm, FarmDomain, FarmStats};
use crate::jobs;
use crate::support::{
    self, MailvetCommand, Outcome, PgScratch, Rng, Server, env_duration, env_number,
};

/// The settings every replica runs with: mailvet's defaults, given
/// explicitly, and a probe budget too large to be what is measured.
const MAX_SMTP_SESSIONS: u64 = 64;
const MAX_SMTP_SESSIONS_PER_HOST: usize = 2;
const JOB_WORKERS: u64 = 48;
const JOB_CHUNK_SIZE: u64 = 500;
const PROBE_BUDGET_PER_DOMAIN: u64 = 1_000_000;

/// Throughput against one replica's, by replica count.
const SPEEDUP_GOALS: [(usize, f64); 2] = [(2, 1.8), (3, 2.5)];
const SESSIONS_PER_ADDRESS_GOAL: f64 = 0.05;
/// One replica's wall time against its bound.
const BOUND_GOAL: f64 = 1.3;
/// Domains with at least this many addresses are the "large" ones whose
/// sessions per address are measured.
const LARGE: usize = 20;

/// The job: its domains (with their farm addresses and delays), how many
/// addresses each holds, and the addresses in upload order.
#[derive(Debug)]
struct Mix {
    domains: Vec<FarmDomain>,
    sizes: Vec<usize>,
    addresses: Vec<String>,
}

impl Mix {
    /// `domains` domains holding `total` addresses: `big` of them hold
    /// `big_size` each and answer at the fastest delay (the large
    /// providers); one in six of the others holds 1 to 5; the rest at least
    /// 20, drawn around the mean that makes up the total. Delays go round
    /// `delays` by domain. One address in 20 is a `gone…` one. Shuffled
    /// with a fixed seed, so every run uploads the same list.
    fn new(
        domains: usize,
        total: usize,
        big: usize,
        big_size: usize,
        delays: &[Duration],
    ) -> Result<Self> {
        let mut rng = Rng::new(0x7363_616c_652d_6f75);
        // Big domains evenly spread in domain order (which the claims follow).
        let stride = domains.div_ceil(big.max(1));
        let is_big = |i: usize| i < stride * big && i.is_multiple_of(stride);
        let is_small = |i: usize| !is_big(i) && i % 6 == 5;
        let mut sizes: Vec<usize> = (0..domains)
            .map(|i| {
                if is_big(i) {
                    big_size
                } else if is_small(i) {
                    1 + (rng.next() % 5) as usize
                } else {
                    0
                }
            })
            .collect();
        let large: Vec<usize> = (0..domains).filter(|&i| sizes[i] == 0).collect();
        let fixed: usize = sizes.iter().sum();
        let remaining = total.saturating_sub(fixed);
        if large.is_empty() || remaining < LARGE * large.len() {
            bail!(
                "{total} addresses cannot give {} domains at least {LARGE} each after {fixed} \
                 in big and small domains: raise MAILVET_BENCH_SCALE_ADDRESSES or lower \
                 MAILVET_BENCH_SCALE_DOMAINS",
                large.len()
            );
        }
        let mean = remaining / large.len();
        let spread = 2 * (mean - LARGE) + 1;
        for &i in &large {
            sizes[i] = LARGE + (rng.next() % spread as u64) as usize;
        }
        // Up or down one address at a time to the exact total.
        let mut sum: usize = large.iter().map(|&i| sizes[i]).sum();
        while sum != remaining {
            let i = large[(rng.next() % large.len() as u64) as usize];
            if sum < remaining {
                sizes[i] += 1;
                sum += 1;
            } else if sizes[i] > LARGE {
                sizes[i] -= 1;
                sum -= 1;
            }
        }
        let fastest = delays.iter().min().copied().unwrap_or_default();
        let farm_domains: Vec<FarmDomain> = (0..domains)
            .map(|i| FarmDomain {
                name: format!("m{i:05}.{ORIGIN}"),
                address: farm::address(i),
                delay: if is_big(i) {
                    fastest
                } else {
                    delays[i % delays.len()]
                },
            })
            .collect();
        let mut ordered = Vec::with_capacity(total);
        for (domain, &size) in farm_domains.iter().zip(&sizes) {
            for user in 0..size {
                let local = if ordered.len() % 20 == 19 {
                    "gone"
                } else {
                    "user"
                };
                ordered.push(format!("{local}{user}@{}", domain.name));
            }
        }
        let addresses = rng
            .permutation(ordered.len() as u32)
            .into_iter()
            .map(|n| std::mem::take(&mut ordered[n as usize]))
            .collect();
        Ok(Mix {
            domains: farm_domains,
            sizes,
            addresses,
        })
    }

    fn csv_chunks(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        std::iter::once(b"email\n".to_vec()).chain(self.addresses.chunks(2_000).map(|piece| {
            let mut bytes = Vec::with_capacity(piece.len() * 28);
            for address in piece {
                bytes.extend_from_slice(address.as_bytes());
                bytes.push(b'\n');
            }
            bytes
        }))
    }

    fn describe(&self) -> String {
        let count = |f: &dyn Fn(usize) -> bool| self.sizes.iter().filter(|&&s| f(s)).count();
        let large: Vec<usize> = self.sizes.iter().copied().filter(|&s| s >= LARGE).collect();
        format!(
            "{} addresses over {} domains ({} with ≥ {LARGE}: {}–{} each; {} with 1–5; largest {}), \
             shuffled, one in 20 a gone… address",
            self.addresses.len(),
            self.domains.len(),
            large.len(),
            large.iter().min().copied().unwrap_or(0),
            large.iter().max().copied().unwrap_or(0),
            count(&|s| s < LARGE),
            self.sizes.iter().max().copied().unwrap_or(0),
        )
    }
}

/// What one configuration measured.
#[derive(Debug)]
struct Figures {
    replicas: usize,
    wall: Duration,
    farm: FarmStats,
    unknown: u64,
}

pub async fn run() -> Result<Outcome> {
    let domains = env_number("MAILVET_BENCH_SCALE_DOMAINS", 1_000)?.max(1) as usize;
    let total = env_number("MAILVET_BENCH_SCALE_ADDRESSES", 48_000)?.max(1) as usize;
    let big = env_number("MAILVET_BENCH_SCALE_BIG_DOMAINS", 4)? as usize;
    let big_size = env_number("MAILVET_BENCH_SCALE_BIG_SIZE", 1_100)? as usize;
    let max_replicas = env_number("MAILVET_BENCH_SCALE_REPLICAS", 3)?.clamp(1, 16) as usize;
    let timeout = env_duration("MAILVET_BENCH_SCALE_TIMEOUT", Duration::from_secs(300))?;
    let delays = match std::env::var("MAILVET_BENCH_SCALE_DELAYS") {
        Ok(text) => text
            .split(',')
            .map(|d| humantime::parse_duration(d.trim()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| {
                format!("MAILVET_BENCH_SCALE_DELAYS={text} is not a list such as 40ms,80ms,160ms")
            })?,
        Err(_) => [40, 80, 160].map(Duration::from_millis).to_vec(),
    };
    if delays.is_empty() {
        bail!("MAILVET_BENCH_SCALE_DELAYS is empty");
    }
    let mix = Mix::new(domains, total, big, big_size, &delays)?;
    let delay_list: Vec<String> = delays
        .iter()
        .map(|d| format!("{} ms", d.as_millis()))
        .collect();
    println!("  {}", mix.describe());
    println!(
        "  farm: one server per domain at 127.1.x.y, {} before each reply by domain; \
         {} recipients a transaction; error sleep {} s from {} errors, 421 at {}",
        delay_list.join(" / "),
        farm::RCPT_LIMIT,
        farm::ERROR_SLEEP.as_secs(),
        farm::SOFT_ERROR_LIMIT,
        farm::HARD_ERROR_LIMIT
    );
    println!(
        "  each replica: --max-smtp-sessions {MAX_SMTP_SESSIONS} --max-smtp-sessions-per-host \
         {MAX_SMTP_SESSIONS_PER_HOST} --job-workers {JOB_WORKERS} --job-chunk-size {JOB_CHUNK_SIZE} \
         --probe-budget-per-domain {PROBE_BUDGET_PER_DOMAIN}; one Postgres database per configuration"
    );

    let names: Vec<(&str, std::net::Ipv4Addr)> = mix
        .domains
        .iter()
        .map(|d| (d.name.as_str(), d.address))
        .collect();
    let dns = Dns::start_at(names).await?;
    let dir = tempfile::tempdir()?;
    let mut all: Vec<Figures> = Vec::new();
    for replicas in 1..=max_replicas {
        println!(
            "\n  -- {replicas} replica{}",
            if replicas == 1 { "" } else { "s" }
        );
        let farm = Farm::start(mix.domains.clone()).await?;
        let database = PgScratch::create().await?;
        let queries = dns.queries();
        let measured =
            one_configuration(replicas, &mix, &dns, &farm, &database, dir.path(), timeout).await;
        if let Err(err) = database.drop_now().await {
            println!("  note: {err:#}");
        }
        let figures = measured?;
        report(&figures, &mix, all.first(), dns.queries() - queries);
        all.push(figures);
    }
    if all.iter().any(|f| f.unknown > 0) {
        // Kept for reading why.
        println!("  the replicas' logs are kept in {}", dir.keep().display());
    }
    Ok(summarise(&all, &mix))
}

/// Starts `replicas` mailvet processes on `database`, uploads the job to
/// the first and waits for it to complete.
async fn one_configuration(
    replicas: usize,
    mix: &Mix,
    dns: &Dns,
    farm: &Farm,
    database: &PgScratch,
    dir: &Path,
    timeout: Duration,
) -> Result<Figures> {
    let command = MailvetCommand::new(&database.url, dns.addr, farm.port)
        .arg("--max-smtp-sessions", MAX_SMTP_SESSIONS)
        .arg("--max-smtp-sessions-per-host", MAX_SMTP_SESSIONS_PER_HOST)
        .arg("--job-workers", JOB_WORKERS)
        .arg("--job-chunk-size", JOB_CHUNK_SIZE)
        .arg("--probe-budget-per-domain", PROBE_BUDGET_PER_DOMAIN);
    let log = |k: usize| dir.join(format!("mailvet-{replicas}-{k}.log"));
    // The first migrates the fresh database alone; the others then start
    // together.
    let mut servers: Vec<Server> = vec![command.spawn(&log(1))?];
    servers[0].wait_ready(Duration::from_secs(60)).await?;
    for k in 2..=replicas {
        servers.push(command.spawn(&log(k))?);
    }
    for server in &mut servers[1..] {
        server.wait_ready(Duration::from_secs(60)).await?;
    }
    let client = support::client()?;

    let started = Instant::now();
    let id = jobs::submit_csv(&servers[0], mix.csv_chunks(), mix.addresses.len()).await?;
    let uploaded = started.elapsed();
    // Sessions open across the farm at each poll: where capacity was idle.
    let mut open = Vec::new();
    let mut progress = jobs::progress(started);
    let job = jobs::wait(
        &client,
        &mut servers[0],
        &id,
        Duration::from_millis(50),
        timeout,
        |job| {
            open.push((started.elapsed(), farm.open_now()));
            progress(job);
        },
    )
    .await
    .context("MAILVET_BENCH_SCALE_TIMEOUT bounds the wait")?;
    for server in &mut servers {
        server.check_alive()?;
    }
    let wall = started.elapsed();
    let farm_stats = farm.stats();

    let mut shares = Vec::new();
    for server in &servers {
        shares.push(match sessions_opened(&client, server).await {
            Some(count) => format!("{count:.0}"),
            None => "n/a".to_owned(),
        });
    }
    jobs::print_outcome(&id, &job, wall, uploaded);
    println!(
        "  SMTP sessions by replica (its mailvet_smtp_session_duration_seconds_count): {}",
        shares.join(" / ")
    );
    println!(
        "  sessions open by tenth of the wall time (mean of the polls in it): {}",
        by_tenth(&open, wall)
    );
    let unknown = job["counts"]["unknown"].as_u64().unwrap_or(0);
    if unknown > 0 {
        println!(
            "  WARNING: {unknown} addresses are unknown; the replicas' logs are in {}",
            dir.display()
        );
    }
    Ok(Figures {
        replicas,
        wall,
        farm: farm_stats,
        unknown,
    })
}

/// The mean of the samples falling in each tenth of `wall`.
fn by_tenth(samples: &[(Duration, usize)], wall: Duration) -> String {
    let mut sums = [(0usize, 0usize); 10];
    for &(at, open) in samples {
        let tenth = ((at.as_secs_f64() / wall.as_secs_f64().max(f64::EPSILON)) * 10.0) as usize;
        let slot = &mut sums[tenth.min(9)];
        slot.0 += open;
        slot.1 += 1;
    }
    sums.iter()
        .map(|&(sum, n)| match n {
            0 => "-".to_owned(),
            n => format!("{:.0}", sum as f64 / n as f64),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sessions a replica opened, from its `/metrics`.
async fn sessions_opened(client: &reqwest::Client, server: &Server) -> Option<f64> {
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let counts: Vec<f64> = text
        .lines()
        .filter(|line| line.starts_with("mailvet_smtp_session_duration_seconds_count"))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// The figures derived from a configuration's measurements.
#[derive(Debug)]
struct Derived {
    rate: f64,
    speedup: f64,
    sessions_per_large_address: f64,
    peak: usize,
    over_cap: Vec<usize>,
    bound: Duration,
    terms: [Duration; 3],
}

fn derive(figures: &Figures, mix: &Mix, single: Option<&Figures>) -> Derived {
    let n = mix.addresses.len() as f64;
    let rate = n / figures.wall.as_secs_f64();
    let speedup = single.map_or(1.0, |one| {
        one.wall.as_secs_f64() / figures.wall.as_secs_f64()
    });
    let domains = &figures.farm.domains;
    let (large_sessions, large_addresses) = domains
        .iter()
        .zip(&mix.sizes)
        .filter(|&(_, &size)| size >= LARGE)
        .fold((0, 0), |(s, a), (d, &size)| (s + d.sessions, a + size));
    let peak = domains.iter().map(|d| d.peak).max().unwrap_or(0);
    let over_cap = (0..domains.len())
        .filter(|&i| domains[i].peak > MAX_SMTP_SESSIONS_PER_HOST)
        .collect();
    let concurrency = figures.replicas as u32 * MAX_SMTP_SESSIONS.min(JOB_WORKERS) as u32;
    let per_domain = domains.iter().map(|d| d.waited).max().unwrap_or_default()
        / MAX_SMTP_SESSIONS_PER_HOST as u32;
    let terms = [
        figures.farm.waited() / concurrency,
        figures.farm.longest_session_wait,
        per_domain,
    ];
    Derived {
        rate,
        speedup,
        sessions_per_large_address: large_sessions as f64 / large_addresses.max(1) as f64,
        peak,
        over_cap,
        bound: terms.into_iter().max().unwrap_or_default(),
        terms,
    }
}

fn report(figures: &Figures, mix: &Mix, single: Option<&Figures>, dns_queries: usize) {
    let d = derive(figures, mix, single);
    let farm = &figures.farm;
    let n = mix.addresses.len() as f64;
    let sum = |f: fn(&farm::DomainStats) -> usize| farm.domains.iter().map(f).sum::<usize>();
    println!(
        "  throughput           {:>9.0} addresses/s ({:.2}× one replica's)",
        d.rate, d.speedup
    );
    println!(
        "  SMTP sessions        {:>9}     ({:.3} per address over the domains with ≥ {LARGE}; {:.3} over all)",
        farm.sessions(),
        d.sessions_per_large_address,
        farm.sessions() as f64 / n
    );
    println!(
        "  SMTP replies         {:>9}     (RCPT {} = {:.3} per address; 452 {}, 421 {}, slowed by errors {}, other domains' RCPT {})",
        farm.replies(),
        farm.rcpts(),
        farm.rcpts() as f64 / n,
        sum(|s| s.too_many_rcpts),
        sum(|s| s.closed_for_errors),
        sum(|s| s.slowed),
        sum(|s| s.foreign)
    );
    println!(
        "  sessions open at once{:>8}     across the farm ({:.1} on average); per domain at most {} (cap {MAX_SMTP_SESSIONS_PER_HOST})",
        farm.most_open,
        farm.mean_open(),
        d.peak
    );
    if farm.replies() > 0 && farm.mean_open() > 0.0 {
        // The throughput term's ratio, factored into where the time went.
        let replies = farm.replies() as f64;
        let concurrency = figures.replicas as f64 * MAX_SMTP_SESSIONS.min(JOB_WORKERS) as f64;
        let span = match (farm.first_open, farm.last_close) {
            (Some(first), Some(last)) => (last - first).as_secs_f64(),
            _ => 0.0,
        };
        println!(
            "  where the time went  a reply took {:.1} ms of session time against {:.1} ms waited \
             ({:.2}×) · sessions open {:.1} on average, not {concurrency:.0} ({:.2}×) · wall / SMTP \
             activity {:.2}×",
            farm.busy.as_secs_f64() * 1000.0 / replies,
            farm.waited().as_secs_f64() * 1000.0 / replies,
            farm.busy.as_secs_f64() / farm.waited().as_secs_f64(),
            farm.mean_open(),
            concurrency / farm.mean_open(),
            figures.wall.as_secs_f64() / span.max(f64::EPSILON)
        );
    }
    println!("  DNS queries          {dns_queries:>9}");
    let [throughput, serial, per_domain] = d.terms;
    println!(
        "  bound                {:>9.2} s  (max of waited / C = {:.2} s, longest session {:.2} s, busiest domain / {MAX_SMTP_SESSIONS_PER_HOST} = {:.2} s); wall / bound = {:.2}×",
        d.bound.as_secs_f64(),
        throughput.as_secs_f64(),
        serial.as_secs_f64(),
        per_domain.as_secs_f64(),
        figures.wall.as_secs_f64() / d.bound.as_secs_f64()
    );
    if !d.over_cap.is_empty() {
        let mut list = String::new();
        for &i in &d.over_cap {
            let s = &farm.domains[i];
            let _ = write!(
                list,
                "\n    {} ({} addresses): peak {} sessions at once, {} sessions",
                mix.domains[i].name, mix.sizes[i], s.peak, s.sessions
            );
        }
        println!(
            "  CAP VIOLATED: {} domain{} saw more than {MAX_SMTP_SESSIONS_PER_HOST} sessions at once:{list}",
            d.over_cap.len(),
            if d.over_cap.len() == 1 { "" } else { "s" }
        );
    }
}

fn summarise(all: &[Figures], mix: &Mix) -> Outcome {
    let derived: Vec<Derived> = all.iter().map(|f| derive(f, mix, all.first())).collect();
    println!(
        "\n  replicas      wall    addresses/s   speedup   sessions/address (≥ {LARGE})   peak/domain   wall/bound"
    );
    let mut met = true;
    for (figures, d) in all.iter().zip(&derived) {
        let goal = SPEEDUP_GOALS
            .iter()
            .find(|(n, _)| *n == figures.replicas)
            .map(|(_, g)| *g);
        if goal.is_some_and(|g| d.speedup < g) {
            met = false;
        }
        let ratio = figures.wall.as_secs_f64() / d.bound.as_secs_f64();
        if figures.replicas == 1 && ratio > BOUND_GOAL {
            met = false;
        }
        if d.sessions_per_large_address > SESSIONS_PER_ADDRESS_GOAL
            || !d.over_cap.is_empty()
            || figures.unknown > 0
            || figures.farm.domains.iter().any(|s| s.foreign > 0)
        {
            met = false;
        }
        println!(
            "  {:>8} {:>9.2} s {:>12.0} {:>8.2}×{} {:>24.3} {:>13}{} {:>11.2}×",
            figures.replicas,
            figures.wall.as_secs_f64(),
            d.rate,
            d.speedup,
            goal.map(|g| format!(" (≥ {g})"))
                .unwrap_or_else(|| "       ".into()),
            d.sessions_per_large_address,
            d.peak,
            if d.over_cap.is_empty() { "  " } else { " !" },
            ratio
        );
    }
    let join = |f: &dyn Fn(&Figures, &Derived) -> String| {
        all.iter()
            .zip(&derived)
            .map(|(fig, d)| f(fig, d))
            .collect::<Vec<_>>()
            .join("/")
    };
    let violations: Vec<String> = all
        .iter()
        .zip(&derived)
        .filter(|(_, d)| !d.over_cap.is_empty())
        .map(|(f, d)| format!("{} replicas: {} domains", f.replicas, d.over_cap.len()))
        .collect();
    let cap = if violations.is_empty() {
        "kept".to_owned()
    } else {
        format!("VIOLATED ({})", violations.join(", "))
    };
    let single_ratio = all
        .first()
        .zip(derived.first())
        .map(|(f, d)| f.wall.as_secs_f64() / d.bound.as_secs_f64())
        .unwrap_or(0.0);
    let sessions = derived
        .iter()
        .map(|d| d.sessions_per_large_address)
        .fold(0.0, f64::max);
    Outcome {
        headline: format!(
            "scale {} addresses, 1–{} replicas: {} addresses/s = {}× (goals 2 ≥ 1.8×, 3 ≥ 2.5×); \
             ≤ {sessions:.3} SMTP sessions per address (goal ≤ {SESSIONS_PER_ADDRESS_GOAL}); \
             per-domain peak {} vs cap {MAX_SMTP_SESSIONS_PER_HOST}: {cap}; 1 replica wall/bound \
             {single_ratio:.2}× (goal ≤ {BOUND_GOAL}×)",
            mix.addresses.len(),
            all.len(),
            join(&|_, d| format!("{:.0}", d.rate)),
            join(&|_, d| format!("{:.2}", d.speedup)),
            join(&|_, d| d.peak.to_string()),
        ),
        met: Some(met),
    }
}
