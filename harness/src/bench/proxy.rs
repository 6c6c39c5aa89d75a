//! `faultline bench proxy`: what one pass through the fault proxy costs on
//! loopback, against a direct connection to the same server.
//!
//! Laid out as in a test: the client, the echo server and the sink stand in
//! for separate processes (plain threads on blocking sockets, one per
//! connection side), and only the proxy runs on a tokio runtime, built as
//! `faultline test` builds its own.
//!
//! Latency: ping-pong of small messages to an echo server, p50/p99 round
//! trip direct and proxied; a round trip crosses the proxy twice, so the
//! added latency per hop is half the added round trip. Throughput: one bulk
//! stream into a sink that acknowledges at EOF, MB/s direct and proxied.
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::proxy::{Endpoint, FaultProxy, ProxyConfig};

#[derive(clap::Args)]
pub struct ProxyBenchArgs {
    /// Round trips measured per path (after a tenth as many warm-up ones).
    #[arg(long, default_value_t = 20_000)]
    pub rounds: u32,
    /// Bytes per ping-pong message.
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,
    /// Bytes sent per bulk transfer, in MiB.
    #[arg(long, default_value_t = 512)]
    pub bulk_mib: u64,
    /// Bulk transfers per path; the median and the best are printed.
    #[arg(long, default_value_t = 5)]
    pub bulk_runs: u32,
    /// The proxy's read size per chunk, in KiB (default: the proxy's own).
    #[arg(long)]
    pub chunk_kib: Option<usize>,
    /// The proxy's largest read on a direction with no fault, in KiB
    /// (default: the proxy's own; the chunk size turns growing off).
    #[arg(long)]
    pub clear_read_kib: Option<usize>,
    /// Worker threads of the proxy's runtime (default: tokio's, one per
    /// core, as in `faultline test`).
    #[arg(long)]
    pub proxy_workers: Option<usize>,
    /// Bound on each measured phase, and on each socket read or write.
    #[arg(long, default_value_t = 60)]
    pub phase_timeout_s: u64,
}

/// Largest message and bulk size accepted, to keep the bench bounded.
const MESSAGE_BYTES_MAX: usize = 1 << 20;
const BULK_MIB_MAX: u64 = 16 * 1024;
const ROUNDS_MAX: u32 = 10_000_000;
const BULK_RUNS_MAX: u32 = 100;
const CHUNK_KIB_MAX: usize = 16 * 1024;
const PROXY_WORKERS_MAX: usize = 64;
const PHASE_TIMEOUT_S_MAX: u64 = 24 * 3600;
const WRITE_CHUNK_BYTES: usize = 256 * 1024;
const SINK_READ_BYTES: usize = 256 * 1024;
const ECHO_READ_BYTES: usize = 64 * 1024;

pub fn run(args: ProxyBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=ROUNDS_MAX).contains(&args.rounds), "--rounds must be in 1..={ROUNDS_MAX}");
    anyhow::ensure!((1..=MESSAGE_BYTES_MAX).contains(&args.message_bytes), "--message-bytes must be in 1..={MESSAGE_BYTES_MAX}");
    anyhow::ensure!((1..=BULK_MIB_MAX).contains(&args.bulk_mib), "--bulk-mib must be in 1..={BULK_MIB_MAX}");
    anyhow::ensure!((1..=BULK_RUNS_MAX).contains(&args.bulk_runs), "--bulk-runs must be in 1..={BULK_RUNS_MAX}");
    anyhow::ensure!((1..=PHASE_TIMEOUT_S_MAX).contains(&args.phase_timeout_s), "--phase-timeout-s must be in 1..={PHASE_TIMEOUT_S_MAX}");
    if let Some(workers) = args.proxy_workers {
        anyhow::ensure!((1..=PROXY_WORKERS_MAX).contains(&workers), "--proxy-workers must be in 1..={PROXY_WORKERS_MAX}");
    }
    let io_timeout = Duration::from_secs(args.phase_timeout_s);
    let echo = Server::start(echo_connection, io_timeout)?;
    let sink = Server::start(sink_connection, io_timeout)?;
    // As `faultline test` builds it (cmd/test.rs), unless told otherwise.
    // Dropped before the servers (stopped and joined then): that closes
    // the proxy's connections to them.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.proxy_workers {
        builder.worker_threads(workers);
    }
    let runtime = builder.enable_all().build().context("starting the proxy's tokio runtime")?;
    bench(&runtime, &args, echo.addr, sink.addr)?;
    Ok(ExitCode::SUCCESS)
}

