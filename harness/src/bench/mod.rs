//! `faultline bench ...`: commands that print performance figures.
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BenchCommand {}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
