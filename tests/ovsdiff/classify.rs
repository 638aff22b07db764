//! Sorting a difference between OVS and ferrovs into a class.
//!
//! - *Known intended* differences are ones where ferrovs is right and OVS 3.1 is wrong
//!   (docs/OVS-DIFFERENCES.md). They are printed, not failures, but only while ferrovs's
//!   side still shows the intended behaviour; if ferrovs changes, they stop matching
//!   and fail.
//! - *Open divergence* classes are known differences where ferrovs must follow OVS and
//!   does not yet. They are printed with a count and do not fail the run: the list is
//!   the to-do list for fidelity work. Each recogniser looks only at the rule set, the
//!   input frame and the two outputs. Remove a class once it is fixed, so the harness
//!   catches regressions.
//! - Anything else is an unclassified difference and fails the run.

use crate::frame_view::View;
use crate::gen_rules::N_PORTS;

/// One input frame whose outputs differ.
pub struct Difference<'a> {
    pub rules: &'a [String],
    pub frame: &'a [u8],
    /// (port, frame) as OVS sent them.
    pub ovs: Vec<(u32, Vec<u8>)>,
    /// (port, frame) as ferrovs sent them.
    pub ferrovs: Vec<(u32, Vec<u8>)>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Class {
    Known(&'static str),
    Open(&'static str),
    Unclassified,
}

fn actions_have(rules: &[String], words: &[&str]) -> bool {
    rules.iter().any(|r| {
        let acts = r.split_once("actions=").map(|(_, a)| a).unwrap_or("");
        words.iter().any(|w| acts.contains(w))
    })
}

const NW_REWRITES: &[&str] = &["mod_nw_src", "mod_nw_dst", "->ip_src", "->ip_dst", "mod_tp_", "_src->", "_dst->"];

impl Difference<'_> {
    fn same_shape(&self) -> bool {
        self.ovs.len() == self.ferrovs.len()
            && self.ovs.iter().zip(&self.ferrovs).all(|((p, a), (q, b))| p == q && a.len() == b.len())
    }

    /// Every pair of outputs differs only at byte offsets `keep(offset)` allows.
    fn differs_only(&self, allowed: impl Fn(&View, usize) -> bool) -> bool {
        self.same_shape()
            && self.ovs.iter().zip(&self.ferrovs).all(|((_, a), (_, b))| {
                let v = View::parse(b);
                a.iter().zip(b.iter()).enumerate().all(|(i, (x, y))| x == y || allowed(&v, i))
            })
    }
}

/// The first matching class of a difference.
pub fn classify(d: &Difference) -> Class {
    let input = View::parse(d.frame);
    // Known intended: ferrovs leaves the payload of a later IPv4 fragment alone when it
    // rewrites addresses or ports (OVS patches payload bytes as if they were an L4
    // checksum or port). ferrovs's side: payload as received, IP header checksum right.
    if input.ipv4_later_fragment()
        && actions_have(d.rules, NW_REWRITES)
        && d.differs_only(|v, i| v.l4_offset().is_some_and(|l4| i >= l4))
        && d.ferrovs.iter().all(|(_, f)| {
            let v = View::parse(f);
            v.ipv4_header_checksum_ok() && v.l4_bytes() == input.l4_bytes()
        })
    {
        return Class::Known("ipv4-later-fragment-payload-untouched");
    }
    // Known intended: IPv4 with protocol 0 is rewritten like any IPv4 packet (OVS skips
    // mod_nw_*/dec_ttl when the protocol field is 0). ferrovs's side: header checksum right.
    if input.ipv4_proto() == Some(0)
        && actions_have(d.rules, &["mod_nw_", "dec_ttl", "->ip_", "->nw_"])
        && d.ferrovs.iter().all(|(_, f)| View::parse(f).ipv4_header_checksum_ok())
    {
        return Class::Known("ipv4-protocol-0-rewritten");
    }
    // Open divergences (ferrovs must follow OVS).
    if input.vlan_tags() >= 2 {
        return Class::Open("two-or-more-vlan-tags (OVS vlan-limit=1 parses one tag)");
    }
    if input.any_dei()
        && d.differs_only(|_, i| i == 14)
        && d.ovs.iter().zip(&d.ferrovs).any(|((_, a), (_, b))| a[14] ^ b[14] == 0x10)
    {
        return Class::Open("dei-bit-on-vlan-rewrite");
    }
    if input.tcp_data_offset().is_some_and(|o| o < 5) {
        return Class::Open("tcp-data-offset-below-5");
    }
    if input.ipv6_atomic_fragment() {
        return Class::Open("ipv6-atomic-fragment");
    }
    if d.frame.len() > 1518 || d.ovs.iter().chain(&d.ferrovs).any(|(_, f)| f.len() > 1518) {
        return Class::Open("mtu");
    }
    // A VID 0 tag: pushed, set, or pushed by `mod_vlan_pcp` on an untagged frame.
    let vid0 = actions_have(d.rules, &["push_vlan", "mod_vlan_vid:0"])
        || (input.vlan_tags() == 0 && actions_have(d.rules, &["mod_vlan_pcp"]));
    if vid0 && actions_have(d.rules, &["normal"]) {
        return Class::Open("normal-with-vid-0-tag (OVS's normal sends a pushed or set VID 0 tag untagged)");
    }
    // `normal` flooded by ferrovs where OVS, having learned the destination since,
    // forwards it to one port or drops it (learned on the input port): the flooding
    // megaflow installed before the MAC was learned is still used.
    let ports = |o: &[(u32, Vec<u8>)]| o.iter().map(|(p, _)| *p).collect::<std::collections::BTreeSet<u32>>();
    if actions_have(d.rules, &["normal"])
        && ports(&d.ferrovs).len() == N_PORTS as usize - 1
        && ports(&d.ovs).len() < N_PORTS as usize - 1
        && ports(&d.ovs).is_subset(&ports(&d.ferrovs))
    {
        return Class::Open("normal-keeps-flooding-after-learning (stale flood megaflow)");
    }
    if input.partial_vlan_tag() {
        return Class::Open("partial-vlan-tag (OVS drops a frame whose VLAN tag is cut short)");
    }
    if input.ipv6_later_fragment() {
        return Class::Open("ipv6-later-fragment (OVS gives it nw_proto 44, so tcp6/udp6/icmp6 rules miss it)");
    }
    if input.is_icmp() && actions_have(d.rules, &["mod_tp_", "tp_src->", "tp_dst->"]) {
        return Class::Open("mod_tp-on-icmp (OVS writes ICMP type/code)");
    }
    if input.ipv6_has_routing_header() && actions_have(d.rules, &["->ipv6_dst"]) {
        return Class::Open("ipv6-dst-rewrite-with-routing-header (OVS leaves the L4 checksum alone)");
    }
    if input.ip_unparsable() && actions_have(d.rules, &["dec_ttl"]) {
        return Class::Open("dec_ttl-on-unparsable-ip");
    }
    if actions_have(d.rules, &["dec_ttl"]) && actions_have(d.rules, &["resubmit", "goto_table"]) && input.is_ip() {
        return Class::Open("dec_ttl-inside-resubmit");
    }
    Class::Unclassified
}
