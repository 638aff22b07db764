//! Random rule sets in ovs-ofctl syntax over the match fields and actions ferrovs
//! supports: up to three tables, random priorities, matches with their prerequisites
//! (and, rarely, without them or with fields ferrovs refuses, to record what it refuses
//! that OVS accepts), and action lists mixing rewrites, VLAN edits, `dec_ttl`, forward
//! `resubmit`/`goto_table`, and the outputs (`output`, `in_port`, `flood`, `all`,
//! `normal`, `drop`); in some sets registers and metadata (`with_pipeline`), and
//! `load`/`move`/`set_field` on the packet fields and `output:FIELD`
//! (`with_field_writes`), and MPLS matches and writes (`with_mpls`).

use crate::pools;
use crate::rng::Rng;

/// Ports of the bridge on both switches: OpenFlow numbers 1..=N_PORTS.
pub const N_PORTS: u32 = 4;

/// A rule set and the input port of its run.
pub struct RuleSet {
    pub rules: Vec<String>,
    pub in_port: u32,
    /// Uses `goto_table` or `push_vlan`: must be added to OVS as OpenFlow 1.3.
    pub openflow13: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Any,
    Ip,
    Ipv6,
    Arp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Tcp6,
    Udp6,
    Icmp6,
}

impl Class {
    fn word(self) -> &'static str {
        match self {
            Class::Any => "",
            Class::Ip => "ip",
            Class::Ipv6 => "ipv6",
            Class::Arp => "arp",
            Class::Tcp => "tcp",
            Class::Udp => "udp",
            Class::Sctp => "sctp",
            Class::Icmp => "icmp",
            Class::Tcp6 => "tcp6",
            Class::Udp6 => "udp6",
            Class::Icmp6 => "icmp6",
        }
    }
    fn v4(self) -> bool {
        matches!(self, Class::Ip | Class::Tcp | Class::Udp | Class::Sctp | Class::Icmp)
    }
    fn v6(self) -> bool {
        matches!(self, Class::Ipv6 | Class::Tcp6 | Class::Udp6 | Class::Icmp6)
    }
    fn ports(self) -> bool {
        matches!(self, Class::Tcp | Class::Udp | Class::Sctp | Class::Tcp6 | Class::Udp6)
    }
}

fn mac(rng: &mut Rng) -> String {
    pools::fmt_mac(*rng.pick(pools::MACS))
}

fn ipv4_prefix(rng: &mut Rng) -> String {
    let a = *rng.pick(pools::IPV4);
    match rng.below(4) {
        0 => pools::fmt_ipv4(a),
        1 => format!("{}/24", pools::fmt_ipv4([a[0], a[1], a[2], 0])),
        2 => format!("{}/16", pools::fmt_ipv4([a[0], a[1], 0, 0])),
        _ => format!("{}/8", pools::fmt_ipv4([a[0], 0, 0, 0])),
    }
}

fn tp(rng: &mut Rng) -> String {
    let p = *rng.pick(pools::PORTS);
    if rng.chance(25) { format!("{:#x}/0xff00", p & 0xff00) } else { p.to_string() }
}

