//! `faultline bench ...`: commands that print performance figures.
use std::process::ExitCode;

pub mod check;
pub mod proxy;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Linearizability checker: shared corpora and a generated 1M-op history.
    Check(check::CheckBenchArgs),
    /// Fault proxy: added latency per hop and throughput against direct.
    Proxy(proxy::ProxyBenchArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Check(args) => check::run(args),
        BenchCommand::Proxy(args) => proxy::run(args),
    }
}
