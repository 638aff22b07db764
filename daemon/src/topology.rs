//! ferrovs-ctl's bridge and port commands, with ovs-vsctl's words: each one edits a copy
//! of the desired state ([`Config`]), which is checked as a config file would be
//! ([`ferrovs_config::check_topology`]) and then applied by [`crate::reconcile`]. A
//! refused command changes nothing and says why (name exists, number in use, number out
//! of range, device rejected by DPDK, bridge not empty).

use ferrovs_config::{
    BridgeConfig, Config, MAX_PORT_NUMBER, PortConfig, check_mtu, check_rx_queues, check_rxq_affinity, parse_admin,
    parse_devargs, parse_rxq_affinity,
};

use crate::protocol::{NamesReply, Request};

/// What a topology request asks for: a new desired state, or an answer from the current one.
pub enum Outcome {
    Change(Box<Config>),
    Names(NamesReply),
}

/// Whether `req` is one of this module's commands.
pub fn is_topology_request(req: &Request) -> bool {
    matches!(
        req,
        Request::AddBr { .. }
            | Request::DelBr { .. }
            | Request::ListBr
            | Request::AddPort { .. }
            | Request::DelPort { .. }
            | Request::SetPort { .. }
            | Request::ListPorts { .. }
    )
}

/// The desired state after `req` (one of the bridge and port commands), or why not.
pub fn desired_after(running: &Config, req: &Request) -> Result<Outcome, String> {
    let mut d = running.clone();
    match req {
        Request::ListBr => return Ok(Outcome::Names(NamesReply { names: names(&running.bridges) })),
        Request::ListPorts { bridge } => {
            let b = running.bridge(bridge).ok_or_else(|| no_bridge(bridge))?;
            // As ovs-vsctl: the bridge's internal port is not listed.
            return Ok(Outcome::Names(NamesReply { names: b.user_ports().map(|p| p.name.clone()).collect() }));
        }
        Request::AddBr { bridge } => {
            if running.bridge(bridge).is_some() {
                return Err(format!("bridge {bridge} exists"));
            }

            d.bridges.push(BridgeConfig::new(bridge, true));
        }
        Request::DelBr { bridge, force } => {
            let b = running.bridge(bridge).ok_or_else(|| no_bridge(bridge))?;
            if b.user_ports().next().is_some() && !force {
                let ports: Vec<&str> = b.user_ports().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "bridge {bridge} has ports ({}): delete them first, or use --force",
                    ports.join(", ")
                ));
            }
            d.bridges.retain(|x| &x.name != bridge);
        }
        Request::AddPort { bridge, port, devargs, number, rx_queues, mtu } => {
            if running.bridge(bridge).is_none() {
                return Err(no_bridge(bridge));
            }
            let number = match number {
                Some(n) => *n,
                None => lowest_free_number(running).ok_or("every port number is in use")?,
            };
            let p = PortConfig {
                name: port.clone(),
                number,
                devargs: devargs.clone(),
                device: parse_devargs(devargs).map_err(|m| format!("port {port}: {m}"))?,
                rx_queues: rx_queues.unwrap_or(1),
                mtu: mtu.unwrap_or(ferrovs_config::DEFAULT_MTU),
                admin_down: false,
                rxq_affinity: Vec::new(),
            };
            if let Some(b) = d.bridges.iter_mut().find(|b| &b.name == bridge) {
                b.ports.push(p);
            }
        }
        Request::DelPort { port } => {
            if !d.bridges.iter().any(|b| b.ports.iter().any(|p| &p.name == port)) {
                return Err(no_port(port));
            }
            if d.bridge(port).is_some_and(|b| b.internal_port) {
                return Err(format!("port {port} is bridge {port}'s internal port: it goes with the bridge (del-br)"));
            }
            for b in &mut d.bridges {
                b.ports.retain(|p| &p.name != port);
            }
        }
        Request::SetPort { port, settings } => {
            let p = d.bridges.iter_mut().flat_map(|b| b.ports.iter_mut()).find(|p| &p.name == port);
            let p = p.ok_or_else(|| no_port(port))?;
            let internal = p.is_internal();
            for s in settings {
                if internal && !s.trim_start().starts_with("mtu") {
                    return Err(format!("{s:?}: port {port} is a bridge's internal port: only its mtu can be set"));
                }
                set(p, s)?;
            }
        }
        other => return Err(format!("{other:?} is not a bridge or port command")),
    }
    ferrovs_config::check_topology(&d.bridges)?;
    for p in d.bridges.iter().flat_map(|b| &b.ports) {
        check_rxq_affinity(&p.rxq_affinity, p.rx_queues, &d.pmd.cores)
            .map_err(|m| format!("port {}: rxq_affinity: {m}", p.name))?;
    }
    Ok(Outcome::Change(Box::new(d)))
}