/// The match part of a rule (without `table`/`priority`), possibly empty.
fn match_fields(rng: &mut Rng, in_port: u32, class: Class) -> Vec<String> {
    let mut m = Vec::new();
    if !class.word().is_empty() {
        m.push(class.word().to_string());
    }
    if rng.chance(40) {
        let p = if rng.chance(80) { in_port } else { rng.range(1, N_PORTS as u64) as u32 };
        m.push(format!("in_port={p}"));
    }
    if rng.chance(20) {
        let key = *rng.pick(&["dl_src", "dl_dst"]);
        if rng.chance(30) {
            m.push(format!("{key}=01:00:00:00:00:00/01:00:00:00:00:00"));
        } else {
            m.push(format!("{key}={}", mac(rng)));
        }
    }
    if rng.chance(20) {
        let v = *rng.pick(&[0xffffu16, 0, 10, 20, 4095]);
        m.push(format!("dl_vlan={v}"));
        if v != 0xffff && rng.chance(30) {
            m.push(format!("dl_vlan_pcp={}", rng.below(8)));
        }
    }
    if class == Class::Any && rng.chance(10) {
        m.push(format!("dl_type={}", rng.pick(&["0x0800", "0x86dd", "0x0806", "0x88cc"])));
    }
    if class.v4() || class == Class::Arp {
        if rng.chance(40) {
            m.push(format!("nw_src={}", ipv4_prefix(rng)));
        }
        if rng.chance(40) {
            m.push(format!("nw_dst={}", ipv4_prefix(rng)));
        }
    }
    if class == Class::Arp && rng.chance(30) {
        m.push(format!("arp_op={}", rng.range(1, 2)));
    }
    if class.v6() && rng.chance(40) {
        let i = rng.below(pools::IPV6.len() as u64) as usize;
        let key = *rng.pick(&["ipv6_src", "ipv6_dst"]);
        m.push(format!("{key}={}{}", pools::fmt_ipv6(i), if rng.chance(30) { "/64" } else { "" }));
    }
    if class.v4() || class.v6() {
        if matches!(class, Class::Ip | Class::Ipv6) && rng.chance(25) {
            m.push(format!("nw_proto={}", rng.pick(&[6u8, 17, 1, 58, 0, 132])));
        }
        match rng.below(10) {
            0 => m.push(format!("nw_tos={}", rng.pick(&[0u8, 0xb8, 0x10]))),
            1 => m.push(format!("ip_dscp={}", rng.pick(&[0u8, 46, 4]))),
            2 => m.push(format!("nw_ttl={}", rng.pick(&[0u8, 1, 64]))),
            3 => m.push(format!("nw_frag={}", rng.pick(&["no", "yes", "first", "later", "not_later"]))),
            _ => {}
        }
    }
    if class.ports() {
        if rng.chance(40) {
            m.push(format!("tp_dst={}", tp(rng)));
        }
        if rng.chance(30) {
            m.push(format!("tp_src={}", tp(rng)));
        }
    }
    if class == Class::Icmp && rng.chance(30) {
        m.push(format!("icmp_type={}", rng.pick(&[0u8, 8, 3])));
    }
    if class == Class::Icmp6 && rng.chance(60) {
        let ty = *rng.pick(&[128u8, 129, 135, 136, 135, 136]);
        m.push(format!("icmpv6_type={ty}"));
        // Neighbour discovery (not in ferrovs's flow key: the slow path decides).
        if matches!(ty, 135 | 136) && rng.chance(80) {
            if rng.chance(30) {
                m.push("icmp_code=0".to_string());
            }
            if rng.chance(70) {
                let i = rng.below(pools::IPV6.len() as u64) as usize;
                let mask = *rng.pick(&["", "", "/64", "/::ffff"]);
                m.push(format!("nd_target={}{mask}", pools::fmt_ipv6(i)));
            }
            if rng.chance(50) {
                let key = if ty == 135 { "nd_sll" } else { "nd_tll" };
                let mask = if rng.chance(25) { "/ff:ff:ff:00:00:00" } else { "" };
                m.push(format!("{key}={}{mask}", mac(rng)));
            }
        }
    }
    if class.v6() && rng.chance(20) {
        let l = *rng.pick(pools::LABELS);
        match rng.below(3) {
            0 => m.push(format!("ipv6_label={:#07x}/0xf0000", l & 0xf0000)),
            _ => m.push(format!("ipv6_label={l:#x}")),
        }
    }
    // Rarely: forms OVS accepts and ferrovs refuses or treats differently, to keep the
    // list of refusals current.
    if rng.chance(4) {
        m.push(
            rng.pick(&[
                "tp_dst=80",
                "icmp_type=3",
                "nw_src=10.0.0.1",
                "rarp",
                "ipv6_label=0x12345",
                "nd_target=fd00::1",
                "nw_proto=6",
            ])
            .to_string(),
        );
    }
    m
}

