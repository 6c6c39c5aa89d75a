//! Benchmark: a 3-node faultline-node cluster on loopback (fsync on), put
//! latency (p50/p99) and throughput with 1, 8 and 64 concurrent clients, each
//! sending one put at a time on its own connection. Puts carry `client` and
//! `seq` as the harness's do, so the at-most-once path is what is measured.
//! If `etcd` is on PATH, a 3-node etcd cluster gets the same load over its
//! HTTP/JSON gateway in the same run. Run: `cargo bench --workspace --bench node`.
//! `FAULTLINE_BENCH_SECONDS` sets the time per load level (default 3).
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENT_COUNTS: [usize; 3] = [1, 8, 64];
const VALUE_BYTES: usize = 100;
const STARTUP_WAIT_MS_MAX: u64 = 20_000;
/// How long one put may wait for its answer before it counts as an error.
const READ_TIMEOUT_MS: u64 = 10_000;
const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Dials per (re)connect before a client gives up, this far apart.
const CONNECT_ATTEMPTS_MAX: u32 = 5;
const CONNECT_BACKOFF_MS: u64 = 100;
/// Times one client re-dials after its connection broke; then it stops, so
/// a dead server ends the level instead of being counted as errors in a spin.
const RECONNECTS_PER_CLIENT_MAX: u32 = 20;
/// Late answers (to puts that timed out) skipped while waiting for the
/// current one: the node keeps at most this many requests per connection.
const STALE_REPLIES_MAX: usize = 256;

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

/// What one put came to.
#[derive(Debug, PartialEq, Eq)]
enum PutOutcome {
    Ok,
    /// Refused, timed out or cut off: counted as an error, the client goes on.
    Failed,
    /// The server cannot be reached any more: the client stops.
    Stopped,
}

/// A put client for one system: one connection, one request at a time.
trait Putter: Send {
    fn put(&mut self, key: &str, value: &str) -> PutOutcome;
}

/// Dials `addr` up to `attempts` times; reads on the stream give up after `read_timeout`.
fn connect_with_retries(
    addr: SocketAddr,
    attempts: u32,
    read_timeout: Duration,
) -> Option<TcpStream> {
    for attempt in 0..attempts {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(CONNECT_BACKOFF_MS));
        }
        let Ok(stream) =
            TcpStream::connect_timeout(&addr, Duration::from_millis(CONNECT_TIMEOUT_MS))
        else {
            continue;
        };
        let configured =
            stream.set_nodelay(true).is_ok() && stream.set_read_timeout(Some(read_timeout)).is_ok();
        if configured {
            return Some(stream);
        }
    }
    None
}

/// Re-dials budget of one client: the first connection is free.
struct Dialer {
    addr: SocketAddr,
    read_timeout: Duration,
    connected_once: bool,
    reconnects_left: u32,
}

impl Dialer {
    fn new(addr: SocketAddr) -> Dialer {
        Dialer {
            addr,
            read_timeout: Duration::from_millis(READ_TIMEOUT_MS),
            connected_once: false,
            reconnects_left: RECONNECTS_PER_CLIENT_MAX,
        }
    }

    /// A fresh connection, or None once the budget is spent or dialling failed.
    fn dial(&mut self) -> Option<TcpStream> {
        if self.connected_once {
            self.reconnects_left = self.reconnects_left.checked_sub(1)?;
        }
        let stream = connect_with_retries(self.addr, CONNECT_ATTEMPTS_MAX, self.read_timeout)?;
        self.connected_once = true;
        Some(stream)
    }
}

struct Stats {
    latencies_us: Vec<u64>,
    errors: u64,
    /// Clients that gave up before the level ended (server unreachable).
    clients_stopped: usize,
    elapsed: Duration,
}

/// Runs `clients` threads for `seconds`; `connect(c)` builds client `c`.
fn run_load<P: Putter + 'static>(
    clients: usize,
    seconds: u64,
    connect: &(dyn Fn(usize) -> P + Sync),
) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let mut putter = connect(c);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let value = "v".repeat(VALUE_BYTES);
                let (mut latencies_us, mut errors) = (Vec::new(), 0u64);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = Instant::now();
                    match putter.put(&format!("c{c}-k{}", n % 1000), &value) {
                        PutOutcome::Ok => latencies_us.push(t.elapsed().as_micros() as u64),
                        PutOutcome::Failed => errors += 1,
                        PutOutcome::Stopped => return (latencies_us, errors, true),
                    }
                }
                (latencies_us, errors, false)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut stats = Stats {
        latencies_us: Vec::new(),
        errors: 0,
        clients_stopped: 0,
        elapsed: Duration::ZERO,
    };
    for h in handles {
        let (l, e, stopped) = h.join().expect("client thread");
        stats.latencies_us.extend(l);
        stats.errors += e;
        stats.clients_stopped += usize::from(stopped);
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
    let stopped = match stats.clients_stopped {
        0 => String::new(),
        n => format!("  ({n} clients stopped: server unreachable)"),
    };
    println!(
        "{system:<14} clients={clients:<3} puts={ops:<7} errors={:<4} throughput={:>9.1} ops/s  p50={:>7.2} ms  p99={:>7.2} ms{stopped}",
        stats.errors,
        ops as f64 / stats.elapsed.as_secs_f64(),
        percentile_ms(&stats.latencies_us, 0.50),
        percentile_ms(&stats.latencies_us, 0.99),
    );
}

