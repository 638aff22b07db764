//! Bridges and ports that change at run time (`add-br`, `del-br`, `add-port`,
//! `del-port`).
//!
//! A bridge keeps its index for life (megaflows in the mirrors and the `Removing` table
//! name their bridge by index): a removed bridge is retired in place — no name, no
//! ports, no rules — and its slot is reused by the next bridge added.
//!
//! A port change touches only the bridge it is on, but every megaflow of that bridge:
//! `flood`, `all` and `normal` output to the bridge's port set, and an `output:N` to a
//! port the bridge did not have translated to nothing. Megaflows whose `in_port` left the
//! bridge are removed (no packet can hit them); the others are revalidated against the
//! new port set. MAC entries learned on a removed port are forgotten, as OVS does. The
//! caller applies the returned commands (and waits for every PMD) before it reports the
//! change done, so after `del-port` returns no megaflow outputs to the port.

use crate::upcall::PmdCommand;
use crate::xlate::{MacTable, RuleStats, RuleTables};

use super::port_map::PortMap;
use super::{Bridge, BridgeSpec, Out, Replace, SlowPath, SlowPathError, ms};

impl SlowPath {
    /// Adds a bridge with its ports and rules. Nothing installed can depend on it yet.
    pub fn add_bridge(&mut self, spec: BridgeSpec, now_ms: u64) -> Result<(), SlowPathError> {
        if self.bridge_index(&spec.name).is_ok() {
            return Err(SlowPathError::DuplicateBridge(spec.name));
        }
        let port_map = PortMap::new(&spec.ports, &spec.datapath_ports);
        self.check_ports_free(&spec.name, &spec.ports, &port_map)?;
        let tables = RuleTables::new(spec.rules, spec.ports.clone())
            .and_then(|t| t.with_groups(std::sync::Arc::new(spec.groups)))
            .map_err(|error| SlowPathError::Rules { bridge: spec.name.clone(), error })?;
        let bridge = Bridge {
            ids: super::flow_index::RuleIds::new(tables.rules().len()),
            stats: RuleStats::new(&tables, ms(now_ms)),
            name: spec.name,
            ports: spec.ports,
            port_map,
            tables,
            macs: MacTable::new(self.cfg.mac_aging, self.cfg.mac_capacity),
            mac_index: Default::default(),
            flows: Default::default(),
        };
        let b = match self.bridges.iter().position(|b| b.name.is_empty()) {
            Some(b) => {
                self.bridges[b] = bridge;
                b
            }
            None => {
                self.bridges.push(bridge);
                self.bridges.len() - 1
            }
        };
        let dp: Vec<u32> = self.bridges[b].port_map.dp_ports().collect();
        for p in dp {
            self.port_bridge.insert(p, b);
        }
        Ok(())
    }

    /// Removes a bridge and every megaflow of it from every PMD.
    pub fn remove_bridge(&mut self, name: &str, now_ms: u64) -> Result<Vec<(usize, PmdCommand)>, SlowPathError> {
        let b = self.bridge_index(name)?;
        let mut out = Out::new(self.mirrors.len());
        for pmd in 0..self.mirrors.len() {
            for id in self.mirrors[pmd].ids_of_bridge(b) {
                self.remove_flow(pmd, id, &mut out);
            }
        }
        self.port_bridge.retain(|_, x| *x != b);
        let retired = RuleTables::new(Vec::new(), Vec::new())
            .map_err(|error| SlowPathError::Rules { bridge: name.to_string(), error })?;
        let br = &mut self.bridges[b];
        br.stats = RuleStats::new(&retired, ms(now_ms));
        br.ids = super::flow_index::RuleIds::new(0);
        br.flows = Default::default();
        br.tables = retired;
        br.name.clear();
        br.ports.clear();
        br.port_map = PortMap::default();
        br.macs = MacTable::new(self.cfg.mac_aging, self.cfg.mac_capacity);
        br.mac_index.clear();
        Ok(out.finish())
    }

    /// Makes `ports` (OpenFlow numbers, in flood order; the datapath's numbers in
    /// `datapath_ports`, empty for the same) the ports of bridge `name`: see the module doc.
    pub fn set_bridge_ports(
        &mut self,
        name: &str,
        ports: Vec<u32>,
        datapath_ports: Vec<u32>,
        now_ms: u64,
    ) -> Result<Vec<(usize, PmdCommand)>, SlowPathError> {
        let b = self.bridge_index(name)?;
        let port_map = PortMap::new(&ports, &datapath_ports);
        self.check_ports_free(name, &ports, &port_map)?;
        let old_map = &self.bridges[b].port_map;
        // A port is gone when its OpenFlow number or its datapath number is.
        let removed: Vec<(u32, Option<u32>)> = self.bridges[b]
            .ports
            .iter()
            .map(|&of| (of, old_map.dp(of)))
            .filter(|&(of, dp)| port_map.dp(of) != dp)
            .collect();
        let mut out = Out::new(self.mirrors.len());
        let rules = self.bridges[b].tables.rules().to_vec();
        let old_ports = std::mem::replace(&mut self.bridges[b].ports, ports);
        let old_map = std::mem::replace(&mut self.bridges[b].port_map, port_map);
        // Same rules, new port set: rebuilds the tables, counters carried over.
        if let Err(e) = self.change_rules(b, rules, usize::MAX, Replace::default(), now_ms, &mut out) {
            self.bridges[b].ports = old_ports;
            self.bridges[b].port_map = old_map;
            return Err(e);
        }
        self.port_bridge.retain(|_, x| *x != b);
        let dp: Vec<u32> = self.bridges[b].port_map.dp_ports().collect();
        for p in dp {
            self.port_bridge.insert(p, b);
        }
        for (of, _) in &removed {
            self.bridges[b].macs.flush_port(*of);
        }
        let removed_dp: Vec<u32> = removed.iter().filter_map(|(_, dp)| *dp).collect();
        for pmd in 0..self.mirrors.len() {
            for id in self.mirrors[pmd].ids_of_bridge(b) {
                // Revalidation compares OpenFlow numbers: a flow that outputs to a port whose
                // datapath number changed must go even when its translation did not change.
                let gone_port = self.mirrors[pmd].get(id).is_some_and(|f| {
                    removed_dp.contains(&f.key.in_port())
                        || f.actions.iter().any(|a| a.output_port().is_some_and(|p| removed.iter().any(|r| r.0 == p)))
                });
                if gone_port {
                    self.remove_flow(pmd, id, &mut out);
                } else {
                    self.revalidate_flow(pmd, id, now_ms, &mut out);
                }
            }
        }
        Ok(out.finish())
    }

    /// Refuses an OpenFlow number twice in the bridge, and datapath ports another bridge has.
    fn check_ports_free(&self, bridge: &str, ports: &[u32], map: &PortMap) -> Result<(), SlowPathError> {
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].contains(p) {
                return Err(SlowPathError::DuplicatePort { port: *p, first: bridge.into(), second: bridge.into() });
            }
        }
        for p in map.dp_ports() {
            if let Some(&other) = self.port_bridge.get(&p)
                && self.bridges[other].name != bridge
            {
                let first = self.bridges[other].name.clone();
                return Err(SlowPathError::DuplicatePort { port: p, first, second: bridge.into() });
            }
        }
        Ok(())
    }
}
