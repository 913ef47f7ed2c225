//! The consensus routes: `GET /health`, `GET /metrics`, `GET /v1/status`,
//! `GET /v1/committed/{seq}` and `POST /v1/transactions`.

use super::state::{authorised, error, NodeState, RecentCommit};
use crate::driver::inbox::DriverInput;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use dwcp_core::{Digest, NodeId, Seq};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;

/// Components without which the node cannot take part in consensus: `/health`
/// answers 503 when one of them failed its last check.
const CONSENSUS_COMPONENTS: [&str; 3] = [
    crate::supervision::storage::StorageComponent::NAME,
    crate::supervision::transport::TransportComponent::NAME,
    crate::supervision::engine::EngineComponent::NAME,
];

/// `GET /health`: each component as the supervisor last saw it, with live
/// details; 503 when the node cannot take part in consensus.
pub(super) async fn health(State(s): State<Arc<NodeState>>) -> Response {
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

/// `GET /metrics`: the node's metrics, in the OpenMetrics text format.
pub(super) async fn metrics(State(s): State<Arc<NodeState>>) -> Response {
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

/// `GET /v1/status`: the engine's progress and this node's links to its peers;
/// for an engine that elects its committee (T-PBFT), also `committee`: the epoch,
/// its members, the primary group, this node's `role` (`member` or `observer`) and
/// every node's trust in parts per billion (`null` for the other engines).
pub(super) async fn status(State(s): State<Arc<NodeState>>) -> Response {
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
        "committee": st.committee,
        "peers": peers,
    }))
    .into_response()
}

/// Query of `GET /v1/committed/{seq}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommittedQuery {
    /// Hex bytes: list only the transactions that start with them.
    prefix: Option<String>,
}

/// `GET /v1/committed/{seq}`: a committed batch still in memory, its transactions
/// filtered by `prefix`.
pub(super) async fn committed(
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

/// `POST /v1/transactions`: client transactions (JSON hex or the binary encoding)
/// for the engine, behind the bearer token and the admission gate.
pub(super) async fn submit(
    State(s): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
