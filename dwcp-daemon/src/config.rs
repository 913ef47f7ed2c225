//! Node configuration (TOML), key files and committee files.

use crate::engines::EngineConfig;
use crate::net::peer_addr::PeerAddr;
use dwcp_consensus::registry;
use dwcp_core::committee::NodeKeys;
use dwcp_core::crypto::{SignatureScheme, SigningKey, VrfSecretKey};
use dwcp_core::{Committee, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration, key or committee file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file does not parse.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// The contents are inconsistent.
    #[error("{0}")]
    Invalid(String),
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    let _ = secret;
    Ok(())
}

/// One node's configuration file. Unknown fields are refused (checked on load:
/// the engine tables below are collected by name).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeConfig {
    /// This node's committee id.
    pub id: u16,
    /// Address for consensus traffic.
    pub listen: SocketAddr,
    /// Address of the HTTP API.
    pub http: SocketAddr,
    /// Consensus address of every member, by id: `IP:port`, `[IPv6]:port` or
    /// `host:port` (a name is resolved each time the peer is dialled).
    pub peers: Vec<PeerAddr>,
    /// Committee file (JSON), relative to the config file.
    pub committee: PathBuf,
    /// Key file, relative to the config file.
    pub key: PathBuf,
    /// The `redb` store, relative to the config file.
    pub store: PathBuf,
    /// Engine name.
    #[serde(default = "default_engine")]
    pub engine: String,
    /// Bearer token required by write endpoints.
    pub http_token: String,
    /// Largest request body the HTTP API accepts, bytes.
    #[serde(default = "default_body_limit")]
    pub http_body_limit: usize,
    /// Requests per second each client address may make to the `/v1` API.
    #[serde(default = "default_rate")]
    pub http_rate_per_second: u32,
    /// Requests a client may burst above that rate.
    #[serde(default = "default_burst")]
    pub http_rate_burst: u32,
    /// Milliseconds between the supervisor's health checks.
    #[serde(default = "default_health_interval")]
    pub health_interval_ms: u64,
    /// Engine parameters: one table per engine, named after it (`[pbft]`,
    /// `[bullshark]`, ...), each field optional. Only the chosen engine's table is
    /// used; every one present must be valid.
    #[serde(flatten)]
    pub engine_params: BTreeMap<String, toml::Value>,
}

fn default_health_interval() -> u64 {
    10_000
}

fn default_rate() -> u32 {
    200
}

fn default_burst() -> u32 {
    400
}

fn default_engine() -> String {
    "pbft".into()
}

fn default_body_limit() -> usize {
    4 << 20
}

impl NodeConfig {
    /// Reads and checks a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let mut cfg: NodeConfig = toml::from_str(&read(path)?).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.committee, &mut cfg.key, &mut cfg.store] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if usize::from(cfg.id) >= cfg.peers.len() {
            return Err(ConfigError::Invalid(format!(
                "id {} has no entry in peers ({} listed)",
                cfg.id,
                cfg.peers.len()
            )));
        }
        if cfg.http_token.len() < 16 {
            return Err(ConfigError::Invalid(
                "http_token must be at least 16 characters".into(),
            ));
        }
        if cfg.http_rate_per_second == 0 || cfg.http_rate_burst == 0 {
            return Err(ConfigError::Invalid(
                "http_rate_per_second and http_rate_burst must be positive".into(),
            ));
        }
        for (name, value) in &cfg.engine_params {
            if registry::check_name(name).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "unknown field `{name}` (engine tables: {})",
                    registry::ENGINES.join(", ")
                )));
            }
            let toml::Value::Table(t) = value else {
                return Err(ConfigError::Invalid(format!("`{name}` must be a table")));
            };
            EngineConfig::new(name, Some(t)).map_err(ConfigError::Invalid)?;
        }
        cfg.engine_config()?;
        Ok(cfg)
    }

    /// The engine this config names, with its parameters.
    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        let table = match self.engine_params.get(&self.engine) {
            Some(toml::Value::Table(t)) => Some(t),
            _ => None,
        };
        EngineConfig::new(&self.engine, table).map_err(ConfigError::Invalid)
    }

    /// Sets the chosen engine and its parameters.
    pub fn set_engine(&mut self, engine: &EngineConfig) {
        self.engine = engine.name().to_string();
        self.engine_params
            .insert(self.engine.clone(), toml::Value::Table(engine.table()));
    }

    /// Writes the config as TOML.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        write(path, &text, true)
    }
}

/// A node's secret key file: hex seeds for its signing and VRF keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: u16,
    scheme: SignatureScheme,
    signing_seed: String,
    vrf_seed: String,
}

