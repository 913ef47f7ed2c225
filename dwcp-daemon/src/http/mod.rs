//! The HTTP API: the router over the consensus routes (health, metrics, status,
//! committed batches, transaction submission: [`consensus`]) and the compression
//! selector's and allocator's routes ([`ml`]), which share the node's [`state`].

pub mod consensus;
pub mod ml;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use consensus::{committed, health, metrics, status, submit};
use state::{rate_limit, NodeState, RateLimit};
use std::sync::Arc;

/// The API router over `state`, with a request body limit of `body_limit` bytes and a
/// per-client budget on `/v1`. Serve it with `into_make_service_with_connect_info`.
pub fn router(state: Arc<NodeState>, body_limit: usize, limit: Arc<RateLimit>) -> Router {
    let v1 = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/committed/{seq}", get(committed))
        .route("/v1/transactions", post(submit))
        .route("/v1/compression/select", post(ml::select))
        .route("/v1/compression/batch", post(ml::batch))
        .route("/v1/compression/model", get(ml::model))
        .route("/v1/allocate", post(ml::allocate))
        .layer(middleware::from_fn_with_state(limit, rate_limit));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(v1)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
