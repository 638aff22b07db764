#![forbid(unsafe_code)]
//! ferrovs-ctl: talks to a running ferrovsd over its control socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferrovs_daemon::control;
use ferrovs_daemon::protocol::{Reply, Request};

#[derive(Parser)]
#[command(name = "ferrovs-ctl", version, about = "Control a running ferrovsd")]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, short = 's', default_value = ferrovs_config::DEFAULT_CONTROL_SOCKET, env = "FERROVS_SOCKET")]
    socket: PathBuf,
    /// Print the daemon's reply as JSON (one object, tagged `"cmd"`) instead of text.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bridges, ports, link state and counters.
    Show,
    /// Per-PMD statistics: packets, cycles per packet, busy/idle, cache hits.
    PmdStatsShow,
    /// Reset the PMD statistics.
    PmdStatsClear,
    /// Stop ferrovsd cleanly.
    Stop,
    /// Add a rule (ovs-ofctl syntax), e.g. `add-flow br0 "tcp,tp_dst=80,actions=output:2"`.
    AddFlow { bridge: String, flow: String },
    /// Add every rule of FILE (one per line, `#` comments) as one atomic change, of any
    /// size (the file is streamed; the command waits until the change is applied).
    AddFlows { bridge: String, file: PathBuf },
    /// Delete the rules that match MATCH (all rules without it).
    DelFlows { bridge: String, r#match: Option<String> },
    /// The rules of a bridge with their counters.
    DumpFlows { bridge: String },
    /// The megaflows installed in the PMDs.
    DumpDpFlows,
    /// Trace a packet described in ovs-ofctl syntax through a bridge's tables.
    Trace { bridge: String, packet: String },
    /// Re-read the config file and replace every bridge's rules with its rules (also SIGHUP).
    Reload,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let req = match cli.cmd {
        Cmd::Show => Request::Show,
        Cmd::PmdStatsShow => Request::PmdStatsShow,
        Cmd::PmdStatsClear => Request::PmdStatsClear,
        Cmd::Stop => Request::Stop,
        Cmd::AddFlow { bridge, flow } => Request::AddFlow { bridge, flow },
        Cmd::AddFlows { bridge, file } => {
            return finish(control::add_flows_file(&cli.socket, &bridge, &file), cli.json);
        }
        Cmd::DelFlows { bridge, r#match } => Request::DelFlows { bridge, r#match },
        Cmd::DumpFlows { bridge } => Request::DumpFlows { bridge },
        Cmd::DumpDpFlows => Request::DumpDpFlows,
        Cmd::Trace { bridge, packet } => Request::Trace { bridge, packet },
        Cmd::Reload => Request::Reload,
    };
    finish(control::request(&cli.socket, &req), cli.json)
}

/// Prints the reply (as text, or as JSON with `--json`) or the error.
fn finish(reply: Result<Reply, String>, json: bool) -> ExitCode {
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrovs-ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string(&reply) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("ferrovs-ctl: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", ferrovs_daemon::render::render(&reply));
    }
    ExitCode::SUCCESS
}
