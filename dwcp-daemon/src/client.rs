//! A minimal blocking HTTP/1.1 client for `dwcpd`'s own API, used by `dwcpd demo`
//! (and handy in scripts and tests): one request per connection, loopback only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Status code and body of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

/// Sends one request with a JSON body and reads the whole response; `None` if the
/// node is unreachable or the answer is not HTTP.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Option<Reply> {
    request_typed(addr, method, path, token, "application/json", body)
}

/// [`request`] with a body of another media type, such as
/// [`dwcp_core::transactions::CONTENT_TYPE`].
pub fn request_typed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Option<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    // A server may reset the connection right after answering (say, 413 for a body it
    // would not read): keep what arrived.
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some(Reply { status, body })
}

/// `GET path` parsed as JSON, if the answer is 200.
pub fn get_json(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let r = request(addr, "GET", path, None, b"")?;
    if r.status != 200 {
        return None;
    }
    serde_json::from_str(&r.body).ok()
}
