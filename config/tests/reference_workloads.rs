//! The benchmark rule sets, generated here and parsed with the public parser.
//!
//! Rule set "b" is a router plus ACL table (617 rules) and rule set "r" its routes only
//! (481 rules). The benchmark's own generator is a script outside this repository; the
//! generator below builds the same shapes (the same prefix lengths, counts, priorities,
//! L4 ports and port ranges) from a fixed seed, so the test runs everywhere and always
//! gives the same rules. Addresses come from this file's own pseudo-random sequence, not
//! the script's, which does not matter to the parser.
//!
//! Every generated line comes with the [`Rule`] it must parse to, built directly from the
//! generator's numbers (no parser code involved), so the test checks the values, not only
//! that parsing succeeds.

use ferrovs_config::{Action, Masked, Match, Rule, parse_flow, parse_flows};
use std::net::Ipv4Addr;

const ETH_IPV4: u16 = 0x0800;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// SplitMix64: a small deterministic generator with no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
    /// `k` distinct numbers of `0..n`.
    fn sample(&mut self, n: u32, k: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let v = self.below(n);
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }
    fn choice<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u32) as usize]
    }
}

const ACL_PORTS: [u16; 16] = [53, 67, 69, 123, 137, 161, 162, 500, 514, 1194, 1812, 1813, 4500, 4789, 5060, 6081];
const TCP_PORTS: [u16; 16] = [22, 25, 80, 110, 143, 443, 993, 995, 1433, 3306, 3389, 5432, 6379, 8080, 8443, 9200];
const PORT_RANGES: [(u16, u16); 8] = [
    (0x1000, 0xf000),
    (0x2000, 0xf000),
    (0x8000, 0xc000),
    (0xc000, 0xf000),
    (0x0400, 0xfc00),
    (0x7000, 0xf800),
    (0xe000, 0xf000),
    (0x3000, 0xf000),
];

/// The address plan: networks of each prefix length, each inside the shorter ones.
struct Plan {
    /// (prefix length, networks), shortest first.
    routes: Vec<(u32, Vec<u32>)>,
    nets16: Vec<u32>,
    nets24: Vec<u32>,
}

fn plan(rng: &mut SplitMix) -> Plan {
    let nets8: Vec<u32> = (20..36).map(|o| o << 24).collect();
    let nets12: Vec<u32> = nets8.iter().map(|n| n | rng.below(16) << 20).collect();
    let nets16: Vec<u32> =
        nets8.iter().flat_map(|n| rng.sample(256, 4).into_iter().map(move |b| n | b << 16)).collect();
    let nets20: Vec<u32> = nets16.iter().map(|n| n | rng.below(16) << 12).collect();
    let nets24: Vec<u32> =
        nets16.iter().flat_map(|n| rng.sample(256, 2).into_iter().map(move |c| n | c << 8)).collect();
    let nets28: Vec<u32> = nets24.iter().step_by(2).map(|n| n | rng.below(16) << 4).collect();
    let hosts32: Vec<u32> = nets24.iter().map(|n| n | rng.below(256)).collect();
    let routes = vec![
        (8, nets8),
        (12, nets12),
        (16, nets16.clone()),
        (20, nets20),
        (24, nets24.clone()),
        (28, nets28),
        (32, hosts32),
    ];
    Plan { routes, nets16, nets24 }
}

/// One generated line and the rule it stands for.
struct Generated {
    line: String,
    rule: Rule,
}

fn prefix(net: u32, len: u32) -> Masked<Ipv4Addr> {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Masked { value: Ipv4Addr::from(net & mask), mask: Ipv4Addr::from(mask) }
}

fn rule(priority: u16, matches: Match, out_port: u32) -> Rule {
    Rule {
        table: 0,
        priority,
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        send_flow_rem: false,
        matches,
        actions: vec![Action::Output(out_port)],
    }
}

/// An L4 rule: `PROTO[,nw_dst=NET/LEN],tp_dst=V[/M]`.
fn l4(priority: u16, proto: u8, dst: Option<(u32, u32)>, tp: (u16, u16), out_port: u32) -> Generated {
    let name = if proto == TCP { "tcp" } else { "udp" };
    let mut line = format!("priority={priority},{name}");
    if let Some((net, len)) = dst {
        line += &format!(",nw_dst={}/{len}", Ipv4Addr::from(net));
    }
    line += &match tp {
        (v, 0xffff) => format!(",tp_dst={v}"),
        (v, m) => format!(",tp_dst=0x{v:04x}/0x{m:04x}"),
    };
    line += &format!(",actions=output:{out_port}");
    let matches = Match {
        dl_type: Some(ETH_IPV4),
        nw_proto: Some(proto),
        nw_dst: dst.map(|(net, len)| prefix(net, len)),
        tp_dst: Some(Masked { value: tp.0, mask: tp.1 }),
        ..Match::default()
    };
    Generated { line, rule: rule(priority, matches, out_port) }
}

