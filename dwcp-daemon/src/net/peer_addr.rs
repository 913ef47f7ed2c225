//! Peer addresses: a committee member's consensus address as configs write it.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use tokio::net::TcpStream;

/// The consensus address of a peer: `IP:port`, `[IPv6]:port` or `host:port`.
///
/// Written in configs as a string; an IP address is used as given, a host name is
/// resolved each time the peer is dialled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerAddr {
    host: String,
    port: u16,
}

/// Why a peer address does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not host:port, [IPv6]:port or IP:port")]
pub struct BadPeerAddr(pub String);

impl PeerAddr {
    /// The host: an IP address or a DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resolves the address now (blocking; a literal IP needs no lookup).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }

    /// Connects to the first of its resolved addresses that answers, resolving the
    /// name afresh.
    pub(super) async fn connect(&self) -> std::io::Result<TcpStream> {
        TcpStream::connect((self.host.as_str(), self.port)).await
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> PeerAddr {
        PeerAddr {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl FromStr for PeerAddr {
    type Err = BadPeerAddr;

    fn from_str(s: &str) -> Result<PeerAddr, BadPeerAddr> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a.into());
        }
        let bad = || BadPeerAddr(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        // A DNS name: labels of letters, digits, '-' and '_', separated by dots.
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !name_ok {
            return Err(bad());
        }
        Ok(PeerAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl TryFrom<String> for PeerAddr {
    type Error = BadPeerAddr;

    fn try_from(s: String) -> Result<PeerAddr, BadPeerAddr> {
        s.parse()
    }
}

impl From<PeerAddr> for String {
    fn from(a: PeerAddr) -> String {
        a.to_string()
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
