//! Thousands of new flows at full speed: a capture of 3,000 distinct flows, two frames
//! each (back to back), replayed once through net_pcap at line rate must come out of the
//! other port complete, byte for byte, each flow's frames in their order, with no drop
//! anywhere: every flow's first frame is a miss whose key parks and travels to the slow
//! path while the next frames keep arriving. Frames of different flows may leave in
//! another order (each parked key waits for its own answer, as in OVS; see
//! docs/OVS-DIFFERENCES.md).

use std::time::Duration;

use ferrovs_e2e::{Daemon, TempDir, frames, read_pcap, wait_until, write_pcap};
use libtest_mimic::Failed;

use crate::{counter, flows, preamble};

/// Distinct flows in the capture.
const FLOWS: u16 = 3000;

pub(crate) fn new_flows_replayed_at_full_speed_come_out_complete() -> Result<(), Failed> {
    let dir = TempDir::new();
    // Each flow its own 5-tuple (source port and destination address vary); its two
    // frames differ in the IPv4 identification.
    let input: Vec<Vec<u8>> = (0..FLOWS)
        .flat_map(|i| {
            let f = frames::ipv4_udp([198, 18, 0, 1], [198, 19, (i >> 8) as u8, i as u8], 1024 + i, 53);
            [with_ip_id(&f, 1), with_ip_id(&f, 2)]
        })
        .collect();
    write_pcap(&dir.join("in.pcap"), &input);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let config = format!(
        "{}\n[[bridge]]\nname = \"br0\"\ninternal_port = false\nflows = [\"in_port=1,actions=output:2\"]\n{}{}",
        preamble(),
        flows::pcap_port("in", 1, "in.pcap"),
        flows::pcap_port("out", 2, "empty.pcap"),
    );
    let d = Daemon::start_in(dir, &config);
    let n = input.len() as u64;
    let all_out = wait_until(Duration::from_secs(20), || {
        d.port_counters("out").map(|p| counter(&p, "tx_packets") + counter(&p, "drop_tx_full")) == Some(n)
    });
    let port_in = d.port_counters("in").expect("port in");
    let port_out = d.port_counters("out").expect("port out");
    let pmd = d.ctl_json(&["pmd-stats-show"]);
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    let drops = |p: &serde_json::Value| {
        ["drop_tx_full", "drop_no_rule", "drop_action", "drop_malformed", "drop_unsupported", "drop_no_mbuf"]
            .iter()
            .map(|c| counter(p, c))
            .sum::<u64>()
    };
    let (rx, dropped) = (counter(&port_in, "rx_packets"), drops(&port_in) + drops(&port_out));
    if !all_out || rx != n || dropped != 0 {
        return Err(format!(
            "{rx} of {n} frames received, {dropped} dropped\nin: {port_in}\nout: {port_out}\npmds: {pmd}"
        )
        .into());
    }
    // The frames went through the miss path: they were new flows for the PMD.
    let p0 = &pmd["pmds"][0];
    let (misses, upcalls) = (counter(p0, "misses"), counter(p0, "upcalls_sent"));
    eprintln!("{FLOWS} new flows, {n} frames: {misses} misses, {upcalls} upcalls, pmd {p0}");
    if misses == 0 || upcalls == 0 {
        return Err(format!("no miss or upcall: {pmd}").into());
    }
    let got = read_pcap(&stopped.dir.path.join("out2.pcap"));
    let (mut sorted_got, mut sorted_in) = (got.clone(), input.clone());
    sorted_got.sort();
    sorted_in.sort();
    if sorted_got != sorted_in {
        return Err(format!("out2.pcap: {} frames, want {n}, not the same frames", got.len()).into());
    }
    // Each flow's frames in their order: identification 1 before 2.
    let position = |f: &Vec<u8>| got.iter().position(|g| g == f);
    for pair in input.chunks(2) {
        if position(&pair[0]) > position(&pair[1]) {
            return Err(format!("a flow's frames left out of order: {:02x?}", &pair[0][..42]).into());
        }
    }
    Ok(())
}

/// `frame` (Ethernet + IPv4, no options) with IPv4 identification `id` and the header
/// checksum recomputed.
fn with_ip_id(frame: &[u8], id: u16) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[18..20].copy_from_slice(&id.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let sum: u32 = f[14..34].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    f[24..26].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    f
}
