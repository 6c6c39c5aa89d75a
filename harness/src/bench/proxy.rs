//! `faultline bench proxy` (not built yet).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ProxyBenchArgs {}

pub fn run(_args: ProxyBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`faultline bench proxy` is not implemented yet")
}
