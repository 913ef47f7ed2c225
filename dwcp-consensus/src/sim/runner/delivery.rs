//! Messages on their way: routing an engine's sends (through a script, if one
//! decides fates), the network's delay and loss, and delivery to an instance.

use super::{Event, Simulation, MAX_HISTORY};
use crate::sim::adversary::{Behaviour, TURNCOAT_AFTER};
use crate::sim::script::{Endpoint, Fate};
use crate::statement::Adversarial;
use bytes::Bytes;
use dwcp_core::codec::{decode, encode, DEFAULT_MAX_FRAME};
use dwcp_core::MessageKind;
use dwcp_core::{Committee, Engine, Input, NodeId, NodeKeys, Recovered, Time};
use rand::Rng;
use std::time::Duration;

impl<E, F> Simulation<E, F>
where
    E: Engine,
    E::Message: Adversarial,
    F: FnMut(NodeKeys, Committee, Recovered) -> E,
{
    pub(super) fn deliver(&mut self, to: NodeId, inst: Option<u8>, from: NodeId, bytes: Bytes) {
        let node = &mut self.nodes[to.index()];
        if !node.up {
            return;
        }
        if node.behaviour == Behaviour::Replay {
            if node.history.len() >= MAX_HISTORY {
                node.history.pop_front();
            }
            node.history.push_back(bytes.clone());
        }
        let msg: E::Message = match decode(&bytes, DEFAULT_MAX_FRAME) {
            Ok(m) => m,
            Err(_) => {
                self.report.undecodable += 1;
                return;
            }
        };
        match inst {
            Some(k) => self.input(to, k, Input::Message { from, msg }),
            None => {
                if self.nodes[to.index()].instances[1].is_some() {
                    self.input(
                        to,
                        1,
                        Input::Message {
                            from,
                            msg: msg.clone(),
                        },
                    );
                }
                self.input(to, 0, Input::Message { from, msg });
            }
        }
    }

    pub(super) fn replay(&mut self, id: NodeId) {
        let n = self.cfg.nodes;
        if self.nodes[id.index()].up && !self.nodes[id.index()].history.is_empty() {
            for _ in 0..3 {
                let len = self.nodes[id.index()].history.len();
                let k = self.rng.gen_range(0..len);
                let bytes = self.nodes[id.index()].history[k].clone();
                let to = NodeId(self.rng.gen_range(0..n) as u16);
                if to != id {
                    self.transmit(id, to, None, bytes, Duration::ZERO);
                }
            }
        }
        let next = self.now.after(Duration::from_millis(20));
        self.schedule(next, Event::Replay(id));
    }

    pub(super) fn transmit(
        &mut self,
        from: NodeId,
        to: NodeId,
        inst: Option<u8>,
        bytes: Bytes,
        extra: Duration,
    ) {
        self.report.messages += 1;
        self.report.bytes += bytes.len() as u64;
        if let Some(at) = self.network.deliver_at(self.now, from, to, &mut self.rng) {
            self.schedule(
                at.after(extra),
                Event::Deliver {
                    to,
                    inst,
                    from,
                    bytes,
                },
            );
        }
    }

    pub(super) fn route(&mut self, id: NodeId, inst: u8, to: Option<NodeId>, mut msg: E::Message) {
        let behaviour = self.nodes[id.index()].behaviour;
        if behaviour.is_honest() {
            // Every statement an honest node passes on was verified by it, so each
            // is its author's own; the checker holds honest authors to them.
            let mut st = std::mem::take(&mut self.statements);
            msg.statements(&mut st);
            for s in st.drain(..) {
                self.checker.on_statement(s.author, s.key, s.digest);
            }
            self.statements = st;
        }
        if let Some(r) = msg.round() {
            let last = &mut self.nodes[id.index()].round[inst as usize];
            *last = (*last).max((r, msg.slot().unwrap_or(0)));
        }
        let mut extra = Duration::ZERO;
        match behaviour {
            Behaviour::Turncoat if self.now >= Time::ZERO.after(TURNCOAT_AFTER) => return,
            Behaviour::Slacker => {
                if self.rng.gen_bool(0.25) {
                    return;
                }
                extra = Duration::from_millis(self.rng.gen_range(50..=250));
            }
            _ => {}
        }
        if behaviour == Behaviour::BadSig && self.rng.gen_bool(0.7) {
            msg.tamper_signature();
        }
        let mut bytes = Bytes::from(encode(&msg));
        if behaviour == Behaviour::Garbage && self.rng.gen_bool(0.5) {
            let len = self.rng.gen_range(0..bytes.len().max(1) + 16);
            let mut junk = vec![0u8; len];
            self.rng.fill(&mut junk[..]);
            if self.rng.gen_bool(0.5) && !bytes.is_empty() {
                // Keep a valid prefix: the decoder must cope with plausible-looking input.
                let cut = self.rng.gen_range(0..bytes.len());
                junk = [&bytes[..cut], &junk[..]].concat();
            }
            bytes = Bytes::from(junk);
        }
        let kind = msg.kind();
        let n = self.cfg.nodes;
        let recipients: Vec<NodeId> = match to {
            Some(t) => vec![t],
            None => (0..n)
                .map(|k| NodeId(k as u16))
                .filter(|k| *k != id)
                .collect(),
        };
        for r in recipients {
            if r == id {
                continue;
            }
            if behaviour == Behaviour::Equivocate && (r.index() % 2) as u8 != inst {
                continue;
            }
            let counted = self.report.by_kind.entry(kind).or_default();
            counted.0 += 1;
            counted.1 += bytes.len() as u64;
            if self.script.is_some() {
                self.scripted_transmit(
                    Endpoint {
                        node: id,
                        instance: inst,
                    },
                    r,
                    &msg,
                    &bytes,
                );
                continue;
            }
            if behaviour == Behaviour::Replay {
                let h = &mut self.nodes[id.index()].history;
                if h.len() >= MAX_HISTORY {
                    h.pop_front();
                }
                h.push_back(bytes.clone());
            }
            self.transmit(id, r, None, bytes.clone(), extra);
        }
    }

    /// Sends one message to each instance of `to` as the script decides.
    pub(super) fn scripted_transmit(
        &mut self,
        from: Endpoint,
        to: NodeId,
        msg: &E::Message,
        bytes: &Bytes,
    ) {
        let instances = self.nodes[to.index()].behaviour.instances() as u8;
        let (round, slot) = msg
            .round()
            .map(|r| (r, msg.slot().unwrap_or(0)))
            .unwrap_or(self.nodes[from.node.index()].round[from.instance as usize]);
        for k in 0..instances {
            let dest = Endpoint {
                node: to,
                instance: k,
            };
            let fate = self.with_script_ctx(|s, ctx| {
                ctx.round = round;
                ctx.slot = slot;
                Some(s.route(ctx, from, dest, msg))
            });
            let inst = (instances > 1).then_some(k);
            match fate.unwrap_or(Fate::Deliver) {
                Fate::Deliver => self.transmit(from.node, to, inst, bytes.clone(), Duration::ZERO),
                Fate::Delay(d) => self.transmit(from.node, to, inst, bytes.clone(), d),
                Fate::Drop => {
                    self.report.messages += 1;
                    self.report.bytes += bytes.len() as u64;
                }
            }
        }
    }
}
