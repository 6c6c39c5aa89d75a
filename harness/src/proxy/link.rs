//! One proxied connection: two pumps (one per direction) that apply the
//! fault of their direction to every chunk, and a watcher that closes or
//! resets the connection when the fault table says so.
//!
//! A pump writes what it reads straight through when nothing is held back,
//! in reads that grow for a bulk stream; under delay or a bandwidth cap
//! chunks wait in a bounded queue while reading goes on, so latency is
//! pipelined as on a real link and at most `queue_chunks_max` chunks wait
//! per direction.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::faults::{Endpoint, LinkFault, Verdict};
use super::shared::{Counters, Shared};

/// The two ends of a connection; `None` is a source the proxy could not
/// attribute, which no fault touches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ends {
    pub opener: Option<Endpoint>,
    pub acceptor: Option<Endpoint>,
}

/// Why a connection ended.
#[derive(Debug)]
enum Ending {
    /// Both directions finished (EOF each way) or one side failed.
    Finished,
    /// Closed by the fault table (both-way cut, or a stream with a hole).
    Cut,
    Reset,
    ShutDown,
}

/// Why a pump stopped early; any of these ends the whole connection.
#[derive(Debug)]
enum PumpStop {
    Io,
    /// Bytes were dropped and the drop has ended: close rather than resume
    /// a stream with a hole in it.
    Hole,
}

/// Bytes waiting for their delivery time or their share of bandwidth.
struct Chunk {
    bytes: Vec<u8>,
    deliver_at: Option<Instant>,
    bandwidth_bytes_per_s: Option<u64>,
}

impl Chunk {
    fn owned(&self, bytes: &[u8]) -> Chunk {
        Chunk { bytes: bytes.to_vec(), deliver_at: self.deliver_at, bandwidth_bytes_per_s: self.bandwidth_bytes_per_s }
    }
}

/// Forward between the two streams until the connection ends; closes both.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    ends: Ends,
    mut inbound: TcpStream,
    mut outbound: TcpStream,
) {
    let connection = shared.next_connection();
    let seed = shared.config.seed ^ connection.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let holes = [AtomicBool::new(false), AtomicBool::new(false)];
    let ending = {
        let (in_read, in_write) = inbound.split();
        let (out_read, out_write) = outbound.split();
        let up = Pump { shared: &shared, from: ends.opener, to: ends.acceptor, hole: &holes[0] };
        let down = Pump { shared: &shared, from: ends.acceptor, to: ends.opener, hole: &holes[1] };
        let pumps = async {
            let _ = tokio::try_join!(
                up.run(in_read, out_write, ChaCha8Rng::seed_from_u64(seed)),
                down.run(out_read, in_write, ChaCha8Rng::seed_from_u64(seed ^ 1)),
            );
        };
        tokio::select! {
            () = pumps => Ending::Finished,
            ending = watch(&shared, ends, &holes) => ending,
        }
    };
    match ending {
        Ending::Reset => {
            let _ = inbound.set_zero_linger();
            let _ = outbound.set_zero_linger();
            Counters::add(&shared.counters.connections_cut, 1);
        }
        Ending::Cut => Counters::add(&shared.counters.connections_cut, 1),
        Ending::Finished | Ending::ShutDown => {}
    }
    drop(inbound);
    drop(outbound);
    shared.counters.connections_open.fetch_sub(1, Ordering::Relaxed);
}

/// Re-judge the connection at every fault change; returns when it must end.
async fn watch(shared: &Shared, ends: Ends, holes: &[AtomicBool; 2]) -> Ending {
    let mut epoch = shared.subscribe_faults();
    let mut shutdown = shared.subscribe_shutdown();
    // Runs for the life of the connection: each turn waits for a change.
    loop {
        if *shutdown.borrow_and_update() {
            return Ending::ShutDown;
        }
        match shared.verdict(ends.opener, ends.acceptor) {
            Verdict::Reset => return Ending::Reset,
            Verdict::Close => return Ending::Cut,
            Verdict::Open => {}
        }
        let directions = [(ends.opener, ends.acceptor), (ends.acceptor, ends.opener)];
        for (hole, (from, to)) in holes.iter().zip(directions) {
            if hole.load(Ordering::Relaxed) && !shared.direction(from, to).drop {
                return Ending::Cut;
            }
        }
        tokio::select! {
            changed = epoch.changed() => if changed.is_err() { return Ending::ShutDown },
            changed = shutdown.changed() => if changed.is_err() { return Ending::ShutDown },
        }
    }
}

/// One direction of a connection: bytes sent by `from` to `to`.
struct Pump<'a> {
    shared: &'a Shared,
    from: Option<Endpoint>,
    to: Option<Endpoint>,
    hole: &'a AtomicBool,
}