fn seed(hex_str: &str, path: &Path) -> Result<[u8; 32], ConfigError> {
    let bytes = hex::decode(hex_str).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        reason: format!("seed: {e}"),
    })?;
    bytes.try_into().map_err(|_| ConfigError::Parse {
        path: path.to_path_buf(),
        reason: "a seed must be 32 bytes".into(),
    })
}

/// Writes `keys` to a key file readable only by its owner.
pub fn save_keys(keys: &NodeKeys, path: &Path) -> Result<(), ConfigError> {
    let f = KeyFile {
        id: keys.id.0,
        scheme: keys.signing.scheme(),
        signing_seed: hex::encode(keys.signing.seed()),
        vrf_seed: hex::encode(keys.vrf.seed()),
    };
    let text = toml::to_string(&f).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    write(path, &text, true)
}

/// Reads a key file and checks it matches `committee`.
pub fn load_keys(path: &Path, committee: &Committee) -> Result<NodeKeys, ConfigError> {
    let f: KeyFile = toml::from_str(&read(path)?).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if f.scheme != committee.scheme() {
        return Err(ConfigError::Invalid(format!(
            "{}: the key's scheme {:?} is not the committee's {:?}",
            path.display(),
            f.scheme,
            committee.scheme()
        )));
    }
    refuse_stand_in(f.scheme, path)?;
    let keys = NodeKeys {
        id: NodeId(f.id),
        signing: SigningKey::from_seed(seed(&f.signing_seed, path)?, f.scheme),
        vrf: VrfSecretKey::from_seed(seed(&f.vrf_seed, path)?),
    };
    match committee.member(keys.id) {
        Some(m) if m.key == keys.signing.public() && m.vrf_key == keys.vrf.public() => Ok(keys),
        Some(_) => Err(ConfigError::Invalid(format!(
            "{}: keys do not match member {} of the committee",
            path.display(),
            keys.id
        ))),
        None => Err(ConfigError::Invalid(format!(
            "{}: {} is not a committee member",
            path.display(),
            keys.id
        ))),
    }
}

/// Writes a committee file (JSON).
pub fn save_committee(c: &Committee, path: &Path) -> Result<(), ConfigError> {
    let text = serde_json::to_string_pretty(c).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    write(path, &text, false)
}

/// Reads and validates a committee file.
pub fn load_committee(path: &Path) -> Result<Committee, ConfigError> {
    let c: Committee = serde_json::from_str(&read(path)?).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    refuse_stand_in(c.scheme(), path)?;
    Ok(c)
}

