//! ferrovs's commands on DPDK's telemetry socket, so that `dpdk-telemetry.py` (and any
//! telemetry client) shows ferrovs's own numbers beside `/ethdev/stats`:
//!
//! ```text
//! /ferrovs/pmd_stats        the PMD indexes;   /ferrovs/pmd_stats,N  PMD N's counters
//! /ferrovs/ports            the port names;    /ferrovs/ports,NAME   that port's counters
//! /ferrovs/flows            megaflows and masks per PMD, slow-path totals
//! ```
//!
//! Every answer reads the published snapshot (`published`), never the switch itself:
//! the callbacks run on DPDK's telemetry thread.

use std::sync::Arc;

use ferrovs_dpdk::DpdkError;
use ferrovs_dpdk::telemetry::{TelData, TelItem, register};

use crate::protocol::{PmdInfo, PortInfo};
use crate::published::Published;

fn u(name: &str, v: u64) -> (String, TelItem) {
    (name.to_string(), TelItem::U64(v))
}

fn pmd_dict(p: &PmdInfo) -> TelData {
    TelData::Dict(vec![
        u("pmd", p.pmd as u64),
        u("core", p.core as u64),
        u("running", p.running as u64),
        ("rx_queues".into(), TelItem::StrList(p.rx_queues.clone())),
        u("packets", p.packets),
        u("busy_cycles", p.busy_cycles),
        u("idle_cycles", p.idle_cycles),
        u("iterations", p.iterations),
        u("emc_hits", p.emc_hits),
        u("signature_hits", p.signature_hits),
        u("megaflow_hits", p.megaflow_hits),
        u("misses", p.misses),
        u("upcalls_sent", p.upcalls_sent),
        u("drop_upcall_queue_full", p.drop_upcall_queue_full),
        u("drop_park_full", p.drop_park_full),
        u("drop_park_timeout", p.drop_park_timeout),
        u("rx_pauses", p.rx_pauses),
        u("drop_bad_output", p.drop_bad_output),
        u("megaflows", p.megaflows),
        u("masks", p.masks),
    ])
}

fn port_dict(p: &PortInfo) -> TelData {
    TelData::Dict(vec![
        ("name".into(), TelItem::Str(p.name.clone())),
        u("number", p.number as u64),
        ("device".into(), TelItem::Str(p.device.clone())),
        u("link_up", p.link_up as u64),
        u("speed_mbps", p.speed_mbps as u64),
        u("rx_packets", p.rx_packets),
        u("rx_bytes", p.rx_bytes),
        u("tx_packets", p.tx_packets),
        u("tx_bytes", p.tx_bytes),
        u("drop_tx_full", p.drop_tx_full),
        u("drop_no_rule", p.drop_no_rule),
        u("drop_action", p.drop_action),
        u("drop_malformed", p.drop_malformed),
        u("drop_unsupported", p.drop_unsupported),
        u("drop_no_mbuf", p.drop_no_mbuf),
        u("drop_oversize", p.drop_oversize),
        u("drop_admin_down_rx", p.drop_admin_down_rx),
        u("drop_admin_down_tx", p.drop_admin_down_tx),
        u("admin_down", p.admin_down as u64),
    ])
}

fn nothing() -> TelData {
    TelData::Dict(vec![("error".into(), TelItem::Str("no statistics published yet".into()))])
}

/// Registers the `/ferrovs/...` commands. Call after the EAL is up.
pub fn register_commands(published: Arc<Published>) -> Result<(), DpdkError> {
    let p = published.clone();
    register("/ferrovs/pmd_stats", "ferrovs PMD counters. Parameters: int pmd index", move |params| {
        let Some(s) = p.latest() else { return nothing() };
        match params.trim().parse::<usize>() {
            Ok(i) => s.pmd.pmds.iter().find(|x| x.pmd == i).map(pmd_dict).unwrap_or_else(nothing),
            Err(_) => TelData::U64List(s.pmd.pmds.iter().map(|x| x.pmd as u64).collect()),
        }
    })?;
    let p = published.clone();
    register("/ferrovs/ports", "ferrovs port counters. Parameters: string port name", move |params| {
        let Some(s) = p.latest() else { return nothing() };
        let mut ports = s.show.bridges.iter().flat_map(|b| &b.ports);
        match params.trim() {
            "" => TelData::StrList(ports.map(|x| x.name.clone()).collect()),
            name => ports.find(|x| x.name == name).map(port_dict).unwrap_or_else(nothing),
        }
    })?;
    let p = published;
    register("/ferrovs/flows", "ferrovs megaflows and masks per PMD, slow-path totals", move |_| {
        let Some(s) = p.latest() else { return nothing() };
        let st = &s.pmd.slow_path.state;
        TelData::Dict(vec![
            ("megaflows_per_pmd".into(), TelItem::U64List(s.pmd.pmds.iter().map(|x| x.megaflows).collect())),
            ("masks_per_pmd".into(), TelItem::U64List(s.pmd.pmds.iter().map(|x| x.masks).collect())),
            u("upcalls", st.upcalls),
            u("installs", st.installs),
            u("executes", st.executes),
            u("removes", st.removes),
            u("revalidated", st.revalidated),
            u("rule_changes", st.rule_changes),
        ])
    })?;
    Ok(())
}