fn bench(runtime: &tokio::runtime::Runtime, args: &ProxyBenchArgs, echo: SocketAddr, sink: SocketAddr) -> anyhow::Result<()> {
    let phase_timeout = Duration::from_secs(args.phase_timeout_s);
    let mut config = ProxyConfig::default();
    if let Some(kib) = args.chunk_kib {
        config.chunk_bytes = kib.clamp(1, CHUNK_KIB_MAX) * 1024;
    }
    if let Some(kib) = args.clear_read_kib {
        config.clear_read_bytes_max = kib.clamp(1, CHUNK_KIB_MAX) * 1024;
    }
    println!("proxy chunk: {} KiB, reads with no fault up to {} KiB", config.chunk_bytes / 1024, config.clear_read_bytes_max / 1024);
    println!(
        "proxy runtime: {} worker threads; client, echo server and sink on their own threads (blocking sockets)",
        runtime.metrics().num_workers()
    );
    let proxy = FaultProxy::new(config);
    let (echo_proxied, sink_proxied) = runtime.block_on(async {
        anyhow::Ok((proxy.add_route(Endpoint::Client, 0, echo).await?, proxy.add_route(Endpoint::Client, 0, sink).await?))
    })?;
    let echo_paths = [("direct", echo), ("proxied", echo_proxied)];
    let sink_paths = [("direct", sink), ("proxied", sink_proxied)];

    println!("round trip ({} rounds of {} bytes), microseconds:", args.rounds, args.message_bytes);
    let mut p50_direct = 0.0;
    for (name, addr) in echo_paths {
        let samples = latencies(addr, args, phase_timeout)?;
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        print!("  {name:8} p50 {p50:8.1}  p99 {p99:8.1}  max {:8.1}", percentile(&samples, 1.0));
        if name == "direct" {
            p50_direct = p50;
            println!();
        } else {
            // A round trip crosses the proxy twice.
            println!("  added per hop at p50: {:.1} (target < 50)", (p50 - p50_direct) / 2.0);
        }
    }

    let bulk_bytes = args.bulk_mib << 20;
    // The median is the figure to compare: the best of a few keeps one
    // direct transfer's rare fast mode (9-10 against 3.4-4.8 GB/s here).
    println!("throughput ({} MiB stream, {} runs per path), MB/s:", args.bulk_mib, args.bulk_runs);
    let mut direct = (0.0, 0.0);
    for (name, addr) in sink_paths {
        let mut runs = throughputs(addr, bulk_bytes, args.bulk_runs, phase_timeout)?;
        runs.sort_by(f64::total_cmp);
        let (median, best) = (runs[runs.len() / 2], runs[runs.len() - 1]);
        print!("  {name:8} median {median:8.1}  best {best:8.1}");
        if name == "direct" {
            direct = (median, best);
            println!();
        } else {
            println!(
                "  {:.1} % of direct by median (target >= 80 %), {:.1} % by best",
                100.0 * median / direct.0,
                100.0 * best / direct.1
            );
        }
        let listed: Vec<String> = runs.iter().map(|r| format!("{r:.1}")).collect();
        println!("    each run, sorted: {}", listed.join(" "));
    }
    proxy.shutdown();
    Ok(())
}

/// A client connection, bounded like every socket of the bench.
fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    bound(&stream, timeout)?;
    Ok(stream)
}

