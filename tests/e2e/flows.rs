//! End-to-end tests of the slow path through ferrovsd: rule changes take effect for the
//! very next packet, `normal` learns and stops flooding, rules route and rewrite a
//! replayed capture, and the flow commands of ferrovs-ctl answer.

use std::time::Duration;

use ferrovs_e2e::{Daemon, Netns, TempDir, frames, read_pcap, unique, wait_until, write_pcap};
use ferrovs_flowcache::testpkt::checksums_ok;
use libtest_mimic::Failed;

use crate::{counter, preamble};

/// `ferrovs-ctl ARGS` that must succeed; its stdout.
pub(crate) fn ctl_ok(d: &Daemon, args: &[&str]) -> Result<String, Failed> {
    let out = d.ctl(args);
    if !out.status.success() {
        return Err(format!("ferrovs-ctl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rules of bridge br0 as `ferrovs-ctl dump-flows` prints them, in table order.
pub(crate) fn ctl_rules(d: &Daemon) -> Result<Vec<String>, Failed> {
    let v = d.ctl_json(&["dump-flows", "br0"]);
    let flows = v["flows"].as_array().ok_or_else(|| format!("no flows in {v}"))?;
    flows
        .iter()
        .map(|f| f["rule"].as_str().map(str::to_string).ok_or_else(|| format!("no rule in {f}").into()))
        .collect()
}

/// Two namespaces on two tap ports (1 and 2) of bridge br0, whose rules are given by
/// `rules_key` (`flows = [...]` or `flows_file = "..."`), plus `extra_ports`. Returns
/// the daemon and the namespaces (host at 198.18.0.1, guest at 198.18.0.2).
pub(crate) fn two_hosts_in(dir: TempDir, rules_key: &str, extra_ports: &str) -> (Daemon, Netns, Netns) {
    let tap_a = unique("fva");
    let tap_b = unique("fvb");
    let devargs_a = format!("net_tap0,iface={tap_a}");
    let devargs_b = format!("net_tap1,iface={tap_b}");
    let config = format!(
        "{}{}{extra_ports}",
        preamble(),
        crate::bridge(rules_key, &[("a", 1, &devargs_a), ("b", 2, &devargs_b)])
    );
    let d = Daemon::start_in(dir, &config);
    let host = Netns::new();
    let guest = Netns::new();
    host.adopt(&tap_a, "198.18.0.1/24");
    guest.adopt(&tap_b, "198.18.0.2/24");
    (d, host, guest)
}

fn two_hosts(rules: &str, extra_ports: &str) -> (Daemon, Netns, Netns) {
    two_hosts_in(TempDir::new(), &format!("flows = [{rules}]"), extra_ports)
}

/// A net_pcap port reading `rx` (a file in the daemon's directory) and writing
/// `out<number>.pcap` there.
pub(crate) fn pcap_port(name: &str, number: u32, rx: &str) -> String {
    format!(
        r#"
[[bridge.port]]
name = "{name}"
number = {number}
devargs = "net_pcap{index},rx_pcap=@DIR@/{rx},tx_pcap=@DIR@/out{number}.pcap"
"#,
        index = number - 1
    )
}

/// Writes `input` as `in.pcap` in `dir` and returns the config of bridge br0 (no internal
/// port) with `flows`: port 1 "in" replays `input` once, ports 2.. (named `outputs`)
/// receive nothing; every port writes what it sends to `out<N>.pcap`.
pub(crate) fn pcap_bridge(dir: &TempDir, input: &[Vec<u8>], flows: &[&str], outputs: &[&str]) -> String {
    write_pcap(&dir.join("in.pcap"), input);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let flows: Vec<String> = flows.iter().map(|f| format!("  {f:?},\n")).collect();
    let mut config = format!(
        "{}\n[[bridge]]\nname = \"br0\"\ninternal_port = false\nflows = [\n{}]\n\n{}",
        preamble(),
        flows.concat(),
        pcap_port("in", 1, "in.pcap")
    );
    for (i, name) in outputs.iter().enumerate() {
        config += &pcap_port(name, i as u32 + 2, "empty.pcap");
    }
    config
}

/// A rule change applies to the very next packet: once `add-flow` returns, ICMP is
/// dropped; once `del-flows` returns, it passes again.
pub fn rule_change_applies_to_next_packet() -> Result<(), Failed> {
    let (d, host, _guest) = two_hosts(r#""in_port=1,actions=output:2", "in_port=2,actions=output:1""#, "");
    let (tx, rx) = host.ping("198.18.0.2", 3, 2);
    if (tx, rx) != (3, 3) {
        return Err(format!("before the change: {rx}/{tx}").into());
    }
    // Megaflows for ICMP are installed now; the change must remove or correct them.
    ctl_ok(&d, &["add-flow", "br0", "priority=40000,icmp,actions=drop"])?;
    let (tx, rx) = host.ping("198.18.0.2", 1, 1);
    if rx != 0 || tx != 1 {
        return Err(format!("ICMP still forwarded right after add-flow drop: {rx}/{tx}").into());
    }
    let dump = ctl_ok(&d, &["dump-flows", "br0"])?;
    if !dump.contains("icmp actions=drop") {
        return Err(format!("dump-flows does not show the new rule:\n{dump}").into());
    }
    ctl_ok(&d, &["del-flows", "br0", "icmp"])?;
    let (tx, rx) = host.ping("198.18.0.2", 1, 2);
    if (tx, rx) != (1, 1) {
        return Err(format!("ICMP not forwarded right after del-flows: {rx}/{tx}\n{}", d.log_text()).into());
    }
    let dump = ctl_ok(&d, &["dump-flows", "br0"])?;
    if dump.contains("icmp") || !dump.contains("n_packets=") {
        return Err(format!("dump-flows after del-flows:\n{dump}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}

/// `normal` floods what it has not learned (ARP broadcasts reach the third port),
/// then forwards learned unicast only to the right port: the observer port's transmit
/// counter stops growing while the two hosts keep talking.
pub fn normal_learns_and_stops_flooding() -> Result<(), Failed> {
    let observer = r#"
[[bridge.port]]
name = "obs"
number = 3
devargs = "net_null0,no-rx=1"
"#;
    let (d, host, guest) = two_hosts(r#""actions=normal""#, observer);
    let (tx, rx) = host.ping("198.18.0.2", 2, 3);
    if (tx, rx) != (2, 2) {
        return Err(format!("normal: first pings {rx}/{tx}\n{}", d.log_text()).into());
    }
    let flooded = counter(&d.port_counters("obs").expect("obs"), "tx_packets");
    if flooded == 0 {
        return Err("nothing was flooded to the third port before learning".into());
    }
    // Both MACs are learned now; unicast between them must not reach port 3.
    let (tx, rx) = host.ping("198.18.0.2", 5, 2);
    let (tx2, rx2) = guest.ping("198.18.0.1", 5, 2);
    if (tx, rx, tx2, rx2) != (5, 5, 5, 5) {
        return Err(format!("normal: {rx}/{tx} and {rx2}/{tx2} after learning").into());
    }
    let after = counter(&d.port_counters("obs").expect("obs"), "tx_packets");
    // IPv6 neighbour/router multicasts of the taps may still be flooded; the 20 ICMP
    // packets and their replies must not be.
    if after - flooded >= 10 {
        return Err(format!("{} more packets flooded to port 3 after learning", after - flooded).into());
    }
    let dp = ctl_ok(&d, &["dump-dp-flows"])?;
    if !dp.contains("eth(src=") || !dp.contains("actions:") {
        return Err(format!("dump-dp-flows shows no learned unicast megaflow:\n{dp}").into());
    }
    Ok(())
}

/// Rules route a capture by protocol and rewrite some of it; each output capture holds
/// exactly the frames the rules send there, rewritten with valid checksums.
pub fn pcap_rules_route_and_rewrite() -> Result<(), Failed> {
    let dir = TempDir::new();
    let a = [198, 18, 0, 1];
    let b = [198, 18, 0, 2];
    let udp = frames::ipv4_udp(a, b, 1234, 53);
    let tcp = frames::ipv4_tcp(a, b, 40000, 80, 0x02);
    let tcp_other = frames::ipv4_tcp(a, b, 40001, 22, 0x02);
    let arp = frames::arp_request(a, b);
    let v6 = frames::ipv6_udp(1, 2, 5000, 6000);
    let tagged = frames::vlan_ipv4_udp(20, 3, a, b);
    let input = vec![
        udp.clone(),
        tcp.clone(),
        arp.clone(),
        v6.clone(),
        tagged.clone(),
        tcp_other.clone(),
        frames::runt(),
        udp.clone(),
    ];
    let config = pcap_bridge(
        &dir,
        &input,
        &[
            "priority=10,in_port=1,actions=output:4",
            "priority=100,in_port=1,udp,dl_vlan=0xffff,actions=output:2",
            "priority=100,in_port=1,tcp,tp_dst=80,actions=mod_nw_dst:198.18.7.7,dec_ttl,output:3",
            "priority=100,in_port=1,arp,actions=flood",
            "priority=100,in_port=1,dl_vlan=20,actions=strip_vlan,output:2",
        ],
        &["udp", "web", "rest"],
    );
    let d = Daemon::start_in(dir, &config);
    let n = input.len() as u64;
    let all_in =
        wait_until(Duration::from_secs(10), || d.port_counters("in").map(|p| counter(&p, "rx_packets")) == Some(n));
    // Outputs are batched; give the PMD a moment to flush the last burst.
    let out_total = |d: &Daemon| -> u64 {
        ["udp", "web", "rest"].iter().map(|p| counter(&d.port_counters(p).expect("port"), "tx_packets")).sum()
    };
    let settled = wait_until(Duration::from_secs(5), || out_total(&d) == 9);
    let trace = ctl_ok(&d, &["trace", "br0", "in_port=1,tcp,nw_src=198.18.0.1,nw_dst=198.18.0.2,tp_dst=80"])?;
    let show = ctl_ok(&d, &["show"])?;
    let dp = ctl_ok(&d, &["dump-dp-flows"])?;
    let stopped = d.stop();
    if !all_in || !settled {
        return Err(format!(
            "not everything went through: all_in={all_in} outputs settled={settled}\n{show}\n{dp}\n{}",
            stopped.log
        )
        .into());
    }
    if !trace.contains("mod_nw_dst:198.18.7.7") || !trace.contains("Megaflow: in_port(1)") {
        return Err(format!("trace output:\n{trace}").into());
    }
    let p = |f: &str| read_pcap(&stopped.dir.path.join(f));
    // Port 2: the untagged UDP frames (twice), the flooded ARP and the VLAN 20 frame
    // untagged.
    let mut untagged = tagged.clone();
    untagged.drain(12..16);
    // Packets of one flow keep their order; packets of different flows that all missed
    // leave in the order their megaflows were installed, so compare as sets.
    let sorted = |mut v: Vec<Vec<u8>>| {
        v.sort();
        v
    };
    let want2 = vec![udp.clone(), arp.clone(), untagged, udp.clone()];
    let got2 = p("out2.pcap");
    if sorted(got2.clone()) != sorted(want2.clone()) {
        return Err(format!("port 2 got {} frames, want {} (udp, stripped vlan, udp)", got2.len(), want2.len()).into());
    }
    // Port 3: the web frame with its destination rewritten, TTL 63, checksums right,
    // then the flooded ARP.
    let got3 = p("out3.pcap");
    if got3.len() != 2 || !got3.contains(&arp) {
        return Err(format!("port 3 got {} frames, want 2 (rewritten tcp, arp)", got3.len()).into());
    }
    let f = got3.iter().find(|f| **f != arp).expect("two frames");
    if f[30..34] != [198, 18, 7, 7] || f[22] != 63 || !checksums_ok(f) {
        return Err(format!("port 3 frame not rewritten right: {:02x?}", &f[14..54]).into());
    }
    // Port 4: the default rule (IPv6, TCP to port 22) plus the flooded ARP.
    let got4 = p("out4.pcap");
    let want4 = vec![arp.clone(), v6.clone(), tcp_other.clone()];
    if sorted(got4.clone()) != sorted(want4.clone()) {
        return Err(format!("port 4 got {} frames, want 3 (arp, ipv6, tcp/22)", got4.len()).into());
    }
    if !p("out1.pcap").is_empty() {
        return Err("a frame went back out its ingress port".into());
    }
    Ok(())
}

/// A jumbo MTU in the config sizes the mbufs to receive its frames whole: a 5,000-byte
/// TCP frame is parsed, its destination rewritten (checksums right) and sent on a port of
/// MTU 9000. With the default MTU the mbufs hold 2,048 bytes: the same frame arrives in
/// segments, which the parser would see cut short, and is dropped as malformed.
pub fn pcap_jumbo_frames_with_a_jumbo_mtu() -> Result<(), Failed> {
    use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, fill_l4_checksum, ipv4_header, tcp_header};
    let mut l4 = tcp_header(40000, 80, 0x18, 5);
    l4.extend((0..4946u32).map(|i| i as u8));
    let mut jumbo = eth_header(frames::MAC_B, frames::MAC_A, 0x0800);
    jumbo.extend(ipv4_header(&Ipv4Hdr::new([198, 18, 0, 1], [198, 18, 0, 2], 6), &[], l4.len()));
    jumbo.extend_from_slice(&l4);
    fill_l4_checksum(&mut jumbo);
    for mtu in [9000, 1500] {
        let dir = TempDir::new();
        let rule = "in_port=1,tcp,actions=mod_nw_dst:198.18.7.7,output:2";
        let config = pcap_bridge(&dir, std::slice::from_ref(&jumbo), &[rule], &["out"])
            .replace("\ndevargs = ", &format!("\nmtu = {mtu}\ndevargs = "));
        let d = Daemon::start_in(dir, &config);
        let port = |d: &Daemon, name: &str, c: &str| d.port_counters(name).map(|p| counter(&p, c)).unwrap_or(0);
        let settled = wait_until(Duration::from_secs(5), || {
            port(&d, "in", "rx_packets") == 1 && port(&d, "out", "tx_packets") + port(&d, "in", "drop_malformed") == 1
        });
        let malformed = port(&d, "in", "drop_malformed");
        let stopped = d.stop();
        let got = read_pcap(&stopped.dir.path.join("out2.pcap"));
        if !settled {
            return Err(
                format!("MTU {mtu}: the frame was neither sent nor dropped as malformed\n{}", stopped.log).into()
            );
        }
        match mtu {
            9000 => {
                let ok = got.len() == 1
                    && got[0].len() == jumbo.len()
                    && got[0][30..34] == [198, 18, 7, 7]
                    && checksums_ok(&got[0])
                    && got[0][54..] == jumbo[54..];
                if !ok || malformed != 0 {
                    return Err(format!(
                        "MTU 9000: sent {:?} bytes, malformed {malformed}",
                        got.iter().map(Vec::len).collect::<Vec<_>>()
                    )
                    .into());
                }
            }
            _ => {
                if !got.is_empty() || malformed != 1 {
                    return Err(format!("MTU {mtu}: sent {} frames, malformed {malformed}", got.len()).into());
                }
            }
        }
    }
    Ok(())
}

/// Rules on the IPv6 neighbour-discovery fields (not in the flow key): ND messages go
/// through the slow path one by one and are forwarded by their ND fields, byte for byte;
/// other packets stay in the fast path.
pub fn pcap_nd_rules_forward_by_nd_fields() -> Result<(), Failed> {
    use ferrovs_flowcache::testpkt::{ipv6_frame, nd_message};
    let dir = TempDir::new();
    let nd = |ty: u8, last: u8| {
        let target = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last];
        ipv6_frame(58, 0, &[], &nd_message(ty, 0, target, &[1, 1, 2, 0, 0, 0, 0, last]))
    };
    let (ns1, ns2, na1) = (nd(135, 1), nd(135, 2), nd(136, 1));
    let v6 = frames::ipv6_udp(1, 2, 5000, 6000);
    let input = vec![ns1.clone(), ns2.clone(), v6.clone(), na1.clone(), ns1.clone(), ns2.clone()];
    let config = pcap_bridge(
        &dir,
        &input,
        &["priority=100,icmp6,icmp_type=135,nd_target=fd00::1,actions=drop", "priority=0,actions=output:2"],
        &["out"],
    );
    let d = Daemon::start_in(dir, &config);
    let n = input.len() as u64;
    let all_in =
        wait_until(Duration::from_secs(10), || d.port_counters("in").map(|p| counter(&p, "rx_packets")) == Some(n));
    let settled =
        wait_until(Duration::from_secs(5), || d.port_counters("out").map(|p| counter(&p, "tx_packets")) == Some(4));
    // The slow path's counters are published about once a second.
    let slow_pathed = || d.ctl_json(&["pmd-stats-show"])["slow_path"]["state"]["slow_path_packets"].as_u64();
    let counted = wait_until(Duration::from_secs(5), || slow_pathed() == Some(5));
    let counted = if counted { Ok(()) } else { Err(format!("slow-path packets {:?}, want 5", slow_pathed())) };
    let dump = ctl_ok(&d, &["dump-flows", "br0"])?;
    let stopped = d.stop();
    if !all_in || !settled {
        return Err(format!("not everything went through: all_in={all_in} settled={settled}\n{}", stopped.log).into());
    }
    counted?;
    if !dump.contains("nd_target=fd00::1 actions=drop") {
        return Err(format!("dump-flows:\n{dump}").into());
    }
    let mut got = read_pcap(&stopped.dir.path.join("out2.pcap"));
    let mut want = vec![ns2.clone(), v6, na1, ns2];
    got.sort();
    want.sort();
    if got != want {
        return Err(format!("port 2 got {} frames, want 4 (NS for fd00::2 twice, NA, UDP)", got.len()).into());
    }
    Ok(())
}

/// A port whose link goes down keeps its configuration and forwards again when the
/// link comes back.
pub fn link_down_and_back_resumes() -> Result<(), Failed> {
    let (d, host, guest) = two_hosts(r#""in_port=1,actions=output:2", "in_port=2,actions=output:1""#, "");
    let (tx, rx) = host.ping("198.18.0.2", 2, 2);
    if (tx, rx) != (2, 2) {
        return Err(format!("before link down: {rx}/{tx}").into());
    }
    let tap_b = d.port_iface("b");
    guest.exec_ok(&["ip", "link", "set", &tap_b, "down"]);
    let (_, rx) = host.ping("198.18.0.2", 2, 1);
    if rx != 0 {
        return Err("replies while the guest's link was down".into());
    }
    guest.exec_ok(&["ip", "link", "set", &tap_b, "up"]);
    let back = wait_until(Duration::from_secs(10), || host.ping("198.18.0.2", 1, 1) == (1, 1));
    if !back {
        return Err(format!("no forwarding after the link came back\n{}", d.log_text()).into());
    }
    let b = d.port_counters("b").expect("port b");
    if counter(&b, "tx_packets") == 0 {
        return Err(format!("port b counters: {b}").into());
    }
    Ok(())
}

/// `ferrovs-ctl reload` and SIGHUP re-read the rules from the config's flows_file and
/// apply them before answering.
pub fn reload_applies_flows_file() -> Result<(), Failed> {
    let dir = TempDir::new();
    let pass = "in_port=1,actions=output:2\nin_port=2,actions=output:1\n";
    std::fs::write(dir.join("br0.flows"), pass).expect("write flows");
    let (d, host, _guest) = two_hosts_in(dir, r#"flows_file = "br0.flows""#, "");
    if host.ping("198.18.0.2", 2, 2) != (2, 2) {
        return Err("no forwarding before reload".into());
    }
    let flows = d.dir.join("br0.flows");
    std::fs::write(&flows, format!("priority=40000,icmp,actions=drop\n{pass}")).expect("write flows");
    ctl_ok(&d, &["reload"])?;
    if host.ping("198.18.0.2", 1, 1).1 != 0 {
        return Err("ICMP forwarded right after reload added a drop rule".into());
    }
    // SIGHUP: back to the first rules. The signal is asynchronous: wait for the effect.
    std::fs::write(&flows, pass).expect("write flows");
    let _ = std::process::Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
    if !wait_until(Duration::from_secs(10), || host.ping("198.18.0.2", 1, 1) == (1, 1)) {
        return Err(format!("SIGHUP did not restore forwarding\n{}", d.log_text()).into());
    }
    // A reload that changes a setting applied at start only is refused, naming it, and
    // changes nothing (not even the rules or ports it also changes).
    let cfg = d.dir.join("ferrovs.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let extra = "\n[[bridge.port]]\nname = \"c\"\nnumber = 3\ndevargs = \"net_null5,no-rx=1\"\n";
    let start_only = text.replace("idle_backoff_us = 200", "idle_backoff_us = 300") + extra;
    std::fs::write(&cfg, start_only).expect("write");
    std::fs::write(&flows, "in_port=1,actions=output:3\nin_port=3,actions=output:1\n").expect("write flows");
    let out = d.ctl(&["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains("[pmd]") || !err.contains("restart") {
        return Err(format!("a reload changing [pmd] was not refused by name: {err}").into());
    }
    if host.ping("198.18.0.2", 1, 2) != (1, 1) || ctl_ok(&d, &["list-ports", "br0"])? != "a\nb\n" {
        return Err("forwarding or ports changed after a refused reload".into());
    }
    // The same file without the [pmd] change: the port is added and the rules replaced.
    std::fs::write(&cfg, text + extra).expect("write");
    let out = ctl_ok(&d, &["reload"])?;
    if !out.contains("ports added: c") || ctl_ok(&d, &["list-ports", "br0"])? != "a\nb\nc\n" {
        return Err(format!("reload did not add port c: {out}").into());
    }
    if host.ping("198.18.0.2", 1, 1).1 != 0 {
        return Err("ping still answered after the rules sent port 1's traffic to port 3".into());
    }
    Ok(())
}

/// `ferrovs-ctl add-flow -O VERSION` reads the rule as `ovs-ofctl -O VERSION` does: under
/// OpenFlow13 `mod_vlan_vid` without a VLAN match is loaded (and dumped) as push_vlan +
/// set_field, under the default OpenFlow10 it stays itself and `push_vlan` is refused.
/// The write-back records the version that reads the rules back (`protocols`); a rule
/// that would make a set no one version reads back is refused before it is applied.
/// A version list (`OpenFlow10,OpenFlow13`) is its highest version; `dump-flows -O`
/// prints the rules as `ovs-ofctl -O` does (a register's set_field is a load in 1.0).
pub fn add_flow_reads_the_given_openflow_version() -> Result<(), Failed> {
    let config = format!("{}{}", crate::preamble(), crate::ports_ok());
    let d = Daemon::start(&config);
    let written = || std::fs::read_to_string(d.dir.join("ferrovs.toml")).unwrap_or_default();
    ctl_ok(&d, &["add-flow", "-O", "OpenFlow13", "br0", "priority=5,actions=mod_vlan_vid:5,output:2"])?;
    let dump = ctl_ok(&d, &["dump-flows", "br0"])?;
    if !dump.contains("priority=5 actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:2") {
        return Err(format!("OpenFlow13 mod_vlan_vid not loaded as push_vlan + set_field:\n{dump}").into());
    }
    let text = written();
    if !text.contains("protocols = \"OpenFlow13\"") || !text.contains("push_vlan:0x8100,set_field:4101->vlan_vid") {
        return Err(format!("write-back without the version:\n{text}").into());
    }
    let refused = d.ctl(&["add-flow", "br0", "priority=7,actions=push_vlan:0x8100,output:2"]);
    let why = String::from_utf8_lossy(&refused.stderr).into_owned();
    if refused.status.success() || !why.contains("push_vlan needs OpenFlow 1.1") {
        return Err(format!("push_vlan under OpenFlow10: {} {why}", refused.status).into());
    }
    let bad = d.ctl(&["add-flow", "-O", "OpenFlow99", "br0", "actions=drop"]);
    if bad.status.success() || !String::from_utf8_lossy(&bad.stderr).contains("OpenFlow99") {
        return Err("an unknown version was accepted".into());
    }
    // OpenFlow10's mod_vlan_vid (push only if needed) next to the push_vlan rule: refused
    // before it is applied.
    let mixed = d.ctl(&["add-flow", "br0", "priority=6,in_port=2,actions=mod_vlan_vid:6,output:1"]);
    let why = String::from_utf8_lossy(&mixed.stderr).into_owned();
    if mixed.status.success() || !why.contains("no one OpenFlow version reads back") {
        return Err(format!("mixed versions: {} {why}", mixed.status).into());
    }
    let dump = ctl_ok(&d, &["dump-flows", "br0"])?;
    if dump.contains("mod_vlan_vid:6") {
        return Err(format!("the refused rule was applied:\n{dump}").into());
    }
    // A version list is its highest version; dump-flows -O prints as ovs-ofctl -O does.
    ctl_ok(
        &d,
        &["add-flow", "-O", "OpenFlow10,OpenFlow13", "br0", "priority=8,reg0=1,actions=set_field:7->reg4,output:2"],
    )?;
    let of13 = ctl_ok(&d, &["dump-flows", "br0"])?;
    let of10 = ctl_ok(&d, &["dump-flows", "-O", "OpenFlow10", "br0"])?;
    if !of13.contains("priority=8,reg0=0x1 actions=set_field:0x7->reg4,output:2")
        || !of10.contains("priority=8,reg0=0x1 actions=load:0x7->NXM_NX_REG4[],output:2")
    {
        return Err(format!("register set_field by version:\n{of13}\n{of10}").into());
    }
    let stopped = d.stop();
    if !stopped.status.success() {
        return Err(format!("ferrovsd exit {}:\n{}", stopped.status, stopped.log).into());
    }
    Ok(())
}
