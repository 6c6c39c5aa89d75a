//! Client tasks: each is a Jepsen process that asks the shared generator
//! for an operation, records the invocation, performs it, and records the
//! completion. After an `info` the task continues under a fresh process
//! number, as the history semantics require.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_checkers::EventType;
use faultline_workloads::{Context, Generator, Next};

use super::recorder::{client_event, Recorder};
use crate::client::{ClientConfig, ClientFactory, Outcome};
use crate::nemesis::node_name;

/// How long a client waits before asking a `Pending` generator again.
const PENDING_POLL_MS: u64 = 1;

pub type SharedGenerator = Arc<Mutex<Box<dyn Generator>>>;

/// What every client task of a run shares.
#[derive(Clone)]
pub struct ClientPool {
    pub recorder: Recorder,
    pub config: Arc<ClientConfig>,
    /// Builds the system's clients.
    pub clients: ClientFactory,
    /// The next unused process number: processes are never reused.
    pub process_next: Arc<AtomicU64>,
    /// Set on interrupt: every task stops after its current operation.
    pub stop: Arc<AtomicBool>,
}

impl ClientPool {
    fn new_process(&self) -> u64 {
        self.process_next.fetch_add(1, Ordering::Relaxed)
    }

    /// Run `workers` tasks until the generator is done, `stop` is set, or
    /// `deadline` passes. `phase_start` is time zero for the generator.
    pub async fn run(&self, generator: Box<dyn Generator>, workers: usize, phase_start: Instant, deadline: Instant) {
        let generator: SharedGenerator = Arc::new(Mutex::new(generator));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let pool = self.clone();
            let generator = generator.clone();
            tasks.spawn(async move { pool.client_task(generator, phase_start, deadline).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn client_task(self, generator: SharedGenerator, phase_start: Instant, deadline: Instant) {
        let mut client = (self.clients)(self.config.clone(), self.new_process());
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let ctx = Context {
                time_ns: u64::try_from(phase_start.elapsed().as_nanos()).unwrap_or(u64::MAX),
                process: client.process(),
            };
            let next = lock(&generator).next(&ctx);
            let invocation = match next {
                Next::Done => break,
                Next::Pending => {
                    tokio::time::sleep(Duration::from_millis(PENDING_POLL_MS)).await;
                    continue;
                }
                Next::Invoke(invocation) => invocation,
            };
            let process = client.process();
            let invoke = client_event(process, EventType::Invoke, &invocation.f, invocation.key.clone(), invocation.value.clone());
            self.recorder.record(invoke).await;
            let completion = client.invoke(&invocation).await;
            let (kind, value, error) = match completion.outcome {
                Outcome::Ok(value) => (EventType::Ok, value, None),
                Outcome::Fail(error) => (EventType::Fail, invocation.value.clone(), Some(error)),
                Outcome::Info(error) => (EventType::Info, invocation.value.clone(), Some(error)),
            };
            let mut event = client_event(process, kind, &invocation.f, invocation.key.clone(), value);
            event.node = completion.node.map(node_name);
            event.error = error;
            let event = self.recorder.record(event).await;
            lock(&generator).update(&event);
            if kind == EventType::Info {
                client.become_process(self.new_process());
            }
        }
    }
}

/// A generator is pure and cannot leave the lock poisoned in a way that
/// matters; recover the guard instead of panicking.
fn lock(generator: &SharedGenerator) -> std::sync::MutexGuard<'_, Box<dyn Generator>> {
    generator.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
