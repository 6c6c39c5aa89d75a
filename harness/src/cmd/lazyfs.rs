//! `faultline lazyfs`: serve a lazyfs mount in the foreground (what the
//! `power-loss` nemesis runs for each node; usable by hand too).
//!
//! Exit code 0 after a clean stop (SIGTERM or SIGINT: unsynced data is
//! written through, then the mount is detached), 3 when it cannot mount,
//! 4 ([`lazyfs::EXIT_TORN_CUT`]) after a torn power cut (SIGUSR2: part of
//! the last written unsynced page goes through, nothing else does, and the
//! stale mount is left for the caller to detach). SIGUSR1 re-reads the
//! `--control` file (disk faults; its syntax is in `faultline_lazyfs::faults`).
use std::path::PathBuf;
use std::process::ExitCode;

use faultline_lazyfs as lazyfs;
use crate::{messages, EXIT_HARNESS_ERROR};

#[derive(clap::Args)]
pub struct LazyFsArgs {
    /// Where to mount (created if missing).
    pub mountpoint: PathBuf,
    /// The directory that holds what was synced (created if missing).
    #[arg(long, value_name = "DIR")]
    pub backing: PathBuf,
    /// Unsynced bytes the mount holds before it writes the largest dirty
    /// file back on its own, as a kernel under memory pressure would.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub dirty_max_mib: u64,
    /// Disk faults, read at start and again on SIGUSR1: one line of
    /// `fsync=ok|eio write=ok|eio|enospc delay-us=N tear-bytes=N` tokens
    /// (any subset; empty or missing means no faults).
    #[arg(long, value_name = "FILE")]
    pub control: Option<PathBuf>,
}

pub fn run(args: LazyFsArgs) -> anyhow::Result<ExitCode> {
    messages::daemon("lazyfs", format_args!("mounting {} over {}", args.mountpoint.display(), args.backing.display()));
    let options = lazyfs::ServeOptions {
        dirty_max_bytes: args.dirty_max_mib << 20,
        control: args.control,
        log: |event| messages::daemon("lazyfs", event),
    };
    match lazyfs::serve(&args.backing, &args.mountpoint, options) {
        Ok(served) => {
            messages::daemon("lazyfs", format_args!("unmounted {} ({} early writebacks)", args.mountpoint.display(), served.writebacks));
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            messages::daemon("lazyfs", format_args!("error: {error}"));
            Ok(ExitCode::from(EXIT_HARNESS_ERROR))
        }
    }
}
