//! `faultline lazyfs`: serve a lazyfs mount in the foreground (what the
//! `power-loss` nemesis runs for each node; usable by hand too).
//!
//! Exit code 0 after a clean stop (SIGTERM or SIGINT: unsynced data is
//! written through, then the mount is detached), 3 when it cannot mount.
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
}

pub fn run(args: LazyFsArgs) -> anyhow::Result<ExitCode> {
    messages::daemon("lazyfs", format_args!("mounting {} over {}", args.mountpoint.display(), args.backing.display()));
    match lazyfs::serve(&args.backing, &args.mountpoint, args.dirty_max_mib << 20) {
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
