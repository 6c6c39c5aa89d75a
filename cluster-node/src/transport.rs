//! Peer transport: one-way TCP links carrying length-prefixed frames.
//!
//! A node sends to peer j only on a connection it dialled to j's `--peers`
//! address, and never writes on connections it accepted, so a proxy on the
//! (i→j) link can cut that direction alone. Frame: `[len u32 BE][payload]`;
//! the first frame is a JSON handshake (cluster, from, to), every later one a
//! `raft::Message` in the binary form of `wire`. Queues are bounded and drop when full: Raft resends.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::raft::Message;

/// Bigger frames are refused (sender drops the message, receiver the link).
pub const FRAME_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Worst-case wire size of one entry: the command's JSON may escape each
/// control character of a key or value in 6 bytes.
pub const ENTRY_WIRE_BYTES_MAX: usize =
    6 * (crate::protocol::VALUE_BYTES_MAX + crate::protocol::KEY_BYTES_MAX) + 1024;
/// Entries per Append so that any Append fits in one frame.
pub const APPEND_ENTRIES_MAX: u32 = (FRAME_BYTES_MAX / ENTRY_WIRE_BYTES_MAX) as u32;
const _: () = assert!(
    APPEND_ENTRIES_MAX >= 1,
    "one maximal entry must fit in a frame"
);
/// Messages waiting for one peer; more are dropped.
pub const SEND_QUEUE_MESSAGES_MAX: usize = 1024;
/// Messages received from all peers waiting for the core; more are dropped.
pub const RECEIVE_QUEUE_MESSAGES_MAX: usize = 4096;
const RECONNECT_BACKOFF_MS_MIN: u64 = 20;
const RECONNECT_BACKOFF_MS_MAX: u64 = 1_000;
const HANDSHAKE_TIMEOUT_MS: u64 = 2_000;
const INBOUND_CONNECTIONS_MAX: usize = 64;
/// Messages written before one flush, so a burst shares a syscall.
const WRITE_BATCH_MESSAGES_MAX: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub cluster: String,
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {FRAME_BYTES_MAX}-byte limit")]
    TooLarge(usize),
    #[error("undecodable handshake: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("undecodable message: {0}")]
    Wire(#[from] crate::wire::WireError),
    #[error("handshake rejected: {0}")]
    Handshake(String),
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
) -> Result<(), FrameError> {
    if payload.len() > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(payload.len()));
    }
    w.write_all(&(payload.len() as u32).to_be_bytes()).await?;
    w.write_all(payload).await?;
    Ok(())
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(len));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(payload)
}

/// The sending half: one bounded queue and one dialling task per peer.
#[derive(Clone)]
pub struct Outbound {
    queues: Vec<(u64, mpsc::Sender<Message>)>,
}

impl Outbound {
    pub fn start(cluster: &str, id: u64, peers: &[(u64, SocketAddr)]) -> Outbound {
        let mut queues = Vec::with_capacity(peers.len());
        for &(peer, addr) in peers {
            let (tx, rx) = mpsc::channel(SEND_QUEUE_MESSAGES_MAX);
            let handshake = Handshake {
                cluster: cluster.to_string(),
                from: id,
                to: peer,
            };
            tokio::spawn(dial_loop(addr, handshake, rx));
            queues.push((peer, tx));
        }
        Outbound { queues }
    }

    /// Queues `message` for its recipient; drops it when the queue is full.
    pub fn send(&self, message: Message) {
        let Some((_, queue)) = self.queues.iter().find(|(peer, _)| *peer == message.to) else {
            tracing::warn!(to = message.to, "dropping message to unknown peer");
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(m)) = queue.try_send(message) {
            tracing::debug!(
                to = m.to,
                kind = m.body.kind(),
                "send queue full; dropping message"
            );
        }
    }
}

async fn dial_loop(addr: SocketAddr, handshake: Handshake, mut rx: mpsc::Receiver<Message>) {
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    // Runs until the core drops the queue at shutdown.
    while !rx.is_closed() {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                backoff_ms = RECONNECT_BACKOFF_MS_MIN;
                let _ = stream.set_nodelay(true);
                match pump(stream, &handshake, &mut rx).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::debug!(peer = handshake.to, %addr, error = %e, "peer link lost")
                    }
                }
            }
            Err(e) => tracing::debug!(peer = handshake.to, %addr, error = %e, "peer dial failed"),
        }
        // What queued while the link was down is stale; Raft will resend.
        while rx.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
    }
}

