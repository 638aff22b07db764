#![forbid(unsafe_code)]
//! ferrovsd: the ferrovs switch daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferrovs_daemon::logging::LogFormat;

#[derive(Parser)]
#[command(name = "ferrovsd", version, about = "ferrovs userspace virtual switch (DPDK poll-mode)")]
struct Cli {
    /// The switch configuration (TOML).
    #[arg(long, short = 'c', default_value = "/etc/ferrovs/ferrovs.toml")]
    config: PathBuf,
    /// Check the configuration (syntax, rules, cores) and exit without touching DPDK.
    #[arg(long)]
    check: bool,
    /// Print the hugepage plan of the config's `[hugepages]` section, one `NODE SIZE_KIB PAGES` line
    /// per NUMA node (nothing without the section), and exit. deploy/hugepages.sh applies it.
    #[arg(long, conflicts_with = "check")]
    print_hugepages: bool,
    /// Log format on stderr: text (colour only on a terminal) or one JSON object per line.
    #[arg(long, value_enum, default_value = "text", env = "FERROVS_LOG_FORMAT")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_hugepages {
        return print_hugepages(&cli.config);
    }
    // Levels: RUST_LOG at start, `vlog/set` later (see ferrovs_daemon::logging).
    let log = ferrovs_daemon::logging::init(cli.log_format);
    match ferrovs_daemon::daemon::run(&cli.config, cli.check, log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrovsd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--print-hugepages`: the plan of the config's `[hugepages]`, so that the hugepage
/// script does not parse TOML itself.
fn print_hugepages(config: &std::path::Path) -> ExitCode {
    match ferrovs_config::Config::load(config) {
        Ok(c) => {
            for r in c.hugepages.iter().flat_map(|h| h.plan()) {
                println!("{r}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrovsd: {e}");
            ExitCode::FAILURE
        }
    }
}