/// Actions of a rule in `table` (resubmit/goto only forward, so no loops).
fn actions(rng: &mut Rng, table: u32, n_tables: u32, in_port: u32, class: Class, vlan_matched: bool) -> (String, bool) {
    if rng.chance(8) {
        return ("drop".to_string(), false);
    }
    let mut a = Vec::new();
    let mut of13 = false;
    for _ in 0..rng.below(4) {
        let act = match rng.below(22) {
            0 => format!("mod_dl_src:{}", mac(rng)),
            1 => format!("mod_dl_dst:{}", mac(rng)),
            2 => format!("mod_nw_src:{}", pools::fmt_ipv4(*rng.pick(pools::IPV4))),
            3 => format!("mod_nw_dst:{}", pools::fmt_ipv4(*rng.pick(pools::IPV4))),
            4 => format!("mod_tp_src:{}", rng.pick(pools::PORTS)),
            5 => format!("mod_tp_dst:{}", rng.pick(pools::PORTS)),
            6 => format!("mod_vlan_vid:{}", rng.pick(&[10u16, 20, 0, 4095])),
            7 => format!("mod_vlan_pcp:{}", rng.below(8)),
            8 | 9 => "strip_vlan".to_string(),
            10 => {
                of13 = true;
                "push_vlan:0x8100".to_string()
            }
            11 | 12 => "dec_ttl".to_string(),
            13 => format!("mod_nw_tos:{}", rng.pick(&[0u8, 0x10, 0xb8])),
            14 => format!("mod_nw_ttl:{}", rng.pick(&[1u8, 9, 0])),
            15 => format!("set_field:{}->eth_dst", mac(rng)),
            16 if class.v4() => format!("set_field:{}->ip_dst", pools::fmt_ipv4(*rng.pick(pools::IPV4))),
            17 if vlan_matched => format!("set_field:{}->vlan_vid", 4096 + rng.pick(&[10u16, 20])),
            18 if class.ports() && class.v4() => {
                let f = match class {
                    Class::Tcp => "tcp_dst",
                    Class::Udp => "udp_dst",
                    _ => "sctp_dst",
                };
                format!("set_field:{}->{f}", rng.pick(pools::PORTS))
            }
            19 if class.v6() => format!("set_field:{}->ipv6_dst", pools::fmt_ipv6(0)),
            20 if class.v6() => format!("set_field:{:#x}->ipv6_label", rng.pick(pools::LABELS)),
            _ => format!("output:{}", rng.range(1, N_PORTS as u64)),
        };
        a.push(act);
    }
    // How the rule ends: an output of some kind, a forward resubmit, or a goto_table.
    let later = table + 1 < n_tables;
    match rng.below(12) {
        0 | 1 if later => a.push(format!("resubmit(,{})", rng.range(table as u64 + 1, n_tables as u64 - 1))),
        2 if later => {
            of13 = true;
            a.push(format!("goto_table:{}", rng.range(table as u64 + 1, n_tables as u64 - 1)));
        }
        3 => a.push("normal".to_string()),
        4 => a.push("flood".to_string()),
        5 => a.push("all".to_string()),
        6 => a.push("in_port".to_string()),
        7 => a.push(format!("output:{in_port}")),
        _ => a.push(format!("output:{}", rng.range(1, N_PORTS as u64))),
    }
    if rng.chance(15) {
        a.push(format!("output:{}", rng.range(1, N_PORTS as u64)));
        if a.iter().any(|x| x.starts_with("goto_table")) {
            a.pop();
        }
    }
    (a.join(","), of13)
}

