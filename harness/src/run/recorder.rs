//! The history recorder: every event gets its timestamp and its place in
//! `history.jsonl` under one lock, so line order and time order agree, and
//! a single writer thread appends and flushes each line as it arrives (a
//! crash of the harness loses nothing already recorded).
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use faultline_checkers::{Event, EventType, Header, Process};
use tokio::sync::{mpsc, Mutex};

use crate::results::Counts;

/// Events queued between the clients and the writer thread.
const HISTORY_QUEUE_EVENTS_MAX: usize = 4_096;

/// Live counts for the progress display (the results count what was read
/// back from the history file).
#[derive(Debug, Default)]
pub struct LiveCounts {
    pub invoke: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    pub nemesis: AtomicU64,
}

impl LiveCounts {
    pub fn snapshot(&self) -> Counts {
        Counts {
            invoke: self.invoke.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            fail: self.fail.load(Ordering::Relaxed),
            info: self.info.load(Ordering::Relaxed),
            nemesis: self.nemesis.load(Ordering::Relaxed),
        }
    }

    pub fn count(&self, event: &Event) {
        let counter = match (event.process, event.kind) {
            (Process::Nemesis, EventType::Invoke) => &self.nemesis,
            (Process::Nemesis, _) => return,
            (_, EventType::Invoke) => &self.invoke,
            (_, EventType::Ok) => &self.ok,
            (_, EventType::Fail) => &self.fail,
            (_, EventType::Info) => &self.info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the writer saw, returned when the last recorder is gone.
#[derive(Debug, Default)]
pub struct Written {
    pub events: u64,
    pub error: Option<String>,
}

struct Inner {
    sender: Option<mpsc::Sender<Event>>,
    /// Keys of client operations, for the final reads.
    keys: BTreeSet<String>,
}

/// A cheap handle every client and the nemesis record through.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
    pub counts: Arc<LiveCounts>,
}

impl Recorder {
    /// Open `path`, write the history's header (the wall-clock time of
    /// `start`, time zero) and start the writer thread.
    /// `hosts`: the host each node runs on, by node name (empty on this
    /// machine).
    pub fn open(
        path: &Path,
        start: Instant,
        hosts: std::collections::BTreeMap<String, String>,
    ) -> std::io::Result<(Recorder, std::thread::JoinHandle<Written>)> {
        let start_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
            .saturating_sub(u64::try_from(start.elapsed().as_nanos()).unwrap_or(0));
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let header = Header { hosts, ..Header::new(start_unix_ns) };
        let header = serde_json::to_string(&header).map_err(std::io::Error::other)?;
        file.write_all(format!("{header}\n").as_bytes())?;
        let (sender, receiver) = mpsc::channel(HISTORY_QUEUE_EVENTS_MAX);
        let writer = std::thread::Builder::new()
            .name("faultline-history".to_string())
            .spawn(move || write_lines(file, receiver))?;
        let inner = Inner { sender: Some(sender), keys: BTreeSet::new() };
        let recorder = Recorder { inner: Arc::new(Mutex::new(inner)), start, counts: Arc::default() };
        Ok((recorder, writer))
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Stamp and queue one event (`time_ns` is overwritten). Returns the
    /// event as recorded; after `close` events are dropped.
    pub async fn record(&self, mut event: Event) -> Event {
        let mut guard = self.inner.lock().await;
        event.time_ns = self.now_ns();
        self.counts.count(&event);
        if let (Process::Client(_), Some(key)) = (event.process, &event.key) {
            if !guard.keys.contains(key) {
                guard.keys.insert(key.clone());
            }
        }
        if event.process != Process::Nemesis && event.kind == EventType::Invoke && event.f == faultline_checkers::TXN_F {
            // A transaction's keys are inside its value; final reads read them too.
            for key in faultline_workloads::transactions::keys_of(&event.value) {
                guard.keys.insert(key.to_string());
            }
        }
        if let Some(sender) = guard.sender.as_ref() {
            // The writer only stops when every sender is gone, so this fails
            // only if its thread died; the writer reports that itself.
            let _ = sender.send(event.clone()).await;
        }
        event
    }

    /// Stop accepting events; the writer finishes once the queue drains.
    pub async fn close(&self) {
        self.inner.lock().await.sender.take();
    }

    /// Every key a client operation has used so far, sorted.
    pub async fn keys(&self) -> Vec<String> {
        self.inner.lock().await.keys.iter().cloned().collect()
    }
}

fn write_lines(file: std::fs::File, mut receiver: mpsc::Receiver<Event>) -> Written {
    let mut out = std::io::BufWriter::new(file);
    let mut written = Written::default();
    while let Some(event) = receiver.blocking_recv() {
        if written.error.is_some() {
            continue;
        }
        let line = serde_json::to_string(&event).map(|mut line| {
            line.push('\n');
            line
        });
        let result = line
            .map_err(std::io::Error::other)
            .and_then(|line| out.write_all(line.as_bytes()))
            .and_then(|()| out.flush());
        match result {
            Ok(()) => written.events += 1,
            Err(error) => written.error = Some(error.to_string()),
        }
    }
    written
}

/// A client event with the fields the runner fills in.
pub fn client_event(process: u64, kind: EventType, f: &str, key: Option<String>, value: serde_json::Value) -> Event {
    Event { process: Process::Client(process), kind, f: f.to_string(), key, value, time_ns: 0, node: None, error: None }
}

pub fn nemesis_event(kind: EventType, f: &str, value: serde_json::Value) -> Event {
    Event { process: Process::Nemesis, kind, f: f.to_string(), key: None, value, time_ns: 0, node: None, error: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_flushed_in_time_order_and_keys_collected() {
        let path = std::env::temp_dir().join(format!("faultline-history-test-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (recorder, writer) = Recorder::open(&path, Instant::now(), Default::default()).unwrap();
        let mut tasks = Vec::new();
        for process in 0..8u64 {
            let recorder = recorder.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..50 {
                    let key = Some(format!("k{}", n % 3));
                    recorder.record(client_event(process, EventType::Invoke, "read", key.clone(), serde_json::Value::Null)).await;
                    recorder.record(client_event(process, EventType::Ok, "read", key, serde_json::json!(n))).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        recorder.record(nemesis_event(EventType::Invoke, "kill-leader", serde_json::Value::Null)).await;
        // Lines are on disk before the writer is told to stop.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap().lines().count() < 802 {
            assert!(Instant::now() < deadline, "history lines not flushed");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(recorder.keys().await, ["k0", "k1", "k2"]);
        recorder.close().await;
        let written = writer.join().unwrap();
        assert_eq!(written.events, 801);
        let text = std::fs::read_to_string(&path).unwrap();
        let (header, events) = text.split_once('\n').unwrap();
        assert!(Header::parse(header.as_bytes()).is_some_and(|h| h.start_unix_ns > 1_700_000_000_000_000_000), "{header}");
        let events: Vec<Event> = events.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert!(events.windows(2).all(|pair| pair[0].time_ns <= pair[1].time_ns));
        let counts = recorder.counts.snapshot();
        assert_eq!((counts.invoke, counts.ok, counts.nemesis), (400, 400, 1));
        std::fs::remove_file(&path).unwrap();
    }
}
