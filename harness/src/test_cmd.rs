//! `faultline test`: run a faulted test and check its history.
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TestArgs {}

pub fn run(_args: TestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`faultline test` is not implemented yet")
}