pub fn rule_set(rng: &mut Rng) -> RuleSet {
    let in_port = rng.range(1, N_PORTS as u64) as u32;
    let n_tables = *rng.pick(&[1u32, 1, 2, 3]);
    let mut rules = Vec::new();
    let mut openflow13 = false;
    let mut used: Vec<(u32, u32)> = Vec::new();
    for table in 0..n_tables {
        let n = if table == 0 { rng.range(1, 8) } else { rng.range(1, 4) };
        for _ in 0..n {
            let class = *rng.pick(&[
                Class::Any,
                Class::Any,
                Class::Ip,
                Class::Ipv6,
                Class::Arp,
                Class::Tcp,
                Class::Udp,
                Class::Sctp,
                Class::Icmp,
                Class::Tcp6,
                Class::Udp6,
                Class::Icmp6,
            ]);
            let fields = match_fields(rng, in_port, class);
            let vlan_matched = fields.iter().any(|f| f.starts_with("dl_vlan=") && f != "dl_vlan=65535");
            let (acts, of13) = actions(rng, table, n_tables, in_port, class, vlan_matched);
            openflow13 |= of13;
            let mut head = Vec::new();
            if table > 0 {
                head.push(format!("table={table}"));
            }
            // Overlapping rules of equal priority have no defined order in OpenFlow (OVS
            // and ferrovs may pick either), so every rule of a table gets its own.
            let mut priority = if rng.chance(80) { *rng.pick(&[0u32, 1, 100, 200, 32768, 65535]) } else { 32768 };
            while used.contains(&(table, priority)) {
                priority = rng.range(2, 65534) as u32;
            }
            used.push((table, priority));
            if priority != 32768 || rng.chance(50) {
                head.push(format!("priority={priority}"));
            }
            head.extend(fields);
            head.push(format!("actions={acts}"));
            rules.push(head.join(","));
        }
    }
    // Sets that OpenFlow 1.0 expresses are loaded as OpenFlow 1.3 in a quarter of the
    // cases too: the versions encode `mod_vlan_*`, `mod_nw_*`... differently (drawn last,
    // so the rules of a seed stay what they were).
    openflow13 |= rng.chance(25);
    with_pipeline(&mut rules);
    with_field_writes(&mut rules);
    with_mpls(&mut rules);
    if openflow13 {
        with_action_set(&mut rules);
    }
    RuleSet { rules, in_port, openflow13 }
}

/// In about half of the OpenFlow 1.3 sets, the action set: `clear_actions` and
/// `write_actions(...)` (outputs, `normal`, `flood`, `in_port`, a forward `resubmit`,
/// `dec_ttl`, tag pushes, pops and VID writes, MAC writes), before `write_metadata` and
/// `goto_table`. Drawn from a generator seeded by the rules' text, as [`with_pipeline`].
fn with_action_set(rules: &mut [String]) {
    let table_of =
        |r: &str| r.strip_prefix("table=").and_then(|t| t.split(',').next()?.parse::<u64>().ok()).unwrap_or(0);
    let n_tables = rules.iter().map(|r| table_of(r)).max().unwrap_or(0) + 1;
    let mut rng = rng_of_text(rules, 0x9e37_79b9_7f4a_7c15u64);
    if !rng.chance(50) {
        return;
    }
    for rule in rules.iter_mut() {
        if !rng.chance(60) {
            continue;
        }
        let table = table_of(rule);
        let at = rule.find("actions=").expect("every rule has actions");
        let (head, acts) = rule.split_at(at);
        let mut acts: Vec<String> = acts["actions=".len()..].split(',').map(str::to_string).collect();
        if acts == ["drop"] {
            acts.clear();
        }
        let mut set = Vec::new();
        for _ in 0..rng.range(1, 4) {
            set.push(match rng.below(12) {
                0 => "dec_ttl".to_string(),
                1 => format!("mod_dl_src:{}", mac(&mut rng)),
                2 => "push_vlan:0x8100".to_string(),
                3 => "strip_vlan".to_string(),
                4 => format!("mod_vlan_vid:{}", rng.pick(&[10u16, 20])),
                5 => "normal".to_string(),
                6 => "flood".to_string(),
                7 => "in_port".to_string(),
                8 if table + 1 < n_tables => format!("resubmit(,{})", rng.range(table + 1, n_tables - 1)),
                _ => format!("output:{}", rng.range(1, N_PORTS as u64)),
            });
        }
        // Instructions: after the actions, before write_metadata and goto_table.
        let at = acts.iter().position(|a| a.starts_with("write_metadata") || a.starts_with("goto_table"));
        let at = at.unwrap_or(acts.len());
        acts.insert(at, format!("write_actions({})", set.join(",")));
        if rng.chance(30) {
            acts.insert(at, "clear_actions".to_string());
        }
        *rule = format!("{head}actions={}", acts.join(","));
    }
}

