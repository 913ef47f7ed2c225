//! Prometheus metrics of one node, labelled by engine and node, in a registry of its
//! own (never a global one).

use crate::net::breaker::BreakerState;
use crate::net::transport::TransportStats;
use crate::supervision::supervisor::{ComponentReport, Health};
use dwcp_core::{Committed, EngineStatus, NodeId};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Label of per-peer series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The peer's id.
    pub peer: u16,
}

fn component_label(component: &str) -> ComponentLabel {
    ComponentLabel {
        component: component.to_string(),
    }
}

/// Label of per-node series about the committee: the node they describe.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubjectLabel {
    /// The node's id.
    pub id: u16,
}

/// Label of per-component series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    /// The component's name.
    pub component: String,
}

/// Label of per-message-type series: the engine's [`dwcp_core::MessageKind`] name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabel {
    /// The message type, such as `pre_prepare`.
    pub r#type: &'static str,
}

/// Message type under which the driver counts frames that did not decode.
pub const UNDECODABLE: &str = "undecodable";

/// The series the engine driver updates itself, on its own thread: commit latency
/// and traffic by message type. Cloning shares the series, so a driver rebuilt after
/// a failure keeps counting into the same ones.
#[derive(Clone, Debug)]
pub struct DriverMetrics {
    commit_latency: Histogram,
    messages_sent: Family<MessageLabel, Counter>,
    bytes_sent: Family<MessageLabel, Counter>,
    messages_received: Family<MessageLabel, Counter>,
    bytes_received: Family<MessageLabel, Counter>,
}

impl DriverMetrics {
    /// Series not registered anywhere (for tests and embedders without `/metrics`).
    pub fn unregistered() -> DriverMetrics {
        DriverMetrics {
            // 1 ms to about 33 s, doubling.
            commit_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            messages_sent: Family::default(),
            bytes_sent: Family::default(),
            messages_received: Family::default(),
            bytes_received: Family::default(),
        }
    }

    /// One of this node's proposals committed `seconds` after it was made.
    pub fn observe_commit_latency(&self, seconds: f64) {
        self.commit_latency.observe(seconds);
    }

    /// `copies` messages of type `kind`, `bytes` each, handed to the transport.
    pub fn on_sent(&self, kind: &'static str, bytes: usize, copies: u64) {
        let label = MessageLabel { r#type: kind };
        self.messages_sent.get_or_create(&label).inc_by(copies);
        self.bytes_sent
            .get_or_create(&label)
            .inc_by(bytes as u64 * copies);
    }

    /// A message of type `kind`, `bytes` long, received from a peer.
    pub fn on_received(&self, kind: &'static str, bytes: usize) {
        let label = MessageLabel { r#type: kind };
        self.messages_received.get_or_create(&label).inc();
        self.bytes_received
            .get_or_create(&label)
            .inc_by(bytes as u64);
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "consensus_commit_latency_seconds",
            "Time from one of this node's proposals to its commit at this node",
            self.commit_latency.clone(),
        );
        r.register(
            "messages_sent",
            "Engine messages handed to the transport, by type (a broadcast counts once per peer)",
            self.messages_sent.clone(),
        );
        r.register(
            "message_bytes_sent",
            "Encoded bytes of engine messages handed to the transport, by type",
            self.bytes_sent.clone(),
        );
        r.register(
            "messages_received",
            "Engine messages received from peers, by type",
            self.messages_received.clone(),
        );
        r.register(
            "message_bytes_received",
            "Encoded bytes of engine messages received from peers, by type",
            self.bytes_received.clone(),
        );
    }
}

/// A counter fed from a monotonic source read at scrape time.
#[derive(Default)]
struct Mirrored {
    counter: Counter,
    seen: AtomicU64,
}

impl Mirrored {
    fn sync(&self, now: u64) {
        let before = self.seen.swap(now, Ordering::Relaxed);
        if now > before {
            self.counter.inc_by(now - before);
        }
    }
}

/// Counters by name fed from monotonic sources read at scrape time (the supervisor's
/// per-component reports, the engine's own event counts).
struct MirroredFamily<L> {
    family: Family<L, Counter>,
    seen: Mutex<HashMap<String, u64>>,
    label: fn(&str) -> L,
}

impl<
        L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    > MirroredFamily<L>
{
    fn new(label: fn(&str) -> L) -> Self {
        MirroredFamily {
            family: Family::default(),
            seen: Mutex::default(),
            label,
        }
    }

    fn sync(&self, name: &str, now: u64) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let before = seen.insert(name.to_string(), now).unwrap_or(0);
        let counter = self.family.get_or_create(&(self.label)(name));
        if now > before {
            counter.inc_by(now - before);
        }
    }
}

