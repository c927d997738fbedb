//! Building and running the service.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::jobs::JobRunner;
use crate::outbound::Outbound;

use crate::http::{self, AppState, HttpLimits};
use crate::secret::{ExposeSecret, redact_url};
use crate::settings::{DatabaseArgs, Settings};
use crate::store::{self, Database, Store, StoreError};
use crate::suppress::{SoftBouncePolicy, SuppressionList};
use crate::telemetry;
use crate::verify::resolver_watch::RECHECK;
use crate::verify::{Verifier, VerifierSettings};

/// How long start-up waits for an unreachable database before giving up.
const DATABASE_WAIT: Duration = Duration::from_secs(30);
/// How often expired cached verdicts are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// How often the suppression list's change sequence is read.
const SUPPRESSION_POLL: Duration = Duration::from_secs(1);
/// The suppression list's poll while the database's notifications are
/// heard.
const SUPPRESSION_POLL_HEARING: Duration = Duration::from_secs(15);
/// Finished jobs, and their results, are kept this long.
const JOB_RETENTION: chrono::Duration = chrono::Duration::days(30);
/// An upload still unfinished after this was abandoned (its process died).
const STALE_UPLOAD: chrono::Duration = chrono::Duration::days(1);
/// How often the metrics recorder drains its histograms.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Opens the configured database and applies pending migrations, waiting up
/// to 30 s for a database that is still starting (as in docker compose).
pub async fn open_database(database: &DatabaseArgs) -> anyhow::Result<Arc<dyn Database>> {
    let url = redact_url(database.url.expose_secret());
    let store = store::connect(&database.store())
        .await
        .with_context(|| format!("opening the database at {url}"))?;
    let deadline = tokio::time::Instant::now() + DATABASE_WAIT;
    loop {
        match store.migrate().await {
            Ok(()) => break,
            Err(err) if is_transient(&err) && tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    database = %url,
                    error = %crate::error::error_chain(&err),
                    "database not reachable yet; retrying"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => {
                return Err(err).with_context(|| format!("migrating the database at {url}"));
            }
        }
    }
    tracing::info!(database = %url, backend = %store.backend(), "database ready");
    Ok(store)
}

/// The parts that work on the database: the store (reads, the cache, jobs),
/// the suppression list (the one writer of the list) and the verification
/// engine.
#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub suppressions: Arc<SuppressionList>,
    pub verifier: Arc<Verifier>,
}

impl Engine {
    pub fn build(
        db: Arc<dyn Database>,
        verifier: VerifierSettings,
        bounce_policy: SoftBouncePolicy,
    ) -> anyhow::Result<Self> {
        let store: Arc<dyn Store> = db.clone();
        let suppressions = Arc::new(SuppressionList::new(db, bounce_policy));
        let verifier = Verifier::new(verifier, store.clone(), suppressions.clone())
            .context("setting up the DNS resolver")?;
        Ok(Engine {
            store,
            suppressions,
            verifier: Arc::new(verifier),
        })
    }
}

fn is_transient(err: &StoreError) -> bool {
    match err {
        StoreError::Unavailable(_) => true,
        StoreError::Migrate(sqlx::migrate::MigrateError::Execute(inner)) => {
            matches!(inner, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        }
        _ => false,
    }
}

/// A bound, ready-to-serve mailvet.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    gate: http::Gate,
    shutdown_grace: Duration,
    /// How often the store's gauges are sampled.
    gauge_interval: Duration,
}

