//! A link's bytes on the wire after the handshake: Noise messages of at most 64 KiB,
//! each behind a `u16` length, and the engine frames they carry (a `u32` length,
//! then the bytes, split across as many messages as it takes), written and read
//! with buffers reused from frame to frame; and why a link fails ([`LinkError`]).

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest Noise message.
pub(super) const NOISE_MAX: usize = 65535;
/// Bytes of the authentication tag in every Noise message.
const TAG: usize = 16;
/// Most plaintext bytes in one Noise message.
pub(super) const CHUNK: usize = NOISE_MAX - TAG;

/// Why a link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The Noise handshake or a decryption failed.
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    /// The peer is not who it claims, or not a member.
    #[error("authentication failed: {0}")]
    Auth(&'static str),
    /// A frame longer than the limit.
    #[error("frame of {0} bytes over the limit")]
    Oversized(usize),
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
}

/// Writes one Noise message: a `u16` length, then the message.
pub(super) async fn write_noise(stream: &mut TcpStream, msg: &[u8]) -> Result<(), LinkError> {
    let len = u16::try_from(msg.len()).map_err(|_| LinkError::Oversized(msg.len()))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(msg).await?;
    Ok(())
}

/// Reads one Noise message into `buf`; returns its length.
pub(super) async fn read_noise<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut [u8],
) -> Result<usize, LinkError> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    let buf = buf.get_mut(..len).ok_or(LinkError::Oversized(len))?;
    stream.read_exact(buf).await?;
    Ok(len)
}

/// A wire buffer above this size is released after its frame, so one large frame
/// does not pin its memory for the life of the link.
const KEEP_WIRE: usize = 4 << 20;

/// What the writing side of a link reuses for every frame, so that sending a frame
/// allocates nothing in the steady state.
pub(super) struct FrameWriter {
    /// One sealed Noise message.
    msg: Box<[u8]>,
    /// The first message's plaintext: the length prefix and the frame's start.
    first: Vec<u8>,
    /// The whole sealed frame, written with one call.
    wire: Vec<u8>,
}

impl FrameWriter {
    /// A writer with its buffers allocated.
    pub(super) fn new() -> Self {
        FrameWriter {
            msg: vec![0u8; NOISE_MAX].into_boxed_slice(),
            first: Vec::with_capacity(CHUNK),
            wire: Vec::new(),
        }
    }

    /// Writes one frame: a `u32` length, then the bytes, in Noise messages of ≤ 64
    /// KiB (the first carries the length and the frame's first `CHUNK - 4` bytes).
    pub(super) async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut W,
        noise: &mut snow::TransportState,
        frame: &[u8],
    ) -> Result<(), LinkError> {
        let len = u32::try_from(frame.len()).map_err(|_| LinkError::Oversized(frame.len()))?;
        let head = frame.len().min(CHUNK - 4);
        self.first.clear();
        self.first.extend_from_slice(&len.to_be_bytes());
        self.first.extend_from_slice(&frame[..head]);
        self.wire.clear();
        self.wire
            .reserve(4 + frame.len() + (frame.len() / CHUNK + 1) * (TAG + 2));
        seal(noise, &self.first, &mut self.msg, &mut self.wire)?;
        for chunk in frame[head..].chunks(CHUNK) {
            seal(noise, chunk, &mut self.msg, &mut self.wire)?;
        }
        stream.write_all(&self.wire).await?;
        if self.wire.capacity() > KEEP_WIRE {
            self.wire = Vec::new();
        }
        Ok(())
    }
}

/// Encrypts `plain` as one Noise message and appends it, length first, to `wire`.
fn seal(
    noise: &mut snow::TransportState,
    plain: &[u8],
    msg: &mut [u8],
    wire: &mut Vec<u8>,
) -> Result<(), LinkError> {
    let n = noise.write_message(plain, msg)?;
    wire.extend_from_slice(&(n as u16).to_be_bytes());
    wire.extend_from_slice(&msg[..n]);
    Ok(())
}

/// What the reading side of a link reuses for every frame.
pub(super) struct FrameReader {
    /// One Noise message as received.
    msg: Box<[u8]>,
    /// Its plaintext.
    plain: Box<[u8]>,
}

impl FrameReader {
    /// A reader with its buffers allocated.
    pub(super) fn new() -> Self {
        FrameReader {
            msg: vec![0u8; NOISE_MAX].into_boxed_slice(),
            plain: vec![0u8; NOISE_MAX].into_boxed_slice(),
        }
    }

    /// Reads one frame, refusing lengths over `max_frame` before allocating them.
    pub(super) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        noise: &mut snow::TransportState,
        max_frame: usize,
    ) -> Result<Bytes, LinkError> {
        let n = read_noise(stream, &mut self.msg).await?;
        let m = noise.read_message(&self.msg[..n], &mut self.plain)?;
        if m < 4 {
            return Err(LinkError::Auth("frame without a length"));
        }
        let p = &self.plain;
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        if len > max_frame {
            return Err(LinkError::Oversized(len));
        }
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(&self.plain[4..m]);
        while frame.len() < len {
            let n = read_noise(stream, &mut self.msg).await?;
            let m = noise.read_message(&self.msg[..n], &mut self.plain)?;
            frame.extend_from_slice(&self.plain[..m]);
        }
        if frame.len() != len {
            return Err(LinkError::Oversized(frame.len()));
        }
        Ok(Bytes::from(frame))
    }
}