/// Label of the engine's own event counters ([`EngineStatus::counters`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    /// The event, such as `equivocations`.
    pub event: String,
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    committed_transactions: Counter,
    committed_blocks: Counter,
    view: Gauge,
    last_committed: Gauge,
    view_changes: Mirrored,
    frames_sent: Mirrored,
    frames_dropped: Mirrored,
    frames_received: Mirrored,
    frames_dropped_inbound: Mirrored,
    bad_frames: Mirrored,
    refused: Mirrored,
    dial_failures: Mirrored,
    peer_connected: Family<PeerLabel, Gauge>,
    breaker_state: Family<PeerLabel, Gauge>,
    component_healthy: Family<ComponentLabel, Gauge>,
    recoveries: MirroredFamily<ComponentLabel>,
    recovery_failures: MirroredFamily<ComponentLabel>,
    engine_events: MirroredFamily<EventLabel>,
    committee: CommitteeMetrics,
    driver: DriverMetrics,
}

/// No labels beyond the registry's own: a series that exists only once set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Unlabelled {}

/// The series of an engine that elects its committee ([`EngineStatus::committee`]):
/// none exist for the other engines.
#[derive(Default)]
struct CommitteeMetrics {
    epoch: Family<Unlabelled, Gauge>,
    member: Family<Unlabelled, Gauge>,
    membership: Family<SubjectLabel, Gauge>,
    primary_group: Family<SubjectLabel, Gauge>,
    trust: Family<SubjectLabel, Gauge<f64, AtomicU64>>,
}

impl CommitteeMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "committee_epoch",
            "The current epoch of the elected committee",
            self.epoch.clone(),
        );
        r.register(
            "committee_member",
            "1 when this node is a member of the current committee, 0 when an observer",
            self.member.clone(),
        );
        r.register(
            "committee_membership",
            "1 when node `id` is a member of the current committee",
            self.membership.clone(),
        );
        r.register(
            "committee_primary_group",
            "1 when node `id` is in the current epoch's primary group",
            self.primary_group.clone(),
        );
        r.register(
            "trust_score",
            "Node `id`'s global trust (a share of 1) as of the epoch's start",
            self.trust.clone(),
        );
    }

    fn set(&self, c: &dwcp_core::CommitteeStatus) {
        self.epoch
            .get_or_create(&Unlabelled {})
            .set(i64::try_from(c.epoch).unwrap_or(i64::MAX));
        self.member
            .get_or_create(&Unlabelled {})
            .set(i64::from(c.role == dwcp_core::CommitteeRole::Member));
        for (i, ppb) in c.trust_ppb.iter().enumerate() {
            let Ok(id) = u16::try_from(i) else { break };
            let label = SubjectLabel { id };
            let of = |set: &[NodeId]| i64::from(set.contains(&NodeId(id)));
            self.membership.get_or_create(&label).set(of(&c.members));
            self.primary_group
                .get_or_create(&label)
                .set(of(&c.primary_group));
            self.trust.get_or_create(&label).set(*ppb as f64 / 1e9);
        }
    }
}

