#![forbid(unsafe_code)]
//! ferrovs-ctl: talks to a running ferrovsd over its control socket.

mod cli;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use cli::{Cli, Cmd, Shell};
use ferrovs_config::openflow::Version;
use ferrovs_daemon::control;
use ferrovs_daemon::protocol::{Reply, Request};

/// The completion script build.rs rendered for `shell`.
fn completion_script(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => include_str!(concat!(env!("OUT_DIR"), "/completion.bash")),
        Shell::Zsh => include_str!(concat!(env!("OUT_DIR"), "/completion.zsh")),
        Shell::Fish => include_str!(concat!(env!("OUT_DIR"), "/completion.fish")),
        Shell::Elvish => include_str!(concat!(env!("OUT_DIR"), "/completion.elvish")),
        Shell::Powershell => include_str!(concat!(env!("OUT_DIR"), "/completion.powershell")),
    }
}

/// The man page build.rs rendered.
const MAN_PAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/ferrovs-ctl.1"));

fn main() -> ExitCode {
    let cli = Cli::parse();
    let req = match cli.cmd {
        Cmd::Show => Request::Show,
        Cmd::PmdStatsShow => Request::PmdStatsShow,
        Cmd::PmdPerfShow => {
            let reply = control::request(&cli.socket, &Request::PmdStatsShow);
            return match reply {
                Ok(Reply::PmdStatsShow(r)) if !cli.json => {
                    print!("{}", ferrovs_daemon::render::pmd_perf(&r));
                    ExitCode::SUCCESS
                }
                other => finish(other, cli.json),
            };
        }
        Cmd::PmdStatsClear => Request::PmdStatsClear,
        Cmd::PmdRxqRebalance => Request::PmdRxqRebalance,
        Cmd::Stop => Request::Stop,
        Cmd::AddFlow { bridge, flow } => Request::AddFlow { bridge, flow, protocol: cli.protocols },
        Cmd::AddFlows { bridge, file } => {
            return finish(control::add_flows_file(&cli.socket, &bridge, &file, cli.protocols), cli.json);
        }
        Cmd::DelFlows { bridge, r#match } => {
            if let Some(Err(e)) = cli.protocols.as_deref().map(Version::from_ofctl_list) {
                return finish(Err(e), cli.json);
            }
            Request::DelFlows { bridge, r#match }
        }
        Cmd::DumpFlows { bridge } => {
            // `-O VERSION`: each rule as `ovs-ofctl -O VERSION dump-flows` prints it.
            let version = match cli.protocols.as_deref().map(Version::from_ofctl_list).transpose() {
                Ok(v) => v,
                Err(e) => return finish(Err(e), cli.json),
            };
            let reply = control::request(&cli.socket, &Request::DumpFlows { bridge });
            let reply = reply.map(|r| match (r, version) {
                (Reply::DumpFlows(mut d), Some(v)) => {
                    for f in &mut d.flows {
                        f.rule = ferrovs_config::openflow::convert::printed_in(&f.rule, v);
                    }
                    Reply::DumpFlows(d)
                }
                (r, _) => r,
            });
            return finish(reply, cli.json);
        }
        Cmd::DumpDpFlows => Request::DumpDpFlows,
        Cmd::Trace { bridge, packet } => Request::Trace { bridge, packet },
        Cmd::Reload => Request::Reload,
        Cmd::AddBr { bridge } => Request::AddBr { bridge },
        Cmd::DelBr { bridge, force } => Request::DelBr { bridge, force },
        Cmd::ListBr => Request::ListBr,
        Cmd::AddPort { bridge, port, devargs, number, rx_queues, mtu } => {
            Request::AddPort { bridge, port, devargs, number, rx_queues, mtu }
        }
        Cmd::DelPort { names } => {
            let port = names.last().cloned().unwrap_or_default();
            if let [bridge, _] = &names[..]
                && let Err(e) = port_on_bridge(&cli.socket, bridge, &port)
            {
                return finish(Err(e), cli.json);
            }
            Request::DelPort { port }
        }
        Cmd::SetPort { args } => {
            // The names come before the first KEY=VALUE: `PORT` or `BRIDGE PORT`.
            let n = args.iter().position(|a| a.contains('=')).unwrap_or(args.len());
            let (names, settings) = args.split_at(n);
            let port = match names {
                [port] => port.clone(),
                [bridge, port] => {
                    if let Err(e) = port_on_bridge(&cli.socket, bridge, port) {
                        return finish(Err(e), cli.json);
                    }
                    port.clone()
                }
                _ => return finish(Err("usage: set-port [BRIDGE] PORT KEY=VALUE...".into()), cli.json),
            };
            if settings.is_empty() {
                return finish(Err("set-port: no KEY=VALUE setting given".into()), cli.json);
            }
            Request::SetPort { port, settings: settings.to_vec() }
        }
        Cmd::ListPorts { bridge } => Request::ListPorts { bridge },
        Cmd::SetController { bridge, targets } => Request::SetController { bridge, targets },
        Cmd::DelController { bridge } => Request::DelController { bridge },
        Cmd::GetController { bridge } => Request::GetController { bridge },
        Cmd::Capture { port, file, count, duration, filter } => {
            return capture(&cli.socket, cli.json, port, &file, count, duration, filter);
        }
        Cmd::Completions { shell } => {
            print!("{}", completion_script(shell));
            return ExitCode::SUCCESS;
        }
        Cmd::Man => {
            print!("{MAN_PAGE}");
            return ExitCode::SUCCESS;
        }
    };
    finish(control::request(&cli.socket, &req), cli.json)
}

/// `capture`: streams the port's frames into `file` until the daemon ends the capture or
/// Ctrl-C; prints what it wrote (as text on standard error, or as JSON on standard output).
fn capture(
    socket: &std::path::Path,
    json: bool,
    port: String,
    file: &std::path::Path,
    count: Option<u64>,
    duration: Option<f64>,
    filter: Option<String>,
) -> ExitCode {
    let fail = |e: String| {
        eprintln!("ferrovs-ctl: {e}");
        ExitCode::FAILURE
    };
    let duration_ms = match duration {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Some((s * 1000.0).ceil() as u64),
        Some(s) => return fail(format!("--duration {s}: not a positive number of seconds")),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            return fail(format!("signal handler: {e}"));
        }
    }
    let req = Request::Capture { port, count, duration_ms, filter };
    let open = |r: &ferrovs_daemon::protocol::CaptureReply| {
        let f = std::fs::File::create(file).map_err(|e| format!("{}: {e}", file.display()))?;
        eprintln!("capturing port {} ({}) into {}", r.port, r.number, file.display());
        Ok(std::io::BufWriter::with_capacity(1 << 20, f))
    };
    let (outcome, out) = match ferrovs_daemon::capture_client::capture(socket, &req, stop, open) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Err(e) = out.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()) {
        return fail(format!("{}: {e}", file.display()));
    }
    match (&outcome.end, json) {
        (Some(end), true) => println!("{}", serde_json::to_string(end).unwrap_or_default()),
        (None, true) => println!("{{\"frames\":{},\"reason\":\"interrupted\"}}", outcome.written),
        (Some(end), false) => eprintln!(
            "{} frames written ({:?}); {} filtered out, {} missed by the capture (read too slowly)",
            outcome.written, end.reason, end.filtered_out, end.dropped
        ),
        (None, false) => eprintln!("{} frames written (interrupted)", outcome.written),
    }
    ExitCode::SUCCESS
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

/// ovs-vsctl's `BRIDGE PORT` form: the port must be on that bridge (its internal port,
/// which list-ports does not list, is the daemon's to refuse or accept, with the reason).
fn port_on_bridge(socket: &std::path::Path, bridge: &str, port: &str) -> Result<(), String> {
    match control::request(socket, &Request::ListPorts { bridge: bridge.to_string() })? {
        Reply::ListPorts(p) if p.names.iter().any(|n| n == port) || port == bridge => Ok(()),
        _ => Err(format!("bridge {bridge} has no port {port}")),
    }
}