impl Pump<'_> {
    /// Forward until EOF (then send FIN) or an error. Chunks due now with
    /// nothing queued are written straight from the read buffer; delayed or
    /// throttled ones wait in a bounded queue while reading goes on.
    async fn run(
        &self,
        mut reader: ReadHalf<'_>,
        mut writer: WriteHalf<'_>,
        mut rng: ChaCha8Rng,
    ) -> Result<(), PumpStop> {
        let queue_max = self.shared.config.queue_chunks_max;
        let mut queue: VecDeque<Chunk> = VecDeque::with_capacity(queue_max);
        let mut buffer = vec![0u8; self.shared.config.chunk_bytes];
        let mut throttle = Throttle::default();
        let mut eof = false;
        // Runs for the life of the connection: ends at EOF or on an error.
        loop {
            if eof && queue.is_empty() {
                let _ = writer.shutdown().await;
                return Ok(());
            }
            let head_due = queue.front().map(|chunk| throttle.due(chunk));
            let limit = self.read_limit(buffer.len(), queue.is_empty());
            tokio::select! {
                biased;
                () = sleep_until_some(head_due), if head_due.is_some() => {
                    let chunk = queue.pop_front().expect("a due head exists");
                    self.write(&mut writer, &chunk.bytes).await?;
                    throttle.sent(chunk.bytes.len(), chunk.bandwidth_bytes_per_s);
                }
                read = reader.read(&mut buffer[..limit]), if !eof && queue.len() < queue_max => {
                    let count = read.map_err(|_| PumpStop::Io)?;
                    if count == 0 {
                        eof = true;
                        continue;
                    }
                    let Some(chunk) = self.admit(&buffer[..count], &mut rng)? else { continue };
                    if queue.is_empty() && chunk.deliver_at.is_none() && chunk.bandwidth_bytes_per_s.is_none() {
                        self.write(&mut writer, &buffer[..count]).await?;
                        throttle.sent(count, None);
                        self.grow(&mut buffer, count);
                    } else {
                        self.hold(&mut queue, &chunk, &buffer[..count]);
                    }
                }
            }
        }
    }

    /// Apply the direction's fault to bytes just read: None when dropped.
    fn admit(&self, bytes: &[u8], rng: &mut ChaCha8Rng) -> Result<Option<Chunk>, PumpStop> {
        let fault = self.shared.direction(self.from, self.to);
        if fault.drop {
            self.hole.store(true, Ordering::Relaxed);
            Counters::add(&self.shared.counters.bytes_dropped, bytes.len() as u64);
            return Ok(None);
        }
        if self.hole.load(Ordering::Relaxed) {
            return Err(PumpStop::Hole);
        }
        let delay_ms = fault.delay_ms + jitter_ms(rng, fault.jitter_ms);
        Ok(Some(Chunk {
            bytes: Vec::new(),
            deliver_at: (delay_ms > 0).then(|| Instant::now() + Duration::from_millis(delay_ms)),
            bandwidth_bytes_per_s: fault.bandwidth_bytes_per_s,
        }))
    }

    async fn write(&self, writer: &mut WriteHalf<'_>, bytes: &[u8]) -> Result<(), PumpStop> {
        writer.write_all(bytes).await.map_err(|_| PumpStop::Io)?;
        Counters::add(&self.shared.counters.bytes_forwarded, bytes.len() as u64);
        Ok(())
    }

    /// How much to read. Under a bandwidth cap, small chunks so the rate is
    /// smooth; under any other fault, a chunk. With no fault and nothing
    /// queued the bytes go straight out, so as much as the buffer holds.
    fn read_limit(&self, buffer_bytes: usize, queue_empty: bool) -> usize {
        let chunk_bytes = self.shared.config.chunk_bytes;
        let fault = self.shared.direction(self.from, self.to);
        match fault.bandwidth_bytes_per_s {
            Some(rate) => ((rate / 20) as usize).clamp(1, chunk_bytes),
            None if queue_empty && fault == LinkFault::default() => buffer_bytes,
            None => chunk_bytes,
        }
    }

    /// After a read written straight through: one that filled the buffer
    /// is a bulk stream, so double the buffer, up to
    /// `clear_read_bytes_max`. Fewer, larger reads and writes: proxied
    /// stream measured 1.8 → 3.2 GB/s at 1 MiB, then 3.0-3.1 → 3.9-4.2
    /// GB/s at 4 MiB with the proxy alone on its runtime (`faultline bench
    /// proxy`, medians of 5, issue 21); small messages never fill a chunk,
    /// so keep 64 KiB.
    fn grow(&self, buffer: &mut Vec<u8>, count: usize) {
        let bytes_max = self.shared.config.clear_read_bytes_max;
        if count == buffer.len() && buffer.len() < bytes_max {
            buffer.resize((buffer.len() * 2).min(bytes_max), 0);
        }
    }

    /// Queue bytes a fault holds back, in pieces no longer than a read under
    /// that fault would be: a read begun while the direction was clear (the
    /// fault came during it) may be longer than a chunk.
    fn hold(&self, queue: &mut VecDeque<Chunk>, chunk: &Chunk, bytes: &[u8]) {
        let piece_bytes = self.read_limit(self.shared.config.chunk_bytes, false);
        for piece in bytes.chunks(piece_bytes) {
            queue.push_back(chunk.owned(piece));
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

fn jitter_ms(rng: &mut ChaCha8Rng, jitter_ms: u64) -> u64 {
    if jitter_ms == 0 {
        0
    } else {
        rng.random_range(0..=jitter_ms)
    }
}

/// Paces writes to a byte rate: each chunk may start only once the previous
/// ones have had their share of time.
#[derive(Default)]
struct Throttle {
    free_at: Option<Instant>,
}

impl Throttle {
    /// When `chunk` may be written: its delivery time, and not before the
    /// bytes written earlier under a cap have had their time.
    fn due(&self, chunk: &Chunk) -> Instant {
        let deliver_at = chunk.deliver_at.unwrap_or_else(Instant::now);
        match (chunk.bandwidth_bytes_per_s, self.free_at) {
            (Some(_), Some(free_at)) => deliver_at.max(free_at),
            _ => deliver_at,
        }
    }

    fn sent(&mut self, bytes: usize, rate: Option<u64>) {
        let Some(rate) = rate.filter(|r| *r > 0) else {
            self.free_at = None;
            return;
        };
        let begin = self.free_at.map_or_else(Instant::now, |t| t.max(Instant::now()));
        self.free_at = Some(begin + Duration::from_secs_f64(bytes as f64 / rate as f64));
    }
}