/// The simulator's insecure signature stand-in lets anyone who knows a public key
/// forge signatures: a node must never run on it.
fn refuse_stand_in(scheme: SignatureScheme, path: &Path) -> Result<(), ConfigError> {
    if scheme == SignatureScheme::InsecureFast {
        return Err(ConfigError::Invalid(format!(
            "{}: the InsecureFast scheme is a simulator stand-in that anyone can forge; \
             a node runs only on Ed25519",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_committee_roundtrip_and_mismatch_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (c, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 5);
        save_committee(&c, &dir.path().join("c.json")).unwrap();
        let c2 = load_committee(&dir.path().join("c.json")).unwrap();
        assert_eq!(c2.members(), c.members());
        save_keys(&keys[2], &dir.path().join("k")).unwrap();
        let k = load_keys(&dir.path().join("k"), &c2).unwrap();
        assert_eq!(k.signing.public(), keys[2].signing.public());
        let (other, _) = Committee::deterministic(4, SignatureScheme::Ed25519, 6);
        assert!(load_keys(&dir.path().join("k"), &other).is_err());
        std::fs::write(
            dir.path().join("bad"),
            "id = 1\nscheme = \"Ed25519\"\nsigning_seed = \"zz\"\nvrf_seed = \"00\"",
        )
        .unwrap();
        assert!(load_keys(&dir.path().join("bad"), &c2).is_err());
        std::fs::write(dir.path().join("c.json"), "{").unwrap();
        assert!(load_committee(&dir.path().join("c.json")).is_err());
    }

    #[test]
    fn the_insecure_stand_in_and_mismatched_schemes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (fast, fast_keys) = Committee::deterministic(4, SignatureScheme::InsecureFast, 5);
        save_committee(&fast, &dir.path().join("fast.json")).unwrap();
        let e = load_committee(&dir.path().join("fast.json")).unwrap_err();
        assert!(e.to_string().contains("InsecureFast"), "{e}");

        // A stand-in key next to an Ed25519 committee: refused for its scheme.
        let (c, _) = Committee::deterministic(4, SignatureScheme::Ed25519, 5);
        save_keys(&fast_keys[1], &dir.path().join("k")).unwrap();
        let e = load_keys(&dir.path().join("k"), &c).unwrap_err();
        assert!(e.to_string().contains("scheme"), "{e}");
        // And next to its own committee, refused as a stand-in.
        let e = load_keys(&dir.path().join("k"), &fast).unwrap_err();
        assert!(e.to_string().contains("InsecureFast"), "{e}");
    }

    #[test]
    fn peers_may_be_host_names_and_old_ip_configs_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let text = |peers: &str| {
            format!(
                "id = 1\nlisten = \"0.0.0.0:7000\"\nhttp = \"127.0.0.1:8000\"\n\
                 peers = {peers}\ncommittee = \"c.json\"\nkey = \"k\"\nstore = \"s.redb\"\n\
                 http_token = \"0123456789abcdef\"\n"
            )
        };
        std::fs::write(
            &path,
            text(r#"["node-0.dwcp:7000", "localhost:7001", "[::1]:7002", "10.0.0.4:7003"]"#),
        )
        .unwrap();
        let cfg = NodeConfig::load(&path).unwrap();
        let shown: Vec<String> = cfg.peers.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                "node-0.dwcp:7000",
                "localhost:7001",
                "[::1]:7002",
                "10.0.0.4:7003"
            ]
        );
        assert_eq!(cfg.peers[0].host(), "node-0.dwcp");
        assert_eq!(cfg.peers[2].host(), "::1");
        // Saved and loaded again, unchanged (keygen's IP configs round-trip too).
        cfg.save(&path).unwrap();
        assert_eq!(NodeConfig::load(&path).unwrap().peers, cfg.peers);
        let localhost = cfg.peers[1].resolve().unwrap();
        assert!(!localhost.is_empty());
        assert!(localhost
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 7001));
        let ip = cfg.peers[3].resolve().unwrap();
        assert_eq!(ip, ["10.0.0.4:7003".parse::<SocketAddr>().unwrap()]);

        // Two entries, so only the second one's syntax can be what is refused.
        for bad in [
            "node-0.dwcp",
            "node-0.dwcp:70000",
            ":7000",
            "bad host:7000",
            "a..b:7000",
            "[::1:7000",
        ] {
            let bad = format!(r#"["10.0.0.1:7000", "{bad}"]"#);
            std::fs::write(&path, text(&bad)).unwrap();
            assert!(NodeConfig::load(&path).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn config_validation() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NodeConfig {
            id: 1,
            listen: "127.0.0.1:7001".parse().unwrap(),
            http: "127.0.0.1:8001".parse().unwrap(),
            peers: vec![
                "127.0.0.1:7000".parse().unwrap(),
                "127.0.0.1:7001".parse().unwrap(),
            ],
            committee: "committee.json".into(),
            key: "node-1.key".into(),
            store: "node-1.redb".into(),
            engine: "pbft".into(),
            http_token: "0123456789abcdef".into(),
            http_body_limit: 1024,
            http_rate_per_second: 10,
            http_rate_burst: 10,
            health_interval_ms: 1000,
            engine_params: BTreeMap::new(),
        };
        let path = dir.path().join("node.toml");
        cfg.save(&path).unwrap();
        let back = NodeConfig::load(&path).unwrap();
        assert_eq!(back.committee, dir.path().join("committee.json"));
        let mut bad = cfg.clone();
        bad.id = 5;
        bad.save(&path).unwrap();
        assert!(NodeConfig::load(&path).is_err());
        let mut bad = cfg.clone();
        bad.http_token = "short".into();
        bad.save(&path).unwrap();
        assert!(NodeConfig::load(&path).is_err());
        std::fs::write(&path, "id = 1\nsurprise = true").unwrap();
        assert!(NodeConfig::load(&path).is_err());

        // Engine tables: the chosen engine's is used, every one is checked.
        let good = toml::to_string(&cfg).unwrap();
        let load_with = |extra: &str| {
            std::fs::write(&path, format!("{good}\n{extra}")).unwrap();
            NodeConfig::load(&path).map_err(|e| e.to_string())
        };
        let c = load_with("[pbft]\nbatch_size = 7\n").unwrap();
        assert_eq!(
            c.engine_config().unwrap().table()["batch_size"].as_integer(),
            Some(7)
        );
        let e = load_with("surprise = true\n").unwrap_err();
        assert!(e.contains("unknown field `surprise`"), "{e}");
        let e = load_with("[bullshark]\nheader_sise = 1\n").unwrap_err();
        assert!(
            e.contains("[bullshark]") && e.contains("header_sise"),
            "{e}"
        );
        let e = load_with("[pbft]\ncheckpoint_interval = 100\n").unwrap_err();
        assert!(e.contains("window"), "{e}");
        let mut raft = cfg.clone();
        raft.engine = "raft".into();
        raft.save(&path).unwrap();
        let e = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("unknown engine \"raft\"") && e.contains("bullshark"),
            "{e}"
        );
    }
}
