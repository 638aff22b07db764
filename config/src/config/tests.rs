//! Tests of loading and checking whole config files.

use super::*;
use crate::ports::PortDevice;
use crate::rules::{Action, Masked, SetField};
use std::net::Ipv4Addr;

const PORTS: &str = r#"
[[bridge]]
name = "br0"

[[bridge.port]]
name = "p1"
number = 1
devargs = "net_null0"

[[bridge.port]]
name = "p2"
number = 2
devargs = "net_null1"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_str(text, std::env::temp_dir())
}

/// The error of `text` as (line, column, key, message).
fn err(text: &str) -> (u32, u32, String, String) {
    let e = load(text).expect_err(text);
    let p = e.position.expect("a position");
    (p.line, p.column, e.key, e.message)
}

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
}

#[test]
fn example_configs_load() {
    let c = Config::load(deploy("ferrovs.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.eal.hugepages);
    assert!(c.eal.no_pci);
    assert_eq!(c.pmd.cores, vec![1]);
    assert_eq!(c.pmd.idle_backoff_us, 50);
    let br = c.bridge("br0").unwrap();
    // The internal port first, then the file's two.
    assert_eq!(br.ports.len(), 3);
    assert!(br.ports[0].is_internal());
    assert_eq!(br.ports[1].device, PortDevice::Vdev { name: "net_tap0".into(), driver: "net_tap".into() });
    assert_eq!(br.rules.len(), 2);
    assert_eq!(br.rules[0].matches.in_port, Some(1));
    assert_eq!(br.rules[0].actions, vec![Action::Output(2)]);
    assert_eq!(br.rules[1].actions, vec![Action::Output(1)]);
    c.validate(&SystemFacts { online_cpus: vec![0, 1] }).unwrap();
    assert_eq!(
        c.eal_args(),
        [
            "-l",
            "0",
            "-m",
            "512",
            "--no-huge",
            "--no-shconf",
            "--log-level=warning",
            "--no-pci",
            "--vdev=net_tap_local_br0,iface=br0",
            "--vdev=net_tap0,iface=fvs-tap0",
            "--vdev=net_tap1,iface=fvs-tap1",
        ]
    );

    let c = Config::load(deploy("ferrovs-nic.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.eal.hugepages);
    assert!(!c.eal.no_pci);
    let br = &c.bridges[0];
    assert_eq!(br.ports[1].device, PortDevice::Pci { address: "0000:01:00.0".into() });
    assert_eq!(br.ports[2].rx_queues, 2);
    assert_eq!(br.rules.len(), 3);
    assert_eq!(br.rules[0].matches.tp_dst, Some(Masked { value: 443, mask: 0xffff }));
    assert_eq!(br.rules[0].matches.nw_dst.unwrap().mask, Ipv4Addr::new(255, 254, 0, 0));
    let args = c.eal_args();
    assert!(args.contains(&"--in-memory".to_string()));
    assert!(args.windows(2).any(|w| w == ["-a", "0000:01:00.1"]));
    assert!(!args.contains(&"--no-pci".to_string()));
    assert!(c.validate(&SystemFacts { online_cpus: vec![0, 1] }).is_err());
}

#[test]
fn defaults() {
    let c = load(PORTS).unwrap();
    assert_eq!(c.eal.memory_mb, 512);
    assert!(!c.eal.hugepages);
    assert_eq!(c.eal.main_lcore, 0);
    assert_eq!(c.eal.log_level, "warning");
    assert!(c.eal.no_pci);
    assert_eq!(c.control.socket, PathBuf::from("/run/ferrovs/ferrovsd.sock"));
    assert_eq!(c.pmd.cores, vec![1]);
    assert_eq!(c.pmd.idle_backoff_us, 0);
    assert_eq!(c.pmd.burst, 32);
    assert_eq!(c.flow.limit_per_pmd, 200_000);
    assert_eq!(c.flow.idle_expiry, Duration::from_secs(10));
    assert_eq!(c.flow.upcall_queue_len, 4096);
    assert_eq!(c.bridges[0].ports[1].rx_queues, 1);
    assert!(c.bridges[0].rules.is_empty());
}

#[test]
fn unknown_keys_and_wrong_types() {
    assert_eq!(
            err("[eal]\nbogus = 1\n"),
            (2, 1, "eal.bogus".into(), "unknown field `bogus`, expected one of `memory_mb`, `hugepages`, `main_lcore`, `log_level`, `extra_args`, `no_pci`, `file_prefix`, `huge_dir`, `capture`".into())
        );
    assert_eq!(err("[pmd]\ncores = 1\n").0..=err("[pmd]\ncores = 1\n").1, 2..=9);
    let e = err(&format!("{PORTS}\n[[bridge.port]]\nname = \"p3\"\nnumber = \"x\"\ndevargs = \"net_null2\"\n"));
    assert_eq!((e.0, e.1, e.2.as_str()), (17, 10, "bridge[0].port[2].number"));
    assert!(e.3.contains("invalid type"), "{}", e.3);
    let e = err("[[bridge]]\nname = \"br0\"\nfoo = 1\n");
    assert_eq!((e.0, e.2.as_str()), (3, "bridge[0].foo"));
    assert_eq!(err("[control]\nsocket = 5\n").2, "control.socket");
    assert_eq!(err("[tunnel]\n").2, "tunnel");
    let e = err("x = [");
    assert_eq!((e.0, e.1), (1, 6));
    assert_eq!(err("[eal]\nhugepages = \"yes\"\n").0, 2);
}

#[test]
fn error_display_names_file_line_column_and_key() {
    let e = load("[eal]\nbogus = 1\n").unwrap_err();
    assert!(e.to_string().starts_with("<config>:2:1: eal.bogus: unknown field `bogus`"), "{e}");
    let missing =
        std::env::temp_dir().join(format!("ferrovs-config-missing-{}", std::process::id())).join("ferrovs.toml");
    let e = Config::load(&missing).unwrap_err();
    let expected = format!("{}: cannot read the config file", missing.display());
    assert!(e.to_string().starts_with(&expected), "{e}");
}

#[test]
fn ports() {
    let dup_number = PORTS.replace("number = 2", "number = 1");
    assert_eq!(
        err(&dup_number),
        (12, 10, "bridge[0].port[1].number".into(), "duplicate port number 1 (also port `p1`)".into())
    );
    let dup_name = PORTS.replace("name = \"p2\"", "name = \"p1\"");
    assert_eq!(
        err(&dup_name),
        (11, 8, "bridge[0].port[1].name".into(), "duplicate port name `p1` (also bridge[0].port[0])".into())
    );
    let dup_dev = PORTS.replace("net_null1", "net_null0,no-rx=1");
    assert_eq!(err(&dup_dev).3, "device `net_null0` is already used by bridge[0].port[0] (`p1`)");
    assert_eq!(err(&PORTS.replace("number = 2", "number = 0")).3, "0 is out of range 1..=65279");
    assert_eq!(err(&PORTS.replace("number = 2", "number = 65280")).3, "65280 is out of range 1..=65279");
    assert_eq!(err(&PORTS.replace("number = 2", "number = -1")).3, "-1 is out of range 1..=65279");
    let bad = PORTS.replace("\"net_null1\"", "\"eth0\"");
    assert_eq!(err(&bad).2, "bridge[0].port[1].devargs");
    assert_eq!(
        err(&PORTS.replace("net_null1", "net_tap1,iface=a-very-long-name0")).3,
        "interface name `a-very-long-name0` must be 1 to 15 characters long"
    );
    assert_eq!(err(&PORTS.replace("net_null1", "net_1")).2, "bridge[0].port[1].devargs");
    assert_eq!(err(&PORTS.replace("net_null1", "net_tap1,iface")).2, "bridge[0].port[1].devargs");
    let queues = PORTS.replace("number = 2", "number = 2\nrx_queues = 0");
    assert_eq!(err(&queues), (13, 13, "bridge[0].port[1].rx_queues".into(), "0 is out of range 1..=1024".into()));
    assert_eq!(err(&PORTS.replace("\"p2\"", "\"p 2\"")).3, "`p 2` contains ` ` (use letters, digits, `_`, `-`, `.`)");
    // A bridge without ports, and no bridge at all, wait for ports added at run time.
    let no_ports = load("[[bridge]]\nname = \"br0\"\n").unwrap();
    assert_eq!(no_ports.bridges[0].ports, vec![BridgeConfig::internal_port_config("br0")]);
    let no_internal = load("[[bridge]]\nname = \"br0\"\ninternal_port = false\n").unwrap();
    assert!(no_internal.bridges[0].ports.is_empty());
    // The internal port takes the bridge's name as a port name and an interface name.
    let e = err(&format!("{PORTS}\n[[bridge]]\nname = \"p1\"\n"));
    assert_eq!(e.2, "bridge[1].name");
    assert!(e.3.contains("bridge[0].port[0]"), "{}", e.3);
    assert!(load(&format!("{PORTS}\n[[bridge]]\nname = \"p1\"\ninternal_port = false\n")).is_ok());
    assert!(err("[[bridge]]\nname = \"..\"\n").3.contains("interface name"));
    assert!(load("[[bridge]]\nname = \"..\"\ninternal_port = false\n").is_ok());
    assert!(load("[eal]\n").unwrap().bridges.is_empty());
    let mtu = PORTS.replace("number = 2", "number = 2\nmtu = 9000");
    assert_eq!(load(&mtu).unwrap().bridges[0].ports[2].mtu, 9000);
    assert_eq!(load(PORTS).unwrap().bridges[0].ports[2].mtu, crate::DEFAULT_MTU);
    assert_eq!(err(&PORTS.replace("number = 2", "number = 2\nmtu = 67")).3, "67 is out of range 68..=9216");
}

#[test]
fn admin_state_and_rxq_affinity() {
    // Default PMD core: CPU 1.
    let set = |extra: &str| PORTS.replace("number = 2", &format!("number = 2\nrx_queues = 2\n{extra}"));
    let c = load(&set("admin = \"down\"\nrxq_affinity = \"1:1, 0:1\"")).unwrap();
    let p2 = &c.bridges[0].ports[2];
    assert!(p2.admin_down && !c.bridges[0].ports[1].admin_down);
    assert_eq!(p2.rxq_affinity, vec![(0, 1), (1, 1)]);
    assert!(!load(&set("admin = \"up\"")).unwrap().bridges[0].ports[2].admin_down);
    let e = err(&set("admin = \"off\""));
    assert_eq!((e.0, e.2.as_str(), e.3.as_str()), (14, "bridge[0].port[1].admin", "`off`: admin is `up` or `down`"));
    let e = err(&set("rxq_affinity = \"0:0\""));
    assert_eq!(
        (e.2.as_str(), e.3.as_str()),
        ("bridge[0].port[1].rxq_affinity", "CPU 0 runs no PMD thread (PMD cores: [1])")
    );
    assert!(err(&set("rxq_affinity = \"2:1\"")).3.contains("queue 2 does not exist"));
    assert!(err(&set("rxq_affinity = \"0:1,0:1\"")).3.contains("pinned twice"));
}

#[test]
fn bridges() {
    // A second bridge: other port names, numbers 3 and 4, and `devargs` as given.
    let second = |ports: &str| {
        ports
            .replace("\"p", "\"q")
            .replace("br0", "br1")
            .replace("number = 1", "number = 3")
            .replace("number = 2", "number = 4")
    };
    let two = format!("{PORTS}\n{}", second(&PORTS.replace("net_null", "net_ring")));
    let c = load(&two).unwrap();
    assert_eq!(c.bridges.len(), 2);
    assert_eq!(c.bridges[1].ports[2].number, 4);
    let e = err(&two.replace("\"q1\"", "\"p1\""));
    assert_eq!(
        (e.2.as_str(), e.3.as_str()),
        ("bridge[1].port[0].name", "duplicate port name `p1` (also bridge[0].port[0])")
    );
    let e = err(&format!("{PORTS}\n{}", second(PORTS)));
    assert_eq!((e.0, e.2.as_str()), (22, "bridge[1].port[0].devargs"));
    assert_eq!(e.3, "device `net_null0` is already used by bridge[0].port[0] (`p1`)");
    // OpenFlow port numbers are each bridge's own (as in OVS): br1 may have a port 1 too,
    // but not two.
    let c = load(&two.replace("number = 3", "number = 1")).unwrap();
    assert_eq!((c.bridges[0].ports[1].number, c.bridges[1].ports[1].number), (1, 1));
    let e = err(&two.replace("number = 3", "number = 4"));
    assert_eq!(e, (26, 10, "bridge[1].port[1].number".into(), "duplicate port number 4 (also port `q1`)".into()));
    let e = err(&two.replace("\"br1\"", "\"br0\""));
    assert_eq!((e.0, e.1, e.2.as_str(), e.3.as_str()), (17, 8, "bridge[1].name", "duplicate bridge name `br0`"));
}

#[test]
fn pmd_and_eal() {
    let c = load(&format!("[pmd]\ncores = [1, 3]\nidle_backoff_us = 50\nburst = 32\n[eal]\nmain_lcore = 2\nno_pci = false\nhugepages = true\nlog_level = \"pmd.net.tap:critical\"\nextra_args = [\"--x\"]\n{PORTS}")).unwrap();
    assert_eq!(c.pmd.cores, vec![1, 3]);
    assert_eq!(c.eal.main_lcore, 2);
    assert!(!c.eal.no_pci);
    assert_eq!(c.eal_args().last().unwrap(), "--x");
    assert_eq!(c.eal_args()[..6], ["-l", "2", "-m", "512", "--in-memory", "--log-level=pmd.net.tap:critical"]);
    // Validation against the machine.
    let e = c.validate(&SystemFacts { online_cpus: vec![0, 1, 2] }).unwrap_err();
    assert_eq!((e.position, e.key.as_str()), (Some(Position { line: 2, column: 13 }), "pmd.cores[1]"));
    assert_eq!(e.message, "CPU 3 is not online here (online CPUs: [0, 1, 2])");
    let e = c.validate(&SystemFacts { online_cpus: vec![1, 3] }).unwrap_err();
    assert_eq!((e.position, e.key.as_str()), (Some(Position { line: 6, column: 14 }), "eal.main_lcore"));
    c.validate(&SystemFacts { online_cpus: vec![0, 1, 2, 3] }).unwrap();
    let e = load(PORTS).unwrap().validate(&SystemFacts { online_cpus: vec![0] }).unwrap_err();
    assert_eq!((e.position, e.key.as_str()), (None, "pmd.cores"));

    assert_eq!(
        err(&format!("[pmd]\ncores = []\n{PORTS}")),
        (2, 9, "pmd.cores".into(), "needs at least one CPU".into())
    );
    assert_eq!(
        err(&format!("[pmd]\ncores = [1, 2, 1]\n{PORTS}")),
        (2, 16, "pmd.cores[2]".into(), "CPU 1 is listed twice (also pmd.cores[0])".into())
    );
    assert_eq!(err(&format!("[pmd]\ncores = [0]\n{PORTS}")).2, "pmd.cores[0]");
    // Allowed when asked for: two PMDs on a 2-CPU host, one beside the control thread.
    let shared = load(&format!("[pmd]\ncores = [1, 0]\nshare_main_lcore = true\n{PORTS}")).unwrap();
    assert!(shared.pmd.share_main_lcore && shared.pmd.cores == vec![1, 0]);
    shared.validate(&SystemFacts { online_cpus: vec![0, 1] }).unwrap();
    assert_eq!(err(&format!("[eal]\nmain_lcore = 1\n{PORTS}")).2, "eal.main_lcore");
    assert_eq!(
        err(&format!("[pmd]\nburst = 64\n{PORTS}")),
        (2, 9, "pmd.burst".into(), "the burst size is fixed at 32".into())
    );
    assert_eq!(err(&format!("[pmd]\nidle_backoff_us = 2000000\n{PORTS}")).2, "pmd.idle_backoff_us");
    assert_eq!(err(&format!("[eal]\nlog_level = \"loud\"\n{PORTS}")).2, "eal.log_level");
    assert_eq!(err(&format!("[eal]\nmemory_mb = 0\n{PORTS}")).2, "eal.memory_mb");
    assert_eq!(err(&format!("[flow]\nlimit_per_pmd = 0\n{PORTS}")).2, "flow.limit_per_pmd");
    assert_eq!(err(&format!("[flow]\nidle_expiry_ms = 0\n{PORTS}")).2, "flow.idle_expiry_ms");
    assert_eq!(err(&format!("[flow]\nupcall_queue_len = 0\n{PORTS}")).2, "flow.upcall_queue_len");
    assert_eq!(err(&format!("[control]\nsocket = \"\"\n{PORTS}")).2, "control.socket");
    let c = load(&format!("[flow]\nidle_expiry_ms = 1500\n[control]\nsocket = \"run/x.sock\"\n{PORTS}")).unwrap();
    assert_eq!(c.flow.idle_expiry, Duration::from_millis(1500));
    assert_eq!(c.control.socket, PathBuf::from("run/x.sock"));
}

/// PORTS with `extra` added to the bridge table (before its ports).
fn with_bridge(extra: &str) -> String {
    PORTS.replacen("name = \"br0\"\n", &format!("name = \"br0\"\n{extra}\n"), 1)
}

#[test]
fn flows_strings() {
    let c = load(&with_bridge(r#"flows = ["priority=5,in_port=1,actions=output:2", 'tcp,tp_dst=80,actions=drop']"#))
        .unwrap();
    let rules = &c.bridges[0].rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].priority, 5);
    assert_eq!(rules[1].matches.tp_dst, Some(Masked { value: 80, mask: 0xffff }));
    // The column points inside the string, in the TOML file.
    let e = err(&with_bridge("flows = [\n  \"in_port=1,actions=output:2\",\n  \"tp_dst=80,actions=drop\",\n]"));
    assert_eq!(
        e,
        (
            6,
            4,
            "bridge[0].flows[1]".into(),
            "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)".into()
        )
    );
    let e = err(&with_bridge(r#"flows = ["in_port=1,actions=output:x"]"#));
    assert_eq!((e.0, e.1), (4, 36));
    // With an escape inside the string, the position falls back to the opening quote.
    let e = err(&with_bridge(r#"flows = ["in_port=1,\u0061ctions=output:x"]"#));
    assert_eq!((e.0, e.1), (4, 10));
}

#[test]
fn flows_file() {
    let dir = std::env::temp_dir().join(format!("ferrovs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("br0.flows"),
        "# rules\n\npriority=10,in_port=1,actions=output:2\nin_port=2,actions=output:1\n",
    )
    .unwrap();
    std::fs::write(dir.join("bad.flows"), "in_port=1,actions=output:2\n\n  ip,nw_dst=10.0.0.0/40,actions=drop\n")
        .unwrap();
    let text = with_bridge(r#"flows_file = "br0.flows""#);
    std::fs::write(dir.join("ferrovs.toml"), &text).unwrap();
    let c = Config::load(dir.join("ferrovs.toml")).unwrap();
    assert_eq!(c.bridges[0].rules.len(), 2);
    assert_eq!(c.bridges[0].rules[1].actions, vec![Action::Output(1)]);
    let e = Config::from_str(&with_bridge(r#"flows_file = "bad.flows""#), &dir).unwrap_err();
    assert_eq!(e.file, dir.join("bad.flows"));
    assert_eq!(e.position, Some(Position { line: 3, column: 22 }));
    assert_eq!(e.key, "bridge[0].flows_file");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:22: bridge[0].flows_file: invalid `nw_dst`: `40` is not a prefix length (0..=32) or a dotted mask",
            dir.join("bad.flows").display()
        )
    );
    let e = Config::from_str(&with_bridge(r#"flows_file = "missing.flows""#), &dir).unwrap_err();
    assert_eq!((e.position, e.key.as_str()), (Some(Position { line: 4, column: 14 }), "bridge[0].flows_file"));
    assert!(e.message.starts_with("cannot read flows file"), "{}", e.message);
    // Two bridges may not share a flows file (each one's changes are written back to it).
    let two = format!(
        "{}\n[[bridge]]\nname = \"br1\"\ninternal_port = false\nflows_file = \"./br0.flows\"\n",
        with_bridge(r#"flows_file = "br0.flows""#)
    );
    let e = Config::from_str(&two, &dir).unwrap_err();
    assert_eq!(e.key, "bridge[1].flows_file", "{e}");
    assert!(e.message.contains("bridge[0].flows_file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rule_tables() {
    let text = format!(
        "{PORTS}{}",
        r#"
[[bridge.rule]]
table = 1
priority = 200
cookie = 0x10
idle_timeout = 30
in_port = 1
proto = "tcp"
nw_dst = "10.0.0.0/8"
tp_dst = "0x1000/0xf000"
tcp_flags = "+syn-ack"
dl_vlan = 5
actions = ["mod_vlan_vid:20", "set_field:10.0.0.1->ip_dst", "output:2"]

[[bridge.rule]]
arp = 0
actions = "drop"
"#
    );
    let e = err(&text);
    assert_eq!((e.0, e.1, e.2.as_str()), (29, 1, "bridge[0].rule[1].arp"));
    assert_eq!(e.3, "`arp` is a shorthand and takes no value");
    let c = load(&text.replace("arp = 0", "proto = \"arp\"")).unwrap();
    let r = &c.bridges[0].rules[0];
    assert_eq!((r.table, r.priority, r.cookie, r.idle_timeout), (1, 200, 0x10, 30));
    assert_eq!(r.matches.tp_dst, Some(Masked { value: 0x1000, mask: 0xf000 }));
    assert_eq!(r.matches.tcp_flags, Some(Masked { value: 2, mask: 0x12 }));
    assert_eq!(r.matches.vlan_tci, Some(Masked { value: 0x1005, mask: 0x1fff }));
    assert_eq!(
        r.actions,
        vec![Action::ModVlanVid(20), Action::Set(SetField::NwDst(Ipv4Addr::new(10, 0, 0, 1))), Action::Output(2)]
    );
    assert_eq!(c.bridges[0].rules[1].matches.dl_type, Some(0x0806));
    assert!(c.bridges[0].rules[1].actions.is_empty());

    let rule = |body: &str| err(&format!("{PORTS}\n[[bridge.rule]]\n{body}\n"));
    // Line 15 is the `[[bridge.rule]]` header, line 16 its first key.
    assert_eq!(
        rule("tp_dst = 80\nactions = \"drop\""),
        (
            16,
            1,
            "bridge[0].rule[0]".into(),
            "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)".into()
        )
    );
    assert_eq!(
        rule("in_port = 1"),
        (15, 1, "bridge[0].rule[0]".into(), "missing `actions=` (use `actions=drop` to drop)".into())
    );
    assert_eq!(rule("bogus = 1\nactions = \"drop\"").3, "unknown or unsupported field `bogus`");
    assert_eq!(rule("proto = \"tcpp\"\nactions = \"drop\"").2, "bridge[0].rule[0].proto");
    assert_eq!(rule("proto = 6\nactions = \"drop\"").2, "bridge[0].rule[0].proto");
    assert_eq!(
        rule("proto = \"tcp\"\ntp_dst = 65536\nactions = \"drop\""),
        (17, 10, "bridge[0].rule[0].tp_dst".into(), "invalid `tp_dst`: 65536 is out of range (maximum 65535)".into())
    );
    assert_eq!(rule("proto = \"ip\"\nnw_dst = \"10.0.0.0/33\"\nactions = \"drop\"").1, 20);
    assert_eq!(
        rule("actions = [\"output:2\", \"output:x\"]"),
        (
            16,
            32,
            "bridge[0].rule[0].actions".into(),
            "invalid `output`: port `x` is not supported here (expected a port number 1..=65279 or LOCAL)".into()
        )
    );
    assert_eq!(rule("actions = [\"output:2\", \"drop\"]").1, 25);
    assert_eq!(rule("actions = 5").2, "bridge[0].rule[0].actions");
    assert_eq!(
        rule("in_port = [1]\nactions = \"drop\""),
        (16, 12, "bridge[0].rule[0].in_port[0]".into(), "invalid type: integer `1`, expected a string".into())
    );
    assert_eq!(rule("in_port = [\"1\"]\nactions = \"drop\"").2, "bridge[0].rule[0].in_port");
    assert_eq!(rule("in_port = { a = 1 }\nactions = \"drop\"").2, "bridge[0].rule[0].in_port");
    assert_eq!(rule("in_port = true\nactions = \"drop\"").0, 16);
    assert_eq!(rule("in_port = -1\nactions = \"drop\"").1, 11);
}

#[test]
fn rules_may_name_missing_ports_but_not_repeat() {
    // As in OVS: a rule may name a port the bridge does not have (yet); the daemon warns.
    let c = load(&with_bridge(
        r#"flows = ["in_port=3,actions=output:2", "ip,actions=output:1,output:9", "actions=resubmit(7,1)"]"#,
    ))
    .unwrap();
    assert_eq!(crate::dangling_ports(&c.bridges[0].rules, &c.bridges[0].ports), vec![3, 9, 7]);
    load(&with_bridge(r#"flows = ["actions=resubmit(,1)"]"#)).unwrap();
    let e = err(&with_bridge(r#"flows = ["ip,in_port=1,actions=output:2", "in_port=1,ip,actions=drop"]"#));
    assert_eq!((e.0, e.1, e.2.as_str()), (4, 44, "bridge[0].flows[1]"));
    assert_eq!(
        e.3,
        "this rule has the same table, priority and match as the rule at <config>:4:11 (bridge[0].flows[0])"
    );
    // Same match at another priority or table is fine.
    load(&with_bridge(r#"flows = ["ip,actions=output:2", "priority=1,ip,actions=drop", "table=1,ip,actions=drop"]"#))
        .unwrap();
}

/// Every prefix of the example configs is either a config or an error: no panics.
#[test]
fn truncated_configs_never_panic() {
    for name in ["ferrovs.toml", "ferrovs-nic.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name);
        let text = std::fs::read_to_string(path).unwrap();
        for (i, _) in text.char_indices() {
            let _ = Config::from_str(&text[..i], std::env::temp_dir());
        }
    }
}

#[test]
fn metrics_listen_is_an_address_and_port() {
    assert_eq!(load(PORTS).unwrap().metrics.listen, None, "off by default");
    let c = load(&format!("[metrics]\nlisten = \"127.0.0.1:9477\"\n{PORTS}")).unwrap();
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9477".parse().unwrap()));
    let c = load(&format!("[metrics]\nlisten = \"[::1]:9100\"\n{PORTS}")).unwrap();
    assert_eq!(c.metrics.listen.map(|a| a.port()), Some(9100));
    for (bad, word) in [("localhost:9477", "ADDRESS:PORT"), ("127.0.0.1", "ADDRESS:PORT"), ("127.0.0.1:0", "port 0")] {
        let (line, col, key, msg) = err(&format!("[metrics]\nlisten = \"{bad}\"\n{PORTS}"));
        assert_eq!((line, col, key.as_str()), (2, 10, "metrics.listen"), "{bad}");
        assert!(msg.contains(word), "{bad}: {msg}");
    }
    let (line, _, key, _) = err(&format!("[metrics]\nport = 9477\n{PORTS}"));
    assert_eq!((line, key.as_str()), (2, "metrics.port"));
}

#[test]
fn file_prefix_reaches_the_eal_arguments() {
    let c = load(PORTS).unwrap();
    assert_eq!(c.eal.file_prefix, None);
    assert!(!c.eal_args().iter().any(|a| a.starts_with("--file-prefix")), "none by default");
    let c = load(&format!("[eal]\nfile_prefix = \"fvs-test.1\"\n{PORTS}")).unwrap();
    assert_eq!(c.eal_args().iter().filter(|a| *a == "--file-prefix=fvs-test.1").count(), 1);
    for bad in ["", "a/b", ".hidden", "sp ace", &"x".repeat(65)] {
        let (line, col, key, _) = err(&format!("[eal]\nfile_prefix = \"{bad}\"\n{PORTS}"));
        assert_eq!((line, col, key.as_str()), (2, 15, "eal.file_prefix"), "{bad:?}");
    }
}

#[test]
fn capture_keeps_hugepage_files_for_the_capture_tools() {
    let eal = |keys: &str| format!("[eal]\nhugepages = true\nfile_prefix = \"fvs1\"\n{keys}\n{PORTS}");
    // Without capture: private memory, as before.
    let c = load(&eal("")).unwrap();
    assert!(!c.eal.capture);
    assert_eq!(c.eal_args().iter().filter(|a| *a == "--in-memory").count(), 1);
    // With capture: file-backed pages and a shared runtime directory.
    let c = load(&eal("capture = true\nhuge_dir = \"/mnt/fvs huge\"")).unwrap();
    assert!(c.eal.capture);
    assert_eq!(c.eal.huge_dir.as_deref(), Some(Path::new("/mnt/fvs huge")));
    let args = c.eal_args();
    for private in ["--in-memory", "--no-shconf", "--no-huge"] {
        assert!(!args.iter().any(|a| a == private), "{private} in {args:?}");
    }
    for want in ["--file-prefix=fvs1", "--huge-dir=/mnt/fvs huge"] {
        assert_eq!(args.iter().filter(|a| *a == want).count(), 1, "{want} in {args:?}");
    }
    // capture = false is the default, written out.
    assert!(load(&eal("capture = false")).unwrap().eal_args().iter().any(|a| a == "--in-memory"));
}

#[test]
fn capture_refuses_what_cannot_work() {
    let at_capture = |text: &str, word: &str| {
        let (line, col, key, msg) = err(text);
        assert_eq!(key, "eal.capture", "{text}: {msg}");
        assert_eq!((line, col), (2, 11), "{text}");
        assert!(msg.contains(word), "{text}: {msg}");
    };
    at_capture(&format!("[eal]\ncapture = true\nfile_prefix = \"p\"\n{PORTS}"), "hugepages = true");
    at_capture(&format!("[eal]\ncapture = true\nhugepages = false\nfile_prefix = \"p\"\n{PORTS}"), "--no-huge");
    at_capture(&format!("[eal]\ncapture = true\nhugepages = true\n{PORTS}"), "file_prefix");
    for extra in ["--in-memory", "--no-shconf", "--no-huge"] {
        at_capture(
            &format!(
                "[eal]\ncapture = true\nhugepages = true\nfile_prefix = \"p\"\nextra_args = [\"{extra}\"]\n{PORTS}"
            ),
            extra,
        );
    }
}

#[test]
fn huge_dir_needs_hugepages_and_an_absolute_path() {
    let (line, col, key, msg) = err(&format!("[eal]\nhuge_dir = \"/mnt/h\"\n{PORTS}"));
    assert_eq!((line, col, key.as_str()), (2, 12, "eal.huge_dir"));
    assert!(msg.contains("hugepages = true"), "{msg}");
    let (_, _, key, msg) = err(&format!("[eal]\nhugepages = true\nhuge_dir = \"mnt/h\"\n{PORTS}"));
    assert_eq!(key, "eal.huge_dir");
    assert!(msg.contains("absolute"), "{msg}");
    let c = load(&format!("[eal]\nhugepages = true\nhuge_dir = \"/mnt/h\"\n{PORTS}")).unwrap();
    let args = c.eal_args();
    assert!(args.contains(&"--in-memory".to_string()) && args.contains(&"--huge-dir=/mnt/h".to_string()), "{args:?}");
}

#[test]
fn a_bridge_reads_its_rules_in_its_protocols_version_as_ovs_ofctl() {
    let with = |protocols: &str, flow: &str| {
        let head = if protocols.is_empty() { String::new() } else { format!("protocols = \"{protocols}\"\n") };
        let text = PORTS.replacen("name = \"br0\"\n", &format!("name = \"br0\"\n{head}flows = [\"{flow}\"]\n"), 1);
        load(&text)
    };
    let actions =
        |protocols: &str, flow: &str| with(protocols, flow).unwrap().bridge("br0").unwrap().rules[0].actions.clone();
    // OpenFlow 1.0 (the default): "set the VID, pushing a tag if there is none".
    assert_eq!(actions("", "actions=mod_vlan_vid:5,output:2"), vec![Action::ModVlanVid(5), Action::Output(2)]);
    assert_eq!(actions("OpenFlow10", "actions=mod_vlan_pcp:3"), vec![Action::ModVlanPcp(3)]);
    // OpenFlow 1.3: an unconditional push and a set-field, unless the match requires a tag.
    assert_eq!(
        actions("OpenFlow13", "actions=mod_vlan_vid:5,output:2"),
        vec![Action::PushVlan(0x8100), Action::Set(SetField::VlanVid(5)), Action::Output(2)]
    );
    assert_eq!(actions("openflow13", "dl_vlan=3,actions=mod_vlan_pcp:3"), vec![Action::Set(SetField::VlanPcp(3))]);
    // What ovs-ofctl refuses for the version is refused, saying why.
    let e = with("", "actions=push_vlan:0x8100").unwrap_err();
    assert_eq!(e.key, "bridge[0].flows[0]");
    assert!(e.message.contains("push_vlan needs OpenFlow 1.1"), "{}", e.message);
    let e = with("OpenFlow13", "actions=strip_vlan").unwrap_err();
    assert!(e.message.contains("needs a VLAN tag"), "{}", e.message);
    let e = with("OpenFlow15", "actions=drop").unwrap_err();
    assert_eq!((e.key.as_str(), e.message.contains("OpenFlow10 or OpenFlow13")), ("bridge[0].protocols", true));
    // A list, as OVS's `protocols` and ovs-ofctl's `-O` take it: its highest version.
    assert_eq!(
        actions("OpenFlow10, OpenFlow13", "actions=mod_vlan_vid:5"),
        vec![Action::PushVlan(0x8100), Action::Set(SetField::VlanVid(5))]
    );
    assert_eq!(actions("OpenFlow10,OpenFlow12", "actions=mod_vlan_vid:5"), vec![Action::ModVlanVid(5)]);
    let e = with("OpenFlow10,OpenFlow99", "actions=drop").unwrap_err();
    assert!(e.message.contains("OpenFlow99"), "{}", e.message);
}

#[test]
fn groups_load_and_rules_name_only_defined_groups() {
    let ok = String::from(
        "[[bridge]]\nname = \"br0\"\nprotocols = \"OpenFlow13\"\ngroups = [\"group_id=1,type=all,bucket=output:1,bucket=output:2\"]\n\
         flows = [\"in_port=1,actions=group:1\"]\n",
    );
    let c = load(&ok).unwrap_or_else(|e| panic!("{e}"));
    let br = c.bridge("br0").unwrap();
    assert_eq!(br.groups.len(), 1);
    assert_eq!(br.rules[0].actions, vec![Action::Group(1)]);
    // A rule naming a group the bridge lacks is refused, at the rule.
    let (line, col, key, msg) = err(&ok.replace("group:1", "group:2"));
    assert_eq!((key.as_str(), msg.contains("group 2 does not exist")), ("bridge[0].flows[0]", true), "{msg}");
    assert!(line > 1 && col > 1);
    // A bad group: where it is, and why.
    let (_, col, key, msg) = err(&ok.replace("type=all", "type=select"));
    assert_eq!((key.as_str(), msg.contains("not supported")), ("bridge[0].groups[0]", true), "{msg}");
    assert!(col > 10, "{col}");
    let twice = ok.replace("bucket=output:2\"]", "bucket=output:2\", \"group_id=1,type=all\"]");
    assert!(err(&twice).3.contains("defined twice"));
}