/// A generator seeded by the rules' text (FNV-1a from `basis`): what it draws leaves the
/// main generator's draws as they were.
fn rng_of_text(rules: &[String], basis: u64) -> Rng {
    Rng::new(rules.iter().flat_map(|r| r.bytes()).fold(basis, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)))
}

/// In about a third of the sets, registers and metadata: matches on them (zero when the
/// frame enters, so table 0 sees zeros) and actions that set them (`load`, `set_field`,
/// `move` from the input port or a MAC, `write_metadata`) or copy them into a MAC; and
/// `note` and `clone`. Drawn
/// from a generator seeded by the rules' text, so that the main generator (rules and
/// frames of a seed) draws what it drew before.
fn with_pipeline(rules: &mut [String]) {
    let mut rng = rng_of_text(rules, 0xcbf2_9ce4_8422_2325u64);
    if !rng.chance(35) {
        return;
    }
    for rule in rules.iter_mut() {
        let at = rule.find("actions=").expect("every rule has actions");
        let (head, acts) = rule.split_at(at);
        let mut head = head.to_string();
        let mut acts: Vec<String> = acts["actions=".len()..].split(',').map(str::to_string).collect();
        if rng.chance(35) {
            let k = rng.below(3);
            head.push_str(&match rng.below(4) {
                0 | 1 => format!("reg0={k},"),
                2 => "reg1=0x1/0x1,".to_string(),
                _ => format!("metadata={k},"),
            });
        }
        if acts != ["drop"] {
            for _ in 0..rng.below(3) {
                let k = rng.below(3);
                let a = match rng.below(9) {
                    0 => format!("load:{k}->NXM_NX_REG0[]"),
                    1 => format!("set_field:{k}->reg1"),
                    2 => format!("load:{k}->OXM_OF_METADATA[0..7]"),
                    3 => "move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]".to_string(),
                    4 => "move:NXM_OF_ETH_SRC[0..1]->NXM_NX_REG1[0..1]".to_string(),
                    5 => "move:NXM_NX_REG0[0..7]->NXM_OF_ETH_DST[0..7]".to_string(),
                    6 => "note:01.02".to_string(),
                    // reg0's low bits through the 64-bit view (xreg0 = reg0:reg1).
                    7 => format!("load:{k}->OXM_OF_PKT_REG0[32..33]"),
                    _ => format!(
                        "clone(load:{k}->NXM_NX_REG0[],mod_dl_dst:{},output:{})",
                        mac(&mut rng),
                        rng.range(1, N_PORTS as u64)
                    ),
                };
                acts.insert(0, a);
            }
            if rng.chance(20) {
                // An instruction: after the actions, before goto_table.
                let at = acts.iter().position(|a| a.starts_with("goto_table")).unwrap_or(acts.len());
                acts.insert(at, format!("write_metadata:{}/0xff", rng.below(3)));
            }
        }
        *rule = format!("{head}actions={}", acts.join(","));
    }
}

