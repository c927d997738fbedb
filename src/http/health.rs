//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState};

/// How long readiness waits for the database before answering 503.
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// How long one database check answers `/readyz`: a flood of probes costs
/// the database one query a second, and callers arriving together share
/// one check.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// `GET /readyz`: the database answers (checked at most once a second). A
/// database that comes back is noticed within a second; nothing needs
/// restarting. The body says what the last check of the resolver's
/// canaries found.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let ready = state
        .readiness
        .get_with((), async move {
            match tokio::time::timeout(READINESS_TIMEOUT, store.ping()).await {
                Ok(Ok(())) => true,
                Ok(Err(err)) => {
                    tracing::warn!(error = %crate::error::error_chain(&err), "readiness check failed");
                    false
                }
                Err(_) => {
                    tracing::warn!("readiness check timed out");
                    false
                }
            }
        })
        .await;
    if !ready {
        return Err(ApiError::database_unavailable());
    }
    Ok(Json(json!({
        "status": "ready",
        "database": state.store.backend().as_str(),
        "dns": state.verifier.resolver_watch().health(),
    })))
}
