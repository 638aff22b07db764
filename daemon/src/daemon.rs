//! ferrovsd's lifecycle: load and check the config, bind the control socket, start DPDK
//! and the switch, serve control requests until told to stop (SIGINT, SIGTERM or
//! `ferrovs-ctl stop`), then stop the PMDs, close the ports, log the counters and clean
//! up the EAL.
//!
//! Everything that can be refused is refused before any port is touched: config syntax
//! and rules (with line and column), cores that do not exist, duplicate ports, and an
//! already-running daemon on the same control socket. Devargs that DPDK rejects are
//! found when the switch probes its devices, before any port is configured or started.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrovs_config::openflow::PortReason;
use ferrovs_config::persist::RuleWriteBack;
use ferrovs_config::{BridgeConfig, Config, DEFAULT_MTU, SystemFacts};
use ferrovs_dpdk::Eal;
use ferrovs_pmd::spec::data_room_for_mtu;
use ferrovs_pmd::{IdleBackoff, PortSpec, SwitchOptions};

use crate::appctl::{self, AppctlCall};
use crate::capture::Captures;
use crate::control::{ControlServer, Pending};
use crate::datapath::Datapath;
use crate::logging::LogControl;
use crate::metrics::MetricsServer;
use crate::openflow::{OfAnswer, OfRequest, OpenFlowServers};
use crate::protocol::{ChangeReply, Reply, Request, Response};
use crate::published::{PUBLISH_EVERY, Published, Snapshot};
use crate::sd_notify::{Notifier, PmdLiveness};
use crate::unixctl::{UnixctlCall, UnixctlServer};

/// File name of the ovs-appctl socket, in the directory of the control socket (as OVS
/// keeps `ovs-vswitchd.PID.ctl` beside its other sockets).
pub const APPCTL_SOCKET_NAME: &str = "ferrovsd.ctl";

