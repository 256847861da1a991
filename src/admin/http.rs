//! `/metrics` (Prometheus text), `/healthz` (the process serves) and `/readyz` (the
//! component says it is ready) on one listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// A condition readiness also depends on: `Err(reason)` while it does not hold.
type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Readiness flag a component flips once it can do its job (e.g. the DNS index loaded),
/// and conditions that can take it away again later (e.g. the etcd watch out of touch
/// for too long).
#[derive(Clone, Default)]
pub struct Readiness {
    flag: Arc<AtomicBool>,
    checks: Arc<Mutex<Vec<Check>>>,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.flag.store(ready, Ordering::Release);
    }

    /// The flag is set and every check holds.
    pub fn get(&self) -> bool {
        self.reason().is_none()
    }

    /// Why it is not ready, if it is not.
    pub fn reason(&self) -> Option<String> {
        if !self.flag.load(Ordering::Acquire) {
            return Some("not ready".into());
        }
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        checks.iter().find_map(|c| c().err())
    }

    /// Adds a condition (kept for the life of the process).
    pub fn add_check(&self, check: impl Fn() -> Result<(), String> + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(check));
    }
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    ready: Readiness,
}

/// A running admin endpoint; stops when `shutdown` is cancelled.
pub struct Handle {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn serve(
    listen: SocketAddr,
    registry: Registry,
    ready: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, ready });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    });
    Ok(Handle { local_addr, task })
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&s.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            buf,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".into())],
            e.to_string().into_bytes(),
        ),
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match s.ready.reason() {
        None => (StatusCode::OK, "ok".to_string()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}
