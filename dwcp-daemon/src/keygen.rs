//! A fresh committee on disk: keys, the committee file and one node config per
//! member, laid out for a cluster on one host (`dwcpd keygen`, local clusters).

use crate::config::{save_committee, save_keys, NodeConfig};
use anyhow::{bail, Context};
use dwcp_core::committee::{Committee, NodeKeys};
use dwcp_core::crypto::{SignatureScheme, SigningKey, VrfSecretKey};
use dwcp_core::NodeId;
use rand::RngCore;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where and how a committee's files are laid out.
#[derive(Clone, Debug)]
pub struct ClusterLayout {
    /// Committee size.
    pub nodes: usize,
    /// Output folder (created if missing).
    pub out: PathBuf,
    /// Host the nodes listen on.
    pub host: String,
    /// Consensus port of node 0; node i uses this + i.
    pub base_port: u16,
    /// HTTP port of node 0; node i uses this + i.
    pub http_base_port: u16,
}

/// Writes `committee.json`, `node-<i>.key` (mode 0600) and `node-<i>.toml`.
pub fn generate(args: &ClusterLayout) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 1000 {
        bail!("--nodes must be between 1 and 1000");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut rng = rand::rngs::OsRng;
    let keys: Vec<NodeKeys> = (0..args.nodes)
        .map(|i| {
            let mut a = [0u8; 32];
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut a);
            rng.fill_bytes(&mut b);
            NodeKeys {
                id: NodeId(i as u16),
                signing: SigningKey::from_seed(a, SignatureScheme::Ed25519),
                vrf: VrfSecretKey::from_seed(b),
            }
        })
        .collect();
    let committee = Committee::from_keys(SignatureScheme::Ed25519, &keys)?;
    save_committee(&committee, &args.out.join("committee.json"))?;
    let port = |base: u16, i: usize| -> anyhow::Result<std::net::SocketAddr> {
        let p = base.checked_add(i as u16).context("port out of range")?;
        Ok(format!("{}:{}", args.host, p).parse()?)
    };
    let peers = (0..args.nodes)
        .map(|i| port(args.base_port, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut token = [0u8; 24];
    rng.fill_bytes(&mut token);
    for k in &keys {
        let i = k.id.index();
        save_keys(k, &args.out.join(format!("node-{i}.key")))?;
        NodeConfig {
            id: k.id.0,
            listen: peers[i],
            http: port(args.http_base_port, i)?,
            peers: peers.iter().map(|&a| a.into()).collect(),
            committee: "committee.json".into(),
            key: format!("node-{i}.key").into(),
            store: format!("node-{i}.redb").into(),
            engine: "pbft".into(),
            http_token: hex::encode(token),
            http_body_limit: 4 << 20,
            http_rate_per_second: 200,
            http_rate_burst: 400,
            health_interval_ms: 10_000,
            engine_params: BTreeMap::new(),
        }
        .save(&args.out.join(format!("node-{i}.toml")))?;
    }
    Ok(())
}
