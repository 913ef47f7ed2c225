//! What the HTTP handlers share: the node's state ([`NodeState`], with the models
//! it serves, [`MlServices`]), the per-client rate limit, the bearer-token check
//! and the JSON error answer.

use crate::driver::inbox::DriverInput;
use crate::net::transport::Network;
use crate::supervision::ml::{AllocatorComponent, CompressionComponent};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dwcp_core::{Committed, Digest, EngineStatus, NodeId, Seq};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;
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
    pub ml: MlServices,
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

/// The models the node serves, each a component the supervisor loads, checks and
/// reloads.
pub struct MlServices {
    /// The compression selector.
    pub selector: Arc<CompressionComponent>,
    /// The MADDPG policy.
    pub maddpg: Arc<AllocatorComponent>,
}

impl MlServices {
    /// The embedded default models (loaded when the components start).
    pub fn embedded() -> MlServices {
        MlServices {
            selector: Arc::new(CompressionComponent::embedded()),
            maddpg: Arc::new(AllocatorComponent::embedded()),
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

/// Middleware of `/v1`: answers 429 to a client over its budget.
pub(super) async fn rate_limit(
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
