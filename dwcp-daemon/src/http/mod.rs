//! The HTTP API: health, status, committed batches, and transaction submission;
//! the compression selector's and the allocator's endpoints are in [`ml`].

pub mod ml;

use crate::driver::inbox::DriverInput;
use crate::net::transport::Network;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use dwcp_core::{Committed, Digest, EngineStatus, NodeId, Seq};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Committed batches kept in memory for `GET /v1/committed/{seq}`.
pub const RECENT_COMMITS: usize = 100_000;

/// What the HTTP handlers read and write.
pub struct NodeState {
    /// This node.
    pub id: NodeId,
    /// The engine's latest status.
    pub status: Arc<Mutex<EngineStatus>>,
    /// Recent committed batches by sequence number.
    pub recent: Mutex<BTreeMap<Seq, RecentCommit>>,
    /// The driver's inbox.
    pub inbox: SyncSender<DriverInput>,
    /// Caps the client bytes waiting in the inbox.
    pub submit_gate: Arc<crate::admission::SubmitGate>,
    /// The transport.
    pub network: Arc<Network>,
    /// Members in the committee.
    pub committee_size: usize,
    /// False while the engine driver thread is not running.
    pub driver_alive: Arc<AtomicBool>,
    /// Expected `Authorization: Bearer` token of write endpoints.
    pub token: String,
    /// The compression selector and allocator models.
    pub ml: crate::http::ml::MlServices,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// The supervisor of the node's components.
    pub supervisor: Arc<crate::supervision::supervisor::Supervisor>,
}

/// A committed batch as the HTTP API serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentCommit {
    /// The batch.
    pub batch: Committed,
    /// When this process learnt of it, in microseconds since the Unix epoch; `None`
    /// for batches restored from the store at start.
    pub committed_unix_us: Option<u64>,
}

/// Microseconds since the Unix epoch on this machine's clock.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl NodeState {
    /// Records a committed batch, stamped with the time it arrived here.
    pub fn on_commit(&self, c: Committed) {
        let at = unix_us();
        self.metrics.on_commit(&c);
        if let Ok(mut r) = self.recent.lock() {
            r.insert(
                c.seq,
                RecentCommit {
                    batch: c,
                    committed_unix_us: Some(at),
                },
            );
            while r.len() > RECENT_COMMITS {
                r.pop_first();
            }
        }
    }
}

/// A JSON error response.
pub(crate) fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

/// Per-client request budget of the `/v1` API, keyed by client IP address.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl RateLimit {
    /// `per_second` sustained, `burst` at once (both at least 1).
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        RateLimit {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Forgets clients whose budget is full again, bounding memory.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

async fn rate_limit(
    State(limit): State<Arc<RateLimit>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if limit.limiter.check_key(&peer.ip()).is_err() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded; slow down",
        );
    }
    next.run(request).await
}