/// Rule set "b" (or "r" with `routes_only`), all actions `output:out_port`.
fn rule_set(out_port: u32, routes_only: bool) -> Vec<Generated> {
    let mut rng = SplitMix(12345);
    let plan = plan(&mut rng);
    let mut out = Vec::new();
    for (len, nets) in &plan.routes {
        let priority = 100 + *len as u16;
        for &net in nets {
            out.push(Generated {
                line: format!("priority={priority},ip,nw_dst={}/{len},actions=output:{out_port}", Ipv4Addr::from(net)),
                rule: rule(
                    priority,
                    Match { dl_type: Some(ETH_IPV4), nw_dst: Some(prefix(net, *len)), ..Match::default() },
                    out_port,
                ),
            });
        }
    }
    if !routes_only {
        let mut rng = SplitMix(777);
        for (count, proto, ports) in [(64, UDP, &ACL_PORTS), (32, TCP, &TCP_PORTS)] {
            for i in 0..count {
                let dst = if i % 2 == 1 { (rng.choice(&plan.nets16), 16) } else { (rng.choice(&plan.nets24), 24) };
                out.push(l4(3000, proto, Some(dst), (rng.choice(ports), 0xffff), out_port));
            }
        }
        for range in PORT_RANGES {
            out.push(l4(2500, UDP, None, range, out_port));
        }
        for (proto, ports) in [(UDP, &ACL_PORTS), (TCP, &TCP_PORTS)] {
            for &p in ports {
                out.push(l4(2000, proto, None, (p, 0xffff), out_port));
            }
        }
    }
    out.push(Generated {
        line: format!("priority=0,actions=output:{out_port}"),
        rule: rule(0, Match::default(), out_port),
    });
    out
}

fn check(set: &[Generated], expected_len: usize) {
    assert_eq!(set.len(), expected_len);
    let text: String = set.iter().map(|g| format!("{}\n", g.line)).collect();
    let parsed = parse_flows(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.len(), set.len());
    for (g, p) in set.iter().zip(&parsed) {
        assert_eq!(p, &g.rule, "{}", g.line);
        // What Display prints parses back to the same rule.
        assert_eq!(parse_flow(&p.to_string()).as_ref(), Ok(p), "{p}");
    }
}

#[test]
fn router_and_acl_rule_set_parses_to_its_rules() {
    let set = rule_set(2, false);
    check(&set, 617);
    let count = |priority: u16| set.iter().filter(|g| g.rule.priority == priority).count();
    let routes: Vec<usize> = [108, 112, 116, 120, 124, 128, 132].into_iter().map(count).collect();
    assert_eq!(routes, [16, 16, 64, 64, 128, 64, 128]);
    assert_eq!((count(3000), count(2500), count(2000), count(0)), (96, 8, 32, 1));
}

#[test]
fn routes_only_rule_set_parses_to_its_rules() {
    check(&rule_set(2, true), 481);
}

#[test]
fn nested_networks_stay_inside_their_parents() {
    let plan = plan(&mut SplitMix(12345));
    for (len, nets) in &plan.routes {
        for &net in nets {
            // Every network has no host bits and lies in one of the /8s 20.0.0.0..=35.0.0.0.
            assert_eq!(net & !prefix(net, *len).mask.to_bits(), 0, "{}/{len}", Ipv4Addr::from(net));
            assert!((20..36).contains(&(net >> 24)));
        }
    }
    let distinct = |v: &[u32]| v.iter().collect::<std::collections::HashSet<_>>().len();
    assert_eq!(distinct(&plan.nets16), 64);
    assert_eq!(distinct(&plan.nets24), 128);
}

#[test]
fn flows_file_errors_name_their_line_and_column() {
    let e = parse_flows("# c\n\nip,actions=drop\n  tcp,tp_dst=x,actions=drop\n").unwrap_err();
    assert_eq!((e.position.line, e.position.column), (4, 14));
    assert_eq!(e.to_string(), "4:14: invalid `tp_dst`: `x` is not a number");
}