// ---------- faultline-node ----------

/// One client connection to a node. `partial` holds the start of an answer
/// line a read timeout interrupted, so the rest still parses when it comes.
struct NodeConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    partial: Vec<u8>,
}

/// How waiting for one answer ended.
enum Reply {
    Answer(serde_json::Value),
    /// No answer within the read timeout; it may still come, late.
    TimedOut,
    /// Closed, failed, or not speaking the protocol: drop the connection.
    Broken,
}

impl NodeConnection {
    fn open(stream: TcpStream) -> Option<NodeConnection> {
        let writer = stream.try_clone().ok()?;
        Some(NodeConnection {
            reader: BufReader::new(stream),
            writer,
            partial: Vec::new(),
        })
    }

    /// Sends `request` (whose id is `id`) and waits for the answer carrying
    /// that id. Answers to earlier ids belong to requests that timed out;
    /// pairing one with this request would shift every later pairing.
    fn exchange(&mut self, id: u64, request: &str) -> Reply {
        if self.writer.write_all(request.as_bytes()).is_err() {
            return Reply::Broken;
        }
        for _ in 0..=STALE_REPLIES_MAX {
            match self.reader.read_until(b'\n', &mut self.partial) {
                // Closed, before or in the middle of an answer.
                Ok(0) => return Reply::Broken,
                Ok(_) if !self.partial.ends_with(b"\n") => return Reply::Broken,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Reply::TimedOut
                }
                Err(_) => return Reply::Broken,
            }
            let line = std::mem::take(&mut self.partial);
            let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&line) else {
                return Reply::Broken;
            };
            match answer["id"].as_u64() {
                Some(answered) if answered == id => return Reply::Answer(answer),
                Some(answered) if answered < id => continue,
                _ => return Reply::Broken,
            }
        }
        Reply::Broken
    }
}

/// A harness-like writer: a `client` name and increasing `seq` on every put,
/// so the node runs its at-most-once session bookkeeping as in a test.
struct NodePutter {
    dialer: Dialer,
    connection: Option<NodeConnection>,
    client: String,
    /// Request ids and seqs both start at 1 and grow by one per put.
    seq: u64,
}

impl NodePutter {
    fn new(addr: SocketAddr, client: String) -> NodePutter {
        NodePutter {
            dialer: Dialer::new(addr),
            connection: None,
            client,
            seq: 0,
        }
    }
}

