//! End-to-end tests: ferrovsd as a process, with real DPDK virtual devices.
//!
//! - `walks_*`: the three packet walks of the OVS datapath notes, with ferrovsd in the
//!   middle of two network namespaces (net_tap ports moved into them after start):
//!   a new conversation's first packet (the miss/upcall walk) gets through, then pings
//!   both ways over installed flows.
//! - `pcap_*`: a capture of mixed and malformed frames replayed through net_pcap; what
//!   comes out is compared byte for byte, and the drop counters account for the rest.
//! - `pcap_new_flows_at_full_speed`: 3,000 new flows replayed at line rate through
//!   net_pcap all come out, in order, with no drop (`many_flows`).
//! - `bad_config_*`: every config error exits non-zero with a message naming the problem.
//!
//! Needs root (namespaces, tap devices) but no hugepages and no NIC. Every test creates
//! uniquely named namespaces/interfaces and removes them on drop, even on failure.

use std::time::Duration;

use ferrovs_e2e::{Daemon, TempDir, frames, read_pcap, wait_until};
use libtest_mimic::{Arguments, Failed, Trial};

mod capture;
mod controller;
mod flows;
mod many_flows;
mod openflow;
mod perf;
mod persist;
mod runtime;
mod service;

/// EAL, control and PMD settings shared by every test config: no hugepages, a PMD on
/// the last CPU with idle back-off so a test does not burn a core.
pub(crate) fn preamble() -> String {
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pmd = ncpu.saturating_sub(1);
    format!(
        r#"
[eal]
hugepages = false
memory_mb = 256

[control]
socket = "@SOCKET@"

[pmd]
cores = [{pmd}]
idle_backoff_us = 200
"#
    )
}

