//! (d) Cold start: from spawning the process to the first `GET /readyz`
//! that answers 200, on a fresh SQLite file and on a fresh Postgres
//! database (so both include creating the schema), several runs each,
//! interleaved, medians compared with the bare axum server's own start
//! (process start, runtime, bind, first answer) measured the same way.
//! Each fresh start is followed by a restart on the same, now migrated,
//! database, which tells the schema's share from the rest.

use std::time::Duration;

use anyhow::Result;

use crate::dns::Dns;
use crate::support::{self, MailvetCommand, Outcome, PgScratch, env_number, median, ms};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run() -> Result<Outcome> {
    let runs = env_number("MAILVET_BENCH_COLD_RUNS", 5)?.max(1);
    // Nothing is verified; the DNS server is only there so that mailvet's
    // resolver is set up on loopback rather than from the system's.
    let dns = Dns::start(std::iter::empty()).await?;
    let dir = tempfile::tempdir()?;
    let template = dir.path().join("verdict.json");
    std::fs::write(&template, r#"{"email":"","status":"deliverable"}"#)?;

    // ceiling, SQLite fresh, SQLite again, Postgres fresh, Postgres again
    let mut times: [Vec<Duration>; 5] = Default::default();
    let columns = [
        "axum ceiling",
        "SQLite new",
        "SQLite again",
        "Postgres new",
        "Postgres again",
    ];
    print_row("run", &columns.map(str::to_owned));
    for run in 1..=runs {
        let log = dir.path().join(format!("ceiling-{run}.log"));
        let mut server = crate::ceiling::spawn(&template, &log)?;
        times[0].push(server.wait_ready(READY_TIMEOUT).await?);
        drop(server);

        let run_dir = tempfile::tempdir()?;
        let command = MailvetCommand::new(&support::sqlite_url(run_dir.path()), dns.addr, 25);
        for slot in [1, 2] {
            let log = run_dir.path().join(format!("mailvet-{slot}.log"));
            let mut server = command.spawn(&log)?;
            times[slot].push(server.wait_ready(READY_TIMEOUT).await?);
        }

        let database = PgScratch::create().await?;
        let command = MailvetCommand::new(&database.url, dns.addr, 25);
        let started: Result<()> = async {
            for slot in [3, 4] {
                let log = dir.path().join(format!("postgres-{run}-{slot}.log"));
                let mut server = command.spawn(&log)?;
                times[slot].push(server.wait_ready(READY_TIMEOUT).await?);
            }
            Ok(())
        }
        .await;
        database.drop_now().await?;
        started?;

        let last = times
            .each_ref()
            .map(|column| column.last().copied().map(ms).unwrap_or_default());
        print_row(&run.to_string(), &last);
    }
    let [ceiling, sqlite, sqlite_again, postgres, postgres_again] =
        times.map(|mut column| median(&mut column));
    print_row(
        "median",
        &[ceiling, sqlite, sqlite_again, postgres, postgres_again].map(ms),
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "  ratio: SQLite / ceiling = {:.1}×, Postgres / ceiling = {:.1}×, Postgres / SQLite = {:.2}×; \
         restart on a migrated database / fresh: SQLite {:.2}, Postgres {:.2}",
        ratio(sqlite, ceiling),
        ratio(postgres, ceiling),
        ratio(postgres, sqlite),
        ratio(sqlite_again, sqlite),
        ratio(postgres_again, postgres),
    );
    Ok(Outcome {
        headline: format!(
            "cold start to the first /readyz 200 (median of {runs}): fresh SQLite {}, fresh Postgres {} \
             ({:.1}× and {:.1}× a bare axum process's {}); restarts {} and {}",
            ms(sqlite),
            ms(postgres),
            ratio(sqlite, ceiling),
            ratio(postgres, ceiling),
            ms(ceiling),
            ms(sqlite_again),
            ms(postgres_again),
        ),
        met: None,
    })
}

fn print_row(first: &str, cells: &[String; 5]) {
    println!(
        "  {:<7} {:>13} {:>13} {:>13} {:>13} {:>14}",
        first, cells[0], cells[1], cells[2], cells[3], cells[4]
    );
}
