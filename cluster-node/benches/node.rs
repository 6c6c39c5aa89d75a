//! Benchmark: a 3-node faultline-node cluster on loopback (fsync on), put
//! latency (p50/p99) and throughput with 1, 8 and 64 concurrent clients, each
//! sending one put at a time on its own connection. If `etcd` is on PATH, a
//! 3-node etcd cluster gets the same load over its HTTP/JSON gateway in the
//! same run. Run: `cargo bench -p faultline-node --bench node`.
//! `FAULTLINE_BENCH_SECONDS` sets the time per load level (default 3).
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENT_COUNTS: [usize; 3] = [1, 8, 64];
const VALUE_BYTES: usize = 100;
const STARTUP_WAIT_MS_MAX: u64 = 20_000;

/// `n` distinct free ports: the probe listeners stay open until all are chosen.
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect()
}

/// Child processes killed and reaped on drop, and their data dir removed.
struct Processes {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn bench_dir(name: &str) -> PathBuf {
    // Same filesystem as the tests: the fsync cost is part of what we measure.
    let dir = std::env::temp_dir().join(format!("fl-bench-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the bench dir");
    dir
}

/// A put client for one system: one connection, one request at a time.
trait Putter: Send {
    fn put(&mut self, key: &str, value: &str) -> bool;
}

struct Stats {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

fn run_load<P: Putter + 'static>(
    clients: usize,
    seconds: u64,
    connect: &(dyn Fn() -> P + Sync),
) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let mut putter = connect();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let value = "v".repeat(VALUE_BYTES);
                let (mut latencies_us, mut errors) = (Vec::new(), 0u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = Instant::now();
                    if putter.put(&format!("c{c}-k{}", n % 1000), &value) {
                        latencies_us.push(t.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                (latencies_us, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut stats = Stats {
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for h in handles {
        let (l, e) = h.join().expect("client thread");
        stats.latencies_us.extend(l);
        stats.errors += e;
    }
    stats.elapsed = start.elapsed();
    stats
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    sorted_us[i] as f64 / 1000.0
}

fn report(system: &str, clients: usize, mut stats: Stats) {
    stats.latencies_us.sort_unstable();
    let ops = stats.latencies_us.len();
    println!(
        "{system:<14} clients={clients:<3} puts={ops:<7} errors={:<4} throughput={:>9.1} ops/s  p50={:>7.2} ms  p99={:>7.2} ms",
        stats.errors,
        ops as f64 / stats.elapsed.as_secs_f64(),
        percentile_ms(&stats.latencies_us, 0.50),
        percentile_ms(&stats.latencies_us, 0.99),
    );
}

// ---------- faultline-node ----------

struct NodePutter {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    id: u64,
    line: String,
}

impl NodePutter {
    fn connect(addr: SocketAddr) -> NodePutter {
        let stream = TcpStream::connect(addr).expect("connect to the leader");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let writer = stream.try_clone().expect("clone stream");
        NodePutter {
            reader: BufReader::new(stream),
            writer,
            id: 0,
            line: String::new(),
        }
    }

    fn call(&mut self, request: &str) -> Option<serde_json::Value> {
        self.writer.write_all(request.as_bytes()).ok()?;
        self.line.clear();
        self.reader.read_line(&mut self.line).ok()?;
        serde_json::from_str(&self.line).ok()
    }
}

impl Putter for NodePutter {
    fn put(&mut self, key: &str, value: &str) -> bool {
        self.id += 1;
        let request = format!(
            "{{\"id\":{},\"op\":\"put\",\"key\":\"{key}\",\"value\":\"{value}\"}}\n",
            self.id
        );
        self.call(&request).is_some_and(|a| a["ok"] == true)
    }
}

fn start_faultline(dir: &Path) -> (Processes, Vec<SocketAddr>) {
    let mut clients = free_addrs(6);
    let peers = clients.split_off(3);
    let mut children = Vec::new();
    for id in 1..=3usize {
        let peer_list: Vec<String> = (1..=3)
            .filter(|&p| p != id)
            .map(|p| format!("{p}={}", peers[p - 1]))
            .collect();
        let child = Command::new(env!("CARGO_BIN_EXE_faultline-node"))
            .args([
                "--id",
                &id.to_string(),
                "--client-addr",
                &clients[id - 1].to_string(),
            ])
            .args([
                "--peer-addr",
                &peers[id - 1].to_string(),
                "--peers",
                &peer_list.join(","),
            ])
            .arg("--data-dir")
            .arg(dir.join(format!("n{id}")))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn faultline-node");
        children.push(child);
    }
    (
        Processes {
            children,
            dir: dir.to_path_buf(),
        },
        clients,
    )
}

fn faultline_leader(clients: &[SocketAddr]) -> Option<SocketAddr> {
    let deadline = Instant::now() + Duration::from_millis(STARTUP_WAIT_MS_MAX);
    while Instant::now() < deadline {
        for &addr in clients {
            let Ok(stream) = TcpStream::connect(addr) else {
                continue;
            };
            drop(stream);
            let mut c = NodePutter::connect(addr);
            if c.call("{\"id\":1,\"op\":\"status\"}\n")
                .is_some_and(|s| s["value"]["role"] == "leader")
            {
                return Some(addr);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn bench_faultline(seconds: u64) {
    let dir = bench_dir("faultline");
    let (_processes, clients) = start_faultline(&dir);
    let Some(leader) = faultline_leader(&clients) else {
        println!("faultline-node: no leader within {STARTUP_WAIT_MS_MAX} ms; skipped");
        return;
    };
    for n in CLIENT_COUNTS {
        report(
            "faultline-node",
            n,
            run_load(n, seconds, &|| NodePutter::connect(leader)),
        );
    }
}

// ---------- etcd over its HTTP/JSON gateway ----------

struct EtcdPutter {
    stream: BufReader<TcpStream>,
    host: String,
}

impl EtcdPutter {
    fn connect(addr: SocketAddr) -> Option<EtcdPutter> {
        let stream = TcpStream::connect(addr).ok()?;
        stream.set_nodelay(true).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        Some(EtcdPutter {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    fn post(&mut self, path: &str, body: &str) -> Option<String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).ok()?;
        read_http_body(&mut self.stream)
    }
}

/// Reads one HTTP/1.1 response (Content-Length or chunked); None unless 200.
fn read_http_body(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let ok = line.split_whitespace().nth(1) == Some("200");
    let (mut length, mut chunked) = (None, false);
    for _ in 0..100 {
        line.clear();
        r.read_line(&mut line).ok()?;
        let header = line.trim().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        chunked |= header == "transfer-encoding: chunked";
    }
    let mut body = Vec::new();
    if chunked {
        for _ in 0..10_000 {
            line.clear();
            r.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length?, 0);
        r.read_exact(&mut body).ok()?;
    }
    ok.then(|| String::from_utf8_lossy(&body).into_owned())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Putter for EtcdPutter {
    fn put(&mut self, key: &str, value: &str) -> bool {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        self.post("/v3/kv/put", &body).is_some()
    }
}

fn start_etcd(dir: &Path) -> Option<(Processes, Vec<SocketAddr>)> {
    let mut clients = free_addrs(6);
    let peers = clients.split_off(3);
    let cluster: Vec<String> = (0..3)
        .map(|i| format!("e{i}=http://{}", peers[i]))
        .collect();
    let mut processes = Processes {
        children: Vec::new(),
        dir: dir.to_path_buf(),
    };
    for i in 0..3 {
        let child = Command::new("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(dir.join(format!("e{i}")))
            .args(["--listen-client-urls", &format!("http://{}", clients[i])])
            .args(["--advertise-client-urls", &format!("http://{}", clients[i])])
            .args(["--listen-peer-urls", &format!("http://{}", peers[i])])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{}", peers[i]),
            ])
            .args([
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-state",
                "new",
            ])
            .args(["--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        processes.children.push(child);
    }
    Some((processes, clients))
}

fn etcd_leader(clients: &[SocketAddr]) -> Option<SocketAddr> {
    let deadline = Instant::now() + Duration::from_millis(STARTUP_WAIT_MS_MAX);
    while Instant::now() < deadline {
        for &addr in clients {
            let status =
                EtcdPutter::connect(addr).and_then(|mut c| c.post("/v3/maintenance/status", "{}"));
            let Some(status) =
                status.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            else {
                continue;
            };
            let member = &status["header"]["member_id"];
            if !member.is_null() && *member == status["leader"] {
                return Some(addr);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn bench_etcd(seconds: u64) {
    let on_path = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !on_path {
        println!("etcd: not on PATH; comparison skipped (apt-get install etcd-server)");
        return;
    }
    let dir = bench_dir("etcd");
    let Some((_processes, clients)) = start_etcd(&dir) else {
        println!("etcd: could not start; comparison skipped");
        return;
    };
    let Some(leader) = etcd_leader(&clients) else {
        println!("etcd: no leader within {STARTUP_WAIT_MS_MAX} ms; comparison skipped");
        return;
    };
    for n in CLIENT_COUNTS {
        report(
            "etcd",
            n,
            run_load(n, seconds, &|| {
                EtcdPutter::connect(leader).expect("connect to the etcd leader")
            }),
        );
    }
}

fn main() {
    // The etcd gateway wants base64; check the encoder against RFC 4648 before trusting it.
    assert_eq!(
        (base64(b"foob").as_str(), base64(b"foobar").as_str()),
        ("Zm9vYg==", "Zm9vYmFy")
    );
    let seconds = std::env::var("FAULTLINE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    println!("3-node clusters on 127.0.0.1, fsync on, {VALUE_BYTES}-byte values, {seconds} s per level, data in {}", std::env::temp_dir().display());
    bench_faultline(seconds);
    bench_etcd(seconds);
}
