//! `faultline bench proxy`: what one pass through the fault proxy costs on
//! loopback, against a direct connection to the same server.
//!
//! Latency: ping-pong of small messages to an echo server, p50/p99 round
//! trip direct and proxied; a round trip crosses the proxy twice, so the
//! added latency per hop is half the added round trip. Throughput: one bulk
//! stream into a sink that acknowledges at EOF, MB/s direct and proxied.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    /// Bulk transfers per path; the best one counts.
    #[arg(long, default_value_t = 3)]
    pub bulk_runs: u32,
    /// The proxy's read size per chunk, in KiB (default: the proxy's own).
    #[arg(long)]
    pub chunk_kib: Option<usize>,
    /// The proxy's largest read on a direction with no fault, in KiB
    /// (default: the proxy's own; the chunk size turns growing off).
    #[arg(long)]
    pub clear_read_kib: Option<usize>,
    /// Bound on each measured phase.
    #[arg(long, default_value_t = 60)]
    pub phase_timeout_s: u64,
}

/// Largest message and bulk size accepted, to keep the bench bounded.
const MESSAGE_BYTES_MAX: usize = 1 << 20;
const BULK_MIB_MAX: u64 = 16 * 1024;
const ROUNDS_MAX: u32 = 10_000_000;
const BULK_RUNS_MAX: u32 = 100;
const CHUNK_KIB_MAX: usize = 16 * 1024;
const WRITE_CHUNK_BYTES: usize = 256 * 1024;

pub fn run(args: ProxyBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=ROUNDS_MAX).contains(&args.rounds), "--rounds must be in 1..={ROUNDS_MAX}");
    anyhow::ensure!((1..=MESSAGE_BYTES_MAX).contains(&args.message_bytes), "--message-bytes must be in 1..={MESSAGE_BYTES_MAX}");
    anyhow::ensure!((1..=BULK_MIB_MAX).contains(&args.bulk_mib), "--bulk-mib must be in 1..={BULK_MIB_MAX}");
    anyhow::ensure!((1..=BULK_RUNS_MAX).contains(&args.bulk_runs), "--bulk-runs must be in 1..={BULK_RUNS_MAX}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(bench(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn bench(args: ProxyBenchArgs) -> anyhow::Result<()> {
    let phase_timeout = Duration::from_secs(args.phase_timeout_s);
    let echo = serve(echo_connection).await?;
    let sink = serve(sink_connection).await?;
    let mut config = ProxyConfig::default();
    if let Some(kib) = args.chunk_kib {
        config.chunk_bytes = kib.clamp(1, CHUNK_KIB_MAX) * 1024;
    }
    if let Some(kib) = args.clear_read_kib {
        config.clear_read_bytes_max = kib.clamp(1, CHUNK_KIB_MAX) * 1024;
    }
    println!("proxy chunk: {} KiB, reads with no fault up to {} KiB", config.chunk_bytes / 1024, config.clear_read_bytes_max / 1024);
    let proxy = FaultProxy::new(config);
    let echo_paths = [("direct", echo), ("proxied", proxy.add_route(Endpoint::Client, 0, echo).await?)];
    let sink_paths = [("direct", sink), ("proxied", proxy.add_route(Endpoint::Client, 0, sink).await?)];

    println!("round trip ({} rounds of {} bytes), microseconds:", args.rounds, args.message_bytes);
    let mut p50_direct = 0.0;
    for (name, addr) in echo_paths {
        let samples = bounded(phase_timeout, latencies(addr, &args)).await?;
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
    println!("throughput ({} MiB stream, best of {}):", args.bulk_mib, args.bulk_runs);
    let mut direct_mb_s = 0.0;
    for (name, addr) in sink_paths {
        let mb_s = bounded(phase_timeout, best_throughput(addr, bulk_bytes, args.bulk_runs)).await?;
        print!("  {name:8} {mb_s:10.1} MB/s");
        if name == "direct" {
            direct_mb_s = mb_s;
            println!();
        } else {
            println!("  {:.1} % of direct (target >= 80 %)", 100.0 * mb_s / direct_mb_s);
        }
    }
    proxy.shutdown();
    Ok(())
}

async fn bounded<T>(timeout: Duration, work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, work).await.context("bench phase exceeded --phase-timeout-s")?
}

/// Round-trip times, sorted, in microseconds.
async fn latencies(addr: SocketAddr, args: &ProxyBenchArgs) -> anyhow::Result<Vec<f64>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let message = vec![0x5au8; args.message_bytes];
    let mut reply = vec![0u8; args.message_bytes];
    let warm_up = args.rounds / 10;
    let mut samples = Vec::with_capacity(args.rounds as usize);
    for round in 0..warm_up + args.rounds {
        let start = Instant::now();
        stream.write_all(&message).await?;
        stream.read_exact(&mut reply).await?;
        if round >= warm_up {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Best MB/s (10^6 bytes per second) over `runs` transfers.
async fn best_throughput(addr: SocketAddr, bytes: u64, runs: u32) -> anyhow::Result<f64> {
    let mut best: f64 = 0.0;
    for _ in 0..runs {
        best = best.max(throughput(addr, bytes).await?);
    }
    Ok(best)
}

async fn throughput(addr: SocketAddr, bytes: u64) -> anyhow::Result<f64> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let chunk = vec![0xa5u8; WRITE_CHUNK_BYTES];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let count = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..count]).await?;
        left -= count as u64;
    }
    stream.shutdown().await?;
    let mut ack = [0u8; 8];
    stream.read_exact(&mut ack).await?;
    anyhow::ensure!(u64::from_le_bytes(ack) == bytes, "the sink counted {} bytes, not {bytes}", u64::from_le_bytes(ack));
    Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Serve each connection on 127.0.0.1 with `handler` until the runtime ends.
async fn serve<F, Fut>(handler: F) -> anyhow::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(handler(stream));
        }
    });
    Ok(addr)
}

async fn echo_connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let count = stream.read(&mut buffer).await?;
        if count == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..count]).await?;
    }
}

/// Count bytes to EOF, then answer the count.
async fn sink_connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let count = stream.read(&mut buffer).await?;
        if count == 0 {
            break;
        }
        total += count as u64;
    }
    stream.write_all(&total.to_le_bytes()).await
}
