//! Tests of match fields as rules, matches and packets see them.

use crate::rules::{Masked, Match, Position};
use crate::{RuleError, parse_flow, parse_match, parse_packet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The match of `fields,actions=drop`.
fn m(fields: &str) -> Match {
    parse_flow(&format!("{fields},actions=drop")).unwrap_or_else(|e| panic!("{fields}: {e}")).matches
}

/// The error of `line`, as (column, reason).
fn err(line: &str) -> (u32, String) {
    let e: RuleError = parse_flow(line).expect_err(line);
    assert_eq!(e.position.line, 1);
    (e.position.column, e.reason)
}

fn exact<T>(value: T, mask: T) -> Option<Masked<T>> {
    Some(Masked { value, mask })
}

#[test]
fn shorthands() {
    for (name, dl_type, proto) in [
        ("ip", 0x0800, None),
        ("ipv6", 0x86dd, None),
        ("arp", 0x0806, None),
        ("tcp", 0x0800, Some(6)),
        ("udp", 0x0800, Some(17)),
        ("sctp", 0x0800, Some(132)),
        ("icmp", 0x0800, Some(1)),
        ("tcp6", 0x86dd, Some(6)),
        ("udp6", 0x86dd, Some(17)),
        ("sctp6", 0x86dd, Some(132)),
        ("icmp6", 0x86dd, Some(58)),
    ] {
        let got = m(name);
        assert_eq!((got.dl_type, got.nw_proto), (Some(dl_type), proto), "{name}");
    }
    // Consistent repetition is fine, as in OVS.
    assert_eq!(m("ip,tcp").nw_proto, Some(6));
    assert_eq!(m("tcp,dl_type=0x0800,nw_proto=6").nw_proto, Some(6));
    assert_eq!(m("eth_type=0x86dd,ip_proto=17"), m("udp6"));
}

/// A field given again replaces what earlier fields said about the same bits, as in
/// OVS 3.1. Each expected result is what `ovs-ofctl -O OpenFlow10 parse-flow 'RULE'`
/// prints for the rule (OVS 3.1.x), written in ferrovs's own syntax.
#[test]
fn repeated_fields_keep_the_last_value() {
    let same = |a: &str, b: &str| assert_eq!(m(a), m(b), "{a} vs {b}");
    same("tcp,tp_dst=80,tp_dst=81", "tcp,tp_dst=81");
    same("tcp,tcp_dst=80,tp_dst=81", "tcp,tp_dst=81");
    same("tcp,udp", "udp");
    same("tcp,tp_dst=80,udp", "udp,tp_dst=80");
    same("ip,arp", "arp");
    same("tcp,nw_proto=17", "udp");
    same("dl_type=0x0800,dl_type=0x86dd", "ipv6");
    same("ipv6,dl_type=0x0800", "ip");
    same("in_port=1,in_port=2", "in_port=2");
    same("tcp,tcp_flags=+syn,tcp_flags=+ack", "tcp,tcp_flags=+ack");
    same("ip,ip_frag=first,ip_frag=no", "ip,nw_frag=no");
    same("arp,nw_src=1.2.3.4,arp_spa=5.6.7.8", "arp,arp_spa=5.6.7.8");
    same("ip,nw_src=1.2.3.4,nw_src=5.6.7.8", "ip,nw_src=5.6.7.8");
    same("icmp6,icmpv6_type=128,icmp_type=129", "icmp6,icmp_type=129");
    // Fields sharing a slot: only the covered bits are replaced.
    same("ip,nw_tos=4,nw_ecn=1,nw_tos=8", "ip,nw_tos=8,nw_ecn=1");
    same("ip,nw_tos=4,ip_dscp=3", "ip,nw_tos=12");
    same("ip,ip_dscp=3,nw_tos=4", "ip,nw_tos=4");
    same("dl_vlan=5,vlan_tci=0x1000/0x1000", "vlan_tci=0x1000/0x1000");
    same("vlan_tci=0x1000/0x1000,dl_vlan=5", "dl_vlan=5");
    same("dl_vlan=5,dl_vlan=0xffff", "vlan_tci=0x0000");
    same("dl_vlan=0xffff,dl_vlan=5", "dl_vlan=5,dl_vlan_pcp=0");
    same("dl_vlan=0xffff,dl_vlan_pcp=3", "dl_vlan=0,dl_vlan_pcp=3");
    same("dl_vlan_pcp=3,dl_vlan=0xffff", "vlan_tci=0x0000");
    let r = parse_flow("priority=5,priority=7,actions=drop").unwrap();
    assert_eq!(r.priority, 7);
    // A repeated field is still checked on its own.
    assert_eq!(err("tcp,tp_dst=80,tp_dst=x,actions=drop").0, 22);
}

#[test]
fn in_port_and_ethernet() {
    assert_eq!(m("in_port=7").in_port, Some(7));
    assert_eq!(m("in_port=0xfeff").in_port, Some(0xfeff));
    assert_eq!(err("in_port=0,actions=drop").0, 9);
    assert_eq!(err("in_port=65280,actions=drop").0, 9);
    assert_eq!(m("in_port=LOCAL").in_port, Some(crate::ports::LOCAL_PORT));
    assert_eq!(err("in_port=NONE,actions=drop").0, 9);
    let mac = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
    assert_eq!(m("dl_src=00:11:22:33:44:55").dl_src, exact(mac, [0xff; 6]));
    assert_eq!(m("eth_dst=00:11:22:33:44:55").dl_dst, exact(mac, [0xff; 6]));
    assert_eq!(m("dl_dst=01:00:00:00:00:00/01:00:00:00:00:00").dl_dst, exact([1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]));
    // A zero mask matches everything: the field is not matched at all.
    assert_eq!(m("dl_dst=01:00:00:00:00:00/00:00:00:00:00:00").dl_dst, None);
    assert_eq!(err("dl_src=00:11:22:33:44,actions=drop").0, 22);
    assert_eq!(m("dl_type=0x88cc").dl_type, Some(0x88cc));
    assert_eq!(m("eth_type=2048").dl_type, Some(0x0800));
    assert_eq!(err("dl_type=0x10000,actions=drop").0, 9);
}

#[test]
fn vlan_fields() {
    assert_eq!(m("dl_vlan=10").vlan_tci, exact(0x100a, 0x1fff));
    assert_eq!(m("dl_vlan=0xffff").vlan_tci, exact(0, 0xffff));
    assert_eq!(m("dl_vlan_pcp=5").vlan_tci, exact(0xb000, 0xf000));
    assert_eq!(m("dl_vlan=10,dl_vlan_pcp=5").vlan_tci, exact(0xb00a, 0xffff));
    assert_eq!(m("dl_vlan_pcp=5,dl_vlan=10").vlan_tci, exact(0xb00a, 0xffff));
    assert_eq!(m("vlan_tci=0x1000/0x1000").vlan_tci, exact(0x1000, 0x1000));
    assert_eq!(m("vlan_tci=0").vlan_tci, exact(0, 0xffff));
    assert_eq!(err("dl_vlan=4096,actions=drop").0, 9);
    assert_eq!(err("dl_vlan_pcp=8,actions=drop").0, 13);
}

#[test]
fn ipv4_and_arp_addresses() {
    let got = m("ip,nw_src=10.1.0.0/16,nw_dst=192.168.1.1");
    assert_eq!(got.nw_src, exact(Ipv4Addr::new(10, 1, 0, 0), Ipv4Addr::new(255, 255, 0, 0)));
    assert_eq!(got.nw_dst, exact(Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::BROADCAST));
    assert_eq!(m("ip,ip_dst=10.0.0.0/255.0.0.255").nw_dst.unwrap().mask, Ipv4Addr::new(255, 0, 0, 255));
    assert_eq!(m("ip,nw_dst=10.0.0.0/0").nw_dst, None);
    assert_eq!(m("arp,nw_src=10.0.0.1").nw_src, m("arp,arp_spa=10.0.0.1").nw_src);
    assert_eq!(m("arp,arp_tpa=10.0.0.1").nw_dst.unwrap().value, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(m("arp,arp_op=2").nw_proto, Some(2));
    assert_eq!(m("arp,nw_proto=1").nw_proto, Some(1));
    let mac = [2, 0, 0, 0, 0, 1];
    assert_eq!(m("arp,arp_sha=02:00:00:00:00:01").arp_sha, exact(mac, [0xff; 6]));
    assert_eq!(
        m("arp,arp_tha=02:00:00:00:00:01/ff:ff:ff:00:00:00").arp_tha,
        exact([2, 0, 0, 0, 0, 0], [0xff, 0xff, 0xff, 0, 0, 0])
    );
    assert_eq!(err("ip,nw_dst=10.0.0.0/33,actions=drop").0, 20);
    assert_eq!(err("ip,nw_dst=10.0.0,actions=drop").0, 11);
    assert_eq!(err("arp,arp_op=256,actions=drop").0, 12);
}

#[test]
fn ipv6_addresses() {
    let got = m("ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1");
    assert_eq!(got.ipv6_src.unwrap().mask, "ffff:ffff::".parse::<Ipv6Addr>().unwrap());
    assert_eq!(got.ipv6_dst, exact(Ipv6Addr::LOCALHOST, Ipv6Addr::from(u128::MAX)));
    assert_eq!(err("ipv6,ipv6_src=2001:db8::/200,actions=drop").0, 26);
}

#[test]
fn ip_header_fields() {
    assert_eq!(m("ip,nw_proto=47").nw_proto, Some(47));
    assert_eq!(m("ipv6,ip_proto=47").nw_proto, Some(47));
    assert_eq!(m("ip,nw_tos=184").nw_tos, exact(184, 0xfc));
    assert_eq!(m("ip,ip_dscp=46").nw_tos, exact(184, 0xfc));
    assert_eq!(m("ip,nw_ecn=3").nw_tos, exact(3, 0x03));
    assert_eq!(m("ip,ip_ecn=1,ip_dscp=46").nw_tos, exact(185, 0xff));
    assert_eq!(m("ipv6,nw_ttl=64").nw_ttl, Some(64));
    for (name, v, mask) in [("no", 0, 1), ("yes", 1, 1), ("first", 1, 3), ("later", 3, 3), ("not_later", 0, 2)] {
        assert_eq!(m(&format!("ip,nw_frag={name}")).nw_frag, exact(v, mask), "{name}");
    }
    assert_eq!(
        err("ip,nw_tos=185,actions=drop"),
        (11, "invalid `nw_tos`: 185 is not a multiple of 4 (its low two bits are ECN: use nw_ecn)".into())
    );
    assert_eq!(err("ip,ip_dscp=64,actions=drop").0, 12);
    assert_eq!(err("ip,nw_ecn=4,actions=drop").0, 11);
    assert_eq!(err("ip,nw_ttl=256,actions=drop").0, 11);
    assert_eq!(err("ip,nw_frag=maybe,actions=drop").0, 12);
    assert_eq!(err("ip,nw_proto=256,actions=drop").0, 13);
}

#[test]
fn transport_fields() {
    assert_eq!(m("tcp,tp_dst=443").tp_dst, exact(443, 0xffff));
    assert_eq!(m("udp,tp_src=0x1000/0xf000").tp_src, exact(0x1000, 0xf000));
    assert_eq!(m("sctp6,tp_dst=1").tp_dst, exact(1, 0xffff));
    assert_eq!(m("tcp,tcp_dst=80"), m("tcp,tp_dst=80"));
    assert_eq!(m("udp,udp_src=53").tp_src, exact(53, 0xffff));
    assert_eq!(m("sctp,sctp_dst=9").tp_dst, exact(9, 0xffff));
    assert_eq!(m("tcp,tcp_flags=+syn-ack").tcp_flags, exact(0x002, 0x012));
    assert_eq!(m("tcp,tcp_flags=0x02/0x12").tcp_flags, exact(0x002, 0x012));
    assert_eq!(m("icmp,icmp_type=8,icmp_code=0").tp_src, exact(8, 0xffff));
    assert_eq!(m("icmp,icmp_type=8,icmp_code=0").tp_dst, exact(0, 0xffff));
    assert_eq!(m("icmp6,icmpv6_type=135,icmpv6_code=0").tp_src, exact(135, 0xffff));
    assert_eq!(err("tcp,tp_dst=65536,actions=drop").0, 12);
    assert_eq!(err("tcp,tp_dst=0x1000/0x10000,actions=drop").0, 19);
    assert_eq!(err("tcp,tcp_flags=+syn+bogus,actions=drop").0, 20);
    assert_eq!(err("icmp,icmp_type=256,actions=drop").0, 16);
    assert_eq!(m("ipv6,ipv6_label=0x12345").ipv6_label, Some(Masked { value: 0x12345, mask: 0xfffff }));
    assert_eq!(m("ipv6,ipv6_label=0x10005/0xf0000").ipv6_label, Some(Masked { value: 0x10000, mask: 0xf0000 }));
    assert_eq!(err("ipv6,ipv6_label=0x100000,actions=drop").0, 17);
}

#[test]
fn prerequisites() {
    let cases = [
        ("tp_dst=80,actions=drop", 1, "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)"),
        ("ip,tp_dst=80,actions=drop", 4, "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)"),
        ("udp,tcp_dst=80,actions=drop", 5, "`tcp_dst` requires a match on tcp or tcp6"),
        ("tcp,udp_src=80,actions=drop", 5, "`udp_src` requires a match on udp or udp6"),
        ("tcp,sctp_src=80,actions=drop", 5, "`sctp_src` requires a match on sctp or sctp6"),
        ("nw_src=1.2.3.4,actions=drop", 1, "`nw_src` requires a match on ip, arp or rarp"),
        ("ipv6,nw_dst=1.2.3.4,actions=drop", 6, "`nw_dst` requires a match on ip, arp or rarp"),
        ("ip,ipv6_src=::1,actions=drop", 4, "`ipv6_src` requires a match on ipv6"),
        ("ipv6_dst=::1,actions=drop", 1, "`ipv6_dst` requires a match on ipv6"),
        ("ipv6_label=5,actions=drop", 1, "`ipv6_label` requires a match on ipv6"),
        ("ip,ipv6_label=5,actions=drop", 4, "`ipv6_label` requires a match on ipv6"),
        ("ip,icmp_type=8,actions=drop", 4, "`icmp_type` requires a match on icmp or icmp6"),
        ("udp6,icmp_code=8,actions=drop", 6, "`icmp_code` requires a match on icmp or icmp6"),
        ("icmp,icmpv6_code=0,actions=drop", 6, "`icmpv6_code` requires a match on icmp6"),
        ("ip,arp_op=1,actions=drop", 4, "`arp_op` requires a match on arp or rarp"),
        ("ip,arp_spa=1.2.3.4,actions=drop", 4, "`arp_spa` requires a match on arp or rarp"),
        ("arp_sha=00:00:00:00:00:01,actions=drop", 1, "`arp_sha` requires a match on arp or rarp"),
        ("ip,arp_tha=00:00:00:00:00:01,actions=drop", 4, "`arp_tha` requires a match on arp or rarp"),
        ("udp,tcp_flags=+syn,actions=drop", 5, "`tcp_flags` requires a match on tcp or tcp6"),
        ("nw_proto=6,actions=drop", 1, "`nw_proto` requires a match on ip, ipv6, arp or rarp"),
        ("nw_tos=4,actions=drop", 1, "`nw_tos` requires a match on ip or ipv6"),
        ("arp,ip_dscp=4,actions=drop", 5, "`ip_dscp` requires a match on ip or ipv6"),
        ("nw_ecn=1,actions=drop", 1, "`nw_ecn` requires a match on ip or ipv6"),
        ("nw_ttl=1,actions=drop", 1, "`nw_ttl` requires a match on ip or ipv6"),
        ("nw_frag=yes,actions=drop", 1, "`nw_frag` requires a match on ip or ipv6"),
    ];
    for (line, column, reason) in cases {
        assert_eq!(err(line), (column, reason.to_string()), "{line}");
    }
    // OVS reads `icmp_type`/`icmp_code` in an ICMPv6 rule as the ICMPv6 type and code.
    assert_eq!(m("icmp6,icmp_type=135,icmp_code=0"), m("icmp6,icmpv6_type=135,icmpv6_code=0"));
    // RARP (0x8035) takes the ARP fields, under either spelling of dl_type.
    let rarp =
        m("rarp,arp_op=1,arp_spa=1.2.3.4,arp_tpa=1.2.3.0/24,arp_sha=00:11:22:33:44:55,arp_tha=00:11:22:33:44:66");
    assert_eq!((rarp.dl_type, rarp.nw_proto), (Some(0x8035), Some(1)));
    assert_eq!(rarp.nw_dst, exact(Ipv4Addr::new(1, 2, 3, 0), Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(rarp.arp_tha.unwrap().value, [0, 0x11, 0x22, 0x33, 0x44, 0x66]);
    assert_eq!(m("dl_type=0x8035,nw_src=1.2.3.4"), m("rarp,arp_spa=1.2.3.4"));
    assert_eq!(m("dl_type=0x8035,arp_op=2").nw_proto, Some(2));
    // Prerequisites do not depend on order.
    assert_eq!(m("tp_dst=80,tcp").tp_dst, exact(80, 0xffff));
    assert_eq!(m("tp_dst=80,dl_type=0x0800,nw_proto=6").tp_dst, exact(80, 0xffff));
}

/// The neighbour-discovery fields need `icmp6` and, as in OVS 3.1, the ND message type
/// (`nd_target`: 135 or 136, `nd_sll`: 135, `nd_tll`: 136) with `icmp_code` absent or 0.
/// OVS silently drops them otherwise; ferrovs refuses the rule at the field.
#[test]
fn neighbour_discovery_fields() {
    let ns = m("icmp6,icmp_type=135,nd_target=fe80::1/64,nd_sll=00:11:22:33:44:55");
    assert_eq!(ns.nd_target, exact("fe80::".parse().unwrap(), "ffff:ffff:ffff:ffff::".parse().unwrap()));
    assert_eq!(ns.nd_sll, exact([0, 0x11, 0x22, 0x33, 0x44, 0x55], [0xff; 6]));
    let na = m("ipv6,nw_proto=58,icmp_type=136,icmp_code=0,nd_tll=00:11:22:33:44:55/ff:ff:ff:00:00:00");
    assert_eq!(na.nd_tll, exact([0, 0x11, 0x22, 0, 0, 0], [0xff, 0xff, 0xff, 0, 0, 0]));
    assert_eq!(m("icmp6,icmp_type=136,nd_target=::1/::ffff").nd_target.unwrap().mask, Ipv6Addr::from(0xffff));
    let needs = |f: &str, types: &str| {
        format!(
            "`{f}` requires {types} (and icmp_code absent or 0); Open vSwitch would silently ignore it and match more"
        )
    };
    let both = "icmp_type=135 or icmp_type=136";
    let cases = [
        ("icmp6,nd_target=fe80::1,actions=drop", 7, needs("nd_target", both)),
        ("icmp6,icmp_type=134,nd_target=fe80::1,actions=drop", 21, needs("nd_target", both)),
        ("icmp6,icmp_type=135,icmp_code=1,nd_target=fe80::1,actions=drop", 33, needs("nd_target", both)),
        ("icmp6,icmp_type=136,nd_sll=00:11:22:33:44:55,actions=drop", 21, needs("nd_sll", "icmp_type=135")),
        ("icmp6,icmp_type=135,nd_tll=00:11:22:33:44:55,actions=drop", 21, needs("nd_tll", "icmp_type=136")),
        (
            "ipv6,icmp_type=135,nd_target=fe80::1,actions=drop",
            6,
            "`icmp_type` requires a match on icmp or icmp6".into(),
        ),
        ("udp6,nd_target=fe80::1,actions=drop", 6, "`nd_target` requires a match on icmp6".into()),
        ("icmp,icmp_type=135,nd_tll=00:11:22:33:44:55,actions=drop", 20, "`nd_tll` requires a match on icmp6".into()),
    ];
    for (line, column, reason) in cases {
        assert_eq!(err(line), (column, reason), "{line}");
    }
    // Written and read as OVS checks them: the rule must match the message type the field
    // belongs to (and icmp_code absent or 0).
    for (rule, ok) in [
        ("icmp6,icmp_type=135,actions=set_field:fd00::1->nd_target", true),
        ("icmp6,icmp_type=135,actions=load:1->NXM_NX_ND_TARGET[0..7],move:NXM_NX_ND_SLL[]->NXM_OF_ETH_SRC[]", true),
        ("icmp6,icmp_type=136,icmp_code=0,actions=set_field:7->nd_reserved,set_field:2->nd_options_type", true),
        ("icmp6,icmp_type=135,actions=set_field:00:11:22:33:44:55->nd_tll", false),
        ("icmp6,icmp_type=136,actions=move:nd_sll[]->dl_src[]", false),
        ("icmp6,actions=set_field:3->nd_reserved", false),
        ("icmp6,icmp_type=135,icmp_code=1,actions=load:1->nd_options_type[]", false),
        ("ipv6,actions=output:nd_reserved[0..15]", false),
    ] {
        let got = parse_flow(rule);
        assert_eq!(got.is_ok(), ok, "{rule}: {got:?}");
        if let Err(e) = got {
            assert!(e.to_string().contains("icmp_type=13") || e.to_string().contains("icmp6"), "{rule}: {e}");
        }
    }
    assert_eq!(m("icmp6,icmp_type=136,nd_reserved=7,nd_options_type=2").nd_reserved, Some(7));
    assert!(parse_flow("icmp6,icmp_type=136,nd_reserved=7/7,actions=drop").is_err(), "exact values only");
}

#[test]
fn rule_properties() {
    let r = parse_flow("table=3,priority=7,cookie=0xdead,idle_timeout=10,hard_timeout=60,actions=drop").unwrap();
    assert_eq!((r.table, r.priority, r.cookie, r.idle_timeout, r.hard_timeout), (3, 7, 0xdead, 10, 60));
    let r = parse_flow("actions=drop").unwrap();
    assert_eq!((r.table, r.priority, r.cookie, r.idle_timeout, r.hard_timeout), (0, 32768, 0, 0, 0));
    assert_eq!(r.matches, Match::default());
    // dump-flows counters are accepted and ignored.
    let r = parse_flow(
        "cookie=0x0, duration=1.5s, table=0, n_packets=3, n_bytes=180, idle_age=1, priority=5,ip actions=drop",
    );
    assert_eq!(r.unwrap().priority, 5);
    assert_eq!(err("table=255,actions=drop").0, 7);
    assert_eq!(err("priority=65536,actions=drop").0, 10);
    assert_eq!(err("idle_timeout=65536,actions=drop").0, 14);
    assert_eq!(err("hard_timeout=x,actions=drop").0, 14);
    assert_eq!(err("cookie=1/1,actions=drop").0, 9);
}

#[test]
fn unknown_fields_and_syntax() {
    assert_eq!(err("in_port=1,tun_id=5,actions=drop"), (11, "unknown or unsupported field `tun_id`".into()));
    assert_eq!(err("in_port=1,rarpx,actions=drop"), (11, "unknown or unsupported field `rarpx`".into()));
    assert_eq!(err("in_port,actions=drop"), (1, "`in_port` needs a value (`in_port=...`)".into()));
    assert_eq!(err("tcp=1,actions=drop"), (1, "`tcp` is a shorthand and takes no value".into()));
    assert_eq!(err("in_port=1"), (10, "missing `actions=` (use `actions=drop` to drop)".into()));
    assert_eq!(err("in_port=1, =2,actions=drop").0, 12);
    assert_eq!(err("in_port=1,actions").0, 11);
    // Columns count characters, not bytes.
    assert_eq!(err("in_port=1,é=2,actions=drop"), (11, "unknown or unsupported field `é`".into()));
    assert_eq!(err("n_bytes=é,in_port=x,actions=drop").0, 19);
}

#[test]
fn match_for_del_flows() {
    let spec = parse_match("table=2,priority=10,cookie=0x10/0xf0,tcp,tp_dst=80").unwrap();
    assert_eq!(spec.table, Some(2));
    assert_eq!(spec.priority, Some(10));
    assert_eq!(spec.cookie, exact(0x10, 0xf0));
    assert_eq!(spec.matches.tp_dst, exact(80, 0xffff));
    assert_eq!(parse_match("cookie=0x5/-1").unwrap().cookie, exact(5, u64::MAX));
    assert_eq!(parse_match("").unwrap(), Default::default());
    let e = parse_match("tcp,actions=drop").unwrap_err();
    assert_eq!(e.position, Position { line: 1, column: 5 });
    assert_eq!(parse_match("idle_timeout=5").unwrap_err().position.column, 1);
    assert_eq!(
        parse_match("tp_dst=5").unwrap_err().reason,
        "`tp_dst` requires a match on tcp, udp or sctp (or tcp6, udp6, sctp6)"
    );
}

#[test]
fn packets_for_trace() {
    let p = parse_packet("in_port=1,tcp,nw_src=198.18.0.1,nw_dst=198.18.0.2,tp_dst=80").unwrap();
    assert_eq!(p.in_port, Some(1));
    assert_eq!(p.nw_src, exact(Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::BROADCAST));
    assert_eq!(p.tp_dst, exact(80, 0xffff));
    assert_eq!(p.tp_src, None);
    let p = parse_packet("in_port=1,dl_vlan=5,ip,ip_dscp=46,nw_frag=no,tcp,tcp_flags=0x002").unwrap();
    assert_eq!(p.vlan_tci, exact(0x1005, 0xffff));
    assert_eq!(p.nw_tos, exact(184, 0xff));
    assert_eq!(p.nw_frag, exact(0, 3));
    assert_eq!(p.tcp_flags, exact(2, 0xfff));
    let p = parse_packet("in_port=1,udp6,ipv6_label=0x12345").unwrap();
    assert_eq!(p.ipv6_label, exact(0x12345, 0xfffff));
    let e = |s: &str| parse_packet(s).unwrap_err();
    assert_eq!(e("tcp,tp_dst=80").position.column, 14);
    assert_eq!(e("tcp,tp_dst=80").reason, "a packet needs `in_port=N`");
    assert_eq!(e("in_port=1,ip,nw_dst=10.0.0.0/8").position.column, 29);
    assert_eq!(e("in_port=1,tcp,tcp_flags=+syn").position.column, 25);
    assert_eq!(e("in_port=1,ip,nw_frag=yes").position.column, 22);
    assert_eq!(e("in_port=1,priority=5").position.column, 11);
    assert_eq!(e("in_port=1,tp_dst=80").position.column, 11);
    assert_eq!(e("in_port=1,actions=drop").position.column, 11);
}

/// Past the fields whose prerequisites the builder keeps in place, the rest are still
/// checked, and the first failing one in line order is the error.
#[test]
fn many_fields_with_prerequisites_are_all_checked() {
    let ports = (1..=9).map(|p| format!("tp_src={p}")).collect::<Vec<_>>().join(",");
    let line = format!("tcp,{ports},icmp_type=3,actions=drop");
    let (column, reason) = err(&line);
    assert_eq!(column as usize, line.find("icmp_type").unwrap() + 1, "{reason}");
    assert!(reason.contains("`icmp_type` requires"), "{reason}");
    let line = format!("{ports},actions=drop");
    let (column, reason) = err(&line);
    assert_eq!((column, reason.contains("`tp_src` requires")), (1, true), "{reason}");
    assert_eq!(m(&format!("tcp,{ports}")).tp_src, exact(9, 0xffff));
}
