//! `faultline report` (not built yet).
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A results folder written by `faultline test`.
    pub results_dir: PathBuf,
}

pub fn run(_args: ReportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`faultline report` is not implemented yet")
}