/// The API router over `state`, with a request body limit of `body_limit` bytes and a
/// per-client budget on `/v1`. Serve it with `into_make_service_with_connect_info`.
pub fn router(state: Arc<NodeState>, body_limit: usize, limit: Arc<RateLimit>) -> Router {
    let v1 = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/committed/{seq}", get(committed))
        .route("/v1/transactions", post(submit))
        .route("/v1/compression/select", post(crate::http::ml::select))
        .route("/v1/compression/batch", post(crate::http::ml::batch))
        .route("/v1/compression/model", get(crate::http::ml::model))
        .route("/v1/allocate", post(crate::http::ml::allocate))
        .layer(middleware::from_fn_with_state(limit, rate_limit));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(v1)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Components without which the node cannot take part in consensus: `/health`
/// answers 503 when one of them failed its last check.
const CONSENSUS_COMPONENTS: [&str; 3] = [
    crate::supervision::storage::StorageComponent::NAME,
    crate::supervision::transport::TransportComponent::NAME,
    crate::supervision::engine::EngineComponent::NAME,
];

async fn health(State(s): State<Arc<NodeState>>) -> Response {
    use crate::supervision::supervisor::Health;
    let driver = s.driver_alive.load(Ordering::Relaxed);
    let peers = s.network.connected_peers();
    let breakers: Vec<serde_json::Value> = (0..s.committee_size)
        .map(|i| NodeId(i as u16))
        .filter(|p| *p != s.id)
        .map(|p| json!({ "peer": p.0, "state": s.network.breaker_state(p) }))
        .collect();
    let model_loaded = s.ml.selector.model().is_ok();
    let allocator_loaded = s.ml.maddpg.model().is_ok();
    let reports = s.supervisor.reports();
    // Each managed component as the supervisor last saw it, with live details.
    let mut components = serde_json::Map::new();
    for r in &reports {
        let mut entry = json!({
            "healthy": r.health == Health::Healthy,
            "health": r.health,
            "recoveries": r.recoveries,
            "failed_attempts": r.failed_attempts,
            "recovering": r.recovering,
            "last_recovery_seconds": r.last_recovery_seconds,
        });
        let extra = match r.name.as_str() {
            "transport" => json!({ "connected_peers": peers, "breakers": breakers }),
            "engine" => json!({ "driver_alive": driver }),
            "compression" => json!({ "model_loaded": model_loaded }),
            "allocator" => json!({ "model_loaded": allocator_loaded }),
            _ => json!({}),
        };
        if let (Some(e), Some(x)) = (entry.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        components.insert(r.name.clone(), entry);
    }
    let broken = !driver
        || reports.iter().any(|r| {
            CONSENSUS_COMPONENTS.contains(&r.name.as_str()) && matches!(r.health, Health::Failed(_))
        });
    let status = if broken {
        "unhealthy"
    } else if reports.iter().all(|r| r.health == Health::Healthy) {
        "healthy"
    } else {
        "degraded"
    };
    let body = json!({
        "status": status,
        "model_loaded": model_loaded,
        "components": components,
    });
    let code = if broken {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<NodeState>>) -> Response {
    let status = s.status.lock().map(|g| g.clone()).unwrap_or_default();
    let peers: Vec<(NodeId, bool, crate::net::breaker::BreakerState)> = (0..s.committee_size)
        .map(|i| NodeId(i as u16))
        .filter(|p| *p != s.id)
        .map(|p| (p, s.network.is_connected(p), s.network.breaker_state(p)))
        .collect();
    // Every component is managed; the driver thread's liveness is read directly.
    let components = [("driver", s.driver_alive.load(Ordering::Relaxed))];
    let managed = s.supervisor.reports();
    let body = s
        .metrics
        .render(&status, s.network.stats(), &peers, &components, &managed);
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(Serialize)]
struct PeerView {
    id: NodeId,
    connected: bool,
}

async fn status(State(s): State<Arc<NodeState>>) -> Response {
    let st = s.status.lock().map(|g| g.clone()).unwrap_or_default();
    let last_digest = s
        .recent
        .lock()
        .ok()
        .and_then(|r| r.get(&st.last_committed).map(|c| c.batch.digest))
        .map(|d: Digest| d.to_string());
    let peers: Vec<PeerView> = (0..s.committee_size)
        .map(|i| NodeId(i as u16))
        .filter(|p| *p != s.id)
        .map(|p| PeerView {
            id: p,
            connected: s.network.is_connected(p),
        })
        .collect();
    Json(json!({
        "id": s.id,
        "engine": st.engine,
        "view": st.view,
        "last_committed": st.last_committed,
        "last_digest": last_digest,
        "view_changes": st.view_changes,
        "counters": st.counters.iter().map(|(k, v)| (k.to_string(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
        "peers": peers,
    }))
    .into_response()
}

/// Query of `GET /v1/committed/{seq}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommittedQuery {
    /// Hex bytes: list only the transactions that start with them.
    prefix: Option<String>,
}

async fn committed(
    State(s): State<Arc<NodeState>>,
    Path(seq): Path<String>,
    query: Result<Query<CommittedQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(seq) = seq.parse::<Seq>() else {
        return error(StatusCode::BAD_REQUEST, "seq must be an unsigned integer");
    };
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "the only query parameter is prefix",
        );
    };
    let prefix = match query.prefix.as_deref().map(hex::decode) {
        None => Vec::new(),
        Some(Ok(p)) => p,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "prefix must be hex"),
    };
    // Encode outside the lock: a large batch takes a while.
    let found = s.recent.lock().ok().and_then(|r| r.get(&seq).cloned());
    match found {
        Some(RecentCommit {
            batch: c,
            committed_unix_us,
        }) => Json(json!({
            "seq": c.seq,
            "digest": c.digest.to_string(),
            "committed_unix_us": committed_unix_us,
            "transaction_count": c.transactions.len(),
            "transaction_bytes": c.transactions.iter().map(|t| t.len()).sum::<usize>(),
            "transactions": c
                .transactions
                .iter()
                .filter(|t| t.starts_with(&prefix))
                .map(hex::encode)
                .collect::<Vec<_>>(),
        }))
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not committed here, or no longer in memory",
        ),
    }
}

/// Body of `POST /v1/transactions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// Transactions as hex strings.
    transactions: Vec<String>,
}

/// The transactions of a JSON body (`{"transactions": [hex, ...]}`), or why not.
fn transactions_from_json(body: &[u8]) -> Result<Vec<Bytes>, String> {
    let parsed: SubmitBody =
        serde_json::from_slice(body).map_err(|e| format!("malformed body: {e}"))?;
    if parsed.transactions.is_empty() {
        return Err("no transactions".into());
    }
    parsed
        .transactions
        .iter()
        .enumerate()
        .map(|(i, t)| match hex::decode(t) {
            Ok(b) if !b.is_empty() => Ok(Bytes::from(b)),
            _ => Err(format!("transaction {i} is not non-empty hex")),
        })
        .collect()
}

/// Whether the request carries the node's bearer token.
pub(crate) fn authorised(s: &NodeState, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return false;
    };
    // Compare digests so the time taken does not reveal how much of the token matched.
    Digest::of(token.as_bytes()) == Digest::of(s.token.as_bytes())
}

async fn submit(State(s): State<Arc<NodeState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorised(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let binary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(dwcp_core::transactions::CONTENT_TYPE));
    let txs = if binary {
        match dwcp_core::transactions::decode_transactions(&body) {
            Ok(txs) => txs,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("malformed body: {e}")),
        }
    } else {
        match transactions_from_json(&body) {
            Ok(txs) => txs,
            Err(why) => return error(StatusCode::BAD_REQUEST, &why),
        }
    };
    let n = txs.len();
    let Some(permit) = s.submit_gate.try_admit(&txs) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "node is busy; retry");
    };
    match s.inbox.try_send(DriverInput::Admitted(txs, permit)) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "accepted": n }))).into_response(),
        Err(TrySendError::Full(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "node is busy; retry"),
        Err(TrySendError::Disconnected(_)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "engine stopped")
        }
    }
}
