//! The framework's ceiling: a bare axum server with mailvet's `POST /verify`
//! route that parses the same JSON request and answers a JSON body of the
//! same size (a verdict mailvet gave, with the request's address), and
//! nothing else — no middleware, no keys, no database. It runs as its own
//! process (this benchmark binary, re-executed with a hidden argument) on
//! the same kind of runtime as mailvet (`#[tokio::main]`: multi-threaded,
//! one worker per core), so that both are measured alike.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::support::{Server, free_port};

/// The hidden first argument that makes the benchmark binary a ceiling
/// server: `__axum-ceiling LISTEN TEMPLATE.json`.
pub const SUBCOMMAND: &str = "__axum-ceiling";

/// Starts the ceiling server as a child process. `template` is a JSON
/// object answered (with `email` replaced) to every `POST /verify`.
pub fn spawn(template: &Path, log: &Path) -> Result<Server> {
    let port = free_port()?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg(SUBCOMMAND)
        .arg(format!("127.0.0.1:{port}"))
        .arg(template);
    Server::spawn("axum ceiling", command, port, log)
}

/// Runs the server (in the child process).
pub fn main(args: &[String]) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("axum ceiling: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &[String]) -> Result<()> {
    let [listen, template] = args else {
        anyhow::bail!("usage: {SUBCOMMAND} LISTEN TEMPLATE.json");
    };
    let listen: SocketAddr = listen.parse().context("LISTEN is ip:port")?;
    let text = std::fs::read_to_string(template).context("reading the template")?;
    let mut template: Map<String, Value> =
        serde_json::from_str(&text).context("the template is a JSON object")?;
    template.remove("email");
    let template = Arc::new(template);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/verify", post(verify))
            .route("/readyz", get(readyz))
            .with_state(template);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// mailvet's request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    email: String,
    #[serde(default)]
    #[allow(dead_code)]
    fresh: bool,
}

#[derive(Debug, Serialize)]
struct Verdict<'a> {
    email: &'a str,
    #[serde(flatten)]
    rest: &'a Map<String, Value>,
}

async fn verify(
    State(template): State<Arc<Map<String, Value>>>,
    Json(request): Json<VerifyRequest>,
) -> Response {
    let body = Verdict {
        email: &request.email,
        rest: &template,
    };
    // Serialised here, while the borrowed request is alive.
    Json(body).into_response()
}

async fn readyz() -> Json<Value> {
    Json(serde_json::json!({"status": "ready"}))
}
