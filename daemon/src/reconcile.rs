//! The desired state of the switch and the running datapath.
//!
//! The switch's desired state is a [`Config`]: bridges, their ports with their settings,
//! and rules. Every source of change edits a copy of it the same way — the TOML file at
//! start and on `reload`, ferrovs-ctl's `add-br` / `del-br` / `add-port` / `del-port` /
//! `set-port` at run time — and hands it to [`reconcile`], which applies only the
//! difference to the running datapath:
//!
//! 1. ports that go (or whose device, number, queues or bridge changed) are removed:
//!    the PMDs stop polling them, the slow path forgets them (every megaflow that output
//!    to or came from them is revalidated or removed, on every PMD), then their tx queues
//!    are taken back and the device is closed;
//! 2. bridges that go are removed (with their megaflows);
//! 3. new bridges are added, then new ports: tx queues first, then the slow path learns
//!    the port, then the PMDs poll it, so no miss from it meets a slow path that does not
//!    know it;
//! 4. MTUs, administrative state (up/down) and rx queue pins are changed in place — the
//!    device is not re-created, so nothing is lost on it or elsewhere; on a reload, bridges
//!    whose groups or rules differ from what runs get the file's groups, then its rule set
//!    (one atomic change each); a topology change leaves them as they run ([`RulesFrom`]).
//!
//! A port whose device went away under the switch (see `crate::device_watch`) is
//! *detached*: it stays in the desired and running state (and in the file) but not in
//! the datapath or in its bridge's port set; [`detach_port`] and [`reattach_port`] move it
//! out and back with the same steps as a remove and an add. A change to a detached port
//! only edits the running state; it is applied when the port is reattached.
//!
//! Each step that succeeds is recorded in the running state at once, so when a step
//! fails (DPDK rejects a device) the running state still says exactly what runs: the
//! caller writes that back and reports the error. Settings that only a restart can
//! apply (`[eal]`, `[pmd]`, `[control]`, `[flow]`, `[metrics]`) are refused before
//! anything is touched, naming the section.

use ferrovs_config::{BridgeConfig, Config, PortConfig};
use ferrovs_pmd::PortSpec;

use crate::datapath::Datapath;
use crate::protocol::ChangeReply;
use crate::slow_path_thread::TopologyChange;

/// The switch's view of a configured port, with its datapath number.
pub fn port_spec(p: &PortConfig, datapath_number: u32) -> PortSpec {
    let mut spec = PortSpec::new(p.name.clone(), datapath_number, p.devargs.clone());
    spec.n_rxq = p.rx_queues;
    spec.mtu = p.mtu;
    spec.link_down = p.is_internal();
    spec.admin_down = p.admin_down;
    spec.rxq_affinity = p.rxq_affinity.clone();
    spec
}

/// The sections of `desired` that differ from `running` and need a restart.
pub fn restart_only_changes(running: &Config, desired: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if running.eal != desired.eal {
        changed.push("[eal]");
    }
    if running.pmd != desired.pmd {
        changed.push("[pmd]");
    }
    if running.control != desired.control {
        changed.push("[control]");
    }
    if running.flow != desired.flow {
        changed.push("[flow]");
    }
    if running.metrics != desired.metrics {
        changed.push("[metrics]");
    }
    changed
}

/// Whether `a` and `b` are the same port as far as the device is concerned (what only
/// a remove and add can change).
fn same_device(a: &PortConfig, b: &PortConfig) -> bool {
    a.number == b.number && a.devargs == b.devargs && a.rx_queues == b.rx_queues
}

fn find_port<'a>(c: &'a Config, name: &str) -> Option<(&'a BridgeConfig, &'a PortConfig)> {
    c.bridges.iter().find_map(|b| b.ports.iter().find(|p| p.name == name).map(|p| (b, p)))
}

/// Where the rules and groups of `desired`'s bridges that already run come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesFrom {
    /// The config file (a reload): they replace what runs, runtime changes included
    /// (`running` does not follow those, so the datapath is asked).
    File,
    /// `running` (a topology change, which changes no rules of a running bridge): they
    /// are left as they run.
    Running,
}

