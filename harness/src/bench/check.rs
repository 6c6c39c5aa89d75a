//! `faultline bench check` (not built yet).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckBenchArgs {}

pub fn run(_args: CheckBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`faultline bench check` is not implemented yet")
}