impl Putter for NodePutter {
    fn put(&mut self, key: &str, value: &str) -> PutOutcome {
        if self.connection.is_none() {
            let Some(connection) = self.dialer.dial().and_then(NodeConnection::open) else {
                return PutOutcome::Stopped;
            };
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut().expect("connected above");
        self.seq += 1;
        let request = format!(
            "{{\"id\":{seq},\"client\":\"{}\",\"seq\":{seq},\"op\":\"put\",\"key\":\"{key}\",\"value\":\"{value}\"}}\n",
            self.client,
            seq = self.seq,
        );
        match connection.exchange(self.seq, &request) {
            Reply::Answer(answer) if answer["ok"] == true => PutOutcome::Ok,
            Reply::Answer(_) | Reply::TimedOut => PutOutcome::Failed,
            Reply::Broken => {
                self.connection = None;
                PutOutcome::Failed
            }
        }
    }
}

/// Runs the node client against a scripted server before trusting its
/// numbers: the late answer to a timed-out put must not be taken for the
/// next put's, a closed connection is re-dialled, and a client whose server
/// is gone stops instead of counting errors in a spin.
fn check_node_client() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the client self-check");
    let addr = listener.local_addr().expect("local addr");
    let server = std::thread::spawn(move || -> std::io::Result<String> {
        let answer = |w: &mut TcpStream, id: u64, ok: bool| {
            let line = match ok {
                true => format!("{{\"id\":{id},\"ok\":true,\"value\":null}}\n"),
                false => format!(
                    "{{\"id\":{id},\"ok\":false,\"error\":\"overloaded\",\"definite\":true}}\n"
                ),
            };
            w.write_all(line.as_bytes())
        };
        let (mut first, _) = listener.accept()?;
        let mut reader = BufReader::new(first.try_clone()?);
        let mut line = String::new();
        // Put 1 stays unanswered past the client's timeout; put 2 follows.
        reader.read_line(&mut line)?;
        reader.read_line(&mut line)?;
        answer(&mut first, 1, true)?;
        answer(&mut first, 2, false)?;
        drop((reader, first));
        // Put 3 meets the closed connection; put 4 comes on a new one.
        let (mut second, _) = listener.accept()?;
        let mut reader = BufReader::new(second.try_clone()?);
        line.clear();
        reader.read_line(&mut line)?;
        answer(&mut second, 4, true)?;
        // Gone for good: put 5 meets the closed connection, put 6 cannot dial.
        Ok(line)
    });
    let mut putter = NodePutter::new(addr, "self-check".to_string());
    putter.dialer.read_timeout = Duration::from_millis(50);
    let mut outcomes: Vec<PutOutcome> = (0..4).map(|_| putter.put("k", "v")).collect();
    // Joined before put 5 so the server's sockets are surely closed.
    let put_4 = server
        .join()
        .expect("self-check server")
        .expect("self-check server I/O");
    outcomes.extend((4..6).map(|_| putter.put("k", "v")));
    use PutOutcome::{Failed, Stopped};
    assert_eq!(
        outcomes,
        [Failed, Failed, Failed, PutOutcome::Ok, Failed, Stopped],
        "puts 1-6: timed out, own (failed) answer despite the late ok for put 1, \
         connection closed, re-dialled, closed, server gone"
    );
    assert!(
        put_4.contains("\"client\":\"self-check\"") && put_4.contains("\"seq\":4"),
        "puts must carry client and seq: {put_4}"
    );
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
            let Some(mut c) = connect_with_retries(addr, 1, Duration::from_millis(READ_TIMEOUT_MS))
                .and_then(NodeConnection::open)
            else {
                continue;
            };
            let leads = match c.exchange(1, "{\"id\":1,\"op\":\"status\"}\n") {
                Reply::Answer(status) => status["value"]["role"] == "leader",
                Reply::TimedOut | Reply::Broken => false,
            };
            if leads {
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
            run_load(n, seconds, &|c| {
                NodePutter::new(leader, format!("bench-{n}-{c}"))
            }),
        );
    }
}

// ---------- etcd over its HTTP/JSON gateway ----------

/// One etcd client. HTTP/1.1 answers carry no request id, so after any
/// failure (a timeout included, whose answer may still arrive) the
/// connection is dropped and the next put dials a fresh one.
struct EtcdPutter {
    dialer: Dialer,
    stream: Option<BufReader<TcpStream>>,
    host: String,
}

impl EtcdPutter {
    fn new(addr: SocketAddr) -> EtcdPutter {
        EtcdPutter {
            dialer: Dialer::new(addr),
            stream: None,
            host: addr.to_string(),
        }
    }

    /// Posts on the open connection; None (and the connection dropped) on failure.
    fn post(&mut self, path: &str, body: &str) -> Option<String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let stream = self.stream.as_mut()?;
        let answer = stream
            .get_mut()
            .write_all(request.as_bytes())
            .ok()
            .and_then(|()| read_http_body(stream));
        if answer.is_none() {
            self.stream = None;
        }
        answer
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
    fn put(&mut self, key: &str, value: &str) -> PutOutcome {
        if self.stream.is_none() {
            let Some(stream) = self.dialer.dial() else {
                return PutOutcome::Stopped;
            };
            self.stream = Some(BufReader::new(stream));
        }
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        match self.post("/v3/kv/put", &body) {
            Some(_) => PutOutcome::Ok,
            None => PutOutcome::Failed,
        }
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
            let status = connect_with_retries(addr, 1, Duration::from_millis(READ_TIMEOUT_MS))
                .and_then(|stream| {
                    let mut c = EtcdPutter::new(addr);
                    c.stream = Some(BufReader::new(stream));
                    c.post("/v3/maintenance/status", "{}")
                });
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
            run_load(n, seconds, &|_| EtcdPutter::new(leader)),
        );
    }
}

fn main() {
    // The etcd gateway wants base64; check the encoder against RFC 4648 before trusting it.
    assert_eq!(
        (base64(b"foob").as_str(), base64(b"foobar").as_str()),
        ("Zm9vYg==", "Zm9vYmFy")
    );
    check_node_client();
    let seconds = std::env::var("FAULTLINE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    println!("3-node clusters on 127.0.0.1, fsync on, {VALUE_BYTES}-byte values, {seconds} s per level, data in {}", std::env::temp_dir().display());
    bench_faultline(seconds);
    bench_etcd(seconds);
}