/// Makes the running datapath (described by `running`) match `desired`; see the module
/// doc. On success `running` equals `desired`; on error it describes what runs.
pub fn reconcile(
    dp: &mut Datapath,
    running: &mut Config,
    desired: &Config,
    rules_from: RulesFrom,
) -> Result<ChangeReply, String> {
    let restart = restart_only_changes(running, desired);
    if !restart.is_empty() {
        return Err(format!("{} changed: these settings apply at start only; restart ferrovsd", restart.join(", ")));
    }
    let mut done = ChangeReply::default();
    // 1. Ports that go, or that only a remove and add can change.
    let leaving: Vec<(String, String)> = running
        .bridges
        .iter()
        .flat_map(|b| b.ports.iter().map(move |p| (b, p)))
        .filter(|(b, p)| match find_port(desired, &p.name) {
            Some((db, dp)) => db.name != b.name || !same_device(p, dp),
            None => true,
        })
        .map(|(b, p)| (b.name.clone(), p.name.clone()))
        .collect();
    for (bridge, port) in leaving {
        if dp.is_detached(&port) {
            // Not in the datapath: only the running state and the detached set change.
            dp.forget_detached(&port);
            if let Some(b) = running.bridges.iter_mut().find(|b| b.name == bridge) {
                b.ports.retain(|x| x.name != port);
            }
        } else {
            done.megaflows_removed += remove_port(dp, running, &bridge, &port)?;
        }
        done.ports_removed.push(port);
    }
    // 2. Bridges that go.
    let gone: Vec<String> =
        running.bridges.iter().filter(|b| desired.bridge(&b.name).is_none()).map(|b| b.name.clone()).collect();
    for name in gone {
        // Their ports left in step 1.
        done.megaflows_removed += dp.topology(TopologyChange::RemoveBridge(name.clone()))?;
        running.bridges.retain(|b| b.name != name);
        done.bridges_removed.push(name);
    }
    // 3. New bridges (with their rules, without ports yet), then new ports.
    for b in &desired.bridges {
        if running.bridge(&b.name).is_none() {
            let spec = ferrovs_flowcache::slow_path::BridgeSpec {
                name: b.name.clone(),
                ports: Vec::new(),
                datapath_ports: Vec::new(),
                rules: b.rules.clone(),
                groups: b.groups.clone(),
            };
            dp.topology(TopologyChange::AddBridge(spec))?;
            running.bridges.push(BridgeConfig { ports: Vec::new(), ..b.clone() });
            done.bridges_added.push(b.name.clone());
        }
    }
    for b in &desired.bridges {
        for p in &b.ports {
            if find_port(running, &p.name).is_none() {
                match add_port(dp, running, &b.name, p) {
                    Ok(n) => done.megaflows_removed += n,
                    Err(e) if p.is_internal() && done.bridges_added.contains(&b.name) => {
                        // A new bridge without its internal port is not the bridge asked
                        // for (nor one the checks accept): it goes again.
                        dp.topology(TopologyChange::RemoveBridge(b.name.clone()))?;
                        running.bridges.retain(|x| x.name != b.name);
                        return Err(format!("bridge {}: internal port: {e}", b.name));
                    }
                    Err(e) => return Err(e),
                }
                done.ports_added.push(p.name.clone());
            }
        }
    }
    // 4. MTUs, admin state and pins, then rules.
    for b in &desired.bridges {
        for p in &b.ports {
            let Some(now) = find_port(running, &p.name).map(|(_, x)| x.clone()) else { continue };
            let attached = !dp.is_detached(&p.name);
            let mut changed = false;
            if now.mtu != p.mtu {
                if attached {
                    dp.set_port_mtu(&p.name, p.mtu)?;
                }
                set_running_port(running, &p.name, |rp| rp.mtu = p.mtu);
                changed = true;
            }
            if now.admin_down != p.admin_down {
                if attached {
                    dp.set_port_admin(&p.name, p.admin_down)?;
                }
                set_running_port(running, &p.name, |rp| rp.admin_down = p.admin_down);
                changed = true;
            }
            if now.rxq_affinity != p.rxq_affinity {
                if attached {
                    dp.set_rxq_affinity(&p.name, &p.rxq_affinity)?;
                }
                set_running_port(running, &p.name, |rp| rp.rxq_affinity = p.rxq_affinity.clone());
                changed = true;
            }
            if changed {
                done.ports_changed.push(p.name.clone());
            }
        }
        let Some(rb) = running.bridges.iter_mut().find(|x| x.name == b.name) else { continue };
        if rules_from == RulesFrom::Running {
            continue;
        }
        // Groups before the rules that name them; compared with what runs.
        if *dp.groups(&b.name)? != b.groups {
            let change = ferrovs_flowcache::slow_path::GroupChange::Replace(b.groups.clone());
            dp.group_mod(&b.name, change)?.map_err(|e| format!("bridge {}: groups: {e}", b.name))?;
            rb.groups = b.groups.clone();
            done.rules_replaced.push(b.name.clone());
            dp.set_rules(&b.name, b.rules.clone())?;
            rb.rules = b.rules.clone();
            continue;
        }
        if !dp.runs_rules(&b.name, &b.rules)? {
            dp.set_rules(&b.name, b.rules.clone())?;
            rb.rules = b.rules.clone();
            done.rules_replaced.push(b.name.clone());
        }
    }
    // Same bridges and ports; now the same order and everything else too.
    *running = desired.clone();
    Ok(done)
}

