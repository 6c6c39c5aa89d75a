//! `faultline-node`: parse flags, set up logging, run the server until
//! SIGTERM/SIGINT. Everything else lives in the library.
use std::process::ExitCode;

use clap::Parser;
use faultline_node::config::{Args, NodeConfig};

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A node's stderr is usually a log file: colour codes only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Exactly one line on stderr says why the node stopped, and it is
            // the log's last: faultline's corrupt nemesis records that line
            // as the refusal. (A WAL or snapshot error names the file, the OS
            // error or the offset, and whether anything was acknowledged.)
            eprintln!("faultline-node: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and each of its causes once, on one line: most of the node's
/// errors already print their source (`on {path}: {source}`), which `{:#}`
/// would print a second time.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line.replace('\n', " ")
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = NodeConfig::from_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let id = config.args.id;
        faultline_node::server::run(config, shutdown_signal()).await?;
        tracing::info!(id, "shutting down on signal");
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the node");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
