#![forbid(unsafe_code)]
//! ferrovsd: the ferrovs switch daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "ferrovsd", version, about = "ferrovs userspace virtual switch (DPDK poll-mode)")]
struct Cli {
    /// The switch configuration (TOML).
    #[arg(long, short = 'c', default_value = "/etc/ferrovs/ferrovs.toml")]
    config: PathBuf,
    /// Check the configuration (syntax, rules, cores) and exit without touching DPDK.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match ferrovs_daemon::daemon::run(&cli.config, cli.check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrovsd: {e}");
            ExitCode::FAILURE
        }
    }
}
