//! The unmodified `ovs-ofctl` manages ferrovsd over its per-bridge management socket
//! (`br0.mgmt` beside the control socket), in OpenFlow 1.0 and 1.3.
//!
//! The reference for "the rules printed are the ones given" is `ovs-ofctl parse-flow`
//! (OVS's own parser and printer, through the wire encoding of the chosen version): the
//! rules `ovs-ofctl dump-flows` prints must be, field for field, what `parse-flow`
//! prints for the rules that were added; and `ferrovs-ctl dump-flows`'s rules, fed to
//! `parse-flow`, must give the same set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferrovs_e2e::{Daemon, TempDir, frames, wait_until, write_pcap};
use libtest_mimic::Failed;

use crate::flows::{ctl_rules, pcap_port};
use crate::{bridge, counter, preamble};

fn mgmt(d: &Daemon) -> PathBuf {
    d.socket.with_file_name("br0.mgmt")
}

/// `ovs-ofctl -O VERSION ARGS...` against the bridge; stdout, or the failure.
fn ofctl(version: &str, target: &Path, args: &[&str]) -> Result<String, String> {
    let (cmd, rest) = args.split_first().expect("a subcommand");
    let mut c = Command::new("ovs-ofctl");
    c.args(["-O", version, "--timeout=10"]);
    let (opts, rest): (Vec<&str>, Vec<&str>) = rest.iter().partition(|a| a.starts_with("--"));
    c.args(&opts).arg(cmd).arg(format!("unix:{}", target.display())).args(&rest);
    let out = c.output().map_err(|e| format!("ovs-ofctl: {e}"))?;
    if !out.status.success() {
        return Err(format!("ovs-ofctl -O {version} {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ofctl_ok(version: &str, target: &Path, args: &[&str]) -> Result<String, Failed> {
    ofctl(version, target, args).map_err(Failed::from)
}

/// A rule as `ovs-ofctl` prints it, taken apart so that the two printed forms compare:
/// (table, cookie, idle, hard, match with priority, actions).
type Printed = (u32, String, u32, u32, String, String);

/// `ovs-ofctl parse-flow`'s line: `ADD table:1 priority=5,udp cookie:0x5 idle:30 actions=...`.
fn from_parse_flow(line: &str) -> Option<Printed> {
    let rest = line.split_once(": ADD ")?.1;
    let (head, actions) = rest.rsplit_once("actions=")?;
    let mut p: Printed = (0, "0x0".into(), 0, 0, String::new(), actions.trim().to_string());
    for tok in head.split_whitespace() {
        match tok.split_once(':') {
            Some(("table", v)) => p.0 = v.parse().ok()?,
            Some(("cookie", v)) => p.1 = v.to_string(),
            Some(("idle", v)) => p.2 = v.parse().ok()?,
            Some(("hard", v)) => p.3 = v.parse().ok()?,
            _ => p.4 = tok.to_string(),
        }
    }
    Some(p)
}

/// A `dump-flows --no-stats` line: ` cookie=0x5, table=1, idle_timeout=30, priority=5,udp actions=...`.
fn from_dump(line: &str) -> Option<Printed> {
    let (head, actions) = line.trim().rsplit_once("actions=")?;
    let mut p: Printed = (0, "0x0".into(), 0, 0, String::new(), actions.trim().to_string());
    for item in head.trim().split(", ") {
        match item.split_once('=') {
            Some(("table", v)) => p.0 = v.parse().ok()?,
            Some(("cookie", v)) => p.1 = v.to_string(),
            Some(("idle_timeout", v)) => p.2 = v.trim_end_matches(',').parse().ok()?,
            Some(("hard_timeout", v)) => p.3 = v.trim_end_matches(',').parse().ok()?,
            _ => p.4 = item.trim().to_string(),
        }
    }
    Some(p)
}

/// What OVS makes of `rules` (in `ovs-ofctl add-flow` syntax) under `version`.
fn as_loaded(version: &str, rules: &[String]) -> Result<BTreeSet<Printed>, Failed> {
    rules
        .iter()
        .map(|r| {
            let out = Command::new("ovs-ofctl").args(["-O", version, "parse-flow", r]).output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().find(|l| l.contains(": ADD ")).unwrap_or_default();
            from_parse_flow(line).ok_or_else(|| format!("parse-flow {r}: {text}").into())
        })
        .collect()
}

fn dumped(version: &str, target: &Path) -> Result<BTreeSet<Printed>, Failed> {
    dumped_matching(version, target, &[])
}

/// `dump-flows --no-stats` with optional match arguments.
fn dumped_matching(version: &str, target: &Path, filter: &[&str]) -> Result<BTreeSet<Printed>, Failed> {
    let mut args = vec!["dump-flows", "--no-stats"];
    args.extend_from_slice(filter);
    let out = ofctl_ok(version, target, &args)?;
    out.lines()
        .filter(|l| l.contains("actions="))
        .map(|l| from_dump(l).ok_or_else(|| format!("dump-flows line {l:?}").into()))
        .collect()
}

fn same(what: &str, got: &BTreeSet<Printed>, want: &BTreeSet<Printed>) -> Result<(), Failed> {
    if got != want {
        return Err(format!("{what}:\n got  {got:#?}\n want {want:#?}").into());
    }
    Ok(())
}

fn strings(rules: &[&str]) -> Vec<String> {
    rules.iter().map(|s| s.to_string()).collect()
}

const PIPELINE_RULE: &str = "table=3,priority=9,reg0=0x5/0xff,metadata=0x1,\
    actions=load:0x7->NXM_NX_REG1[0..7],move:NXM_OF_ETH_SRC[0..15]->NXM_NX_REG2[0..15],output:1,\
    write_metadata:0x10/0xf0";
/// [`PIPELINE_RULE`] as `ovs-ofctl dump-flows --no-stats` prints it (either version).
const PIPELINE_PRINTED: &str = "table=3, priority=9,reg0=0x5/0xff,metadata=0x1 \
    actions=load:0x7->NXM_NX_REG1[0..7],move:NXM_OF_ETH_SRC[0..15]->NXM_NX_REG2[0..15],output:1,\
    write_metadata:0x10/0xf0";
const ADDED_ONE: &str = "priority=200,tcp,nw_dst=198.18.0.0/15,tp_dst=443,actions=mod_vlan_vid:20,output:2";
const ADDED_FILE: &[&str] = &[
    "table=1,priority=5,udp,actions=output:1",
    "cookie=0x1f,idle_timeout=300,priority=10,in_port=2,dl_vlan=7,dl_src=02:00:00:00:00:01,actions=pop_vlan,NORMAL",
    "hard_timeout=600,priority=7,ip,nw_ttl=9,actions=dec_ttl,output:1",
    "table=2,priority=3,arp,arp_tpa=10.0.0.0/24,actions=FLOOD",
    "priority=20,dl_vlan=5,actions=mod_vlan_pcp:3,IN_PORT",
    "priority=9,icmp,icmp_type=8,actions=mod_nw_dst:10.0.0.9,mod_dl_src:02:00:00:00:00:09,output:3",
    "priority=4,in_port=3,actions=resubmit(,1)",
    "priority=6,ipv6,ipv6_label=0x10000/0xf0000,actions=output:2",
    "priority=6,tcp6,ipv6_label=0x12345,tp_dst=80,actions=output:3",
    "table=1,priority=1,actions=drop",
    "table=3,priority=0,actions=CONTROLLER:100",
];

/// add-flow, add-flows, dump-flows, del-flows (with and without a match, strict, by
/// output port), mod-flows, show, dump-ports(-desc), dump-aggregate, then ferrovs-ctl's
/// view and a restart, all in one OpenFlow version.
fn manage_in(version: &str) -> Result<(), Failed> {
    let ports = [("a", 1, "net_null0,no-rx=1"), ("b", 2, "net_null1,no-rx=1"), ("c", 3, "net_null2,no-rx=1")];
    let config = format!("{}{}", preamble(), bridge("flows = []", &ports));
    let d = Daemon::start_in(TempDir::new(), &config);
    let of = mgmt(&d);
    if !of.exists() {
        return Err(format!("no management socket at {}", of.display()).into());
    }

    ofctl_ok(version, &of, &["add-flow", ADDED_ONE])?;
    let file = d.dir.join("rules.txt");
    std::fs::write(&file, format!("# rules\n{}\n", ADDED_FILE.join("\n")))?;
    ofctl_ok(version, &of, &["add-flows", file.to_str().expect("utf8")])?;
    let mut given = strings(ADDED_FILE);
    given.push(ADDED_ONE.to_string());
    same("dump-flows after add-flow(s)", &dumped(version, &of)?, &as_loaded(version, &given)?)?;

    // dump-aggregate counts them; the ferrovs view is the same rule set.
    let agg = ofctl_ok(version, &of, &["dump-aggregate"])?;
    if !agg.contains(&format!("flow_count={}", given.len())) {
        return Err(format!("dump-aggregate: {agg}").into());
    }
    same("ferrovs-ctl dump-flows", &as_loaded(version, &ctl_rules(&d)?)?, &dumped(version, &of)?)?;
    // dump-flows with a match selects the rules at least as specific as it.
    same("dump-flows tcp", &dumped_matching(version, &of, &["tcp"])?, &as_loaded(version, &strings(&[ADDED_ONE]))?)?;
    let arp = strings(&[ADDED_FILE[3]]);
    same("dump-flows table=2", &dumped_matching(version, &of, &["table=2"])?, &as_loaded(version, &arp)?)?;

    // Deletions: non-strict by match, strict (table and priority), strict that selects
    // nothing, by output port; then a modify.
    ofctl_ok(version, &of, &["del-flows", "udp"])?;
    ofctl_ok(version, &of, &["del-flows", "--strict", "table=1,priority=1"])?;
    ofctl_ok(version, &of, &["del-flows", "--strict", "priority=8,ip,nw_ttl=9"])?;
    ofctl_ok(version, &of, &["del-flows", "out_port=3"])?;
    ofctl_ok(version, &of, &["del-flows", "out_port=CONTROLLER"])?;
    ofctl_ok(version, &of, &["mod-flows", "table=2,arp,actions=output:2"])?;
    // A strict modify with another priority changes nothing (and adds nothing in 1.3;
    // in 1.0 a modify that selects nothing adds, so only 1.3 tries it).
    if version == "OpenFlow13" {
        ofctl_ok(version, &of, &["mod-flows", "--strict", "priority=21,dl_vlan=5,actions=drop"])?;
    }
    ofctl_ok(version, &of, &["mod-flows", "--strict", "priority=20,dl_vlan=5,actions=mod_vlan_pcp:3,output:2"])?;
    let want = strings(&[
        ADDED_ONE,
        ADDED_FILE[1],
        ADDED_FILE[2],
        "table=2,priority=3,arp,arp_tpa=10.0.0.0/24,actions=output:2",
        "priority=20,dl_vlan=5,actions=mod_vlan_pcp:3,output:2",
        ADDED_FILE[6],
        ADDED_FILE[7],
    ]);
    same("dump-flows after del-flows and mod-flows", &dumped(version, &of)?, &as_loaded(version, &want)?)?;
    same("ferrovs-ctl after the changes", &as_loaded(version, &ctl_rules(&d)?)?, &as_loaded(version, &want)?)?;

    // show, dump-ports-desc, dump-ports: the bridge's ports with the switch's counters.
    let show = ofctl_ok(version, &of, &["show"])?;
    let dpid = show.lines().next().and_then(|l| l.split("dpid:").nth(1)).map(str::to_string);
    for p in ["1(a)", "2(b)", "3(c)"] {
        if !show.contains(p) {
            return Err(format!("show lacks {p}:\n{show}").into());
        }
    }
    let desc = ofctl_ok(version, &of, &["dump-ports-desc"])?;
    if ["1(a)", "2(b)", "3(c)"].iter().any(|p| !desc.contains(p)) {
        return Err(format!("dump-ports-desc:\n{desc}").into());
    }
    let stats = ofctl_ok(version, &of, &["dump-ports"])?;
    if !stats.contains("3 ports") || stats.matches("rx pkts=0").count() != 3 {
        return Err(format!("dump-ports:\n{stats}").into());
    }

    // The bridge's internal port, LOCAL, in a rule (in OpenFlow 1.0's 16-bit and 1.3's
    // 32-bit numbers), printed back as LOCAL.
    ofctl_ok(version, &of, &["add-flow", "priority=7,in_port=LOCAL,actions=LOCAL"])?;
    let local = ofctl_ok(version, &of, &["dump-flows", "in_port=LOCAL"])?;
    if !local.contains("priority=7,in_port=LOCAL actions=LOCAL") {
        return Err(format!("dump-flows in_port=LOCAL:\n{local}").into());
    }
    ofctl_ok(version, &of, &["del-flows", "in_port=LOCAL"])?;
    // Registers and metadata: loaded from the flow-mod and dumped as OVS prints them (kept
    // for the restart below).
    ofctl_ok(version, &of, &["add-flow", PIPELINE_RULE])?;
    let dump = ofctl_ok(version, &of, &["dump-flows", "--no-stats", "table=3"])?;
    if !dump.contains(PIPELINE_PRINTED) {
        return Err(format!("register rule dumped as:\n{dump}").into());
    }

    // Refused: a field and an output the rule model lacks; the port's admin state.
    for (rule, error) in [("tun_id=1,actions=output:1", "OFPBMC_BAD_FIELD"), ("actions=TABLE", "OFPBAC_BAD_OUT_PORT")] {
        match ofctl(version, &of, &["add-flow", rule]) {
            Ok(out) => return Err(format!("add-flow {rule} was accepted: {out}").into()),
            Err(e) if e.contains(error) => {}
            Err(e) => return Err(format!("add-flow {rule}: expected {error}, got {e}").into()),
        }
    }
    // mod-port: the admin state (OFPPC_PORT_DOWN) is applied as `set-port a admin=down`;
    // other config bits are refused.
    ofctl_ok(version, &of, &["mod-port", "a", "down"])?;
    let admin_down = |of: &Path| -> Result<bool, Failed> {
        let show = ofctl_ok(version, of, &["show"])?;
        let a = show.split(" 1(a)").nth(1).unwrap_or_default();
        Ok(a.split(" 2(b)").next().unwrap_or_default().contains("PORT_DOWN"))
    };
    if !admin_down(&of)? || d.port_counters("a").is_none_or(|p| p["admin_down"] != true) {
        return Err(format!("mod-port a down: {}", ofctl_ok(version, &of, &["show"])?).into());
    }
    match ofctl(version, &of, &["mod-port", "a", "no-receive"]) {
        Ok(out) => return Err(format!("mod-port a no-receive was accepted: {out}").into()),
        Err(e) if e.contains("OFPPMFC_BAD_CONFIG") || e.contains("OFPBRC_EPERM") => {}
        Err(e) => return Err(format!("mod-port a no-receive: {e}").into()),
    }

    // A restart comes back with the rules added over OpenFlow (written back), and the
    // same datapath id.
    let before = dumped(version, &of)?;
    let dir = d.kill();
    let d = Daemon::restart_in(dir, &[]);
    let of = mgmt(&d);
    same("dump-flows after a restart", &dumped(version, &of)?, &before)?;
    let show = ofctl_ok(version, &of, &["show"])?;
    let dpid_after = show.lines().next().and_then(|l| l.split("dpid:").nth(1)).map(str::to_string);
    if dpid.is_none() || dpid != dpid_after {
        return Err(format!("datapath id changed over a restart: {dpid:?} -> {dpid_after:?}").into());
    }
    // The admin state was written back; up again.
    if !admin_down(&of)? {
        return Err("port a came back up after a restart".into());
    }
    ofctl_ok(version, &of, &["mod-port", "a", "up"])?;
    if admin_down(&of)? {
        return Err("mod-port a up left it down".into());
    }

    // 1.3 selects by cookie under a mask.
    if version == "OpenFlow13" {
        ofctl_ok(version, &of, &["del-flows", "cookie=0x1f/-1"])?;
        let mut left = before.clone();
        left.retain(|p| p.1 != "0x1f");
        if left.len() + 1 != before.len() {
            return Err(format!("no rule with cookie 0x1f in {before:#?}").into());
        }
        same("dump-flows after del-flows cookie=0x1f/-1", &dumped(version, &of)?, &left)?;
    }

    // del-flows without a match empties the bridge.
    ofctl_ok(version, &of, &["del-flows"])?;
    if !dumped(version, &of)?.is_empty() || !ctl_rules(&d)?.is_empty() {
        return Err("del-flows left rules".into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exited with {}:\n{}", stopped.status, stopped.log).into());
    }
    if stopped.dir.join("br0.mgmt").exists() {
        return Err("the management socket is left after stop".into());
    }
    Ok(())
}

pub fn manages_rules_of10() -> Result<(), Failed> {
    manage_in("OpenFlow10")
}

pub fn manages_rules_of13() -> Result<(), Failed> {
    manage_in("OpenFlow13")
}

/// Rules set with `ovs-ofctl` route replayed traffic; the rule and port counters that
/// `ovs-ofctl` reports are the switch's (they agree with `ferrovs-ctl`).
pub fn rules_route_traffic() -> Result<(), Failed> {
    let dir = TempDir::new();
    let udp = frames::ipv4_udp([198, 18, 0, 1], [198, 18, 0, 2], 1234, 53);
    let tcp = frames::ipv4_tcp([198, 18, 0, 1], [198, 18, 0, 2], 40000, 80, 0x02);
    write_pcap(&dir.join("in.pcap"), &[udp, tcp]);
    // The capture loops forever; with no rules everything is dropped until ovs-ofctl adds some.
    let ports = [("udp", 2, "net_null0,no-rx=1"), ("tcp", 3, "net_null1,no-rx=1")];
    let config = format!(
        "{}{}{}",
        preamble(),
        bridge("flows = []", &ports),
        pcap_port("in", 1, "in.pcap").replace("tx_pcap=@DIR@/out1.pcap", "infinite_rx=1"),
    );
    let d = Daemon::start_in(dir, &config);
    let of = mgmt(&d);
    ofctl_ok("OpenFlow13", &of, &["add-flow", "priority=10,in_port=1,udp,actions=output:2"])?;
    ofctl_ok("OpenFlow10", &of, &["add-flow", "priority=10,in_port=1,tcp,tp_dst=80,actions=output:3"])?;
    let tx = |d: &Daemon, p: &str| counter(&d.port_counters(p).expect("port"), "tx_packets");
    if !wait_until(Duration::from_secs(10), || tx(&d, "udp") > 1000 && tx(&d, "tcp") > 1000) {
        return Err(format!("traffic did not follow the rules: udp {} tcp {}", tx(&d, "udp"), tx(&d, "tcp")).into());
    }
    // Rule counters: ovs-ofctl's are at least ferrovs-ctl's taken just before (counters
    // only grow), and both are far from zero.
    let before: u64 = d.ctl_json(&["dump-flows", "br0"])["flows"]
        .as_array()
        .map(|f| f.iter().filter_map(|r| r["n_packets"].as_u64()).sum())
        .unwrap_or(0);
    let dump = ofctl_ok("OpenFlow13", &of, &["dump-flows"])?;
    let of_packets: u64 =
        dump.split("n_packets=").skip(1).filter_map(|s| s.split(',').next().and_then(|n| n.parse::<u64>().ok())).sum();
    if before == 0 || of_packets < before {
        return Err(format!("rule counters: ferrovs-ctl {before}, ovs-ofctl {of_packets}\n{dump}").into());
    }
    // Table statistics count each table's rules (ovs-ofctl asks for them before every
    // flow-mod; the slow path counts them without reading every rule).
    ofctl_ok("OpenFlow13", &of, &["add-flow", "table=3,priority=1,actions=drop"])?;
    let tables = ofctl_ok("OpenFlow10", &of, &["dump-tables"])?;
    let active = |table: &str| {
        tables.split(table).nth(1).and_then(|t| t.split("active=").nth(1)).and_then(|n| n.split(',').next())
    };
    if active("table 0 ").map(str::trim) != Some("2") || active("table 3 ").map(str::trim) != Some("1") {
        return Err(format!("table statistics: {tables}").into());
    }
    // Port counters likewise.
    let ctl_tx = tx(&d, "udp");
    let ports = ofctl_ok("OpenFlow10", &of, &["dump-ports", "2"])?;
    let of_tx: u64 = ports
        .split("tx pkts=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("dump-ports 2: {ports}"))?;
    if of_tx < ctl_tx {
        return Err(format!("port 2 tx: ferrovs-ctl {ctl_tx}, ovs-ofctl {of_tx}").into());
    }
    drop(d.stop());
    Ok(())
}

/// Rules with `send_flow_rem` tell the controllers when they go: a 1 s hard timeout is a
/// flow-removed (reason hard timeout) with the rule's cookie, priority, match and
/// timeouts, and `ovs-ofctl del-flows` is one with reason delete; an OpenFlow 1.0 and an
/// OpenFlow 1.3 controller each get it in their version, and `ovs-ofctl dump-flows`
/// shows the flag.
pub fn flow_removed_reaches_controllers() -> Result<(), Failed> {
    use crate::controller::{RawController, next_flow_removed};
    use ferrovs_config::openflow::{Field, FlowRemovedReason, Version};
    let ports = [("a", 1, "net_null0,no-rx=1"), ("b", 2, "net_null1,no-rx=1")];
    let d = Daemon::start_in(TempDir::new(), &format!("{}{}", preamble(), bridge("flows = []", &ports)));
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    crate::flows::ctl_ok(&d, &["set-controller", "br0", &format!("ptcp:{listen}")])?;
    let mut of10 = RawController::connect(listen, Version::Of10)?;
    let mut of13 = RawController::connect(listen, Version::Of13)?;
    let of = mgmt(&d);
    ofctl_ok(
        "OpenFlow13",
        &of,
        &["add-flow", "cookie=0x2a,hard_timeout=1,send_flow_rem,priority=100,udp,actions=drop"],
    )?;
    ofctl_ok("OpenFlow13", &of, &["add-flow", "send_flow_rem,priority=200,tcp,tp_dst=80,actions=drop"])?;
    ofctl_ok("OpenFlow13", &of, &["add-flow", "priority=300,icmp,actions=drop"])?;
    let dump = ofctl_ok("OpenFlow13", &of, &["dump-flows"])?;
    let flagged = dump.lines().filter(|l| l.contains("send_flow_rem")).count();
    if flagged != 2 {
        return Err(format!("dump-flows should show send_flow_rem on two rules:\n{dump}").into());
    }
    for (c, v) in [(&mut of10, Version::Of10), (&mut of13, Version::Of13)] {
        let f = next_flow_removed(c, Duration::from_secs(5))?;
        let udp = f.matches.fields.iter().any(|m| m.field == Field::IpProto && m.value == 17);
        let hard = if v == Version::Of13 { 1 } else { 0 };
        if (f.reason, f.cookie, f.priority, f.hard_timeout, f.packet_count)
            != (FlowRemovedReason::HardTimeout, 0x2a, 100, hard, 0)
            || !udp
            || f.duration_sec < 1
        {
            return Err(format!("{v:?}: hard-timeout flow-removed: {f:?}").into());
        }
    }
    ofctl_ok("OpenFlow13", &of, &["del-flows", "tcp"])?;
    ofctl_ok("OpenFlow13", &of, &["del-flows", "icmp"])?;
    for (c, v) in [(&mut of10, Version::Of10), (&mut of13, Version::Of13)] {
        let f = next_flow_removed(c, Duration::from_secs(5))?;
        let port80 = f.matches.fields.iter().any(|m| m.field == Field::TcpDst && m.value == 80);
        if (f.reason, f.priority) != (FlowRemovedReason::Delete, 200) || !port80 {
            return Err(format!("{v:?}: delete flow-removed: {f:?}").into());
        }
    }
    // Deletes not made by a flow-mod notify too: ferrovs-ctl del-flows, a reload of a
    // config whose rules no longer have the rule, a group delete.
    ofctl_ok("OpenFlow13", &of, &["add-flow", "send_flow_rem,priority=400,udp,tp_dst=53,actions=drop"])?;
    ofctl_ok("OpenFlow13", &of, &["add-flow", "send_flow_rem,priority=500,udp,tp_dst=67,actions=drop"])?;
    crate::flows::ctl_ok(&d, &["del-flows", "br0", "udp,tp_dst=53"])?;
    let config = d.socket.with_file_name("ferrovs.toml");
    let text = std::fs::read_to_string(&config)?;
    let (head, rest) = text.split_once("flows = [").ok_or("no flows array in the written-back config")?;
    let tail = rest.split_once(']').ok_or("an unterminated flows array")?.1;
    std::fs::write(&config, format!("{head}flows = []{tail}"))?;
    crate::flows::ctl_ok(&d, &["reload"])?;
    // And a group delete, for the rule that used the group.
    ofctl_ok("OpenFlow13", &of, &["add-group", "group_id=1,type=all,bucket=output:1"])?;
    ofctl_ok("OpenFlow13", &of, &["add-flow", "send_flow_rem,priority=600,udp,tp_dst=99,actions=group:1"])?;
    ofctl_ok("OpenFlow13", &of, &["del-groups", "group_id=1"])?;
    for (c, v) in [(&mut of10, Version::Of10), (&mut of13, Version::Of13)] {
        for (priority, port) in [(400, 53), (500, 67), (600, 99)] {
            let f = next_flow_removed(c, Duration::from_secs(5))
                .map_err(|e| format!("{v:?}: priority {priority}: {e:?}\n{}", d.log_text()))?;
            let dst = f.matches.fields.iter().any(|m| m.field == Field::UdpDst && m.value == port);
            if (f.reason, f.priority) != (FlowRemovedReason::Delete, priority) || !dst {
                return Err(format!("{v:?}: flow-removed of priority {priority}: {f:?}").into());
            }
        }
    }
    let left = ofctl_ok("OpenFlow13", &of, &["dump-flows"])?;
    if left.lines().any(|l| l.contains("priority=")) {
        return Err(format!("rules left:\n{left}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}

/// `ovs-ofctl mod-port br0 a down|up` reaches the bridge's controllers as port statuses
/// (`OFPPR_MODIFY`) whose config has `OFPPC_PORT_DOWN` set, then clear.
pub fn port_mod_reaches_controllers() -> Result<(), Failed> {
    use crate::controller::RawController;
    use ferrovs_config::openflow::{Body, PortReason, Version};
    let ports = [("a", 1, "net_null0,no-rx=1"), ("b", 2, "net_null1,no-rx=1")];
    let d = Daemon::start_in(TempDir::new(), &format!("{}{}", preamble(), bridge("flows = []", &ports)));
    let listen = crate::controller::free_port();
    crate::flows::ctl_ok(&d, &["set-controller", "br0", &format!("ptcp:{listen}")])?;
    let mut c = RawController::connect(listen, Version::Of13)?;
    let of = mgmt(&d);
    // The config bit of port 1's next MODIFY (others skipped; a link change may come too).
    let mut next_config = |want: u32| -> Result<(), Failed> {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until {
            if let Body::PortStatus(s) = c.recv()?.body
                && s.reason == PortReason::Modify
                && s.desc.port_no == 1
                && s.desc.config == want
            {
                return Ok(());
            }
        }
        Err(format!("no port status for port 1 with config {want}\n{}", d.log_text()).into())
    };
    ofctl_ok("OpenFlow13", &of, &["mod-port", "a", "down"])?;
    next_config(1)?;
    ofctl_ok("OpenFlow13", &of, &["mod-port", "a", "up"])?;
    next_config(0)?;
    drop(d.stop());
    Ok(())
}

/// `ovs-ofctl -O OpenFlow13 add-group/dump-groups/del-groups`: an `all` group is added
/// and listed, a rule uses it (`group:1`), deleting the group deletes that rule.
pub fn ovs_ofctl_manages_groups() -> Result<(), Failed> {
    let ports = [("a", 1, "net_null0,no-rx=1"), ("b", 2, "net_null1,no-rx=1")];
    let d = Daemon::start_in(TempDir::new(), &format!("{}{}", preamble(), bridge("flows = []", &ports)));
    let of = mgmt(&d);
    ofctl_ok("OpenFlow13", &of, &["add-group", "group_id=1,type=all,bucket=output:1,bucket=output:2"])?;
    ofctl_ok("OpenFlow13", &of, &["add-flow", "priority=5,udp,actions=group:1"])?;
    let groups = ofctl_ok("OpenFlow13", &of, &["dump-groups"])?;
    if !groups.contains("group_id=1,type=all,bucket=actions=output:1,bucket=actions=output:2") {
        return Err(format!("dump-groups:\n{groups}").into());
    }
    let flows = ofctl_ok("OpenFlow13", &of, &["dump-flows"])?;
    if !flows.contains("actions=group:1") {
        return Err(format!("dump-flows:\n{flows}").into());
    }
    if ofctl("OpenFlow13", &of, &["add-group", "group_id=1,type=all,bucket=output:1"]).is_ok() {
        return Err("adding an existing group succeeded".into());
    }
    // A rule naming a group that does not exist is refused, over OpenFlow with OVS's
    // error, by ferrovs-ctl with the reason; neither is added.
    match ofctl("OpenFlow13", &of, &["add-flow", "priority=6,udp,actions=group:9"]) {
        Err(e) if e.contains("OFPBAC_BAD_OUT_GROUP") => {}
        other => return Err(format!("add-flow naming group 9: {other:?}").into()),
    }
    let out = d.ctl(&["-O", "OpenFlow13", "add-flow", "br0", "priority=7,udp,actions=group:9"]);
    let why = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !why.contains("group 9 does not exist") {
        return Err(format!("ferrovs-ctl add-flow naming group 9: {why}").into());
    }
    if ofctl_ok("OpenFlow13", &of, &["dump-flows"])?.contains("group:9") {
        return Err("a rule naming group 9 was added".into());
    }
    // Groups are written back with the rules: kill -9 and a start keep them.
    ofctl_ok("OpenFlow13", &of, &["add-group", "group_id=2,type=indirect,bucket=output:2"])?;
    let dir = d.kill();
    let d = Daemon::restart_in(dir, &[]);
    let groups = ofctl_ok("OpenFlow13", &of, &["dump-groups"])?;
    let flows = ofctl_ok("OpenFlow13", &of, &["dump-flows"])?;
    let kept = ["group_id=1,type=all,bucket=actions=output:1,bucket=actions=output:2", "group_id=2,type=indirect"];
    if !kept.iter().all(|g| groups.contains(g)) || !flows.contains("actions=group:1") {
        return Err(format!(
            "after kill -9 and a start:
{groups}
{flows}"
        )
        .into());
    }
    // A port change keeps the rules and groups changed at run time (since the start).
    ofctl_ok("OpenFlow13", &of, &["add-group", "group_id=3,type=all,bucket=output:1"])?;
    ofctl_ok("OpenFlow13", &of, &["add-flow", "priority=8,tcp,actions=group:3"])?;
    let groups = ofctl_ok("OpenFlow13", &of, &["dump-groups"])?;
    crate::flows::ctl_ok(&d, &["add-port", "br0", "c", "net_null2,no-rx=1"])?;
    let after_port = (ofctl_ok("OpenFlow13", &of, &["dump-groups"])?, ofctl_ok("OpenFlow13", &of, &["dump-flows"])?);
    if after_port.0 != groups || !after_port.1.contains("priority=8,tcp actions=group:3") {
        return Err(format!("after add-port:\n{}\n{}", after_port.0, after_port.1).into());
    }
    ofctl_ok("OpenFlow13", &of, &["del-groups", "group_id=1"])?;
    let groups = ofctl_ok("OpenFlow13", &of, &["dump-groups"])?;
    let flows = ofctl_ok("OpenFlow13", &of, &["dump-flows"])?;
    if groups.contains("group_id=1") || flows.contains("group:1") {
        return Err(format!("after del-groups:\n{groups}\n{flows}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}

/// Traffic through groups loaded from the config: host -> guest through an `indirect`
/// group, guest -> host through an `all` group whose second bucket copies every frame to
/// a third port (a pcap). Pings get through both ways, and the copies are there.
pub fn groups_carry_traffic() -> Result<(), Failed> {
    let dir = TempDir::new();
    write_pcap(&dir.join("empty.pcap"), &[]);
    let rules = r#"protocols = "OpenFlow13"
groups = ["group_id=1,type=indirect,bucket=actions=output:2",
          "group_id=2,type=all,bucket=actions=output:1,bucket=actions=output:3"]
flows = ["in_port=1,actions=group:1", "in_port=2,actions=group:2"]"#;
    let (d, host, _guest) = crate::flows::two_hosts_in(dir, rules, &pcap_port("copy", 3, "empty.pcap"));
    let (tx, rx) = host.ping("198.18.0.2", 5, 2);
    if (tx, rx) != (5, 5) {
        return Err(format!("through the groups: {rx}/{tx} replies\n{}", d.log_text()).into());
    }
    // Every frame from the guest (ARP, five echo replies) was copied to port 3 too: the
    // group hands each to both ports (a frame the tap's full queue refused is counted
    // as dropped there, not sent).
    let sent = |p: &str| d.port_counters(p).map_or(0, |c| counter(&c, "tx_packets") + counter(&c, "drop_tx_full"));
    let copied = wait_until(Duration::from_secs(2), || sent("copy") >= 6 && sent("copy") == sent("a"));
    if !copied {
        return Err(format!(
            "the all group's copies: {} to port 3, {} to port 1 (sent or dropped for a full queue): {:?}",
            sent("copy"),
            sent("a"),
            d.port_counters("a")
        )
        .into());
    }
    // Group statistics count what the rules sent through each group: the pings (and
    // ARP) each way, the same on every bucket.
    let stats = ofctl_ok("OpenFlow13", &mgmt(&d), &["dump-group-stats"])?;
    let count = |id: u32| -> Option<u64> {
        let line = stats.lines().find(|l| l.contains(&format!("group_id={id},")))?;
        line.split("packet_count=").nth(1)?.split(',').next()?.parse().ok()
    };
    let buckets_agree = |id: u32| {
        let line = stats.lines().find(|l| l.contains(&format!("group_id={id},"))).unwrap_or("");
        let n = count(id).unwrap_or(0);
        line.matches(&format!("packet_count={n},")).count() == 1 + line.matches("bucket").count()
    };
    if !(count(1).is_some_and(|n| n >= 6) && count(2).is_some_and(|n| n >= 6) && buckets_agree(1) && buckets_agree(2)) {
        return Err(format!("dump-group-stats:\n{stats}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}

/// Meters, as OVS on a datapath without them: `ovs-ofctl -O OpenFlow13 meter-features`
/// shows none, `dump-meters` and `meter-stats` list none, `del-meters` succeeds and
/// `add-meter` is refused with `OFPMMFC_INVALID_METER`.
pub fn ovs_ofctl_meters_as_ovs_without_meters() -> Result<(), Failed> {
    let ports = [("a", 1, "net_null0,no-rx=1")];
    let d = Daemon::start_in(TempDir::new(), &format!("{}{}", preamble(), bridge("flows = []", &ports)));
    let of = mgmt(&d);
    let features = ofctl_ok("OpenFlow13", &of, &["meter-features"])?;
    if !features.contains("OFPST_METER_FEATURES reply") || !features.contains("max_meter:0") {
        return Err(format!("meter-features:\n{features}").into());
    }
    for cmd in ["dump-meters", "meter-stats"] {
        let out = ofctl_ok("OpenFlow13", &of, &[cmd])?;
        if out.lines().count() != 1 {
            return Err(format!("{cmd}: meters listed:\n{out}").into());
        }
    }
    ofctl_ok("OpenFlow13", &of, &["del-meters"])?;
    match ofctl("OpenFlow13", &of, &["add-meter", "meter=1,kbps,band=type=drop,rate=100"]) {
        Err(e) if e.contains("OFPMMFC_INVALID_METER") => {}
        other => return Err(format!("add-meter: {other:?}").into()),
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}