/// In about a fifth of the sets, some rules that match no protocol become MPLS rules
/// (`mpls`, `mplsm`, the parts of the first label stack entry), most with writes and reads
/// of those parts first in their actions. Drawn from a generator of its own, as
/// [`with_field_writes`].
fn with_mpls(rules: &mut [String]) {
    let mut rng = rng_of_text(rules, 0x3c6e_f372_fe94_f82b);
    if !rng.chance(20) {
        return;
    }
    for rule in rules.iter_mut() {
        let at = rule.find("actions=").expect("every rule has actions");
        let (head, acts) = rule.split_at(at);
        let acts = &acts["actions=".len()..];
        let words: Vec<&str> = head.split(',').map(|w| w.split('=').next().unwrap_or("")).collect();
        let protocol = ["ip", "ipv6", "arp", "tcp", "udp", "sctp", "icmp", "tcp6", "udp6", "sctp6", "icmp6", "dl_type"];
        if words.iter().any(|w| protocol.contains(w)) || !rng.chance(40) {
            continue;
        }
        let mut m = vec![if rng.chance(85) { "mpls" } else { "mplsm" }.to_string()];
        if rng.chance(50) {
            m.push(format!("mpls_label={}", rng.pick(&[16u32, 17, 1000])));
        }
        if rng.chance(20) {
            m.push(format!("mpls_tc={}", rng.below(8)));
        }
        if rng.chance(20) {
            m.push(format!("mpls_bos={}", rng.below(2)));
        }
        if rng.chance(20) {
            m.push(format!("mpls_ttl={}", rng.pick(&[0u32, 1, 64])));
        }
        let mut writes = Vec::new();
        if acts != "drop" {
            for _ in 0..rng.below(3) {
                writes.push(match rng.below(6) {
                    0 => format!("set_field:{}->mpls_label", rng.pick(&[16u32, 17, 1000])),
                    1 => format!("load:{}->NXM_NX_MPLS_TTL[]", rng.pick(&[0u32, 1, 63, 255])),
                    2 => "move:OXM_OF_MPLS_TC[]->NXM_OF_ETH_DST[0..2]".to_string(),
                    3 => format!("load:{}->OXM_OF_MPLS_TC[]", rng.below(8)),
                    4 => "load:0x5->OXM_OF_MPLS_LABEL[0..3],move:OXM_OF_MPLS_BOS[]->NXM_OF_ETH_SRC[0]".to_string(),
                    _ => "move:OXM_OF_MPLS_LABEL[]->NXM_OF_ETH_SRC[0..19]".to_string(),
                });
            }
        }
        writes.push(acts.to_string());
        *rule = format!("{}{}actions={}", head, m.join(",") + ",", writes.join(","));
    }
}

