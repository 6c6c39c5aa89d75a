//! `faultline matrix` (not built yet).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct MatrixArgs {}

pub fn run(_args: MatrixArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`faultline matrix` is not implemented yet")
}