impl Metrics {
    /// Metrics for `engine` on `node`.
    pub fn new(engine: &str, node: NodeId) -> Metrics {
        let labels = [
            (Cow::Borrowed("engine"), Cow::Owned(engine.to_string())),
            (Cow::Borrowed("node"), Cow::Owned(node.0.to_string())),
        ];
        let mut registry = Registry::with_prefix_and_labels("dwcp", labels.into_iter());
        let m = Metrics {
            committed_transactions: Counter::default(),
            committed_blocks: Counter::default(),
            view: Gauge::default(),
            last_committed: Gauge::default(),
            view_changes: Mirrored::default(),
            frames_sent: Mirrored::default(),
            frames_dropped: Mirrored::default(),
            frames_received: Mirrored::default(),
            frames_dropped_inbound: Mirrored::default(),
            bad_frames: Mirrored::default(),
            refused: Mirrored::default(),
            dial_failures: Mirrored::default(),
            peer_connected: Family::default(),
            breaker_state: Family::default(),
            component_healthy: Family::default(),
            recoveries: MirroredFamily::new(component_label),
            recovery_failures: MirroredFamily::new(component_label),
            engine_events: MirroredFamily::new(|event| EventLabel {
                event: event.to_string(),
            }),
            committee: CommitteeMetrics::default(),
            driver: DriverMetrics::unregistered(),
            registry: Registry::default(),
        };
        m.driver.register(&mut registry);
        m.committee.register(&mut registry);
        let c = |r: &mut Registry, name: &str, help: &str, metric: Counter| {
            r.register(name, help, metric)
        };
        c(
            &mut registry,
            "consensus_committed_transactions",
            "Transactions committed",
            m.committed_transactions.clone(),
        );
        c(
            &mut registry,
            "consensus_committed_blocks",
            "Batches committed",
            m.committed_blocks.clone(),
        );
        c(
            &mut registry,
            "consensus_view_changes",
            "View changes this node took part in",
            m.view_changes.counter.clone(),
        );
        c(
            &mut registry,
            "transport_frames_sent",
            "Frames written to peer connections",
            m.frames_sent.counter.clone(),
        );
        c(
            &mut registry,
            "transport_frames_dropped",
            "Outgoing frames dropped because a peer queue was full",
            m.frames_dropped.counter.clone(),
        );
        c(
            &mut registry,
            "transport_frames_received",
            "Frames received from peers",
            m.frames_received.counter.clone(),
        );
        c(
            &mut registry,
            "transport_frames_dropped_inbound",
            "Incoming frames dropped because the engine inbox was full",
            m.frames_dropped_inbound.counter.clone(),
        );
        c(
            &mut registry,
            "transport_bad_frames",
            "Connections closed for a malformed or oversized frame",
            m.bad_frames.counter.clone(),
        );
        c(
            &mut registry,
            "transport_refused_connections",
            "Incoming connections refused at authentication",
            m.refused.counter.clone(),
        );
        c(
            &mut registry,
            "transport_dial_failures",
            "Failed outgoing connection attempts",
            m.dial_failures.counter.clone(),
        );
        registry.register("consensus_view", "Current view or round", m.view.clone());
        registry.register(
            "consensus_last_committed_sequence",
            "Highest committed sequence number",
            m.last_committed.clone(),
        );
        registry.register(
            "transport_peer_connected",
            "1 when the outgoing link to a peer is up",
            m.peer_connected.clone(),
        );
        registry.register(
            "transport_breaker_state",
            "Circuit breaker of the link to a peer: 0 closed, 1 half-open, 2 open",
            m.breaker_state.clone(),
        );
        registry.register(
            "component_healthy",
            "1 when a component is healthy",
            m.component_healthy.clone(),
        );
        registry.register(
            "component_recoveries",
            "Successful recoveries of a managed component",
            m.recoveries.family.clone(),
        );
        registry.register(
            "component_recovery_failures",
            "Failed recovery attempts of a managed component",
            m.recovery_failures.family.clone(),
        );
        registry.register(
            "engine_events",
            "The engine's own event counts (equivocations seen, transactions dropped, state transfers, ...)",
            m.engine_events.family.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The series the engine driver updates, registered here.
    pub fn driver(&self) -> DriverMetrics {
        self.driver.clone()
    }

    /// Counts a committed batch.
    pub fn on_commit(&self, c: &Committed) {
        self.committed_blocks.inc();
        self.committed_transactions
            .inc_by(c.transactions.len() as u64);
    }

    /// Brings scrape-time series up to date and renders the text exposition format:
    /// `components` are health flags of unmanaged parts, `managed` the supervisor's
    /// reports (health and recoveries).
    pub fn render(
        &self,
        status: &EngineStatus,
        transport: &TransportStats,
        peers: &[(NodeId, bool, BreakerState)],
        components: &[(&str, bool)],
        managed: &[ComponentReport],
    ) -> String {
        self.view
            .set(i64::try_from(status.view).unwrap_or(i64::MAX));
        self.last_committed
            .set(i64::try_from(status.last_committed).unwrap_or(i64::MAX));
        self.view_changes.sync(status.view_changes);
        for (event, n) in &status.counters {
            self.engine_events.sync(event, *n);
        }
        if let Some(c) = &status.committee {
            self.committee.set(c);
        }
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.frames_sent.sync(r(&transport.frames_sent));
        self.frames_dropped.sync(r(&transport.frames_dropped));
        self.frames_received.sync(r(&transport.frames_received));
        self.frames_dropped_inbound
            .sync(r(&transport.frames_dropped_inbound));
        self.bad_frames.sync(r(&transport.bad_frames));
        self.refused.sync(r(&transport.refused));
        self.dial_failures.sync(r(&transport.dial_failures));
        for (peer, up, breaker) in peers {
            let label = PeerLabel { peer: peer.0 };
            self.peer_connected
                .get_or_create(&label)
                .set(i64::from(*up));
            self.breaker_state
                .get_or_create(&label)
                .set(breaker.as_gauge());
        }
        for (name, ok) in components {
            self.component_healthy
                .get_or_create(&ComponentLabel {
                    component: (*name).to_string(),
                })
                .set(i64::from(*ok));
        }
        for r in managed {
            self.component_healthy
                .get_or_create(&ComponentLabel {
                    component: r.name.clone(),
                })
                .set(i64::from(r.health == Health::Healthy));
            self.recoveries.sync(&r.name, r.recoveries);
            self.recovery_failures.sync(&r.name, r.failed_attempts);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dwcp_core::Digest;

    fn report(recoveries: u64) -> ComponentReport {
        ComponentReport {
            name: "engine".into(),
            health: Health::Healthy,
            recoveries,
            failed_attempts: 1,
            recovering: false,
            last_recovery_seconds: None,
        }
    }

    #[test]
    fn renders_labelled_series() {
        let m = Metrics::new("pbft", NodeId(2));
        m.on_commit(&Committed {
            seq: 1,
            digest: Digest::ZERO,
            transactions: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        });
        let stats = TransportStats::default();
        stats.frames_sent.store(7, Ordering::Relaxed);
        let status = EngineStatus {
            engine: "pbft".into(),
            view: 3,
            last_committed: 1,
            view_changes: 2,
            counters: vec![("transfers".into(), 5)],
            committee: None,
        };
        let text = m.render(
            &status,
            &stats,
            &[(NodeId(0), true, BreakerState::Closed)],
            &[("driver", true)],
            &[report(0)],
        );
        assert!(
            text.contains(
                r#"dwcp_consensus_committed_transactions_total{engine="pbft",node="2"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"dwcp_consensus_view{engine="pbft",node="2"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dwcp_transport_frames_sent_total{engine="pbft",node="2"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dwcp_transport_peer_connected{engine="pbft",node="2",peer="0"} 1"#),
            "{text}"
        );
        // Mirrored counters only move forward and never double count.
        stats.frames_sent.store(9, Ordering::Relaxed);
        let text = m.render(
            &status,
            &stats,
            &[(NodeId(0), false, BreakerState::Open)],
            &[],
            &[report(2)],
        );
        assert!(
            text.contains(r#"dwcp_transport_frames_sent_total{engine="pbft",node="2"} 9"#),
            "{text}"
        );
        for series in [
            r#"dwcp_transport_breaker_state{engine="pbft",node="2",peer="0"} 2"#,
            r#"dwcp_transport_peer_connected{engine="pbft",node="2",peer="0"} 0"#,
            r#"dwcp_component_recoveries_total{engine="pbft",node="2",component="engine"} 2"#,
            r#"dwcp_component_recovery_failures_total{engine="pbft",node="2",component="engine"} 1"#,
            r#"dwcp_component_healthy{engine="pbft",node="2",component="engine"} 1"#,
            r#"dwcp_engine_events_total{engine="pbft",node="2",event="transfers"} 5"#,
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        assert!(
            !text.contains("dwcp_committee_epoch{"),
            "no committee series for PBFT: {text}"
        );
    }

    #[test]
    fn renders_the_committee_of_an_engine_that_elects_one() {
        let m = Metrics::new("tpbft", NodeId(5));
        let status = EngineStatus {
            engine: "tpbft".into(),
            committee: Some(dwcp_core::CommitteeStatus {
                epoch: 3,
                members: vec![NodeId(0), NodeId(1), NodeId(2), NodeId(4)],
                primary_group: vec![NodeId(2), NodeId(0)],
                role: dwcp_core::CommitteeRole::Observer,
                trust_ppb: vec![250_000_000, 250_000_000, 250_000_000, 0, 250_000_000, 0],
                trust_digest: dwcp_core::Digest::ZERO,
            }),
            ..EngineStatus::default()
        };
        let text = m.render(&status, &TransportStats::default(), &[], &[], &[]);
        for series in [
            r#"dwcp_committee_epoch{engine="tpbft",node="5"} 3"#,
            r#"dwcp_committee_member{engine="tpbft",node="5"} 0"#,
            r#"dwcp_committee_membership{engine="tpbft",node="5",id="4"} 1"#,
            r#"dwcp_committee_membership{engine="tpbft",node="5",id="3"} 0"#,
            r#"dwcp_committee_primary_group{engine="tpbft",node="5",id="2"} 1"#,
            r#"dwcp_committee_primary_group{engine="tpbft",node="5",id="1"} 0"#,
            r#"dwcp_trust_score{engine="tpbft",node="5",id="1"} 0.25"#,
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
    }
}
