//! Fuzzes every packet edit of `flowcache::edit` over arbitrary frames.
//!
//! The first 8 bytes choose the edit values (addresses, ports, TTL, VLAN TCI...), the
//! rest is the frame. For every action kind, on a copy of the frame:
//! - nothing panics (`execute_edit`, and `push_vlan` / `pop_vlan` / `vlans_kept` for the
//!   three actions that answer `NeedsResize`); a `CommitVlans` keeps no more tags than
//!   it pops and pushes;
//! - an edit that is not `Applied` leaves the bytes alone;
//! - after an `Applied` edit, extraction still works and the key is the old key with
//!   exactly the edited field changed (the parser sees the same structure);
//! - an `Applied` edit of a frame whose checksums verify leaves checksums that verify;
//! - a VLAN push onto an untagged frame adds that outer tag and changes nothing else in
//!   the key; a pop of a frame with one tag removes it and changes nothing else.
#![no_main]

use ferrovs_flowcache::actions::{DpAction, PoppedTpids};
use ferrovs_flowcache::edit::{EditOutcome, execute_edit, pop_vlan, push_vlan, vlans_kept};
use ferrovs_flowcache::extract::{extract, extract_with_vlan_limit, layers};
use ferrovs_flowcache::key::{FlowKey, VLAN_PRESENT, ethertype, ipproto};
use ferrovs_flowcache::testpkt::{checksums_ok, routing_header_pending};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The key after an `Applied` edit: `k` with exactly the edited field changed.
fn edited(mut k: FlowKey, a: &DpAction) -> FlowKey {
    // ICMP's "ports" are its one-byte type and code: the edit writes the value's low byte.
    let icmp = (k.dl_type() == ethertype::IPV4 && k.nw_proto() == ipproto::ICMP)
        || (k.dl_type() == ethertype::IPV6 && k.nw_proto() == ipproto::ICMPV6);
    match *a {
        DpAction::SetTpSrc(p) if icmp => k.set_tp_src(p & 0xff),
        DpAction::SetTpDst(p) if icmp => k.set_tp_dst(p & 0xff),
        DpAction::SetEthSrc(m) => k.set_dl_src(m),
        DpAction::SetEthDst(m) => k.set_dl_dst(m),
        DpAction::SetVlanVid(v) => k.set_vlan_tci(0, (k.vlan_tci(0) & 0xf000) | (v & 0x0fff)),
        DpAction::SetVlanPcp(p) => k.set_vlan_tci(0, (k.vlan_tci(0) & 0x1fff) | (u16::from(p & 7) << 13)),
        DpAction::ReplaceVlan { tci, .. } => k.set_vlan_tci(0, tci | 0x1000),
        DpAction::SetIpv4Src(ip) => k.set_nw_src(ip),
        DpAction::SetIpv4Dst(ip) => k.set_nw_dst(ip),
        DpAction::SetIpv6Src(ip) => k.set_ipv6_src(ip),
        DpAction::SetIpv6Dst(ip) => k.set_ipv6_dst(ip),
        DpAction::SetIpv6Label(l) => k.set_ipv6_label(l),
        DpAction::SetIpDscp(d) => k.set_nw_tos((k.nw_tos() & 3) | (d << 2)),
        DpAction::SetIpEcn(e) => k.set_nw_tos((k.nw_tos() & 0xfc) | (e & 3)),
        DpAction::SetTtl(t) => k.set_nw_ttl(t),
        DpAction::DecTtl => k.set_nw_ttl(k.nw_ttl() - 1),
        DpAction::SetTpSrc(p) => k.set_tp_src(p),
        DpAction::SetTpDst(p) => k.set_tp_dst(p),
        DpAction::SetArpOp(op) => k.set_nw_proto(op),
        DpAction::SetArpSpa(ip) => k.set_nw_src(ip),
        DpAction::SetArpTpa(ip) => k.set_nw_dst(ip),
        DpAction::SetArpSha(m) => k.set_arp_sha(m),
        DpAction::SetArpTha(m) => k.set_arp_tha(m),
        DpAction::SetMplsLse { value, mask } => k.set_mpls_lse((k.mpls_lse() & !mask) | (value & mask)),
        // The neighbour-discovery fields are not in the key (nor is the byte after a
        // message without options that `SetNdOptionsType` writes).
        DpAction::SetNdTarget(_)
        | DpAction::SetNdSll(_)
        | DpAction::SetNdTll(_)
        | DpAction::SetNdReserved(_)
        | DpAction::SetNdOptionsType(_) => {}
        DpAction::Output(_)
        | DpAction::OutputTrunc { .. }
        | DpAction::Controller { .. }
        | DpAction::PacketInNote(_)
        | DpAction::PushVlan { .. }
        | DpAction::PopVlan
        | DpAction::CommitVlans { .. } => {}
    }
    k
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (v, frame) = data.split_at(8);
    let mac = [2, v[0], v[1], v[2], v[3], v[4]];
    let ip4 = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
    let ip6 = Ipv6Addr::new(0xfd00, 0, 0, 0, u16::from(v[0]), u16::from(v[1]), u16::from(v[2]), u16::from(v[3]));
    let port = u16::from_be_bytes([v[4], v[5]]);
    let tci = u16::from_be_bytes([v[6], v[7]]);
    let tpid = if v[5] & 1 == 0 { 0x8100 } else { 0x88a8 };
    let actions = [
        DpAction::Output(u32::from(v[0])),
        DpAction::SetEthSrc(mac),
        DpAction::SetEthDst(mac),
        DpAction::PushVlan { tpid, tci },
        DpAction::PopVlan,
        DpAction::SetVlanVid(tci),
        DpAction::SetVlanPcp(v[6]),
        DpAction::ReplaceVlan { tpid, tci },
        DpAction::CommitVlans { pop: v[0] % 3, push: v[1] % 3, tags: [(tpid, tci), (0x8100, tci ^ 0x1000)] },
        DpAction::SetIpv4Src(ip4),
        DpAction::SetIpv4Dst(ip4),
        DpAction::SetIpv6Src(ip6),
        DpAction::SetIpv6Dst(ip6),
        DpAction::SetIpv6Label(u32::from_be_bytes([0, v[1], v[2], v[3]]) & 0xfffff),
        DpAction::SetIpDscp(v[4] & 0x3f),
        DpAction::SetIpEcn(v[4] & 3),
        DpAction::SetTtl(v[5]),
        DpAction::DecTtl,
        DpAction::SetTpSrc(port),
        DpAction::SetTpDst(port),
        DpAction::SetArpOp(v[5]),
        DpAction::SetArpSpa(ip4),
        DpAction::SetArpTpa(ip4),
        DpAction::SetArpSha(mac),
        DpAction::SetArpTha(mac),
        DpAction::SetMplsLse {
            value: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            mask: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
        },
        DpAction::SetNdTarget(ip6),
        DpAction::SetNdSll(mac),
        DpAction::SetNdTll(mac),
        DpAction::SetNdReserved(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
        DpAction::SetNdOptionsType(v[4]),
    ];
    // Edits find the headers behind any number of VLAN tags (the key stops at the
    // vlan-limit): judge them on a key without the limit.
    let before = extract_with_vlan_limit(frame, 7, usize::MAX);
    let checksums_before = checksums_ok(frame);
    for a in &actions {
        let mut buf = frame.to_vec();
        match execute_edit(&mut buf, a) {
            EditOutcome::Applied => {
                let after = extract_with_vlan_limit(&buf, 7, usize::MAX);
                // The key holds two tags: behind more, it cannot show the edited field.
                if layers(frame).n_tags <= 2 {
                    assert_eq!(after, edited(before, a), "{a:?} on {frame:02x?}");
                }
                // Behind a routing header with segments left the pseudo-header holds the
                // final destination, which the checker does not know: a destination
                // rewrite rightly leaves the L4 checksum alone there.
                // The ND edits are OVS's: the option walk may write past the message into
                // trailing bytes no checksum covers, and the `nd_ext` checksum takes the
                // IPv6 header's next header and length, not those of the ICMPv6 message
                // behind extension headers; judged on frames without either.
                let judgeable = !(matches!(a, DpAction::SetIpv6Dst(_)) && routing_header_pending(frame))
                    && (!a.is_nd_edit() || {
                        let l = layers(frame);
                        l.l3.is_some_and(|l3| l.l4_start == Some(l3 + 40)) && l.l3_end == frame.len()
                    });
                if checksums_before && judgeable {
                    assert!(checksums_ok(&buf), "{a:?} broke the checksums of {frame:02x?}");
                }
            }
            EditOutcome::NeedsResize => match *a {
                DpAction::PushVlan { tpid, tci } => {
                    let mut grown = vec![0u8; 4];
                    grown.extend_from_slice(frame);
                    if push_vlan(&mut grown, tpid, tci).is_ok() && frame.len() >= 14 && before.vlan_tci(0) == 0 {
                        let mut want = before;
                        want.set_vlan_tci(0, (tci & !VLAN_PRESENT) | VLAN_PRESENT);
                        assert_eq!(extract(&grown, 7), want, "{a:?} on {frame:02x?}");
                    }
                }
                DpAction::PopVlan => {
                    if pop_vlan(&mut buf) {
                        let popped = extract(&buf[4..], 7);
                        if before.vlan_tci(1) == 0 {
                            let mut want = before;
                            want.set_vlan_tci(0, 0);
                            assert_eq!(popped, want, "pop on {frame:02x?}");
                        }
                    } else {
                        assert_eq!(buf, frame, "a refused pop changed the frame");
                        assert_eq!(before.vlan_tci(0), 0, "pop refused a tagged frame");
                    }
                }
                DpAction::CommitVlans { pop, push, tags } => {
                    let kept = vlans_kept(frame, pop, push, &tags, &PoppedTpids::for_frame(frame));
                    assert!(kept <= pop.min(push), "{a:?} kept {kept} tags of {frame:02x?}");
                }
                _ => panic!("{a:?} answered NeedsResize"),
            },
            outcome => assert_eq!(buf, frame, "{a:?} answered {outcome:?} but changed the frame"),
        }
    }
});