/// In about 40% of the sets, `load`/`move`/`set_field` on the packet fields (in_port and
/// its OXM form, vlan_tci, vlan_vid/pcp, the TOS byte's parts, TTL, fragment bits, ports,
/// TCP flags, ICMP type and code, ARP fields as sources, the IPv6 flow label, the
/// neighbour-discovery fields of an NS/NA rule) as the rule's match allows, values copied
/// into the Ethernet addresses so that reads show in the output frame, `output:FIELD` to a
/// port loaded before, and `output(port=P,max_len=N)`. Drawn from a generator of its own,
/// seeded by the rules' text, so the sets drawn before stay what they were. Rules on
/// neighbour solicitations and advertisements get them in the other sets too, mostly the
/// ND fields' own.
fn with_field_writes(rules: &mut [String]) {
    let mut rng = rng_of_text(rules, 0x6c62_272e_07bb_0142);
    let write_set = rng.chance(40);
    for rule in rules.iter_mut() {
        let at = rule.find("actions=").expect("every rule has actions");
        let (head, acts) = rule.split_at(at);
        let acts = &acts["actions=".len()..];
        let words: Vec<&str> = head.split(',').collect();
        let nd_type = words.iter().find_map(|w| w.strip_prefix("icmpv6_type=")).filter(|t| matches!(*t, "135" | "136"));
        if (!write_set && nd_type.is_none()) || acts == "drop" || !rng.chance(60) {
            continue;
        }
        let has = |w: &[&str]| words.iter().any(|x| w.contains(x));
        let ip = has(&["ip", "tcp", "udp", "sctp", "icmp", "ipv6", "tcp6", "udp6", "sctp6", "icmp6"]);
        let tagged = words.iter().any(|x| x.starts_with("dl_vlan=") && *x != "dl_vlan=0xffff");
        let mut pool: Vec<String> = vec![
            format!("load:{}->NXM_OF_IN_PORT[]", rng.range(1, N_PORTS as u64)),
            "move:NXM_NX_REG0[0..15]->NXM_OF_IN_PORT[]".to_string(),
            format!("load:{:#x}->NXM_OF_VLAN_TCI[]", rng.pick(&[0u16, 0x100a, 0x3014, 0x0005])),
            format!("load:{}->NXM_OF_VLAN_TCI[0..11]", rng.pick(&[0u16, 10, 20])),
            "move:NXM_OF_VLAN_TCI[]->NXM_OF_ETH_DST[0..15]".to_string(),
            "move:NXM_NX_REG0[0..11]->OXM_OF_VLAN_VID[]".to_string(),
            "move:OXM_OF_VLAN_VID[]->NXM_OF_ETH_SRC[0..11]".to_string(),
            format!("load:{}->NXM_NX_REG2[0..15],output:NXM_NX_REG2[0..15]", rng.range(1, N_PORTS as u64)),
            "output:NXM_OF_IN_PORT[]".to_string(),
            format!("load:{}->OXM_OF_IN_PORT[]", rng.pick(&[2u32, 0xffff_0000])),
            "move:OXM_OF_IN_PORT[]->NXM_OF_ETH_DST[0..31]".to_string(),
            format!(
                "output(port={},max_len={})",
                rng.range(1, N_PORTS as u64),
                rng.pick(&[14u32, 34, 60, 64, 100, 1500])
            ),
            format!(
                "load:{:#x}->NXM_NX_REG3[16..31],output:NXM_NX_REG3[16..31]",
                rng.pick(&[0xfff8u32, 0xfffa, 0xfffb])
            ),
        ];
        if tagged {
            pool.push(format!("load:{}->OXM_OF_VLAN_PCP[]", rng.below(8)));
            pool.push(format!("load:{}->OXM_OF_VLAN_VID[]", rng.pick(&[10u16, 20, 0])));
            pool.push("move:OXM_OF_VLAN_PCP[]->NXM_OF_ETH_DST[0..2]".to_string());
        }
        if ip {
            pool.push(format!("load:{:#x}->NXM_OF_IP_TOS[]", rng.pick(&[0u8, 0xb8, 0x13])));
            pool.push(format!("load:{}->OXM_OF_IP_DSCP[]", rng.pick(&[0u8, 46, 10])));
            pool.push(format!("load:{}->NXM_NX_IP_ECN[]", rng.below(4)));
            pool.push("load:1->NXM_OF_IP_TOS[2..3]".to_string());
            pool.push("move:NXM_OF_IP_TOS[]->NXM_OF_ETH_DST[0..7]".to_string());
            pool.push("move:NXM_NX_IP_ECN[]->OXM_OF_IP_DSCP[0..1]".to_string());
            pool.push("move:NXM_NX_IP_FRAG[]->NXM_OF_ETH_SRC[0..1]".to_string());
            pool.push("move:NXM_NX_IP_TTL[0..5]->OXM_OF_IP_DSCP[]".to_string());
            pool.push(format!("load:{}->NXM_NX_IP_TTL[0..3]", rng.below(16)));
        }
        if has(&["tcp", "tcp6"]) {
            pool.push("move:NXM_NX_TCP_FLAGS[]->NXM_OF_ETH_DST[0..11]".to_string());
            pool.push("move:OXM_OF_TCP_SRC[]->OXM_OF_TCP_DST[]".to_string());
        }
        if has(&["udp", "udp6"]) {
            pool.push(format!("load:{}->OXM_OF_UDP_DST[0..7]", rng.below(256)));
        }
        if has(&["sctp", "sctp6"]) {
            pool.push("move:OXM_OF_SCTP_SRC[]->OXM_OF_SCTP_DST[]".to_string());
        }
        if has(&["icmp"]) {
            pool.push(format!("load:{}->NXM_OF_ICMP_TYPE[]", rng.pick(&[0u8, 3, 8])));
            pool.push("move:NXM_OF_ICMP_CODE[]->NXM_OF_ICMP_TYPE[]".to_string());
            pool.push(format!("set_field:{}->icmp_code", rng.below(16)));
        }
        if has(&["icmp6"]) {
            pool.push(format!("load:{}->NXM_NX_ICMPV6_TYPE[]", rng.pick(&[128u8, 129, 1])));
            pool.push(format!("set_field:{}->icmpv6_code", rng.below(4)));
            pool.push("move:NXM_NX_ICMPV6_TYPE[]->NXM_OF_ETH_DST[0..7]".to_string());
        }
        // Neighbour discovery: writes of the five fields (whole, or some bits of the
        // target and addresses), reads into the Ethernet addresses. Not partial writes of
        // nd_reserved/nd_options_type nor reads of nd_options_type: OVS 3.1 gets those
        // wrong (known_nd_extension_partial_writes).
        let mut nd_pool = Vec::new();
        if let Some(ty) = nd_type.filter(|_| !words.iter().any(|w| w.starts_with("icmp_code=") && *w != "icmp_code=0"))
        {
            let ll = if ty == "135" { "SLL" } else { "TLL" };
            let ll_name = ll.to_ascii_lowercase();
            nd_pool.push(format!("set_field:fd00::{:x}->nd_target", rng.range(1, 9)));
            nd_pool.push(format!("load:{:#x}->NXM_NX_ND_TARGET[0..15]", rng.below(0x10000)));
            nd_pool.push("move:NXM_NX_ND_TARGET[0..47]->NXM_OF_ETH_DST[]".to_string());
            nd_pool.push(format!("set_field:{}->nd_reserved", rng.pick(&[0u32, 0x6000_0000, 0xa000_0000, 7])));
            nd_pool.push(format!("load:{:#x}->ERICOXM_OF_ICMPV6_ND_RESERVED[]", rng.pick(&[0u32, 0x2000_0000])));
            nd_pool.push("move:ERICOXM_OF_ICMPV6_ND_RESERVED[]->NXM_OF_ETH_SRC[0..31]".to_string());
            nd_pool.push("move:NXM_NX_ND_TARGET[0..31]->ERICOXM_OF_ICMPV6_ND_RESERVED[]".to_string());
            nd_pool.push(format!("set_field:{}->nd_options_type", rng.pick(&[0u8, 1, 2, 14])));
            nd_pool.push(format!("set_field:{}->nd_{ll_name}", mac(&mut rng)));
            nd_pool.push(format!("load:{:#x}->NXM_NX_ND_{ll}[0..7]", rng.below(256)));
            nd_pool.push(format!("move:NXM_NX_ND_{ll}[]->NXM_OF_ETH_SRC[]"));
            pool.extend(nd_pool.iter().cloned());
        }
        if has(&["ipv6", "tcp6", "udp6", "sctp6", "icmp6"]) {
            pool.push(format!("load:{:#x}->NXM_NX_IPV6_LABEL[0..15]", rng.below(0x10000)));
            pool.push("move:NXM_NX_IPV6_LABEL[]->NXM_OF_ETH_SRC[0..19]".to_string());
        }
        if has(&["arp", "rarp"]) {
            pool.push("move:NXM_OF_ARP_OP[]->NXM_OF_ETH_DST[0..15]".to_string());
            pool.push("move:NXM_OF_ARP_SPA[]->NXM_OF_ETH_DST[0..31]".to_string());
            pool.push("move:NXM_NX_ARP_THA[]->NXM_OF_ETH_SRC[]".to_string());
            // Writes (OpenStack's ARP responder is made of these); opcodes 0 and 255 are
            // OVS's known quirks (docs/OVS-DIFFERENCES.md).
            pool.push(format!("load:{:#x}->NXM_OF_ARP_OP[]", rng.pick(&[2u16, 1, 3, 0, 255, 0x102])));
            pool.push(format!("set_field:{}->arp_op", rng.pick(&[2u8, 4])));
            pool.push("set_field:10.9.9.9->arp_spa".to_string());
            pool.push("move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]".to_string());
            pool.push("move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]".to_string());
            pool.push("set_field:02:00:00:00:00:99->arp_sha".to_string());
            pool.push(format!("load:{:#x}->NXM_NX_ARP_THA[0..7]", rng.below(256)));
            pool.push("load:0xa000002->NXM_OF_ARP_TPA[]".to_string());
        }
        let mut acts: Vec<String> = acts.split(',').map(str::to_string).collect();
        for _ in 0..rng.range(1, 2) {
            let from = if !nd_pool.is_empty() && rng.chance(70) { &nd_pool } else { &pool };
            let a = rng.pick(from).clone();
            // First (the list may hold a `clone(...)` whose commas this split cut).
            acts.insert(0, a);
        }
        *rule = format!("{head}actions={}", acts.join(","));
    }
}
