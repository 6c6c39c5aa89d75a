//! The fault proxy against an in-test echo server: forwarding, partitions
//! (both ways, one way, closing established connections), heal, delay,
//! reset, bandwidth, faults changed mid-stream, and source attribution from
//! the socket table.
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faultline::proxy::{Endpoint, FaultProxy, Grudge, LinkFault, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const QUIET_MS: u64 = 300;
const WAIT_MS: u64 = 3_000;

/// An echo server that also reports every byte it receives.
async fn echo_server() -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let _ = seen_tx.try_send(buffer[..n].to_vec());
                            if stream.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, seen_rx)
}

fn proxy() -> FaultProxy {
    FaultProxy::new(ProxyConfig { seed: 7, ..ProxyConfig::default() })
}

fn grudge(pairs: &[(usize, &[usize])]) -> Grudge {
    pairs.iter().map(|(r, s)| (*r, s.iter().copied().collect::<BTreeSet<_>>())).collect()
}

/// Write `message` and read the same number of bytes back, within `wait_ms`.
/// Both at once: a message larger than the sockets' buffers would never be
/// written whole before its echo is read.
async fn round_trip(stream: &mut TcpStream, message: &[u8], wait_ms: u64) -> Option<Vec<u8>> {
    let (mut reader, mut writer) = stream.split();
    let mut reply = vec![0u8; message.len()];
    let both = async { tokio::join!(writer.write_all(message), reader.read_exact(&mut reply)) };
    match tokio::time::timeout(Duration::from_millis(wait_ms), both).await {
        Ok((Ok(()), Ok(_))) => Some(reply),
        _ => None,
    }
}

/// True when the peer closed or reset the stream within `WAIT_MS`.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(WAIT_MS), stream.read(&mut byte));
    matches!(read.await, Ok(Ok(0)) | Ok(Err(_)))
}

async fn nothing_seen(seen: &mut mpsc::Receiver<Vec<u8>>) -> bool {
    tokio::time::timeout(Duration::from_millis(QUIET_MS), seen.recv()).await.is_err()
}

#[tokio::test]
async fn forwards_bytes_both_ways() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Client, 0, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    for message in [&b"hello"[..], &[7u8; 100_000][..]] {
        assert_eq!(round_trip(&mut stream, message, WAIT_MS).await.as_deref(), Some(message));
    }
    let stats = proxy.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.bytes_forwarded, 2 * 100_005);
}

#[tokio::test]
async fn two_way_partition_closes_established_and_new_connections() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Node(0), 1, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut stream, b"before", WAIT_MS).await.is_some());
    proxy.partition(&grudge(&[(0, &[1]), (1, &[0])]));
    assert!(closed(&mut stream).await, "an established connection of a cut pair must close");
    let mut fresh = TcpStream::connect(listen).await.unwrap();
    assert!(closed(&mut fresh).await, "a new connection of a cut pair must close");
    assert!(proxy.stats().connections_cut >= 2);
}

#[tokio::test]
async fn one_way_partition_drops_one_direction_only() {
    let (echo, mut seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Node(0), 1, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut stream, b"x", WAIT_MS).await.is_some());
    assert_eq!(seen.recv().await.unwrap(), b"x");

    // Node 1 loses what node 0 sends: the server sees nothing.
    proxy.partition(&grudge(&[(1, &[0])]));
    assert!(round_trip(&mut stream, b"lost", QUIET_MS).await.is_none());
    assert!(nothing_seen(&mut seen).await);
    let mut other = TcpStream::connect(listen).await.unwrap();

    // Node 0 loses what node 1 sends: the server sees it, the reply is lost.
    proxy.partition(&grudge(&[(0, &[1])]));
    assert!(round_trip(&mut other, b"seen", QUIET_MS).await.is_none());
    assert_eq!(seen.recv().await.unwrap(), b"seen");
    assert!(proxy.stats().bytes_dropped >= 8);
}

#[tokio::test]
async fn heal_restores_and_closes_streams_with_holes() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Node(2), 0, echo).await.unwrap();
    let mut holed = TcpStream::connect(listen).await.unwrap();
    let mut untouched = TcpStream::connect(listen).await.unwrap();
    proxy.partition(&grudge(&[(0, &[2])]));
    assert!(round_trip(&mut holed, b"gone", QUIET_MS).await.is_none());
    proxy.heal();
    assert!(closed(&mut holed).await, "a stream that lost bytes must not resume");
    assert_eq!(round_trip(&mut untouched, b"ok", WAIT_MS).await.as_deref(), Some(&b"ok"[..]));
    let mut fresh = TcpStream::connect(listen).await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"new", WAIT_MS).await.as_deref(), Some(&b"new"[..]));
    assert_eq!(proxy.faults(), Default::default());
}

#[tokio::test]
async fn clients_are_not_partitioned() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Client, 0, echo).await.unwrap();
    proxy.partition(&grudge(&[(0, &[1, 2]), (1, &[0]), (2, &[0])]));
    let mut stream = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut stream, b"client", WAIT_MS).await.is_some());
}

