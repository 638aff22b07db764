//! The simplest pipeline: one decision per ingress port (`output:N`, `drop` or `flood`),
//! looked up by port number in a table, so a burst is classified without touching the
//! packet bytes. The daemon does not use it (it runs [`crate::FlowPipeline`]s): it is the
//! classifier of the ring tests (`tests/ring.rs`, the poll loop and tx path without any
//! flow logic) and the floor of the benchmarks (`examples/fwd_bench.rs`,
//! `examples/flow_bench.rs`).
//!
//! Decisions are resolved to datapath actions when the table is built (flood becomes one
//! `Output` per other port of the bridge), so executing them needs no further lookup.

use ferrovs_dpdk::Mbuf;
use ferrovs_flowcache::actions::{DpAction, DpActions};

use crate::error::SwitchError;
use crate::pipeline::{Classified, Injector, Pipeline, RxBurst, Verdict};

/// What to do with every packet received on one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardRule {
    /// Send to this port number.
    Output(u32),
    /// Drop (counted as `drop_action`).
    Drop,
    /// Send to every port of the bridge except the ingress one.
    Flood,
}

/// Messages a [`Forwarder`] accepts from other threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwarderMessage {
    /// Replaces the actions for packets from `in_port` (`None`: no rule, packets miss).
    /// Build the actions with [`Forwarder::resolve`] on the sending side so the PMD does
    /// not allocate.
    SetActions { in_port: u32, actions: Option<DpActions> },
}

/// Per-ingress-port forwarding table.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// Indexed by ingress port number.
    table: Vec<Option<DpActions>>,
}

impl Forwarder {
    /// Builds the table from already-resolved actions per ingress port (e.g. a flood
    /// limited to one bridge's ports). Ports not listed miss.
    pub fn from_actions(table: impl IntoIterator<Item = (u32, DpActions)>) -> Forwarder {
        let mut t: Vec<Option<DpActions>> = Vec::new();
        for (in_port, actions) in table {
            let i = in_port as usize;
            if t.len() <= i {
                t.resize(i + 1, None);
            }
            t[i] = Some(actions);
        }
        Forwarder { table: t }
    }

    /// Builds the table for a bridge with ports `port_numbers` from `(in_port, rule)` pairs.
    /// Ports without a rule miss (dropped, counted as `drop_no_rule`).
    pub fn new(port_numbers: &[u32], rules: &[(u32, ForwardRule)]) -> Result<Forwarder, SwitchError> {
        let max = port_numbers.iter().copied().max().unwrap_or(0) as usize;
        let mut table = vec![None; max + 1];
        for &(in_port, rule) in rules {
            if !port_numbers.contains(&in_port) {
                return Err(SwitchError::Invalid(format!("forwarding rule for unknown ingress port {in_port}")));
            }
            if table[in_port as usize].is_some() {
                return Err(SwitchError::Duplicate(format!("forwarding rule for ingress port {in_port}")));
            }
            table[in_port as usize] = Some(Self::resolve(port_numbers, in_port, rule)?);
        }
        Ok(Forwarder { table })
    }

    /// The datapath actions of `rule` for packets from `in_port`.
    pub fn resolve(port_numbers: &[u32], in_port: u32, rule: ForwardRule) -> Result<DpActions, SwitchError> {
        Ok(match rule {
            ForwardRule::Output(p) => {
                if !port_numbers.contains(&p) {
                    return Err(SwitchError::Invalid(format!("forwarding rule outputs to unknown port {p}")));
                }
                vec![DpAction::Output(p)]
            }
            ForwardRule::Drop => Vec::new(),
            ForwardRule::Flood => {
                port_numbers.iter().filter(|&&p| p != in_port).map(|&p| DpAction::Output(p)).collect()
            }
        })
    }
}

impl Pipeline for Forwarder {
    type Message = ForwarderMessage;

    #[inline]
    fn classify<'s, 'p, B: RxBurst<'p>>(&'s mut self, in_port: u32, pkts: B, out: &mut [Verdict<'s>]) -> Classified {
        let verdict = match self.table.get(in_port as usize) {
            Some(Some(actions)) => Verdict::Actions(actions.as_slice()),
            _ => Verdict::Miss,
        };
        for v in out.iter_mut().take(pkts.len()) {
            *v = verdict;
        }
        // Packets past `pkts` keep their `Miss`.
        if out.len() <= pkts.len() { Classified::Uniform } else { Classified::Mixed }
    }

    fn miss(&mut self, _in_port: u32, _at: usize, pkt: Mbuf) -> Option<Mbuf> {
        Some(pkt)
    }

    fn handle_message(&mut self, msg: ForwarderMessage, _inject: &mut Injector<'_>) {
        match msg {
            ForwarderMessage::SetActions { in_port, actions } => {
                if let Some(slot) = self.table.get_mut(in_port as usize) {
                    *slot = actions;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PacketView;

    #[test]
    fn flood_excludes_ingress_and_rules_validate() {
        let ports = [1, 2, 5];
        let f = Forwarder::new(&ports, &[(1, ForwardRule::Flood), (2, ForwardRule::Output(5)), (5, ForwardRule::Drop)])
            .unwrap();
        assert_eq!(f.table[1].as_deref(), Some(&[DpAction::Output(2), DpAction::Output(5)][..]));
        assert_eq!(f.table[2].as_deref(), Some(&[DpAction::Output(5)][..]));
        assert_eq!(f.table[5].as_deref(), Some(&[][..]));
        assert!(Forwarder::new(&ports, &[(3, ForwardRule::Drop)]).is_err());
        assert!(Forwarder::new(&ports, &[(1, ForwardRule::Output(9))]).is_err());
        assert!(Forwarder::new(&ports, &[(1, ForwardRule::Drop), (1, ForwardRule::Flood)]).is_err());
    }

    #[test]
    fn classify_gives_one_verdict_per_packet() {
        let mut f = Forwarder::new(&[1, 2], &[(1, ForwardRule::Output(2))]).unwrap();
        let frame = [0u8; 60];
        let pkts = [PacketView { frame: &frame, rss_hash: None }; 3];
        let mut out = [Verdict::Miss; 3];
        f.classify(1, &pkts[..], &mut out);
        assert!(out.iter().all(|v| *v == Verdict::Actions(&[DpAction::Output(2)])));
        let mut out = [Verdict::Miss; 3];
        f.classify(2, &pkts[..], &mut out);
        assert!(out.iter().all(|v| *v == Verdict::Miss));
        let mut out = [Verdict::Miss; 3];
        f.classify(4000, &pkts[..], &mut out);
        assert!(out.iter().all(|v| *v == Verdict::Miss));
    }
}