pub(crate) fn counter(port: &serde_json::Value, name: &str) -> u64 {
    port[name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {port}"))
}

/// The three walks (A: host->guest over an installed flow, B: guest->host over an
/// installed flow, C: the first packet of a conversation, which misses) through
/// ferrovsd between two namespaces.
fn walks_through_namespaces() -> Result<(), Failed> {
    let (d, host, guest) = flows::two_hosts_in(
        TempDir::new(),
        r#"flows = ["in_port=1,actions=output:2", "in_port=2,actions=output:1"]"#,
        "",
    );

    // Walk C: the very first packet of the conversation (an ARP request, then the echo
    // request) crosses the switch, and the reply comes back, within one ping wait.
    let (tx, rx) = host.ping("198.18.0.2", 1, 3);
    if (tx, rx) != (1, 1) {
        return Err(format!("first ping lost ({rx}/{tx})\n{}", d.log_text()).into());
    }
    // Walks A and B: conversations in both directions.
    let (tx, rx) = host.ping("198.18.0.2", 5, 2);
    if rx != tx || tx != 5 {
        return Err(format!("host->guest: {rx}/{tx} replies").into());
    }
    let (tx, rx) = guest.ping("198.18.0.1", 5, 2);
    if rx != tx || tx != 5 {
        return Err(format!("guest->host: {rx}/{tx} replies").into());
    }

    // Every frame that entered one port left through the other, or was refused by the
    // other's tap while that tap was still moving into its namespace (link down), and
    // counted: nothing was lost to a miss or a bad frame.
    let balanced = wait_until(Duration::from_secs(5), || {
        let a = d.port_counters("a").expect("port a");
        let b = d.port_counters("b").expect("port b");
        let out = |p: &serde_json::Value| counter(p, "tx_packets") + counter(p, "drop_tx_full");
        counter(&a, "rx_packets") == out(&b) && counter(&b, "rx_packets") == out(&a)
    });
    let a = d.port_counters("a").expect("port a");
    let b = d.port_counters("b").expect("port b");
    if !balanced {
        return Err(format!("counters do not balance: a={a} b={b}").into());
    }
    for p in [&a, &b] {
        for c in ["drop_no_rule", "drop_malformed", "drop_action", "drop_unsupported", "drop_no_mbuf"] {
            if counter(p, c) != 0 {
                return Err(format!("{c} is not zero: {p}").into());
            }
        }
    }
    if counter(&a, "rx_packets") < 11 {
        return Err(format!("port a saw too few packets: {a}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}

/// Mixed frames through net_pcap: flood from port 1 to ports 2 and 3; both captures
/// must equal the input minus the runts, byte for byte and in order, and the runts
/// must be counted as drops.
fn pcap_flood_byte_for_byte() -> Result<(), Failed> {
    let dir = TempDir::new();
    let input: Vec<(Vec<u8>, bool)> = frames::mixed_capture();
    let frames_in: Vec<Vec<u8>> = input.iter().map(|(f, _)| f.clone()).collect();
    let expected: Vec<Vec<u8>> = input.iter().filter(|(_, runt)| !runt).map(|(f, _)| f.clone()).collect();
    let runts = input.iter().filter(|(_, runt)| *runt).count() as u64;
    let config = flows::pcap_bridge(&dir, &frames_in, &["in_port=1,actions=flood"], &["out2", "out3"]);
    let d = Daemon::start_in(dir, &config);
    let n_in = frames_in.len() as u64;
    let all_in =
        wait_until(Duration::from_secs(10), || d.port_counters("in").map(|p| counter(&p, "rx_packets")) == Some(n_in));
    let port_in = d.port_counters("in").expect("port in");
    if !all_in {
        return Err(format!("port in received {port_in}, want {n_in} rx_packets").into());
    }
    let drops = counter(&port_in, "drop_malformed");
    let stopped = d.stop();
    let dir_path = stopped.dir.path.clone();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    if drops != runts {
        return Err(format!("malformed drops {drops}, want {runts} runts").into());
    }
    for out in ["out2.pcap", "out3.pcap"] {
        let got = read_pcap(&dir_path.join(out));
        if got != expected {
            let first = got.iter().zip(&expected).position(|(a, b)| a != b);
            let index_of = |f: &Vec<u8>| expected.iter().position(|e| e == f).map(|i| i as i64).unwrap_or(-1);
            eprintln!("{out} order: {:?}", got.iter().map(index_of).collect::<Vec<_>>());
            let show =
                |v: &Vec<Vec<u8>>| first.and_then(|i| v.get(i)).map(|f| format!("{:02x?}", &f[..f.len().min(40)]));
            return Err(format!(
                "{out}: {} frames, want {}; first difference at {first:?}:\n got  {:?}\n want {:?}",
                got.len(),
                expected.len(),
                show(&got),
                show(&expected)
            )
            .into());
        }
    }
    let back = read_pcap(&dir_path.join("out1.pcap"));
    if !back.is_empty() {
        return Err(format!("{} frames flooded back out the ingress port", back.len()).into());
    }
    Ok(())
}

/// A config that must be refused, and a word the error must contain.
fn bad_config(body: String, must_mention: &'static [&'static str]) -> impl FnOnce() -> Result<(), Failed> {
    move || {
        let cfg = format!("{}{}", preamble().replace("@SOCKET@", "@DIR@/ctl.sock"), body);
        let (status, out) = ferrovs_e2e::ferrovsd_check_fails(&cfg, &[]);
        if status.success() {
            return Err(format!("ferrovsd accepted a bad config:\n{out}").into());
        }
        for w in must_mention {
            if !out.contains(w) {
                return Err(format!("error does not mention {w:?}:\n{out}").into());
            }
        }
        Ok(())
    }
}

/// Bridge `br0` with the keys `extra` and these (name, number, devargs) ports.
pub(crate) fn bridge(extra: &str, ports: &[(&str, u32, &str)]) -> String {
    let mut s = format!("\n[[bridge]]\nname = \"br0\"\ninternal_port = false\n{extra}\n");
    for (name, number, devargs) in ports {
        s += &format!("\n[[bridge.port]]\nname = \"{name}\"\nnumber = {number}\ndevargs = \"{devargs}\"\n");
    }
    s
}

const NULL_A: (&str, u32, &str) = ("a", 1, "net_null0,no-rx=1");
const NULL_B: (&str, u32, &str) = ("b", 2, "net_null1,no-rx=1");

pub(crate) fn ports_ok() -> String {
    bridge(r#"flows = ["in_port=1,actions=output:2"]"#, &[NULL_A, NULL_B])
}

fn main() {
    let args = Arguments::from_args();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let bad: [(&str, String, &'static [&'static str]); 6] = [
        ("bad_config_unknown_key", bridge(r#"colour = "blue""#, &[NULL_A]), &["colour"]),
        ("bad_config_duplicate_port_number", bridge("", &[NULL_A, ("b", 1, "net_null1,no-rx=1")]), &["number", "1"]),
        (
            "bad_config_duplicate_port_name",
            bridge("", &[NULL_A, ("a", 2, "net_null1,no-rx=1")]),
            &["duplicate port name", "a"],
        ),
        (
            "bad_config_devargs_rejected_by_dpdk",
            bridge("", &[("a", 1, "net_nosuchdriver0,foo=bar")]),
            &["net_nosuchdriver0"],
        ),
        ("bad_config_bad_flow", bridge(r#"flows = ["in_port=1,tp_dst=80,actions=output:2"]"#, &[NULL_A]), &["tp_dst"]),
        (
            // The internal port's TAP would take the name of an interface every host has.
            "bad_config_internal_port_name_taken",
            bridge("", &[NULL_A]).replace("name = \"br0\"\ninternal_port = false", "name = \"lo\""),
            &["lo", "exists on this host", "internal_port = false"],
        ),
    ];
    let mut trials = vec![
        Trial::test("walks_through_namespaces", walks_through_namespaces).with_ignored_flag(!root),
        Trial::test("pcap_flood_byte_for_byte", pcap_flood_byte_for_byte),
        Trial::test("pcap_rules_route_and_rewrite", flows::pcap_rules_route_and_rewrite),
        Trial::test("pcap_jumbo_frames_with_a_jumbo_mtu", flows::pcap_jumbo_frames_with_a_jumbo_mtu),
        Trial::test("pcap_nd_rules_forward_by_nd_fields", flows::pcap_nd_rules_forward_by_nd_fields),
        Trial::test("pcap_new_flows_at_full_speed", many_flows::new_flows_replayed_at_full_speed_come_out_complete),
        Trial::test("rule_change_applies_to_next_packet", flows::rule_change_applies_to_next_packet)
            .with_ignored_flag(!root),
        Trial::test("add_flow_reads_the_given_openflow_version", flows::add_flow_reads_the_given_openflow_version),
        Trial::test("normal_learns_and_stops_flooding", flows::normal_learns_and_stops_flooding)
            .with_ignored_flag(!root),
        Trial::test("link_down_and_back_resumes", flows::link_down_and_back_resumes).with_ignored_flag(!root),
        Trial::test("reload_applies_flows_file", flows::reload_applies_flows_file).with_ignored_flag(!root),
        Trial::test("bad_config_core_does_not_exist", bad_config_core_missing),
        Trial::test("ctl_stop_exits_cleanly", ctl_stop_exits_cleanly),
        Trial::test("service_notifies_ready_then_feeds_watchdog", service::notifies_ready_then_feeds_watchdog),
        Trial::test("service_ovs_appctl_views", service::ovs_appctl_views),
        Trial::test("service_pmd_stall_trips_the_watchdog", service::pmd_stall_trips_the_watchdog),
        Trial::test("persist_rules_survive_kill_9", persist::rules_survive_kill_9),
        Trial::test("persist_rules_changed_in_place_survive_kill_9", persist::rules_changed_in_place_survive_kill_9),
        Trial::test("persist_controllers_survive_kill_9", persist::controllers_survive_kill_9),
        Trial::test("runtime_ports_come_and_go_under_traffic", runtime::ports_come_and_go_under_traffic)
            .with_ignored_flag(!root),
        Trial::test("runtime_multi_queue_tap_spreads_flows", runtime::multi_queue_tap_spreads_flows)
            .with_ignored_flag(!root),
        Trial::test("control_socket_group_reads_only", runtime::control_socket_group_reads_only)
            .with_ignored_flag(!root),
        Trial::test("runtime_internal_port_reaches_the_host", runtime::internal_port_reaches_the_host)
            .with_ignored_flag(!root),
        Trial::test("runtime_removed_tap_detaches_and_returns", runtime::removed_tap_detaches_and_returns)
            .with_ignored_flag(!root),
        Trial::test("runtime_two_bridges_each_with_port_1", runtime::two_bridges_each_with_port_1)
            .with_ignored_flag(!root),
        Trial::test("runtime_admin_down_stops_a_port_in_place", runtime::admin_down_stops_a_port_in_place)
            .with_ignored_flag(!root),
        // Two PMDs need two CPUs (one shared with the main lcore).
        Trial::test("runtime_auto_rebalance_follows_load", runtime::auto_rebalance_follows_load)
            .with_ignored_flag(std::thread::available_parallelism().map_or(1, |n| n.get()) < 2),
        Trial::test(
            "runtime_threads_other_than_the_pmds_leave_them_their_cpus",
            runtime::threads_other_than_the_pmds_leave_them_their_cpus,
        )
        .with_ignored_flag(!root),
        Trial::test("openflow_ovs_ofctl_manages_rules_of10", openflow::manages_rules_of10),
        Trial::test("openflow_ovs_ofctl_manages_rules_of13", openflow::manages_rules_of13),
        Trial::test("openflow_rules_route_traffic", openflow::rules_route_traffic),
        Trial::test("openflow_flow_removed_reaches_controllers", openflow::flow_removed_reaches_controllers),
        Trial::test("openflow_port_mod_reaches_controllers", openflow::port_mod_reaches_controllers),
        Trial::test("openflow_ovs_ofctl_manages_groups", openflow::ovs_ofctl_manages_groups),
        Trial::test(
            "openflow_ovs_ofctl_meters_as_ovs_without_meters",
            openflow::ovs_ofctl_meters_as_ovs_without_meters,
        ),
        Trial::test("openflow_groups_carry_traffic", openflow::groups_carry_traffic).with_ignored_flag(!root),
        Trial::test("openflow_controller_osken_simple_switch_13", controller::osken_simple_switch_13)
            .with_ignored_flag(!root),
        Trial::test("openflow_controller_osken_two_switches", controller::osken_two_switches).with_ignored_flag(!root),
        Trial::test("openflow_controller_faucet_vlan_learns_and_pings", controller::faucet_vlan_learns_and_pings)
            .with_ignored_flag(!root),
        Trial::test("openflow_fail_open_then_of10_controller", controller::fail_open_then_of10_controller)
            .with_ignored_flag(!root),
        Trial::test("service_metrics_endpoint_matches_ctl", service::metrics_endpoint_matches_ctl),
        Trial::test("service_dpdk_telemetry_with_file_prefix", service::dpdk_telemetry_with_file_prefix),
        Trial::test("service_hugepages_script_applies_the_plan", service::hugepages_script_applies_the_plan),
        Trial::test("service_dumpcap_captures_a_port", service::dumpcap_captures_a_port),
        Trial::test("capture_ctl_is_what_was_sent", capture::ctl_capture_is_what_was_sent).with_ignored_flag(!root),
        Trial::test("capture_ctl_filter_and_limits", capture::ctl_capture_filter_and_limits).with_ignored_flag(!root),
        Trial::test("service_pmd_perf_histograms_move_and_clear", perf::pmd_perf_histograms_move_and_clear)
            .with_ignored_flag(!root),
        Trial::test("service_tap_in_another_namespace_reads_unknown", service::tap_in_another_namespace_reads_unknown)
            .with_ignored_flag(!root),
    ];
    trials.extend(bad.into_iter().map(|(name, body, words)| Trial::test(name, bad_config(body, words))));
    libtest_mimic::run(&args, trials).exit();
}

fn bad_config_core_missing() -> Result<(), Failed> {
    let cfg = format!(
        "{}{}",
        preamble().replace("@SOCKET@", "@DIR@/ctl.sock").replace(
            &format!("cores = [{}]", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) - 1),
            "cores = [4000]"
        ),
        ports_ok()
    );
    let (status, out) = ferrovs_e2e::ferrovsd_check_fails(&cfg, &[]);
    if status.success() {
        return Err(format!("ferrovsd accepted core 4000:\n{out}").into());
    }
    if !out.contains("4000") || !out.contains("cores") {
        return Err(format!("error does not name the core:\n{out}").into());
    }
    Ok(())
}

/// `ferrovs-ctl stop` stops the daemon, which exits 0 and prints its counters.
fn ctl_stop_exits_cleanly() -> Result<(), Failed> {
    let d = Daemon::start(&format!("{}{}", preamble(), ports_ok()));
    let pmd = d.ctl_json(&["pmd-stats-show"]);
    if pmd["pmds"].as_array().map(|a| a.len()) != Some(1) {
        return Err(format!("pmd-stats-show: {pmd}").into());
    }
    let out = d.ctl(&["stop"]);
    if !out.status.success() {
        return Err(format!("ferrovs-ctl stop: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let exited = wait_until(Duration::from_secs(15), || !d.socket.exists());
    let stopped = d.stop();
    if !exited || !stopped.status.success() {
        return Err(format!("ferrovsd did not stop cleanly ({}):\n{}", stopped.status, stopped.log).into());
    }
    if !stopped.log.contains("rx_packets") {
        return Err(format!("no counters printed at exit:\n{}", stopped.log).into());
    }
    Ok(())
}