#[tokio::test]
async fn delay_adds_latency_per_direction() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Client, 0, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    let slow = |delay_ms| LinkFault { delay_ms, jitter_ms: 20, ..LinkFault::default() };
    proxy.set_link_fault(Endpoint::Client, Endpoint::Node(0), slow(100));
    proxy.set_link_fault(Endpoint::Node(0), Endpoint::Client, slow(50));
    let start = Instant::now();
    assert!(round_trip(&mut stream, b"slow", WAIT_MS).await.is_some());
    assert!(start.elapsed() >= Duration::from_millis(150), "took {:?}", start.elapsed());
    proxy.heal();
    let start = Instant::now();
    assert!(round_trip(&mut stream, b"fast", WAIT_MS).await.is_some());
    assert!(start.elapsed() < Duration::from_millis(100), "took {:?}", start.elapsed());
}

#[tokio::test]
async fn reset_resets_established_and_new_connections() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Node(1), 0, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut stream, b"x", WAIT_MS).await.is_some());
    let reset = LinkFault { reset: true, ..LinkFault::default() };
    proxy.set_link_fault(Endpoint::Node(0), Endpoint::Node(1), reset);
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(WAIT_MS), stream.read(&mut byte)).await;
    let error = read.expect("reset in time").expect_err("a reset, not data or EOF");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    let mut fresh = TcpStream::connect(listen).await.unwrap();
    assert!(closed(&mut fresh).await);
}

#[tokio::test]
async fn drop_link_fault_blackholes_one_direction() {
    let (echo, mut seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Client, 3, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    let drop = LinkFault { drop: true, ..LinkFault::default() };
    proxy.set_link_fault(Endpoint::Client, Endpoint::Node(3), drop);
    assert!(round_trip(&mut stream, b"void", QUIET_MS).await.is_none());
    assert!(nothing_seen(&mut seen).await);
}

#[tokio::test]
async fn bandwidth_limit_paces_bytes() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Client, 0, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    let narrow = LinkFault { bandwidth_bytes_per_s: Some(200_000), ..LinkFault::default() };
    proxy.set_link_fault(Endpoint::Client, Endpoint::Node(0), narrow);
    let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let reply = round_trip(&mut stream, &message, 5_000).await;
    // 100 kB at 200 kB/s: at least ~0.5 s, less the first chunk's burst.
    assert!(start.elapsed() >= Duration::from_millis(400), "took {:?}", start.elapsed());
    assert_eq!(reply.as_deref(), Some(&message[..]));
}

#[tokio::test]
async fn shared_route_attributes_connections_by_process() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_shared_route(0, echo).await.unwrap();
    proxy.partition(&grudge(&[(0, &[2]), (2, &[0])]));

    // Our own process is the harness's client: attributed, never cut.
    let mut own = TcpStream::connect(listen).await.unwrap();
    assert!(round_trip(&mut own, b"mine", WAIT_MS).await.is_some());
    assert_eq!(proxy.stats().connections_unattributed, 0);

    // A child registered as node 2 is cut from node 0; one as node 1 is not.
    assert_eq!(child_round_trip(&proxy, listen, Some(2)).await, "closed");
    assert_eq!(child_round_trip(&proxy, listen, Some(1)).await, "echo");
    assert_eq!(proxy.stats().connections_unattributed, 0);

    // A process nobody registered is unattributed: counted, not faulted.
    assert_eq!(child_round_trip(&proxy, listen, None).await, "echo");
    assert_eq!(proxy.stats().connections_unattributed, 1);
}

/// A python child (a shell wrapping it, to exercise descendants) that
/// connects to `listen` once it is registered as `node` (if any), and reports.
async fn child_round_trip(proxy: &FaultProxy, listen: SocketAddr, node: Option<usize>) -> String {
    let script = format!(
        "import socket,sys\n\
         sys.stdin.readline()\n\
         s=socket.create_connection(('127.0.0.1',{port}))\n\
         s.settimeout(8)\n\
         s.sendall(b'ping')\n\
         try:\n    d=s.recv(4)\n\
         except Exception:\n    d=b''\n\
         print('echo' if d==b'ping' else 'closed', flush=True)\n",
        port = listen.port()
    );
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("python3 -c \"$0\"; true")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    if let Some(node) = node {
        proxy.register_pid(child.id().unwrap(), node);
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output());
    let output = output.await.unwrap().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_fault_set_between_bulk_reads_holds_back_every_byte_in_order() {
    let (echo, _seen) = echo_server().await;
    let proxy = proxy();
    let listen = proxy.add_route(Endpoint::Client, 0, echo).await.unwrap();
    let mut stream = TcpStream::connect(listen).await.unwrap();
    let message: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    // A clear bulk stream: the proxy's reads grow past a chunk.
    for _ in 0..4 {
        assert!(round_trip(&mut stream, &message, WAIT_MS).await.as_deref() == Some(&message[..]));
    }
    // The next bulk comes in long reads under a fault set meanwhile: held
    // back (in chunk-sized pieces), every byte delayed, none lost.
    let slow = LinkFault { delay_ms: 100, ..LinkFault::default() };
    proxy.set_link_fault(Endpoint::Client, Endpoint::Node(0), slow);
    let start = Instant::now();
    assert!(round_trip(&mut stream, &message, WAIT_MS).await.as_deref() == Some(&message[..]), "bytes lost or reordered");
    assert!(start.elapsed() >= Duration::from_millis(100), "took {:?}", start.elapsed());
    proxy.heal();
    assert!(round_trip(&mut stream, &message, WAIT_MS).await.as_deref() == Some(&message[..]));
}