/// Why the daemon could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ferrovs_config::ConfigError),
    #[error("{0}")]
    Control(#[from] crate::control::ControlError),
    #[error("DPDK: {0}")]
    Dpdk(#[from] ferrovs_dpdk::DpdkError),
    #[error("{0}")]
    Switch(#[from] ferrovs_pmd::SwitchError),
    #[error("{0}")]
    Datapath(String),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("metrics endpoint {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
}

/// Runs the daemon on the config at `path` until it is stopped. With `check_only`, only
/// loads and checks the config.
pub fn run(path: &Path, check_only: bool, log: LogControl) -> Result<(), DaemonError> {
    let mut config = Config::load(path)?;
    config.validate(&SystemFacts { online_cpus: ferrovs_pmd::online_cpus() })?;
    let dp_numbers = crate::datapath::datapath_numbers(&config);
    let ports: Vec<PortSpec> = config
        .bridges
        .iter()
        .flat_map(|b| &b.ports)
        .map(|p| crate::reconcile::port_spec(p, dp_numbers[&p.name]))
        .collect();
    for w in crate::topology::dangling_port_warnings(&config) {
        tracing::warn!("{w}");
    }
    let options = switch_options(&config);
    ferrovs_pmd::validate(&ports, &options)?;
    crate::datapath::check(&config).map_err(DaemonError::Datapath)?;
    if check_only {
        println!("{}: configuration OK", path.display());
        return Ok(());
    }
    // Runtime changes are written back; refuse a config that cannot be.
    ferrovs_config::persist::check_writable(path)
        .map_err(|e| DaemonError::Datapath(format!("the config cannot hold runtime changes: {e}")))?;
    // An internal port's TAP takes its bridge's name: say so before DPDK fails on a name the
    // host already has (not in --check, which may run beside this switch's own TAPs).
    if let Some(b) = config.bridges.iter().find(|b| b.internal_port && crate::device_watch::interface_exists(&b.name)) {
        return Err(DaemonError::Datapath(format!(
            "bridge {0}: an interface named {0} exists on this host, and the bridge's internal port needs that \
             name (rename the bridge, remove the interface, or set internal_port = false)",
            b.name
        )));
    }

    // Before any thread starts, so that every thread but the PMDs inherits these CPUs.
    let started_with = match ferrovs_dpdk::thread_affinity() {
        Ok(cpus) => Some(cpus),
        Err(e) => {
            tracing::warn!("cannot read the CPUs this process may use: {e}");
            None
        }
    };
    if let Some(cpus) = &started_with {
        confine_to_control_cpus(cpus, &config.pmd.cores);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DaemonError::Signal)?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()).map_err(DaemonError::Signal)?;
    let group = socket_group(&config)?;
    let (control, requests) = ControlServer::bind(&config.control.socket)?;
    if let Some(gid) = group {
        control.share_with_group(gid).map_err(|e| DaemonError::Datapath(format!("control.socket_group: {e}")))?;
    }
    // Bound now, so that a busy or bad address stops the start before DPDK does anything.
    let mut metrics = match config.metrics.listen {
        Some(addr) => Some(MetricsServer::bind(addr).map_err(|e| DaemonError::Metrics(addr, e))?),
        None => None,
    };

    // `[eal] capture`: a primary the capture tools (DPDK secondaries) can attach to, with
    // the handler they talk to (see ferrovs_dpdk::Pdump).
    let eal = if config.eal.capture { Eal::init_multi_process } else { Eal::init }(&eal_args(&config))?;
    tracing::info!("EAL up: {} Hz TSC", eal.tsc_hz());
    // The EAL pinned this thread to the main lcore's CPU: the threads started from here on
    // (the slow path, the rule build's and the parser's helpers) would all share it.
    if let Some(cpus) = &started_with {
        confine_to_control_cpus(cpus, &config.pmd.cores);
        let now = ferrovs_dpdk::thread_affinity().unwrap_or_default();
        tracing::info!("threads other than the PMDs run on CPUs {now:?}");
    }
    let pdump = if config.eal.capture { Some(ferrovs_dpdk::Pdump::init(&eal)?) } else { None };
    if pdump.is_some() {
        tracing::info!(
            "capture enabled: dpdk-dumpcap --file-prefix={} -i PORT; PMD threads have no DPDK lcore id \
             (DPDK shuts secondaries out once a thread registers), so no mempool cache",
            eal.file_prefix()
        );
    }
    let mut dp = Datapath::start(&eal, &config, &ports, &options)?;
    let mut captures = Captures::new(eal.tsc_hz());
    // What this daemon wrote of each bridge's rules: after a first whole write, small
    // changes go to the flows file's journal (see `ferrovs_config::persist`).
    let mut write_back = RuleWriteBack::default();
    let test_hooks = std::env::var(appctl::TEST_HOOKS_ENV).is_ok_and(|v| v == "1");
    if test_hooks {
        tracing::warn!(
            "{}=1: test hooks enabled (ovs-appctl ferrovs/stall-pmd can stop a PMD); never in production",
            appctl::TEST_HOOKS_ENV
        );
    }
    // Every port is started and every PMD has polled once `start` returns.
    let mut notifier = Notifier::from_env();
    let mut liveness = PmdLiveness::default();
    notifier.ready(&format!("forwarding: {} bridge(s), {} port(s)", config.bridges.len(), ports.len()));
    tracing::info!(
        "forwarding: {} bridge(s), {} port(s), PMDs on cores {:?}; control socket {}",
        config.bridges.len(),
        ports.len(),
        config.pmd.cores,
        config.control.socket.display()
    );

    // The ovs-appctl socket: `ferrovsd.ctl` beside the control socket.
    let appctl_path = config.control.socket.with_file_name(APPCTL_SOCKET_NAME);
    let (appctl_server, appctl_calls) = UnixctlServer::bind(&appctl_path)
        .map_err(|e| DaemonError::Datapath(format!("appctl socket {}: {e}", appctl_path.display())))?;
    if let Some(gid) = group {
        appctl_server.share_with_group(gid).map_err(|e| DaemonError::Datapath(format!("control.socket_group: {e}")))?;
    }
    // The OpenFlow management sockets: `BRIDGE.mgmt` beside the control socket.
    let (mut openflow_servers, openflow_calls) = crate::openflow::OpenFlowServers::bind(&config, group)
        .map_err(|e| DaemonError::Datapath(format!("OpenFlow management socket {e}")))?;
    openflow_servers
        .start_controllers(&config, &dp_numbers, dp.take_packet_in(), dp.take_expired())
        .map_err(|e| DaemonError::Datapath(format!("OpenFlow controllers: {e}")))?;
    // Counters for readers on other threads (telemetry, metrics): see `published`.
    let published = Arc::new(Published::default());
    publish(&dp, &config, &published);
    let mut last_publish = Instant::now();
    if let Err(e) = crate::dpdk_telemetry::register_commands(published.clone()) {
        tracing::warn!("DPDK telemetry commands not registered: {e}");
    }
    if let Some(m) = &mut metrics {
        m.serve(published.clone()).map_err(|e| DaemonError::Metrics(m.local_addr(), e))?;
        tracing::info!("metrics: http://{}/metrics", m.local_addr());
    }

    // A flows file this daemon wrote in an earlier run, holding exactly the rules now
    // running: the next change goes to its journal instead of a whole write.
    for bridge in config.bridges.iter().map(|b| b.name.clone()).collect::<Vec<_>>() {
        adopt_flows_file(&mut dp, path, &mut write_back, &bridge);
    }

    let mut auto_rebalance = crate::auto_rebalance::AutoRebalance::new(
        config.pmd.auto_rebalance_interval_s,
        config.pmd.auto_rebalance_threshold,
        Instant::now(),
    );
    let mut device_watch = crate::device_watch::DeviceWatch::new(Instant::now());
    while !stop.load(Ordering::Relaxed) {
        let mut got = None;
        crossbeam_channel::select! {
            recv(requests) -> r => match r {
                Ok(p) => got = Some(p),
                Err(_) => break,
            },
            recv(appctl_calls) -> c => {
                if let Ok(call) = c {
                    let outcome = appctl(&mut dp, &config, &log, &call, test_hooks);
                    let _ = call.reply.send(outcome);
                }
            },
            recv(openflow_calls) -> c => {
                if let Ok(call) = c {
                    let started = Instant::now();
                    let (outcome, changed) = if let OfRequest::PortMod { port, down } = &call.request {
                        // A port setting: the same desired-state path as `set-port`.
                        let req = Request::SetPort { port: port.clone(), settings: vec![admin_setting(*down)] };
                        tracing::info!(target: "ferrovs_daemon::control", uid = ?call.peer_uid, "change (OpenFlow on {}): {}", call.bridge, describe(&req));
                        let r = change_topology(&mut dp, path, &mut config, &mut openflow_servers, &req);
                        (r.map(|_| OfAnswer::Changed), false)
                    } else {
                        crate::openflow::answer(&mut dp, &config, openflow_servers.hub(), &call)
                    };
                    let applied = started.elapsed();
                    let outcome = if changed && outcome.is_ok() {
                        let outcome = persist_bridge(&mut dp, path, &mut write_back, &call.bridge).and(outcome);
                        tracing::info!(
                            target: "ferrovs_daemon::control",
                            "change (OpenFlow on {}): applied in {} us, written back in {} us",
                            call.bridge,
                            applied.as_micros(),
                            (started.elapsed() - applied).as_micros()
                        );
                        outcome
                    } else {
                        outcome
                    };
                    let _ = call.reply.send(outcome);
                }
            },
            default(Duration::from_millis(100)) => {},
        }
        // A request answered by a stream (capture) comes with its connection.
        if let Some(p) = got.take_if(|p| p.connection.is_some()) {
            let started = p.connection.ok_or_else(|| "no connection".to_string()).and_then(|conn| {
                captures.start(dp.capture_taps(), &config, |n| dp.datapath_number(n), &p.request, p.peer_uid, conn)
            });
            let _ = p.reply.send(Response::from(started.map(Reply::Capture)));
        }
        if let Some(Pending { request, peer_uid, reply, .. }) = got {
            {
                // An add-flows request's lines, counted once for both log lines (a million
                // of them take a few tens of milliseconds to count).
                let lines = add_flows_lines(&request);
                if request.is_mutating() {
                    tracing::info!(target: "ferrovs_daemon::control", uid = ?peer_uid, "change: {}", describe_counted(&request, lines));
                }
                let is_stop = request == Request::Stop;
                let resp = if request == Request::Reload {
                    notifier.reloading();
                    let r = reload_config(&mut dp, path, &mut config, &mut openflow_servers);
                    write_back.forget();
                    notifier.ready("forwarding");
                    Response::from(r.map(Reply::Reload))
                } else if crate::topology::is_topology_request(&request) {
                    if matches!(request, Request::AddBr { .. } | Request::DelBr { .. }) {
                        // A bridge of the same name later is another bridge table.
                        write_back.forget();
                    }
                    Response::from(change_topology(&mut dp, path, &mut config, &mut openflow_servers, &request))
                } else if let Some(r) = crate::openflow::controller_request(openflow_servers.hub(), &config, &request) {
                    Response::from(r.and_then(|reply| persist_controllers(path, &mut config, &request).map(|()| reply)))
                } else {
                    let started = Instant::now();
                    let r = crate::openflow::notifying_deletes(&mut dp, openflow_servers.hub(), |dp| {
                        handle(dp, &config, &request)
                    });
                    let applied = started.elapsed();
                    let r = r.and_then(|reply| persist(&mut dp, path, &mut write_back, &request).map(|()| reply));
                    let written = started.elapsed() - applied;
                    if let Request::AddFlows { bridge, .. } = &request {
                        tracing::info!(
                            target: "ferrovs_daemon::control",
                            "add-flows {bridge}: {lines} line(s) parsed and applied in {} ms, written back in {} ms",
                            applied.as_millis(),
                            written.as_millis()
                        );
                    } else if request.is_mutating() {
                        tracing::info!(
                            target: "ferrovs_daemon::control",
                            "{}: applied in {} us, written back in {} us",
                            describe(&request),
                            applied.as_micros(),
                            written.as_micros()
                        );
                    }
                    Response::from(r)
                };
                let _ = reply.send(resp);
                if is_stop {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        if reload.swap(false, Ordering::Relaxed) {
            notifier.reloading();
            write_back.forget();
            match reload_config(&mut dp, path, &mut config, &mut openflow_servers) {
                Ok(r) => tracing::info!("SIGHUP: reloaded {}: {r:?}", path.display()),
                Err(e) => tracing::error!("SIGHUP: reload failed: {e}"),
            }
            notifier.ready("forwarding");
        }
        let now = Instant::now();
        if now.duration_since(last_publish) >= PUBLISH_EVERY {
            watch_devices(&mut dp, &config, &mut device_watch, openflow_servers.hub(), now);
            publish(&dp, &config, &published);
            openflow_servers.hub().watch_links(&dp.show(&config));
            openflow_servers.hub().tick(now);
            last_publish = now;
        }
        if let Some(auto) = &mut auto_rebalance {
            let cycles: Vec<(u64, u64)> = dp.pmd_cycles();
            if auto.due(now, &cycles) {
                match dp.rebalance_rxqs() {
                    Ok(r) => tracing::info!("automatic rx queue rebalance: {} queue(s) moved", r.moves.len()),
                    Err(e) => tracing::warn!("automatic rx queue rebalance failed: {e}"),
                }
            }
        }
        if notifier.watchdog_due(now) {
            let stalled = liveness.stalled(&dp.pmd_iterations());
            if !stalled.is_empty() {
                tracing::error!("PMD(s) {stalled:?} made no progress; not feeding the watchdog");
            }
            notifier.watchdog(now, stalled.is_empty());
        }
    }

    tracing::info!("stopping");
    notifier.stopping();
    drop(control);
    drop(appctl_server);
    drop(openflow_servers);
    drop(metrics);
    captures.stop_all();
    let final_stats = dp.stop();
    // After the PMDs and ports: a capture's callbacks update counters in pdump's memory.
    drop(pdump);
    // The counters at exit, one line per port and PMD, for the journal.
    for line in crate::datapath::stats_lines(&final_stats) {
        tracing::info!("{line}");
    }
    drop(eal);
    Ok(())
}

/// Detaches the ports whose device went away and reattaches those whose device is back
/// (see `device_watch`), telling the OpenFlow controllers (port deleted, port added).
fn watch_devices(
    dp: &mut Datapath,
    config: &Config,
    watch: &mut crate::device_watch::DeviceWatch,
    hub: &crate::openflow::controller::Hub,
    now: Instant,
) {
    use crate::device_watch::{DeviceEvent, TunDescriptors, interface_exists};
    for name in dp.removed_ports() {
        watch.removal_reported(&name);
    }
    // Only a switch with TAP ports reads its descriptors.
    let taps = config.bridges.iter().flat_map(|b| &b.ports).any(|p| crate::device_watch::tap_interface(p).is_some());
    let tun = if taps {
        TunDescriptors::read().unwrap_or_else(|e| {
            tracing::warn!("cannot read this process's descriptors to watch TAP ports: {e}");
            TunDescriptors::default()
        })
    } else {
        TunDescriptors::default()
    };
    for event in watch.check(now, config, |n| dp.is_detached(n), &tun, interface_exists) {
        match event {
            DeviceEvent::Gone(name) => {
                let before = port_info_of(dp, config, &name);
                let number = dp.datapath_number(&name);
                match crate::reconcile::detach_port(dp, config, &name) {
                    Ok(n) => {
                        tracing::warn!("port {name}: its device is gone; detached ({n} megaflow(s) removed)");
                        if let Some((bridge, info)) = before {
                            hub.port_status(&bridge, &info, PortReason::Delete);
                        }
                        if let Some(n) = number {
                            hub.port_removed(n);
                        }
                    }
                    Err(e) => tracing::error!("port {name}: its device is gone, detaching failed: {e}"),
                }
            }
            DeviceEvent::Back(name) => match crate::reconcile::reattach_port(dp, config, &name) {
                Ok(_) => {
                    tracing::info!("port {name}: its device is back; reattached");
                    if let Some((bridge, info)) = port_info_of(dp, config, &name) {
                        if let Some(n) = dp.datapath_number(&name) {
                            hub.port_added(&bridge, info.number, n);
                        }
                        hub.port_status(&bridge, &info, PortReason::Add);
                    }
                }
                // Only a TAP comes back by name; other devices are probed on a timer.
                Err(e) => tracing::debug!("port {name}: still detached: {e}"),
            },
        }
    }
}

/// Port `name` as `show` describes it, with its bridge.
fn port_info_of(dp: &Datapath, config: &Config, name: &str) -> Option<(String, crate::protocol::PortInfo)> {
    dp.show(config)
        .bridges
        .into_iter()
        .find_map(|b| b.ports.into_iter().find(|p| p.name == name).map(|p| (b.name.clone(), p)))
}

/// A change request for the log: `add-flows` by its size, not its (maybe million) lines.
/// The lines of an `add-flows` request (an element may hold many: a streamed file is
/// one), counted as `str::lines` does, by bytes (a million-line request is logged twice).
fn line_count(flows: &[String]) -> usize {
    flows
        .iter()
        .map(|f| ferrovs_config::newlines(f.as_bytes()) + usize::from(!f.is_empty() && !f.ends_with('\n')))
        .sum()
}

/// The lines of `request` if an `add-flows` (see [`line_count`]), else 0.
fn add_flows_lines(request: &Request) -> usize {
    match request {
        Request::AddFlows { flows, .. } => line_count(flows),
        _ => 0,
    }
}

fn describe(request: &Request) -> String {
    describe_counted(request, add_flows_lines(request))
}

/// [`describe`] of a request whose lines are counted already (`lines`: of an `add-flows`).
fn describe_counted(request: &Request, lines: usize) -> String {
    match request {
        Request::AddFlows { bridge, .. } => format!("AddFlows {{ bridge: {bridge:?}, {lines} line(s) }}"),
        other => format!("{other:?}"),
    }
}

/// Writes the rules of the bridge a rule change touched back to the config (see
/// `ferrovs_config::persist`), so a restart comes back to the running rules. The change
/// itself is applied whatever happens here; a failure is reported, never hidden.
fn persist(dp: &mut Datapath, path: &Path, write_back: &mut RuleWriteBack, request: &Request) -> Result<(), String> {
    let bridge = match request {
        Request::AddFlow { bridge, .. } | Request::AddFlows { bridge, .. } | Request::DelFlows { bridge, .. } => bridge,
        _ => return Ok(()),
    };
    persist_bridge(dp, path, write_back, bridge)
}

/// After `set-controller` / `del-controller` (applied): the bridge's controllers in the
/// running config and written back to the file, so a restart keeps them.
fn persist_controllers(path: &Path, config: &mut Config, request: &Request) -> Result<(), String> {
    let (bridge, targets) = match request {
        Request::SetController { bridge, targets } => (bridge, targets.as_slice()),
        Request::DelController { bridge } => (bridge, &[][..]),
        _ => return Ok(()),
    };
    let parsed: Vec<ferrovs_config::ControllerTarget> =
        targets.iter().filter_map(|t| ferrovs_config::ControllerTarget::parse(t).ok()).collect();
    if let Some(b) = config.bridges.iter_mut().find(|b| &b.name == bridge) {
        b.controllers = parsed.clone();
    }
    let texts: Vec<String> = parsed.iter().map(ToString::to_string).collect();
    ferrovs_config::persist::write_bridge_controllers(path, bridge, &texts).map_err(|e| {
        tracing::error!("controller change applied but not written back: {e}");
        format!("the change is applied, but it could not be written back to the config: {e}")
    })
}

/// Writes the running rules of `bridge` back to the config (see [`persist`]).
fn persist_bridge(dp: &mut Datapath, path: &Path, write_back: &mut RuleWriteBack, bridge: &str) -> Result<(), String> {
    let groups = group_texts(dp, bridge)?;
    // Taken last: the changes taken must reach the write (or be forgotten with it).
    let rules = dp.rules_to_write(bridge)?;
    write_back.write(path, bridge, &rules.texts, rules.edits.as_deref(), &groups).map(|_| ()).map_err(|e| {
        tracing::error!("rule change applied but not written back: {e}");
        format!("the change is applied, but it could not be written back to the config: {e}")
    })
}

/// The groups of `bridge` printed, as the write-back keeps them.
fn group_texts(dp: &mut Datapath, bridge: &str) -> Result<Vec<String>, String> {
    Ok(dp.groups(bridge)?.iter().map(|(id, g)| ferrovs_config::group_text(*id, g)).collect())
}

/// Lets `write_back` take the flows file of `bridge` if this daemon wrote it in an
/// earlier run (see `RuleWriteBack::adopt`). Prints the running rules to compare them
/// with the file's (kept: the first change would print them anyway). Whatever goes
/// wrong is logged: the first change then writes the rules whole, as it would.
fn adopt_flows_file(dp: &mut Datapath, path: &Path, write_back: &mut RuleWriteBack, bridge: &str) {
    let (file, version) = match ferrovs_config::persist::daemon_flows_file(path, bridge) {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("bridge {bridge}: flows file not checked: {e}");
            return;
        }
    };
    let started = Instant::now();
    let adopted = group_texts(dp, bridge).and_then(|groups| {
        let rules = dp.rules_to_write(bridge)?;
        write_back.adopt(bridge, &file, version, &rules.texts, &groups).map_err(|e| e.to_string())
    });
    let ms = started.elapsed().as_millis();
    match adopted {
        Ok(true) => {
            tracing::info!("bridge {bridge}: changes go to the journal of {} (checked in {ms} ms)", file.display())
        }
        Ok(false) => tracing::info!(
            "bridge {bridge}: {} holds the rules otherwise than this daemon prints them: the first change writes them \
             whole",
            file.display()
        ),
        Err(e) => tracing::warn!("bridge {bridge}: flows file not checked: {e}"),
    }
}

/// Publishes the counters for other threads (see `published`).
fn publish(dp: &Datapath, config: &Config, published: &Published) {
    published.publish(Snapshot { show: dp.show(config), pmd: dp.pmd_stats(), taken: Instant::now() });
}

/// Answers one `ovs-appctl` call: the text to print, or the error.
fn appctl(
    dp: &mut Datapath,
    config: &Config,
    log: &LogControl,
    call: &UnixctlCall,
    test_hooks: bool,
) -> Result<String, String> {
    let hook = test_hooks.then(|| appctl::parse_test_hook(&call.method, &call.params)).flatten();
    let what = hook.unwrap_or_else(|| appctl::parse(&call.method, &call.params))?;
    if what.is_mutating() {
        if !crate::socket_server::may_change(call.peer_uid) {
            return Err("permission denied: this command needs root (or the daemon's user)".into());
        }
        tracing::info!(target: "ferrovs_daemon::control", uid = ?call.peer_uid, "change (appctl): {} {:?}", call.method, call.params);
    }
    let pmd_stats = |dp: &mut Datapath| match handle(dp, config, &Request::PmdStatsShow)? {
        Reply::PmdStatsShow(r) => Ok(*r),
        _ => Err("internal error: pmd-stats-show answered with another reply".to_string()),
    };
    match what {
        AppctlCall::Control(req) => handle(dp, config, &req).map(|r| crate::render::render(&r)),
        AppctlCall::PmdRxqShow => pmd_stats(dp).map(|r| appctl::pmd_rxq_show(&r)),
        AppctlCall::PmdPerfShow => pmd_stats(dp).map(|r| crate::render::pmd_perf(&r)),
        AppctlCall::CoverageShow => pmd_stats(dp).map(|r| appctl::coverage_show(&r)),
        AppctlCall::VlogList => Ok(log.list()),
        AppctlCall::VlogSet(specs) => log.set(&specs),
        AppctlCall::ListCommands => Ok(appctl::list_commands()),
        AppctlCall::Version => Ok(format!("ferrovsd (ferrovs) {}\n", env!("CARGO_PKG_VERSION"))),
        AppctlCall::StallPmd { pmd, seconds } => {
            dp.stall_pmd(pmd, Duration::from_secs_f64(seconds))?;
            tracing::warn!("test hook: PMD {pmd} told to stall for {seconds} s");
            Ok(String::new())
        }
    }
}

/// Re-reads the config at `path` and applies its rules. The running config keeps
/// describing ports and settings (which a reload may not change).
/// The gid of `[control] socket_group`, if set; an unknown group stops the start.
fn socket_group(config: &Config) -> Result<Option<u32>, DaemonError> {
    let Some(name) = &config.control.socket_group else { return Ok(None) };
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(Some(g.gid.as_raw())),
        Ok(None) => Err(DaemonError::Datapath(format!("control.socket_group: no group named {name:?}"))),
        Err(e) => Err(DaemonError::Datapath(format!("control.socket_group {name:?}: {e}"))),
    }
}

/// Re-reads the config and applies the difference (see `reconcile`). The file is the
/// source here, so nothing is written back; after a partial failure the error says
/// what did not apply, and `running` describes what runs.
/// The `send_flow_rem` rules the reload deletes are reported to the controllers
/// (`openflow::notifying_deletes`).
fn reload_config(
    dp: &mut Datapath,
    path: &Path,
    running: &mut Config,
    openflow: &mut OpenFlowServers,
) -> Result<ChangeReply, String> {
    let new = Config::load(path).map_err(|e| e.to_string())?;
    new.validate(&SystemFacts { online_cpus: ferrovs_pmd::online_cpus() }).map_err(|e| e.to_string())?;
    let hub = openflow.hub().clone();
    crate::openflow::notifying_deletes(dp, &hub, |dp| {
        apply_desired(dp, running, &new, openflow, crate::reconcile::RulesFrom::File)
    })
}

/// Applies `desired`, then follows the bridges with their management sockets, and
/// collects the warnings.
fn apply_desired(
    dp: &mut Datapath,
    running: &mut Config,
    desired: &Config,
    openflow: &mut OpenFlowServers,
    rules_from: crate::reconcile::RulesFrom,
) -> Result<ChangeReply, String> {
    // The bridges as they were, without their rules (which may be 10^6 and are not needed).
    let before: Vec<BridgeConfig> = running
        .bridges
        .iter()
        .map(|b| BridgeConfig {
            name: b.name.clone(),
            ports: b.ports.clone(),
            controllers: b.controllers.clone(),
            fail_mode: b.fail_mode,
            datapath_id: b.datapath_id,
            ..BridgeConfig::default()
        })
        .collect();
    let was = |name: &str| before.iter().find(|b| b.name == name);
    let before_numbers: std::collections::HashMap<String, u32> = before
        .iter()
        .flat_map(|b| &b.ports)
        .filter_map(|p| dp.datapath_number(&p.name).map(|n| (p.name.clone(), n)))
        .collect();
    // The ports as they were (for the controllers' port-status DELETE).
    let shown_before = dp.show(running);
    let result = crate::reconcile::reconcile(dp, running, desired, rules_from);
    let shown_after = dp.show(running);
    let shown = |show: &crate::protocol::ShowReply, bridge: &str, port: &str| {
        show.bridges.iter().filter(|b| b.name == bridge).flat_map(|b| &b.ports).find(|p| p.name == port).cloned()
    };
    // Whatever applied (all, or part before an error): the OpenFlow side follows the
    // running bridges and ports.
    for b in &before {
        if running.bridge(&b.name).is_none() {
            openflow.remove_bridge(&b.name);
        }
    }
    for b in &running.bridges {
        let old = was(&b.name);
        if old.is_none()
            && let Err(e) = openflow.add_bridge(&b.name, b.datapath_id)
        {
            tracing::warn!("bridge {}: OpenFlow management socket not bound: {e}", b.name);
        }
        let same_controllers = old.is_some_and(|o| o.controllers == b.controllers && o.fail_mode == b.fail_mode);
        if !same_controllers
            && (old.is_some() || !b.controllers.is_empty())
            && let Err(e) = openflow.hub().set_controllers(&b.name, &b.controllers, b.fail_mode)
        {
            tracing::warn!("bridge {}: controllers not set: {e}", b.name);
        }
        if let Some(id) = b.datapath_id.filter(|_| old.is_some_and(|o| o.datapath_id != b.datapath_id)) {
            openflow.hub().set_dpid(&b.name, id);
        }
        for p in &b.ports {
            let old_port = old.and_then(|o| o.ports.iter().find(|x| x.name == p.name));
            if old_port.is_none()
                && let Some(n) = dp.datapath_number(&p.name)
            {
                openflow.hub().port_added(&b.name, p.number, n);
                if let Some(info) = shown(&shown_after, &b.name, &p.name) {
                    openflow.hub().port_status(&b.name, &info, PortReason::Add);
                }
            }
            // Its OFPPC_PORT_DOWN changed (set-port admin=, reload, or a port-mod).
            if old_port.is_some_and(|o| o.admin_down != p.admin_down)
                && let Some(info) = shown(&shown_after, &b.name, &p.name)
            {
                openflow.hub().port_status(&b.name, &info, PortReason::Modify);
            }
        }
    }
    for b in &before {
        for p in &b.ports {
            if !running.bridges.iter().any(|r| r.ports.iter().any(|x| x.name == p.name)) {
                if let Some(n) = before_numbers.get(&p.name) {
                    openflow.hub().port_removed(*n);
                }
                // A removed bridge's controllers are gone with it; a port that left a
                // bridge that stays is reported.
                if let Some(info) = shown(&shown_before, &b.name, &p.name) {
                    openflow.hub().port_status(&b.name, &info, PortReason::Delete);
                }
            }
        }
    }
    let mut reply = result?;
    reply.warnings = crate::topology::dangling_port_warnings(running);
    Ok(reply)
}

/// `add-br`, `del-br`, `add-port`, `del-port`, `set-port` (applied, then written back),
/// `list-br`, `list-ports`.
fn change_topology(
    dp: &mut Datapath,
    path: &Path,
    running: &mut Config,
    openflow: &mut OpenFlowServers,
    req: &Request,
) -> Result<Reply, String> {
    let desired = match crate::topology::desired_after(running, req)? {
        crate::topology::Outcome::Names(n) => {
            return Ok(if matches!(req, Request::ListBr) { Reply::ListBr(n) } else { Reply::ListPorts(n) });
        }
        crate::topology::Outcome::Change(d) => d,
    };
    if let Request::AddBr { bridge } = req
        && crate::device_watch::interface_exists(bridge)
    {
        // net_tap would fail on it (or, for a TAP, take it over): say why first.
        return Err(format!("an interface named {bridge} exists: the bridge's internal port would take that name"));
    }
    let result = apply_desired(dp, running, &desired, openflow, crate::reconcile::RulesFrom::Running);
    // Write back what runs, also after a partial failure.
    let written = ferrovs_config::persist::write_topology(path, &running.bridges).map_err(|e| {
        tracing::error!("change applied but not written back: {e}");
        format!("the change is applied, but it could not be written back to the config: {e}")
    });
    let reply = result?;
    written?;
    Ok(match req {
        Request::AddBr { .. } => Reply::AddBr(reply),
        Request::DelBr { .. } => Reply::DelBr(reply),
        Request::AddPort { .. } => Reply::AddPort(reply),
        Request::DelPort { .. } => Reply::DelPort(reply),
        _ => Reply::SetPort(reply),
    })
}

/// The `set-port` setting of an administrative state.
fn admin_setting(down: bool) -> String {
    format!("admin={}", if down { "down" } else { "up" })
}

/// Answers one control request (but `reload`, which needs the config's path).
fn handle(dp: &mut Datapath, config: &Config, req: &Request) -> Result<Reply, String> {
    match req {
        Request::Stop => Ok(Reply::Stop),
        Request::Show => Ok(Reply::Show(dp.show(config))),
        Request::PmdStatsShow => Ok(Reply::PmdStatsShow(Box::new(dp.pmd_stats()))),
        Request::PmdStatsClear => {
            dp.pmd_stats_clear();
            Ok(Reply::PmdStatsClear)
        }
        Request::PmdRxqRebalance => dp.rebalance_rxqs().map(Reply::PmdRxqRebalance),
        other => dp.flow_request(other),
    }
}

/// The CPUs for every thread but the PMDs: those the daemon was started with (its
/// service's `CPUAffinity=`, `taskset`, or all), less the PMDs' CPUs, since a PMD polls its
/// CPU all the time and a thread beside it takes the PMD's cycles; all of them if that
/// leaves none (a PMD then shares, as it shares the main lcore with
/// `pmd.share_main_lcore`).
fn control_cpus(started_with: &[usize], pmd_cores: &[usize]) -> Vec<usize> {
    let rest: Vec<usize> = started_with.iter().copied().filter(|c| !pmd_cores.contains(c)).collect();
    if rest.is_empty() { started_with.to_vec() } else { rest }
}

/// Lets the calling thread, and the threads it starts from now on, run on the
/// [`control_cpus`] of `started_with`. A failure is logged, not fatal (the threads then
/// stay where they are).
fn confine_to_control_cpus(started_with: &[usize], pmd_cores: &[usize]) {
    let cpus = control_cpus(started_with, pmd_cores);
    if let Err(e) = ferrovs_dpdk::set_thread_affinity(&cpus) {
        tracing::warn!("cannot move the threads other than the PMDs to CPUs {cpus:?}: {e}");
    }
}

/// The EAL arguments: the config's, minus its `--vdev`s, because the switch probes every
/// virtual device itself (a failed `--vdev` would not fail `rte_eal_init`, it would just
/// leave the port missing; probing reports DPDK's refusal for the port that caused it).
fn eal_args(config: &Config) -> Vec<String> {
    config.eal_args().into_iter().filter(|a| !a.starts_with("--vdev")).collect()
}

/// The frames a `net_pcap,infinite_rx=1` port keeps in mbufs: every record of every
/// `rx_pcap=` file, one file per rx queue (net_pcap makes a queue of each).
fn pcap_replay_frames(devargs: &str) -> u64 {
    let mut parts = devargs.split(',');
    if !parts.next().is_some_and(|d| d.starts_with("net_pcap")) {
        return 0;
    }
    let (mut files, mut infinite) = (Vec::new(), false);
    for kv in parts {
        match kv.split_once('=') {
            Some(("rx_pcap", f)) => files.push(f),
            Some(("infinite_rx", v)) => infinite = v.trim() == "1",
            _ => {}
        }
    }
    if !infinite {
        return 0;
    }
    files.iter().map(|f| std::fs::read(f).map(|b| count_pcap_records(&b)).unwrap_or(0)).sum()
}

/// Records in a classic pcap file (either byte order); stops at a truncated record.
fn count_pcap_records(b: &[u8]) -> u64 {
    // A truncated last record ends the count, as net_pcap stops reading there.
    let Ok(mut reader) = pcap_file::pcap::PcapReader::new(b) else { return 0 };
    let mut n = 0;
    while let Some(Ok(_)) = reader.next_packet() {
        n += 1;
    }
    n
}

fn switch_options(config: &Config) -> SwitchOptions {
    let idle_backoff = (config.pmd.idle_backoff_us > 0).then(|| IdleBackoff {
        after_empty_polls: 1024,
        start: Duration::from_micros(1),
        max: Duration::from_micros(config.pmd.idle_backoff_us as u64),
    });
    // Enough mbufs for every rx and tx descriptor of every port plus the PMDs' caches and
    // in-flight bursts, within the EAL memory the config grants. Each mbuf receives a
    // frame of the largest configured MTU whole (a frame in segments is dropped: see
    // `data_room_for_mtu`); with DPDK's default data room one takes about 2.4 KB.
    let n_ports = config.bridges.iter().map(|b| b.ports.len()).sum::<usize>() as u32;
    let defaults = SwitchOptions::default();
    let largest_mtu = config.bridges.iter().flat_map(|b| &b.ports).map(|p| p.mtu).max().unwrap_or(DEFAULT_MTU);
    let data_room = data_room_for_mtu(largest_mtu);
    let mbuf_bytes = u64::from(data_room) + 224;
    // A `net_pcap` port with `infinite_rx=1` keeps every frame of its capture in an mbuf
    // of this pool for as long as it runs, so those frames come on top.
    let replay: u64 = config.bridges.iter().flat_map(|b| &b.ports).map(|p| pcap_replay_frames(&p.devargs)).sum();
    // Not rounded up to a power of two: at 1M replayed frames that would double the pool.
    let want64 =
        (n_ports as u64 * (defaults.rx_desc as u64 + defaults.tx_desc as u64) + 8192).next_power_of_two() - 1 + replay;
    let want = want64.min(u32::MAX as u64) as u32;
    let budget = (config.eal.memory_mb as u64 * 1024 * 1024 / 2 / mbuf_bytes).min(u64::from(u32::MAX)) as u32;
    if want > budget && replay > 0 {
        tracing::warn!(
            "{replay} frames of pcap replay need about {} MB of EAL memory for mbufs; [eal] memory_mb = {} \
             gives {budget} mbufs: raise memory_mb or the replay ports run out of mbufs",
            (want64 * mbuf_bytes * 2) >> 20,
            config.eal.memory_mb
        );
    }
    SwitchOptions {
        pmd_cores: config.pmd.cores.clone(),
        n_mbufs: want.min(budget).max(4095),
        mbuf_data_room: data_room,
        idle_backoff,
        // Installs after a burst of new flows arrive together; the slow path waits for
        // room rather than drop one, but a deep queue keeps it from waiting.
        message_queue: 16384,
        ..defaults
    }
}

#[cfg(test)]
mod pcap_replay_tests {
    use super::*;

    #[test]
    fn counts_records_of_a_replayed_capture_only() {
        // A little-endian pcap header and two 60-byte records, the second one truncated
        // after a third complete one would begin.
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for _ in 0..2 {
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&60u32.to_le_bytes());
            b.extend_from_slice(&60u32.to_le_bytes());
            b.extend_from_slice(&[0xab; 60]);
        }
        assert_eq!(count_pcap_records(&b), 2);
        let mut cut = b.clone();
        cut.extend_from_slice(&[0; 8]);
        cut.extend_from_slice(&60u32.to_le_bytes());
        cut.extend_from_slice(&60u32.to_le_bytes());
        cut.extend_from_slice(&[0; 10]);
        assert_eq!(count_pcap_records(&cut), 2);
        assert_eq!(count_pcap_records(b"junk"), 0);

        let path = std::env::temp_dir().join(format!("ferrovsd-replay-{}.pcap", std::process::id()));
        std::fs::write(&path, &b).unwrap();
        let p = path.to_str().unwrap();
        assert_eq!(pcap_replay_frames(&format!("net_pcap0,rx_pcap={p},infinite_rx=1")), 2);
        assert_eq!(pcap_replay_frames(&format!("net_pcap0,rx_pcap={p}")), 0, "not kept in mbufs");
        // One file per rx queue: all of them are kept.
        assert_eq!(pcap_replay_frames(&format!("net_pcap0,rx_pcap={p},rx_pcap={p},infinite_rx=1")), 4);
        assert_eq!(pcap_replay_frames("net_null0,no-rx=1"), 0);
        assert_eq!(pcap_replay_frames("net_pcap0,rx_pcap=/nonexistent,infinite_rx=1"), 0);
        let _ = std::fs::remove_file(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::{control_cpus, line_count};

    #[test]
    fn control_threads_leave_the_pmds_their_cpus_unless_none_would_be_left() {
        assert_eq!(control_cpus(&[0, 1, 2, 3], &[1, 3]), vec![0, 2]);
        assert_eq!(control_cpus(&[0, 2, 3], &[1, 3]), vec![0, 2], "a PMD CPU outside the set changes nothing");
        assert_eq!(control_cpus(&[1], &[1]), vec![1], "nothing else: shared with the PMD");
        assert_eq!(control_cpus(&[0, 1], &[0, 1]), vec![0, 1]);
        assert_eq!(control_cpus(&[0, 1], &[]), vec![0, 1]);
    }

    #[test]
    fn line_count_counts_as_str_lines() {
        let cases = ["", "a", "a\n", "a\n\nb", "a\r\nb\r\n", "\n", "x\ny"];
        for c in cases {
            assert_eq!(line_count(&[c.to_string()]), c.lines().count(), "{c:?}");
        }
        assert_eq!(line_count(&cases.map(String::from)), cases.iter().map(|c| c.lines().count()).sum::<usize>());
    }
}
