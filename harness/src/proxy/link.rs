//! One proxied connection: two pumps (one per direction) that apply the
//! fault of their direction to every chunk, and a watcher that closes or
//! resets the connection when the fault table says so.
//!
//! Each pump is a reader and a writer joined by a bounded queue, so delay
//! and bandwidth limits hold bytes back without stopping the reads (latency
//! is pipelined, as on a real link) and at most `queue_chunks_max` chunks
//! wait per direction.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::faults::{Endpoint, Verdict};
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

struct Chunk {
    bytes: Vec<u8>,
    deliver_at: Option<Instant>,
    bandwidth_bytes_per_s: Option<u64>,
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
    async fn run(
        &self,
        reader: ReadHalf<'_>,
        writer: WriteHalf<'_>,
        rng: ChaCha8Rng,
    ) -> Result<(), PumpStop> {
        let (queue_tx, queue_rx) = mpsc::channel(self.shared.config.queue_chunks_max);
        tokio::try_join!(self.read(reader, queue_tx, rng), self.write(writer, queue_rx))?;
        Ok(())
    }

    async fn read(
        &self,
        mut reader: ReadHalf<'_>,
        queue: mpsc::Sender<Chunk>,
        mut rng: ChaCha8Rng,
    ) -> Result<(), PumpStop> {
        let mut buffer = vec![0u8; self.shared.config.chunk_bytes];
        // Runs for the life of the connection: ends at EOF or on an error.
        loop {
            let limit = self.read_limit();
            let count = reader.read(&mut buffer[..limit]).await.map_err(|_| PumpStop::Io)?;
            if count == 0 {
                return Ok(()); // Dropping the queue makes the writer send FIN.
            }
            let fault = self.shared.direction(self.from, self.to);
            if fault.drop {
                self.hole.store(true, Ordering::Relaxed);
                Counters::add(&self.shared.counters.bytes_dropped, count as u64);
                continue;
            }
            if self.hole.load(Ordering::Relaxed) {
                return Err(PumpStop::Hole);
            }
            let delay_ms = fault.delay_ms + jitter_ms(&mut rng, fault.jitter_ms);
            let chunk = Chunk {
                bytes: buffer[..count].to_vec(),
                deliver_at: (delay_ms > 0)
                    .then(|| Instant::now() + Duration::from_millis(delay_ms)),
                bandwidth_bytes_per_s: fault.bandwidth_bytes_per_s,
            };
            queue.send(chunk).await.map_err(|_| PumpStop::Io)?;
        }
    }

    /// Under a bandwidth cap, read small chunks so the rate is smooth.
    fn read_limit(&self) -> usize {
        let chunk_bytes = self.shared.config.chunk_bytes;
        match self.shared.direction(self.from, self.to).bandwidth_bytes_per_s {
            Some(rate) => ((rate / 20) as usize).clamp(1, chunk_bytes),
            None => chunk_bytes,
        }
    }

    async fn write(
        &self,
        mut writer: WriteHalf<'_>,
        mut queue: mpsc::Receiver<Chunk>,
    ) -> Result<(), PumpStop> {
        let mut throttle = Throttle::default();
        while let Some(chunk) = queue.recv().await {
            if let Some(deliver_at) = chunk.deliver_at {
                tokio::time::sleep_until(deliver_at).await;
            }
            let start = throttle.start(chunk.bandwidth_bytes_per_s);
            if let Some(start) = start {
                tokio::time::sleep_until(start).await;
            }
            writer.write_all(&chunk.bytes).await.map_err(|_| PumpStop::Io)?;
            throttle.sent(chunk.bytes.len(), chunk.bandwidth_bytes_per_s);
            Counters::add(&self.shared.counters.bytes_forwarded, chunk.bytes.len() as u64);
        }
        let _ = writer.shutdown().await;
        Ok(())
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
    /// When the next chunk may start, if it must wait.
    fn start(&mut self, rate: Option<u64>) -> Option<Instant> {
        if rate.is_none() {
            self.free_at = None;
        }
        let free_at = self.free_at?;
        (free_at > Instant::now()).then_some(free_at)
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