/// No Nagle (small messages), and no read or write waits past `timeout`.
fn bound(stream: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

fn check_deadline(deadline: Instant) -> anyhow::Result<()> {
    anyhow::ensure!(Instant::now() < deadline, "bench phase exceeded --phase-timeout-s");
    Ok(())
}

/// Round-trip times, sorted, in microseconds.
fn latencies(addr: SocketAddr, args: &ProxyBenchArgs, phase_timeout: Duration) -> anyhow::Result<Vec<f64>> {
    let deadline = Instant::now() + phase_timeout;
    let mut stream = connect(addr, phase_timeout)?;
    let message = vec![0x5au8; args.message_bytes];
    let mut reply = vec![0u8; args.message_bytes];
    let warm_up = args.rounds / 10;
    let mut samples = Vec::with_capacity(args.rounds as usize);
    for round in 0..warm_up + args.rounds {
        let start = Instant::now();
        stream.write_all(&message).context("sending a ping")?;
        stream.read_exact(&mut reply).context("reading a pong")?;
        if round >= warm_up {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
        if round % 1024 == 0 {
            check_deadline(deadline)?;
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// MB/s (10^6 bytes per second) of each of `runs` transfers, all within
/// one phase timeout.
fn throughputs(addr: SocketAddr, bytes: u64, runs: u32, phase_timeout: Duration) -> anyhow::Result<Vec<f64>> {
    let deadline = Instant::now() + phase_timeout;
    (0..runs).map(|_| throughput(addr, bytes, phase_timeout, deadline)).collect()
}

fn throughput(addr: SocketAddr, bytes: u64, io_timeout: Duration, deadline: Instant) -> anyhow::Result<f64> {
    let mut stream = connect(addr, io_timeout)?;
    let chunk = vec![0xa5u8; WRITE_CHUNK_BYTES];
    let start = Instant::now();
    // Bounded: `bytes` is at most BULK_MIB_MAX MiB.
    let mut left = bytes;
    while left > 0 {
        let count = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..count]).context("sending the stream")?;
        left -= count as u64;
        check_deadline(deadline)?;
    }
    stream.shutdown(Shutdown::Write)?;
    let mut ack = [0u8; 8];
    stream.read_exact(&mut ack).context("reading the sink's count")?;
    let elapsed = start.elapsed();
    anyhow::ensure!(u64::from_le_bytes(ack) == bytes, "the sink counted {} bytes, not {bytes}", u64::from_le_bytes(ack));
    Ok(bytes as f64 / elapsed.as_secs_f64() / 1e6)
}

/// A server on 127.0.0.1 that stands in for a node process: one thread
/// accepts, one thread per connection runs `handler` on a blocking socket.
/// Dropping it stops accepting and joins every thread.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// Connections one server accepts at most: the bench opens a handful.
const CONNECTIONS_MAX: usize = 4 * BULK_RUNS_MAX as usize + 16;

impl Server {
    fn start(handler: fn(TcpStream) -> std::io::Result<()>, io_timeout: Duration) -> anyhow::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a bench server")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let acceptor = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let mut connections = Vec::new();
                for _ in 0..CONNECTIONS_MAX {
                    let Ok((stream, _)) = listener.accept() else { continue };
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    if bound(&stream, io_timeout).is_err() {
                        continue;
                    }
                    let spawned = std::thread::Builder::new().name("bench-conn".into()).spawn(move || {
                        let _ = handler(stream);
                    });
                    connections.extend(spawned.ok());
                }
                for connection in connections {
                    let _ = connection.join();
                }
            })
            .context("starting a bench server thread")?;
        Ok(Server { addr, stop, acceptor: Some(acceptor) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor from accept(); it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Echo until EOF; each read and write is bounded by the socket timeouts.
fn echo_connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = vec![0u8; ECHO_READ_BYTES];
    // Runs for the life of the connection: ends at EOF, an error or a timeout.
    loop {
        let count = stream.read(&mut buffer)?;
        if count == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..count])?;
    }
}

/// Count bytes to EOF, then answer the count.
fn sink_connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = vec![0u8; SINK_READ_BYTES];
    let mut total: u64 = 0;
    // Runs for the life of the connection: ends at EOF, an error or a timeout.
    loop {
        let count = stream.read(&mut buffer)?;
        if count == 0 {
            break;
        }
        total += count as u64;
    }
    stream.write_all(&total.to_le_bytes())
}
