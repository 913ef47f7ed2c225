//! The Byzantine and faulty behaviours the simulator gives nodes.

/// The Byzantine or faulty behaviours the simulator can give a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behaviour {
    /// Honest.
    Honest,
    /// Never sends anything.
    Silent,
    /// Runs two instances on one key and shows each half of the committee a different
    /// one: conflicting votes and, as leader, conflicting proposals.
    Equivocate,
    /// Sends random bytes in place of some messages.
    Garbage,
    /// Sends its messages with damaged signatures.
    BadSig,
    /// Re-sends old messages, its own and others', to random peers.
    Replay,
    /// Honest, but crashes at random effect boundaries and restarts from storage.
    Crash,
    /// Runs the honest engine, but a [`super::Script`] decides where its messages go
    /// and may send further validly signed messages in its name.
    Scripted,
    /// Runs the honest engine but signs late or not at all: each message it sends
    /// is delayed by 50–250 ms more than the link's delay, and one in four is never
    /// sent. Its votes rarely make the first quorum, so trust (T-PBFT) should sink.
    Slacker,
    /// Honest until [`TURNCOAT_AFTER`] of virtual time (long enough to earn trust
    /// and, in T-PBFT, hold a committee seat), then silent.
    Turncoat,
    /// Runs the honest engine, built by [`crate::registry::Protocol::build_colluding`]:
    /// every node with this behaviour is one colluding group, and an engine whose
    /// proposals carry evidence about others (T-PBFT's commit proofs) names every
    /// colluder in it and as few other nodes as it can, so that its group's trust
    /// rises and the others' sinks. Engines without such evidence run honestly.
    Collude,
    /// Twins (Bano et al., OPODIS 2021): two honest instances sharing one key and
    /// identity, each with its own state; a [`super::Script`] (usually
    /// [`super::twins::TwinsScript`]) decides which instances hear each other.
    Twin,
}

/// When a [`Behaviour::Turncoat`] turns: after T-PBFT's first epoch in the
/// simulator's runs.
pub const TURNCOAT_AFTER: std::time::Duration = std::time::Duration::from_millis(1_200);

impl Behaviour {
    /// Whether the checkers hold this node to the protocol (crashing nodes are honest).
    pub fn is_honest(self) -> bool {
        matches!(self, Behaviour::Honest | Behaviour::Crash)
    }

    /// Whether the node's store keeps what its engine persists and commits: every
    /// node that runs one instance of honest code (twins and equivocators run two
    /// on one key, which one store cannot hold apart).
    pub fn keeps_a_store(self) -> bool {
        self.is_honest()
            || matches!(
                self,
                Behaviour::Scripted | Behaviour::Slacker | Behaviour::Turncoat | Behaviour::Collude
            )
    }

    /// How many engine instances a node with this behaviour runs on its key.
    pub fn instances(self) -> usize {
        match self {
            Behaviour::Equivocate | Behaviour::Twin => 2,
            _ => 1,
        }
    }
}

impl std::str::FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "honest" => Behaviour::Honest,
            "silent" => Behaviour::Silent,
            "equivocate" => Behaviour::Equivocate,
            "garbage" => Behaviour::Garbage,
            "badsig" => Behaviour::BadSig,
            "replay" => Behaviour::Replay,
            "crash" => Behaviour::Crash,
            "scripted" => Behaviour::Scripted,
            "twin" => Behaviour::Twin,
            "slacker" => Behaviour::Slacker,
            "turncoat" => Behaviour::Turncoat,
            "collude" => Behaviour::Collude,
            other => return Err(format!("unknown behaviour {other:?}")),
        })
    }
}
