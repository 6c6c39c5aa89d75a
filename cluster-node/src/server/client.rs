//! One client connection: bounded line reads, pipelined requests, answers
//! written in completion order. Each request holds a permit until its answer
//! is written, so a connection has at most `CONNECTION_INFLIGHT_MAX` in flight.
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::protocol::{self, ErrorCode, Rejection, Request, Response, LINE_BYTES_MAX};

pub const CONNECTION_INFLIGHT_MAX: usize = 256;

/// Where a request's one answer goes. Dropping it unanswered closes nothing;
/// the connection just never hears back for that id (the core always answers).
pub struct Responder {
    reply: mpsc::Sender<(Response, OwnedSemaphorePermit)>,
    permit: OwnedSemaphorePermit,
}

impl Responder {
    pub fn answer(self, response: Response) {
        // Capacity equals the permit count, so a held permit guarantees room.
        if self.reply.try_send((response, self.permit)).is_err() {
            tracing::debug!("client connection gone; answer dropped");
        }
    }
}

/// A parsed request travelling to the core with its way back.
pub struct ClientRequest {
    pub request: Request,
    pub responder: Responder,
}

pub async fn serve(stream: TcpStream, core: mpsc::Sender<ClientRequest>) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let (read_half, write_half) = stream.into_split();
    let (reply_tx, reply_rx) = mpsc::channel(CONNECTION_INFLIGHT_MAX);
    let writer = tokio::spawn(write_answers(write_half, reply_rx));
    if let Err(e) = read_requests(read_half, reply_tx, core).await {
        tracing::debug!(?peer, error = %e, "client read ended");
    }
    let _ = writer.await;
}

async fn write_answers(
    write_half: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Response, OwnedSemaphorePermit)>,
) {
    let mut w = BufWriter::new(write_half);
    while let Some((response, permit)) = rx.recv().await {
        let mut line = response.to_line();
        line.push('\n');
        if w.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        drop(permit);
        if rx.is_empty() && w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.into_inner().shutdown().await;
}

async fn read_requests(
    read_half: tokio::net::tcp::OwnedReadHalf,
    reply: mpsc::Sender<(Response, OwnedSemaphorePermit)>,
    core: mpsc::Sender<ClientRequest>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(CONNECTION_INFLIGHT_MAX));
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::new();
    // Ends at EOF, on an oversized line, or when the node shuts down.
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return Ok(());
        };
        let responder = Responder {
            reply: reply.clone(),
            permit,
        };
        line.clear();
        let read = (&mut reader)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(());
        }
        if line.len() > LINE_BYTES_MAX {
            let message = format!("request line longer than {LINE_BYTES_MAX} bytes; closing");
            responder.answer(Response::rejected(Rejection {
                id: None,
                error: ErrorCode::TooLarge,
                message,
            }));
            return Ok(());
        }
        let text = trim_line(&line);
        if text.is_empty() {
            continue;
        }
        match protocol::parse_request(text) {
            Ok(request) => {
                if core
                    .send(ClientRequest { request, responder })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Err(rejection) => responder.answer(Response::rejected(rejection)),
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}
