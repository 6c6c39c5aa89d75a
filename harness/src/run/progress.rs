//! Progress while a test runs: an indicatif bar when stderr (where
//! indicatif draws) is a terminal, a plain line every few seconds otherwise.
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::recorder::LiveCounts;
use super::nemesis_task::NemesisState;

const BAR_TICK_MS: u64 = 200;
const PLAIN_LINE_EVERY_MS: u64 = 5_000;

pub struct Progress {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// What the display reads.
pub struct Feed {
    pub counts: Arc<LiveCounts>,
    pub nemesis: NemesisState,
    pub start: Instant,
    pub time_limit_ms: u64,
    /// Current phase (`running`, `recovery`, `final reads`, ...).
    pub phase: Arc<std::sync::Mutex<&'static str>>,
}

impl Feed {
    fn line(&self) -> String {
        let counts = self.counts.snapshot();
        let nemesis = self.nemesis.lock().map(|s| s.clone()).unwrap_or_default();
        let phase = self.phase.lock().map(|p| *p).unwrap_or("running");
        format!("{phase} | ok {} fail {} info {} | nemesis {nemesis}", counts.ok, counts.fail, counts.info)
    }
}

impl Progress {
    pub fn start(feed: Feed, quiet: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            if quiet {
                return;
            }
            if tty {
                bar(feed, flag).await;
            } else {
                plain(feed, flag).await;
            }
        });
        Progress { stop, task }
    }

    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

async fn bar(feed: Feed, stop: Arc<AtomicBool>) {
    let bar = ProgressBar::new(feed.time_limit_ms / 1_000);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    // Runs until the runner finishes it; each pass sleeps one tick.
    while !stop.load(Ordering::Relaxed) {
        bar.set_position(feed.start.elapsed().as_secs().min(feed.time_limit_ms / 1_000));
        bar.set_message(feed.line());
        tokio::time::sleep(Duration::from_millis(BAR_TICK_MS)).await;
    }
    bar.finish_and_clear();
}

async fn plain(feed: Feed, stop: Arc<AtomicBool>) {
    let mut next_line = Instant::now() + Duration::from_millis(PLAIN_LINE_EVERY_MS);
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_line {
            crate::messages::progress_line(feed.start.elapsed().as_secs_f64(), &feed.line());
            next_line += Duration::from_millis(PLAIN_LINE_EVERY_MS);
        }
        tokio::time::sleep(Duration::from_millis(BAR_TICK_MS)).await;
    }
}
