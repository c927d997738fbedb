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

/// `GET /readyz`: the database answers. A database that comes back is
/// noticed by the next call; nothing needs restarting. The body says what
/// the last check of the resolver's canaries found.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match tokio::time::timeout(READINESS_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(json!({
            "status": "ready",
            "database": state.store.backend().as_str(),
            "dns": state.verifier.resolver_watch().health(),
        }))),
        Ok(Err(err)) => {
            tracing::warn!(error = %crate::error::error_chain(&err), "readiness check failed");
            Err(ApiError::database_unavailable())
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            Err(ApiError::database_unavailable())
        }
    }
}
