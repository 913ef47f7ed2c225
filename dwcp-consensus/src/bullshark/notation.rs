//! A small text notation for DAGs in tests.
//!
//! ```text
//! # comment; blank lines are ignored
//! r1: A B C D             a token without arrow names every vertex of the previous round
//! r2: A->ABC B->BCD C D   `X->YZ` : X's vertex has the vertices of Y and Z one round below
//! r3: A->{A,B,C} B C      braces and commas are allowed and ignored
//! ```
//!
//! Letters name members (`A` is `NodeId(0)`). Round 1 builds on genesis. A member
//! missing from a line has no vertex in that round. Every vertex gets a quorum of
//! real votes and one batch digest derived from its name, e.g. `"B3"`.

use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{Committee, Digest, NodeId, NodeKeys, Round, Signed};
use std::collections::BTreeMap;

use super::{Certificate, Header, HeaderVote};

/// A fixture committee of `n` members with fast test signatures.
pub(crate) fn committee(n: usize) -> (Committee, Vec<NodeKeys>) {
    Committee::deterministic(n, SignatureScheme::InsecureFast, 7)
}

/// The member named by `letter`.
pub(crate) fn id(letter: char) -> NodeId {
    NodeId((letter as u8 - b'A') as u16)
}

/// A certificate of `author` in `round` with these parents and batches, signed by
/// the author and voted for by the first quorum of members.
pub(crate) fn certificate(
    committee: &Committee,
    keys: &[NodeKeys],
    author: NodeId,
    round: Round,
    parents: Vec<Digest>,
    batches: Vec<Digest>,
) -> Certificate {
    let header = Signed::new(
        Header {
            author,
            round,
            batches,
            parents,
        },
        author,
        &keys[author.index()].signing,
    );
    let vote = HeaderVote::for_header(&header);
    let votes = keys
        .iter()
        .take(committee.quorum_threshold())
        .map(|k| Signed::new(vote, k.id, &k.signing))
        .collect();
    Certificate { header, votes }
}

/// A DAG written in the notation.
pub(crate) struct TestDag {
    /// Vertices in the order written (round by round).
    pub certificates: Vec<Certificate>,
    by_slot: BTreeMap<(Round, NodeId), Certificate>,
}

impl TestDag {
    /// The vertex of member `letter` in `round`.
    pub fn at(&self, letter: char, round: Round) -> &Certificate {
        self.by_slot
            .get(&(round, id(letter)))
            .unwrap_or_else(|| panic!("no vertex {letter}{round}"))
    }

    /// Parses `text` for `committee`.
    pub fn parse(text: &str, committee: &Committee, keys: &[NodeKeys]) -> TestDag {
        let mut dag = TestDag {
            certificates: Vec::new(),
            by_slot: BTreeMap::new(),
        };
        for g in Certificate::genesis(committee) {
            dag.by_slot.insert((0, g.author()), g);
        }
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (label, rest) = line.split_once(':').expect("missing `rN:`");
            let round: Round = label.trim().trim_start_matches('r').parse().expect("round");
            for token in rest.split_whitespace() {
                let (author, parents) = match token.split_once("->") {
                    Some((a, p)) => (a, Some(p)),
                    None => (token, None),
                };
                let author = id(author.chars().next().expect("author"));
                let parents: Vec<Digest> = match parents {
                    None => dag
                        .by_slot
                        .range((round - 1, NodeId(0))..=(round - 1, NodeId(u16::MAX)))
                        .map(|(_, c)| c.digest())
                        .collect(),
                    Some(list) => list
                        .chars()
                        .filter(char::is_ascii_uppercase)
                        .map(|p| dag.at(p, round - 1).digest())
                        .collect(),
                };
                let batch =
                    Digest::of(format!("{}{round}", (b'A' + author.0 as u8) as char).as_bytes());
                let cert = certificate(committee, keys, author, round, parents, vec![batch]);
                dag.by_slot.insert((round, author), cert.clone());
                dag.certificates.push(cert);
            }
        }
        dag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation_forms_agree() {
        let (c, keys) = committee(4);
        let t = TestDag::parse(
            "
            # all forms
            r1: A B C D
            r2: A->ABC B->{A,B,D} C
            ",
            &c,
            &keys,
        );
        assert_eq!(t.certificates.len(), 7);
        let parents = |l, r| {
            let mut p: Vec<Digest> = t.at(l, r).parents().to_vec();
            p.sort();
            p
        };
        let of = |ls: &str, r| {
            let mut p: Vec<Digest> = ls.chars().map(|l| t.at(l, r).digest()).collect();
            p.sort();
            p
        };
        assert_eq!(parents('A', 2), of("ABC", 1));
        assert_eq!(parents('B', 2), of("ABD", 1));
        assert_eq!(parents('C', 2), of("ABCD", 1));
        assert_eq!(parents('A', 1), {
            let mut g: Vec<_> = Certificate::genesis(&c)
                .iter()
                .map(Certificate::digest)
                .collect();
            g.sort();
            g
        });
        for cert in &t.certificates {
            assert_eq!(cert.verify(&c), Ok(()));
        }
    }
}