/// Applies one `KEY=VALUE` of `set-port`.
fn set(p: &mut PortConfig, setting: &str) -> Result<(), String> {
    let (key, value) = setting.split_once('=').ok_or_else(|| format!("{setting:?}: expected KEY=VALUE"))?;
    let int = || value.trim().parse::<i64>().map_err(|_| format!("{key}: {value:?} is not a number"));
    match key.trim() {
        "mtu" => p.mtu = check_mtu(int()?).map_err(|m| format!("mtu: {m}"))?,
        "rx_queues" | "rx-queues" | "n_rxq" => {
            p.rx_queues = check_rx_queues(int()?).map_err(|m| format!("rx_queues: {m}"))?
        }
        "devargs" => {
            p.device = parse_devargs(value).map_err(|m| format!("devargs: {m}"))?;
            p.devargs = value.to_string();
        }
        "number" | "ofport_request" => {
            p.number = u32::try_from(int()?).map_err(|_| format!("number: {value} is out of range"))?
        }
        "admin" => p.admin_down = parse_admin(value)?,
        "rxq_affinity" | "pmd-rxq-affinity" => {
            p.rxq_affinity = parse_rxq_affinity(value).map_err(|m| format!("rxq_affinity: {m}"))?
        }
        other => {
            return Err(format!(
                "unknown port setting {other:?} (mtu, rx_queues, devargs, number, admin, rxq_affinity)"
            ));
        }
    }
    Ok(())
}

fn names(bridges: &[BridgeConfig]) -> Vec<String> {
    bridges.iter().map(|b| b.name.clone()).collect()
}

fn lowest_free_number(c: &Config) -> Option<u32> {
    let used: Vec<u32> = c.bridges.iter().flat_map(|b| b.ports.iter().map(|p| p.number)).collect();
    (1..=MAX_PORT_NUMBER).find(|n| !used.contains(n))
}

fn no_bridge(name: &str) -> String {
    format!("no bridge named {name}")
}

fn no_port(name: &str) -> String {
    format!("no port named {name}")
}

/// Warnings about `config`'s rules that name ports their bridge does not have.
pub fn dangling_port_warnings(config: &Config) -> Vec<String> {
    config
        .bridges
        .iter()
        .filter_map(|b| {
            let missing = ferrovs_config::dangling_ports(&b.rules, &b.ports);
            (!missing.is_empty()).then(|| {
                let list: Vec<String> = missing.iter().map(u32::to_string).collect();
                format!(
                    "bridge {}'s rules name port(s) {} that it does not have: those rules match or output nothing",
                    b.name,
                    list.join(", ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Config {
        let text = "[[bridge]]\nname = \"br0\"\n\n[[bridge.port]]\nname = \"a\"\nnumber = 1\ndevargs = \"net_null0\"\nrx_queues = 2\n";
        Config::from_str(text, std::env::temp_dir()).expect("config")
    }

    fn set_port(c: &Config, port: &str, setting: &str) -> Result<Config, String> {
        let req = Request::SetPort { port: port.into(), settings: vec![setting.into()] };
        match desired_after(c, &req)? {
            Outcome::Change(d) => Ok(*d),
            Outcome::Names(_) => Err("names".into()),
        }
    }

    #[test]
    fn set_port_admin_and_rxq_affinity() {
        let c = running();
        let port = |c: &Config| c.bridges[0].ports.iter().find(|p| p.name == "a").cloned().expect("port a");
        let down = set_port(&c, "a", "admin=down").unwrap();
        assert!(port(&down).admin_down);
        assert!(!port(&set_port(&down, "a", "admin=up").unwrap()).admin_down);
        assert!(set_port(&c, "a", "admin=off").unwrap_err().contains("admin is `up` or `down`"));
        // The default PMD core is CPU 1.
        let pinned = set_port(&c, "a", "rxq_affinity=1:1,0:1").unwrap();
        assert_eq!(port(&pinned).rxq_affinity, vec![(0, 1), (1, 1)]);
        assert!(port(&set_port(&pinned, "a", "rxq_affinity=").unwrap()).rxq_affinity.is_empty());
        let e = set_port(&c, "a", "pmd-rxq-affinity=0:0").unwrap_err();
        assert_eq!(e, "port a: rxq_affinity: CPU 0 runs no PMD thread (PMD cores: [1])");
        // Fewer queues than a pin needs: refused, naming the pin.
        assert!(set_port(&pinned, "a", "rx_queues=1").unwrap_err().contains("pins queue 1"));
        // The internal port's admin state is the host's (its interface), not a setting.
        assert!(set_port(&c, "br0", "admin=down").unwrap_err().contains("only its mtu"));
    }
}