/// Writes the handshake and then messages until the queue closes (Ok) or the link fails.
async fn pump(
    stream: TcpStream,
    handshake: &Handshake,
    rx: &mut mpsc::Receiver<Message>,
) -> Result<(), FrameError> {
    let mut w = BufWriter::new(stream);
    write_frame(&mut w, &serde_json::to_vec(handshake)?).await?;
    w.flush().await?;
    while let Some(first) = rx.recv().await {
        write_message(&mut w, &first).await?;
        for _ in 1..WRITE_BATCH_MESSAGES_MAX {
            match rx.try_recv() {
                Ok(m) => write_message(&mut w, &m).await?,
                Err(_) => break,
            }
        }
        w.flush().await?;
    }
    Ok(())
}

async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> Result<(), FrameError> {
    let mut payload = Vec::new();
    crate::wire::encode(m, &mut payload);
    match write_frame(w, &payload).await {
        Err(FrameError::TooLarge(bytes)) => {
            tracing::warn!(
                to = m.to,
                kind = m.body.kind(),
                bytes,
                "message too large for one frame; dropped"
            );
            Ok(())
        }
        other => other,
    }
}

/// Accepts peer links and forwards their messages to the core's bounded queue.
pub async fn accept_loop(
    listener: TcpListener,
    cluster: String,
    id: u64,
    peers: Vec<u64>,
    tx: mpsc::Sender<Message>,
) {
    let permits = Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX));
    let expected = Arc::new((cluster, id, peers));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, remote) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS_MIN)).await;
                continue;
            }
        };
        let (expected, tx) = (expected.clone(), tx.clone());
        tokio::spawn(async move {
            if let Err(e) = receive(stream, &expected, &tx).await {
                tracing::warn!(%remote, error = %e, "dropping peer connection");
            }
            drop(permit);
        });
    }
}

async fn receive(
    mut stream: TcpStream,
    expected: &(String, u64, Vec<u64>),
    tx: &mpsc::Sender<Message>,
) -> Result<(), FrameError> {
    let (cluster, id, peers) = expected;
    let handshake_wait = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
    let frame = tokio::time::timeout(handshake_wait, read_frame(&mut stream))
        .await
        .map_err(|_| FrameError::Handshake("no handshake in time".into()))??;
    let hello: Handshake = serde_json::from_slice(&frame)?;
    check_handshake(&hello, cluster, *id, peers).map_err(FrameError::Handshake)?;
    loop {
        let frame = match read_frame(&mut stream).await {
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(())
            }
            other => other?,
        };
        let message = crate::wire::decode(&frame)?;
        if message.from != hello.from || message.to != *id {
            return Err(FrameError::Handshake(format!(
                "message {}→{} on link {}→{}",
                message.from, message.to, hello.from, id
            )));
        }
        if tx.try_send(message).is_err() {
            tracing::debug!(from = hello.from, "receive queue full; dropping message");
        }
    }
}

pub fn check_handshake(
    hello: &Handshake,
    cluster: &str,
    id: u64,
    peers: &[u64],
) -> Result<(), String> {
    if hello.cluster != cluster {
        return Err(format!(
            "cluster id `{}`, expected `{cluster}`",
            hello.cluster
        ));
    }
    if hello.to != id {
        return Err(format!("addressed to node {}, this is node {id}", hello.to));
    }
    if !peers.contains(&hello.from) {
        return Err(format!("unknown sender {}", hello.from));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_checks_cluster_recipient_and_sender() {
        let ok = Handshake {
            cluster: "c".into(),
            from: 2,
            to: 1,
        };
        assert!(check_handshake(&ok, "c", 1, &[2, 3]).is_ok());
        let wrong_cluster = Handshake {
            cluster: "x".into(),
            ..ok.clone()
        };
        assert!(check_handshake(&wrong_cluster, "c", 1, &[2, 3])
            .unwrap_err()
            .contains("cluster id"));
        let wrong_to = Handshake {
            to: 3,
            ..ok.clone()
        };
        assert!(check_handshake(&wrong_to, "c", 1, &[2, 3])
            .unwrap_err()
            .contains("addressed to"));
        let stranger = Handshake { from: 9, ..ok };
        assert!(check_handshake(&stranger, "c", 1, &[2, 3])
            .unwrap_err()
            .contains("unknown sender"));
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        let mut reader = &buf[..];
        assert_eq!(read_frame(&mut reader).await.unwrap(), b"hello");
        let huge = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes();
        let mut reader = &huge[..];
        assert!(matches!(
            read_frame(&mut reader).await,
            Err(FrameError::TooLarge(_))
        ));
    }
}