impl Application {
    /// Opens and migrates the store and binds the listener (port 0 picks a
    /// free port; see [`Application::local_addr`]).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let db = open_database(&settings.database).await?;
        Self::with_database(settings, db).await
    }

    /// Like [`Application::build`], on a database the caller opened.
    pub async fn with_database(settings: &Settings, db: Arc<dyn Database>) -> anyhow::Result<Self> {
        crate::tls::install_provider();
        let api_keys = settings.keys.api_keys()?;
        let keys = http::Keys::new(&api_keys.secret, &api_keys.public, &api_keys.webhook);
        if keys.is_empty() && !settings.http.listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {} without API keys: anyone who can reach it could read the \
                 suppression list and use this server to probe mail servers. Set MAILVET_SECRET_KEYS \
                 (or MAILVET_SECRET_KEYS_FILE), or listen on a loopback address such as 127.0.0.1:8080",
                settings.http.listen
            );
        }
        crate::preflight::warn_service(&settings.smtp, &api_keys);
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("binding {}", settings.http.listen))?;
        // Installed before anything sets a gauge.
        let metrics = telemetry::metrics_handle();
        let verifier = settings.verify.verifier(&settings.dns, &settings.smtp)?;
        let engine = Engine::build(db, verifier, settings.bounces.soft_bounce_policy())?;
        // The list's change sequence, read once before serving: otherwise the
        // first poll would move the version under the first requests, and
        // two of them for one address would not share one probe.
        let _ = engine.suppressions.poll().await;
        let jobs = settings.jobs.job_settings(&settings.smtp);
        let outbound = Outbound::new(&settings.dns.resolver(), jobs.allow_private_webhooks)
            .context("setting up outbound HTTP")?;
        let state = AppState::new(http::SharedState {
            store: engine.store,
            suppressions: engine.suppressions,
            verifier: engine.verifier,
            verify_timeout: settings.http.verify_timeout,
            metrics,
            jobs,
            sns: http::sns::SnsVerifier::new(
                outbound.clone(),
                settings.keys.sns_topic_arns.clone(),
                &settings.keys.sns_certificates,
            ),
            outbound,
            readiness: moka::future::Cache::builder()
                .time_to_live(http::READINESS_TTL)
                .build(),
            mailgun_tokens: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(
                    2 * crate::bounce::signature::MAX_SKEW_SECONDS.unsigned_abs(),
                ))
                .build(),
            webhook_signing: settings.keys.webhook_signing(),
            tokens: settings.keys.token_signer()?,
            confirmations: Arc::new(settings.confirm.confirmations(
                &settings.smtp,
                &settings.keys,
                &settings.http.cors_origins,
            )?),
            gauges: Arc::new(http::gauges::SampledGauges::new()),
        });
        let gate = http::Gate::new(
            keys,
            settings.http.rate_limits(),
            settings.http.trusted_proxies.clone(),
        );
        let limits = HttpLimits {
            request_timeout: settings.http.request_timeout,
            max_body_bytes: settings.http.max_body_bytes,
            gate: gate.clone(),
            cors_origins: settings.http.cors_origins.clone(),
            ui_session_ttl: settings.http.ui_session_ttl,
            public_keys: api_keys
                .public
                .iter()
                .map(|key| key.expose_secret().to_owned())
                .collect(),
        };
        Ok(Application {
            listener,
            router: http::router(state.clone(), limits),
            state,
            gate,
            shutdown_grace: settings.http.shutdown_grace,
            gauge_interval: settings.http.metrics_sample_interval,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves until `shutdown` completes, then stops accepting connections,
    /// lets in-flight requests finish (for at most the shutdown grace
    /// period) and closes the store.
    pub async fn run_until_stopped<F>(self, shutdown: F) -> anyhow::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Application {
            listener,
            router,
            state,
            gate,
            shutdown_grace,
            gauge_interval,
        } = self;
        let mut background = spawn_background_tasks(&state, gate);
        background.push(spawn_gauge_sampler(&state, gauge_interval));
        let runner = Arc::new(JobRunner::new(
            state.store.clone(),
            state.verifier.clone(),
            state.jobs.clone(),
            state.outbound.clone(),
        ));
        let stop_jobs = CancellationToken::new();
        let mut job_tasks = runner.spawn(&stop_jobs);
        let (stopping_tx, mut stopping_rx) = watch::channel(false);
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(true);
        })
        .into_future();
        let grace_expired = async move {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(shutdown_grace).await;
        };
        let result = tokio::select! {
            served = server => served.context("serving HTTP"),
            () = grace_expired => {
                tracing::warn!(?shutdown_grace, "in-flight requests outlived the shutdown grace period");
                Ok(())
            }
        };
        for task in background {
            task.abort();
        }
        // Job workers finish the chunk in hand (within the grace period);
        // what they still hold is handed back for the next process.
        stop_jobs.cancel();
        let finishing = futures::future::join_all(job_tasks.iter_mut());
        if tokio::time::timeout(shutdown_grace, finishing)
            .await
            .is_err()
        {
            tracing::warn!("job workers outlived the shutdown grace period");
        }
        for task in &job_tasks {
            task.abort();
        }
        runner.release().await;
        state.verifier.bounce_patterns().flush().await;
        state.store.close().await;
        tracing::info!("stopped");
        result
    }
}

fn spawn_background_tasks(state: &AppState, gate: http::Gate) -> Vec<JoinHandle<()>> {
    let store = state.store.clone();
    let verifier = state.verifier.clone();
    let purge = tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_INTERVAL);
        loop {
            every.tick().await;
            verifier.housekeeping();
            gate.housekeeping();
            match store.purge_expired_verifications(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "purged expired verdicts"),
                Err(err) => {
                    tracing::warn!(error = %crate::error::error_chain(&err), "purging expired verdicts failed");
                }
            }
            let now = chrono::Utc::now();
            match store
                .purge_jobs(now - JOB_RETENTION, now - STALE_UPLOAD)
                .await
            {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged old jobs"),
                Err(err) => {
                    tracing::warn!(error = %crate::error::error_chain(&err), "purging old jobs failed");
                }
            }
        }
    });
    // Another replica's suppression changes empty this one's memory of
    // recent answers: at once when the database's notifications are heard
    // (Postgres), else within a second by polling the list's sequence. While
    // notifications are heard, the poll is only a safety net.
    let suppressions = state.suppressions.clone();
    let verifier = state.verifier.clone();
    let watch_list = tokio::spawn(async move {
        let mut every = tokio::time::interval(SUPPRESSION_POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_poll = tokio::time::Instant::now();
        loop {
            every.tick().await;
            if verifier.hears_changes() && last_poll.elapsed() < SUPPRESSION_POLL_HEARING {
                continue;
            }
            last_poll = tokio::time::Instant::now();
            // A failed poll counts as a change: answers kept in memory are
            // forgotten rather than served stale.
            let _ = suppressions.poll().await;
        }
    });
    // The resolver's canaries, checked in the background so that /readyz,
    // the metric and the log tell an operator at once.
    let watch = state.verifier.resolver_watch().clone();
    let canaries = tokio::spawn(async move {
        if !watch.is_watching() {
            return;
        }
        let mut every = tokio::time::interval(RECHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            watch.check().await;
        }
    });
    let metrics = state.metrics.clone();
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    });
    vec![purge, upkeep, watch_list, canaries]
}

/// Samples the store's gauges at start-up and then every `interval`.
fn spawn_gauge_sampler(state: &AppState, interval: Duration) -> JoinHandle<()> {
    let store = state.store.clone();
    let gauges = state.gauges.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval.max(Duration::from_millis(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            gauges.sample(store.as_ref()).await;
        }
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
