//! HTTP endpoints of the compression selector and the resource allocator.

use super::state::{authorised, error, NodeState};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use dwcp_ml::allocator::{
    baselines, policy::MaddpgAllocator, Allocator, ClusterState, Placement, Resources, Workload,
};
use dwcp_ml::compression::selector::{BatchRequest, SelectRequest};
use dwcp_ml::compression::CompressionSelector;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// Most chunks in one `POST /v1/compression/batch`.
pub const MAX_BATCH_CHUNKS: usize = 1024;
/// Most nodes in one `POST /v1/allocate`.
pub const MAX_ALLOCATE_NODES: usize = 10_000;
/// Most pending workloads in one `POST /v1/allocate`.
pub const MAX_ALLOCATE_PENDING: usize = 100_000;

/// A failed request: its status and message, answered as a JSON error.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn guard(s: &NodeState, headers: &HeaderMap) -> Result<(), ApiError> {
    if authorised(s, headers) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        ))
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("malformed body: {e}")))
}

fn selector(s: &NodeState) -> Result<Arc<CompressionSelector>, ApiError> {
    s.ml.selector.model().map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no compression model: {e}"),
        )
    })
}

/// `POST /v1/compression/select`: one decision with its features and estimates.
pub async fn select(
    State(s): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    guard(&s, &headers)?;
    let req: SelectRequest = parse(&body)?;
    let r = selector(&s)?
        .handle_select(&req)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(r).into_response())
}

/// `POST /v1/compression/batch`: one decision per chunk.
pub async fn batch(
    State(s): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    guard(&s, &headers)?;
    let req: BatchRequest = parse(&body)?;
    if req.chunks.len() > MAX_BATCH_CHUNKS {
        return Err(bad(format!("at most {MAX_BATCH_CHUNKS} chunks per batch")));
    }
    let r = selector(&s)?
        .handle_batch(&req)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(r).into_response())
}

/// `GET /v1/compression/model`: what is loaded.
pub async fn model(State(s): State<Arc<NodeState>>) -> Result<Response, ApiError> {
    Ok(Json(selector(&s)?.info()).into_response())
}

/// Body of `POST /v1/allocate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateRequest {
    state: ClusterState,
    pending: Vec<Workload>,
    /// `maddpg` (default) or a baseline's name.
    #[serde(default)]
    allocator: Option<String>,
}

fn usable(r: &Resources) -> bool {
    [r.cpu, r.mem, r.net, r.disk]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
}

fn check_allocate(req: &AllocateRequest) -> Result<(), String> {
    let nodes = &req.state.nodes;
    if nodes.is_empty() || nodes.len() > MAX_ALLOCATE_NODES {
        return Err(format!("between 1 and {MAX_ALLOCATE_NODES} nodes"));
    }
    if req.pending.len() > MAX_ALLOCATE_PENDING {
        return Err(format!("at most {MAX_ALLOCATE_PENDING} pending workloads"));
    }
    for (i, n) in nodes.iter().enumerate() {
        if !(usable(&n.capacity) && usable(&n.allocated) && n.speed.is_finite() && n.speed > 0.0) {
            return Err(format!("node {i}: capacities, allocations and speed must be finite, non-negative (speed positive)"));
        }
    }
    if req.state.tenant_allocated.iter().any(|r| !usable(r)) {
        return Err("tenant allocations must be finite and non-negative".into());
    }
    let mut ids = HashSet::new();
    for w in &req.pending {
        if !(usable(&w.demand) && w.work.is_finite() && w.work > 0.0) {
            return Err(format!(
                "workload {}: demand must be finite and non-negative, work positive",
                w.id
            ));
        }
        if w.priority > 2 || w.deadline < w.arrival {
            return Err(format!(
                "workload {}: priority is 0..=2 and the deadline is not before arrival",
                w.id
            ));
        }
        if !ids.insert(w.id) {
            return Err(format!("workload id {} appears twice", w.id));
        }
    }
    Ok(())
}

/// `POST /v1/allocate`: placements for the pending workloads on the given cluster.
pub async fn allocate(
    State(s): State<Arc<NodeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    guard(&s, &headers)?;
    let req: AllocateRequest = parse(&body)?;
    check_allocate(&req).map_err(bad)?;
    let name = req.allocator.clone().unwrap_or_else(|| "maddpg".into());
    let chosen = name.clone();
    let state = s.clone();
    let placements = tokio::task::spawn_blocking(move || -> Result<Vec<Placement>, ApiError> {
        if name == "maddpg" {
            let policy = state.ml.maddpg.model().map_err(|e| {
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no allocator model: {e}"),
                )
            })?;
            // Allocation does not change the policy; a copy serves requests in parallel.
            return Ok(MaddpgAllocator::clone(&policy).allocate(&req.state, &req.pending));
        }
        let mut all = baselines::all(0);
        let known: Vec<String> = all.iter().map(|a| a.name().to_string()).collect();
        match all.iter_mut().find(|a| a.name() == name) {
            Some(a) => Ok(a.allocate(&req.state, &req.pending)),
            None => Err(bad(format!(
                "unknown allocator {name:?}; known: maddpg, {}",
                known.join(", ")
            ))),
        }
    })
    .await
    .map_err(|_| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "allocation failed".into(),
        )
    })??;
    Ok(Json(json!({ "allocator": chosen, "placements": placements })).into_response())
}