fn set_running_port(running: &mut Config, name: &str, f: impl FnOnce(&mut PortConfig)) {
    if let Some(p) = running.bridges.iter_mut().flat_map(|b| b.ports.iter_mut()).find(|p| p.name == name) {
        f(p)
    }
}

/// Adds `p` to `bridge` (which runs): tx queues, then the slow path, then polling.
fn add_port(dp: &mut Datapath, running: &mut Config, bridge: &str, p: &PortConfig) -> Result<u64, String> {
    dp.add_port(p)?;
    let mut ports: Vec<&PortConfig> = running.bridge(bridge).map(|b| b.ports.iter().collect()).unwrap_or_default();
    ports.push(p);
    let change = set_ports(dp, bridge, &ports);
    let removed = match dp.topology(change) {
        Ok(n) => n,
        Err(e) => {
            // The slow path refused it: take the port back out, as if never added.
            let _ = dp.remove_port(&p.name);
            return Err(e);
        }
    };
    if let Some(b) = running.bridges.iter_mut().find(|b| b.name == bridge) {
        b.ports.push(p.clone());
    }
    dp.poll_port(&p.name)?;
    Ok(removed)
}

/// The slow path's port set of `bridge` made of `ports` (in flood order), without the
/// detached ones.
fn set_ports(dp: &Datapath, bridge: &str, ports: &[&PortConfig]) -> TopologyChange {
    let attached: Vec<&&PortConfig> = ports.iter().filter(|p| !dp.is_detached(&p.name)).collect();
    TopologyChange::SetPorts {
        bridge: bridge.to_string(),
        ports: attached.iter().map(|p| p.number).collect(),
        datapath_ports: attached.iter().map(|p| dp.datapath_number(&p.name).unwrap_or(p.number)).collect(),
    }
}

/// Port `name`'s device went away: the port leaves the datapath and its bridge's port set
/// as in a remove (polling stops, megaflows from it removed and to it revalidated, its
/// queues taken back, the device closed) but stays in `running`, detached. Returns the
/// megaflows removed.
pub fn detach_port(dp: &mut Datapath, running: &Config, name: &str) -> Result<u64, String> {
    let (b, _) = find_port(running, name).ok_or_else(|| format!("no port named {name}"))?;
    dp.unpoll_port(name)?;
    dp.mark_detached(name);
    let ports: Vec<&PortConfig> = b.ports.iter().collect();
    let removed = dp.topology(set_ports(dp, &b.name, &ports))?;
    dp.remove_port(name)?;
    Ok(removed)
}

/// Port `name` (detached) is probed again with its settings and rejoins its bridge as in
/// an add. On error it stays detached.
pub fn reattach_port(dp: &mut Datapath, running: &Config, name: &str) -> Result<u64, String> {
    let (b, p) = find_port(running, name).ok_or_else(|| format!("no port named {name}"))?;
    dp.add_port(p)?;
    dp.forget_detached(name);
    let ports: Vec<&PortConfig> = b.ports.iter().collect();
    let removed = match dp.topology(set_ports(dp, &b.name, &ports)) {
        Ok(n) => n,
        Err(e) => {
            let _ = dp.remove_port(name);
            dp.mark_detached(name);
            return Err(e);
        }
    };
    dp.poll_port(name)?;
    Ok(removed)
}

/// Removes port `name` from `bridge`: polling stops, the slow path forgets it, then the
/// device goes.
fn remove_port(dp: &mut Datapath, running: &mut Config, bridge: &str, name: &str) -> Result<u64, String> {
    dp.unpoll_port(name)?;
    let ports: Vec<&PortConfig> =
        running.bridge(bridge).map(|b| b.ports.iter().filter(|x| x.name != name).collect()).unwrap_or_default();
    let change = set_ports(dp, bridge, &ports);
    let removed = dp.topology(change)?;
    if let Some(b) = running.bridges.iter_mut().find(|b| b.name == bridge) {
        b.ports.retain(|x| x.name != name);
    }
    dp.remove_port(name)?;
    Ok(removed)
}
