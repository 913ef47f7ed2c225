//! Scripted adversaries: the network schedule and the Byzantine nodes' voices.
//!
//! Random faults rarely fork a BFT protocol; the attacks that do are validly signed
//! messages delivered to chosen replicas at chosen moments. A [`Script`] sees every
//! message an engine sends, from any node to any instance, before it enters the
//! network, and decides its [`Fate`]: in partial synchrony the adversary controls
//! the order and timing of deliveries before global stabilisation. It also speaks
//! for the nodes with [`super::Behaviour::Scripted`] or [`super::Behaviour::Twin`]:
//! their engines run honest code, and the script may withhold what they send or
//! send, in their name and with their keys, anything it can build from what it has
//! seen.

use dwcp_core::{Effect, NodeId, NodeKeys, Time};
use std::time::Duration;

/// One engine instance: a node and, for a node running two instances on its key
/// (a twin or an equivocator), which of them (0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The node.
    pub node: NodeId,
    /// The instance, 0 for a node that runs one.
    pub instance: u8,
}

impl Endpoint {
    /// Instance 0 of `node`.
    pub fn of(node: u16) -> Endpoint {
        Endpoint {
            node: NodeId(node),
            instance: 0,
        }
    }
}

/// What the adversary does with one message in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Through the network as usual (its link delay, loss and partitions).
    Deliver,
    /// Never delivered.
    Drop,
    /// Delivered after this much extra delay.
    Delay(Duration),
}

/// A scripted adversary. Both methods default to doing nothing.
pub trait Script<M> {
    /// The fate of `msg`, sent by `from` to `to` at `ctx.now()`. Called once per
    /// receiving instance, for honest and Byzantine senders alike.
    fn route(&mut self, ctx: &mut ScriptCtx<'_, M>, from: Endpoint, to: Endpoint, msg: &M) -> Fate {
        let _ = (ctx, from, to, msg);
        Fate::Deliver
    }

    /// Whether `node` crashes right after carrying out `effect` (the effects after it
    /// are lost; it restarts from its store after the crash plan's downtime). Called
    /// for every effect of every node; the simulator's own crash plan still applies.
    fn crash_after(&mut self, node: Endpoint, effect: &Effect<M>) -> bool {
        let _ = (node, effect);
        false
    }

    /// Called at each time the script asked for with [`ScriptCtx::wake_at`].
    fn wake(&mut self, ctx: &mut ScriptCtx<'_, M>) {
        let _ = ctx;
    }
}

/// What a script may do besides deciding fates: read the clock, use the keys of the
/// nodes it controls, send in their name, and ask to be woken.
pub struct ScriptCtx<'a, M> {
    pub(super) now: Time,
    pub(super) keys: &'a [NodeKeys],
    pub(super) committee: &'a dwcp_core::Committee,
    pub(super) controlled: &'a [bool],
    pub(super) sends: Vec<(NodeId, NodeId, M)>,
    pub(super) wakes: Vec<Time>,
    pub(super) round: u64,
    pub(super) slot: u64,
}

impl<M> ScriptCtx<'_, M> {
    /// The virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The committee (every node's public keys).
    pub fn committee(&self) -> &dwcp_core::Committee {
        self.committee
    }

    /// In [`Script::route`], the view or round of the message being routed: its
    /// own if it names one, else the last one its sender sent a message of.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// In [`Script::route`], the proposal slot of the message being routed within
    /// its round ([`super::Adversarial::slot`], 0 if it names none), or that of the
    /// last message its sender sent.
    pub fn slot(&self) -> u64 {
        self.slot
    }

    /// The keys of `node`, if the script controls it (never an honest node's).
    pub fn keys(&self, node: NodeId) -> Option<&NodeKeys> {
        if self.controlled.get(node.index()).copied().unwrap_or(false) {
            self.keys.get(node.index())
        } else {
            None
        }
    }

    /// Sends `msg` from `from`, a node the script controls, to `to` (all instances),
    /// through the network; it is not routed through the script again.
    ///
    /// # Panics
    /// If the script does not control `from`: it cannot speak for honest nodes.
    pub fn send(&mut self, from: NodeId, to: NodeId, msg: M) {
        assert!(
            self.controlled.get(from.index()).copied().unwrap_or(false),
            "a script can only speak for the nodes it controls, not {from}"
        );
        self.sends.push((from, to, msg));
    }

    /// Asks for [`Script::wake`] at `at`.
    pub fn wake_at(&mut self, at: Time) {
        self.wakes.push(at);
    }
}

/// A closure is a script that only routes: `|ctx, from, to, msg| Fate::Deliver`.
impl<M, F> Script<M> for F
where
    F: FnMut(&mut ScriptCtx<'_, M>, Endpoint, Endpoint, &M) -> Fate,
{
    fn route(&mut self, ctx: &mut ScriptCtx<'_, M>, from: Endpoint, to: Endpoint, msg: &M) -> Fate {
        self(ctx, from, to, msg)
    }
}
