//! `faultline bench ...`: commands that print performance figures.
use std::process::ExitCode;

use crate::bench;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Linearizability checker: shared corpora and a generated 1M-op history.
    Check(bench::check::CheckBenchArgs),
    /// Fault proxy: added latency per hop and throughput against direct.
    Proxy(bench::proxy::ProxyBenchArgs),
    /// Mutation score: cargo-mutants' mutants of faultline-node against a spec.
    Mutants(bench::mutants::MutantsBenchArgs),
    /// Transaction checker: generated list-append histories, clean and planted.
    Txn(bench::txn::TxnBenchArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Check(args) => bench::check::run(args),
        BenchCommand::Proxy(args) => bench::proxy::run(args),
        BenchCommand::Mutants(args) => bench::mutants::run(args),
        BenchCommand::Txn(args) => bench::txn::run(args),
    }
}
