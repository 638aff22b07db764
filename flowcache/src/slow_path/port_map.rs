//! A bridge's OpenFlow port numbers and the datapath's.
//!
//! Rules, MAC tables, traces and everything else about a bridge speak its OpenFlow port
//! numbers, so two bridges may each have a port 1 (as in OVS). The PMDs speak the
//! datapath's numbers, unique across the switch. The two meet only here, at the edge of
//! the slow path: a miss's key comes in with the datapath's in_port and is translated
//! with the bridge's; the actions go out with the datapath's output ports. A mirrored
//! megaflow keeps the key as the PMD has it (datapath numbers, unique across bridges,
//! so races and overlaps are found across the whole PMD) and the actions as translated
//! (OpenFlow numbers, so revalidation compares like with like).

use std::collections::HashMap;

use crate::actions::{DpAction, DpActions};
use crate::key::FlowKey;

/// The two numberings of one bridge's ports.
#[derive(Debug, Clone, Default)]
pub(crate) struct PortMap {
    to_dp: HashMap<u32, u32>,
    to_of: HashMap<u32, u32>,
}

impl PortMap {
    /// `of[i]` is datapath port `dp[i]`; an empty `dp` means the same numbers.
    pub(crate) fn new(of: &[u32], dp: &[u32]) -> PortMap {
        let dp = if dp.is_empty() { of } else { dp };
        PortMap {
            to_dp: of.iter().copied().zip(dp.iter().copied()).collect(),
            to_of: dp.iter().copied().zip(of.iter().copied()).collect(),
        }
    }

    /// The datapath's number of OpenFlow port `of`.
    pub(crate) fn dp(&self, of: u32) -> Option<u32> {
        self.to_dp.get(&of).copied()
    }

    /// The datapath ports, for the switch-wide port → bridge index.
    pub(crate) fn dp_ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.to_of.keys().copied()
    }

    /// `key` (received on a datapath port of this bridge) as the bridge sees it.
    pub(crate) fn of_key(&self, key: &FlowKey) -> FlowKey {
        let mut k = *key;
        if let Some(&of) = self.to_of.get(&key.in_port()) {
            k.set_in_port(ferrovs_config::port_to_16(of));
        }
        k
    }

    /// `actions` (translated with OpenFlow numbers) as the PMD executes them. An output
    /// to a port without a datapath number cannot come out of a translation (it only
    /// outputs to the bridge's ports); it would be dropped rather than sent elsewhere.
    pub(crate) fn dp_actions(&self, actions: &[DpAction]) -> DpActions {
        actions
            .iter()
            .filter_map(|a| match a {
                DpAction::Output(of) => self.dp(*of).map(DpAction::Output),
                DpAction::OutputTrunc { port, max_len } => {
                    self.dp(*port).map(|port| DpAction::OutputTrunc { port, max_len: *max_len })
                }
                // The PMD reports the datapath's in_port with the packet-in; the daemon maps
                // it back to the bridge and its OpenFlow number. (A packet-out's pseudo
                // in_port, e.g. CONTROLLER, has no datapath number and stays.)
                DpAction::Controller { in_port, max_len, reason, table, cookie } => Some(DpAction::Controller {
                    in_port: self.dp(*in_port).unwrap_or(*in_port),
                    max_len: *max_len,
                    reason: *reason,
                    table: *table,
                    cookie: *cookie,
                }),
                other => Some(*other),
            })
            .collect()
    }
}
