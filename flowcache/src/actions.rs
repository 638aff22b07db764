//! Datapath actions: what a megaflow does to a packet. These are the flattened result of
//! translating rules (`resubmit`, `normal`, `flood` are already resolved into concrete
//! outputs by the slow path); the PMD executes them in order.
//!
//! Compared with the OpenFlow actions in `ferrovs_config::rules::Action`, there is no
//! lookup left here: every action is a plain edit of the packet or an output.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One datapath action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DpAction {
    /// Transmit a copy of the packet, as it is at this point of the list, on this port.
    Output(u32),
    /// Transmit a copy of the packet's first `max_len` bytes (all of it if shorter) on
    /// `port`; the packet stays whole for the actions after it (OVS's `trunc(max_len)`
    /// before an output, which cuts only that output's copy).
    OutputTrunc {
        port: u32,
        max_len: u32,
    },
    SetEthSrc([u8; 6]),
    SetEthDst([u8; 6]),
    /// Insert a new outer 802.1Q tag with this TPID and TCI (the 0x1000 present bit is not
    /// part of the wire TCI and is ignored). [`TPID_OF_LAST_POP`] or
    /// [`TPID_OF_SECOND_LAST_POP`] as the TPID: the one of a tag a `PopVlan` of the list
    /// removed (see there); [`TPID_OF_RECEIVED_OUTER`] or [`TPID_OF_RECEIVED_INNER`]: the
    /// one a tag of the packet had when it was received.
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    /// Remove the outer VLAN tag (no effect on an untagged packet).
    PopVlan,
    /// Make the outer tag TPID `tpid`, TCI `tci` (DEI clear), as `PopVlan` then `PushVlan`
    /// would, unless it has that TPID, VID and PCP already: then it is left as it is, DEI
    /// bit included (no effect on an untagged packet). What OVS's `commit_vlan_action`
    /// does with a tag popped and another pushed in its place: it compares the two and
    /// keeps an equal one. The translator knows the VID and PCP but not the TPID of a
    /// received tag (the flow key does not hold it), so the datapath compares. As the pop
    /// it stands for, it adds the TPID it found to the popped TPIDs (see
    /// [`TPID_OF_LAST_POP`]), after resolving a placeholder `tpid`: a `clone` that
    /// replaced a received tag has it put back with `ReplaceVlan` of
    /// [`TPID_OF_RECEIVED_OUTER`].
    ReplaceVlan {
        tpid: u16,
        tci: u16,
    },
    /// The packet's outer `pop` tags become `tags[..push]` (outermost first), as OVS's
    /// `commit_vlan_action` makes them: from the innermost pair on (the packet's last of
    /// the `pop` against the list's last), a tag equal in TPID, VID and PCP to the one in
    /// its place stays as it is, DEI bit included, up to the first pair that differs; the
    /// packet's other tags are popped (their TPIDs added to the popped ones, see
    /// [`TPID_OF_LAST_POP`]) and the list's others pushed, innermost first. A TPID of the
    /// list may be a received-tag placeholder ([`TPID_OF_RECEIVED_OUTER`]). The translator
    /// emits it where it cannot compare a pair below the outer tag itself: a received tag's
    /// TPID, which the flow key does not hold, against another tag of the same VID and PCP
    /// (for the outer tag alone it emits [`DpAction::ReplaceVlan`]). See
    /// [`crate::edit::vlans_kept`].
    CommitVlans {
        pop: u8,
        push: u8,
        tags: [(u16, u16); 2],
    },
    /// Rewrite the VID of the outer tag (no effect on an untagged packet).
    SetVlanVid(u16),
    /// Rewrite the PCP of the outer tag (no effect on an untagged packet).
    SetVlanPcp(u8),
    /// IPv4 address rewrites keep the IPv4 header checksum and the TCP/UDP checksum right.
    SetIpv4Src(Ipv4Addr),
    SetIpv4Dst(Ipv4Addr),
    /// IPv6 address rewrites keep the TCP/UDP/ICMPv6 checksum right.
    SetIpv6Src(Ipv6Addr),
    SetIpv6Dst(Ipv6Addr),
    /// Set the 20-bit IPv6 flow label (no checksum covers it).
    SetIpv6Label(u32),
    /// Set the six DSCP bits of the IPv4 TOS / IPv6 traffic class.
    SetIpDscp(u8),
    /// Set the two ECN bits.
    SetIpEcn(u8),
    SetTtl(u8),
    /// Decrement the IPv4 TTL / IPv6 hop limit. The translator emits it only for a TTL
    /// above 1 (the TTL exception is decided at translation, under a mask that proves
    /// the side of "TTL <= 1"); if the datapath still finds 0 or 1 the packet is
    /// dropped and the remaining actions are not executed, as a safety net. A relative
    /// decrement, rather than OVS's `SetTtl(ttl - 1)`, needs only a TTL prefix in the
    /// megaflow mask instead of the whole TTL.
    DecTtl,
    /// TCP/UDP/SCTP port rewrites keep the L4 checksum right.
    SetTpSrc(u16),
    SetTpDst(u16),
    /// ARP (Ethernet/IPv4, EtherType 0x0806) header rewrites: the opcode (the key holds
    /// its low 8 bits; the 16-bit field is written as that value), the sender and target
    /// protocol and hardware addresses. No checksum covers them.
    SetArpOp(u8),
    SetArpSpa(Ipv4Addr),
    SetArpTpa(Ipv4Addr),
    SetArpSha([u8; 6]),
    SetArpTha([u8; 6]),
    /// Rewrite the `mask` bits of the first MPLS label stack entry to `value`'s (an MPLS
    /// packet whose entry is complete; no checksum covers it). OVS commits the whole
    /// entry; the other bits are the packet's own either way.
    SetMplsLse {
        value: u32,
        mask: u32,
    },
    /// IPv6 neighbour-discovery rewrites, OVS's `set(nd(...))` and `set(nd_ext(...))`
    /// (`odp_set_nd`, `odp_set_nd_ext`): only the translation of one packet in the slow
    /// path emits them (see `xlate::translate`), so every one of them the datapath runs
    /// was decided with that packet's ND fields. The target (bytes 8..24 of the message),
    /// the first source or target link-layer option as OVS's option walk finds it (the
    /// `Sll` one writes it only if that option is a source one, the `Tll` one only if a
    /// target one), each with an incremental ICMPv6 checksum update.
    SetNdTarget(Ipv6Addr),
    SetNdSll([u8; 6]),
    SetNdTll([u8; 6]),
    /// The 32 bits after the ICMPv6 header, and the type byte of the first option (the
    /// byte after the 24-byte message, whatever it holds); both recompute the ICMPv6
    /// checksum over the message, as OVS's `packet_set_nd_ext` does.
    SetNdReserved(u32),
    SetNdOptionsType(u8),
    /// Send a copy of the packet, as it is at this point of the list, to the bridge's
    /// OpenFlow controllers (a packet-in): at most `max_len` bytes of it (`u16::MAX`:
    /// the whole frame), with the reason (`OFPR_NO_MATCH` = 0 for a table miss,
    /// `OFPR_ACTION` = 1), the table and the cookie of the rule that sent it. Every
    /// packet of a megaflow with this action goes to the controller: the PMD executes it
    /// like an output.
    Controller {
        /// The packet's ingress port (always exact in a megaflow's mask).
        in_port: u32,
        max_len: u16,
        reason: u8,
        table: u8,
        cookie: u64,
    },
    /// A value of the flow that the packet-in of the `Controller` right after this (and
    /// any other notes) reports in its match, as OVS reports the flow's registers and
    /// metadata that are not zero and its in_port, also a written one. No effect on the
    /// packet. The values are constants of the megaflow: every packet bit they were
    /// computed from is in its mask.
    PacketInNote(PacketInNote),
}

/// One value a [`DpAction::PacketInNote`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketInNote {
    /// Register `n` (0..16) holds this (not zero).
    Reg(u8, u32),
    /// The metadata holds this (not zero).
    Metadata(u64),
    /// The flow's in_port, written by a `load`/`move` (the `Controller`'s own `in_port`
    /// is the packet's ingress port, which finds its bridge).
    InPort(u32),
}

/// What a packet-in reports of the flow besides its ingress port: the notes before its
/// `Controller` action, gathered (all zero and `None` without notes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketInFlow {
    pub regs: [u32; ferrovs_config::rules::N_REGS],
    pub metadata: u64,
    /// The flow's in_port if a write changed it from the ingress port.
    pub in_port: Option<u32>,
}

impl PacketInFlow {
    /// The notes that end `actions` (those right before a `Controller` at
    /// `actions.len()`), gathered.
    pub fn before(actions: &[DpAction]) -> PacketInFlow {
        let mut flow = PacketInFlow::default();
        for a in actions.iter().rev() {
            match *a {
                DpAction::PacketInNote(PacketInNote::Reg(n, v)) => {
                    if let Some(r) = flow.regs.get_mut(usize::from(n)) {
                        *r = v;
                    }
                }
                DpAction::PacketInNote(PacketInNote::Metadata(m)) => flow.metadata = m,
                DpAction::PacketInNote(PacketInNote::InPort(p)) => flow.in_port = Some(p),
                _ => break,
            }
        }
        flow
    }
}

impl DpAction {
    /// Whether this is one of the neighbour-discovery rewrites (`SetNd*`).
    pub fn is_nd_edit(&self) -> bool {
        matches!(
            self,
            DpAction::SetNdTarget(_)
                | DpAction::SetNdSll(_)
                | DpAction::SetNdTll(_)
                | DpAction::SetNdReserved(_)
                | DpAction::SetNdOptionsType(_)
        )
    }
}

/// A `PushVlan` TPID that stands for the TPID of the tag most recently removed by a
/// `PopVlan` of the same action list and not put back yet (0x8100 if there is none).
///
/// The datapath keeps, per packet, the TPIDs of the last two tags popped and not put back
/// (a stack of two: a `PopVlan` puts its tag's TPID on top, dropping the third; a
/// `PushVlan` of this TPID takes the top one off, one of [`TPID_OF_SECOND_LAST_POP`] the
/// one below it). `normal` sends VID 0, PCP 0 tags untagged and puts them back for the
/// actions after it with their own TPIDs, as OVS restores the flow's TPIDs; the flow key
/// does not hold the TPIDs, so the datapath takes them from the tags it popped.
pub const TPID_OF_LAST_POP: u16 = 0;

/// A `PushVlan` TPID that stands for the TPID of the second most recently popped tag not
/// put back yet (see [`TPID_OF_LAST_POP`]).
pub const TPID_OF_SECOND_LAST_POP: u16 = 1;

/// A `PushVlan` or `ReplaceVlan` TPID that stands for the TPID the packet's outer tag (the
/// first one of the frame as received) had when it was received, whatever the actions did
/// to the tags since.
///
/// OVS's flow keeps each VLAN slot's TPID apart from its TCI: a `vlan_tci` write, or a
/// `mod_vlan_vid` that brings back a tag such a write removed, keeps the TPID of the tag
/// that was there, and OVS's commit pushes the tags it pushes with their own TPIDs. The
/// flow key does not hold the TPIDs of the received tags, so the datapath reads them from
/// the frame before the actions change its tags.
pub const TPID_OF_RECEIVED_OUTER: u16 = 2;

/// A `PushVlan` or `ReplaceVlan` TPID that stands for the TPID the packet's second tag had
/// when it was received (see [`TPID_OF_RECEIVED_OUTER`]).
pub const TPID_OF_RECEIVED_INNER: u16 = 3;

/// What the datapath keeps per packet to resolve the TPID placeholders: the TPIDs of the
/// last two tags a packet's `PopVlan`s removed and no `PushVlan` put back (for
/// [`TPID_OF_LAST_POP`] and [`TPID_OF_SECOND_LAST_POP`]), and those of its first two tags
/// as received (for [`TPID_OF_RECEIVED_OUTER`] and [`TPID_OF_RECEIVED_INNER`]). Four
/// `u16`s, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoppedTpids {
    popped: [u16; 2],
    received: [u16; 2],
}

impl Default for PoppedTpids {
    fn default() -> Self {
        let d = crate::key::ethertype::VLAN;
        PoppedTpids { popped: [d; 2], received: [d; 2] }
    }
}

impl PoppedTpids {
    /// The state for a packet received as `frame`, before its actions run: nothing popped,
    /// the EtherTypes where its first two tags' TPIDs are (a placeholder of a received tag
    /// is only used for a tag the flow key holds, so it is one).
    pub fn for_frame(frame: &[u8]) -> Self {
        let at =
            |o: usize| frame.get(o..o + 2).map_or(crate::key::ethertype::VLAN, |t| u16::from_be_bytes([t[0], t[1]]));
        PoppedTpids { received: [at(12), at(16)], ..PoppedTpids::default() }
    }

    /// Records a popped tag's TPID.
    pub fn popped(&mut self, tpid: u16) {
        self.popped = [tpid, self.popped[0]];
    }

    /// The TPID a `PushVlan` of `tpid` would write, without taking a popped one off the
    /// stack (what a `CommitVlans` compares).
    pub fn peek(&self, tpid: u16) -> u16 {
        match tpid {
            TPID_OF_LAST_POP => self.popped[0],
            TPID_OF_SECOND_LAST_POP => self.popped[1],
            TPID_OF_RECEIVED_OUTER => self.received[0],
            TPID_OF_RECEIVED_INNER => self.received[1],
            t => t,
        }
    }

    /// The TPID a `PushVlan` of `tpid` writes (a popped-tag placeholder takes its popped
    /// TPID off the stack, a received-tag one is that tag's TPID; any other TPID is
    /// itself).
    pub fn take(&mut self, tpid: u16) -> u16 {
        let written = self.peek(tpid);
        let d = crate::key::ethertype::VLAN;
        match tpid {
            TPID_OF_LAST_POP => self.popped = [self.popped[1], d],
            TPID_OF_SECOND_LAST_POP => self.popped[1] = d,
            _ => {}
        }
        written
    }
}

/// `OFPR_NO_MATCH`: a packet-in for a table miss.
pub const REASON_NO_MATCH: u8 = 0;
/// `OFPR_ACTION`: a packet-in for a controller action.
pub const REASON_ACTION: u8 = 1;
/// Not an OpenFlow reason: the megaflow's packets go to ferrovs's own slow path, which
/// translates each with what the key lacks (the IPv6 neighbour-discovery fields: see
/// docs/OVS-DIFFERENCES.md). Never sent to a controller.
pub const REASON_SLOW_PATH: u8 = 0xff;

impl DpAction {
    /// The port this sends the packet to, if it is an output.
    pub fn output_port(&self) -> Option<u32> {
        match *self {
            DpAction::Output(p) | DpAction::OutputTrunc { port: p, .. } => Some(p),
            _ => None,
        }
    }

    /// Whether this neither sends nor changes the packet (a [`DpAction::PacketInNote`]).
    pub fn is_note(&self) -> bool {
        matches!(self, DpAction::PacketInNote(_))
    }

    /// Whether this sends the packet somewhere (an output or a packet-in), rather than
    /// changing it.
    pub fn sends(&self) -> bool {
        matches!(self, DpAction::Output(_) | DpAction::OutputTrunc { .. } | DpAction::Controller { .. })
    }
}

/// The action list of a megaflow. Empty means drop.
pub type DpActions = Vec<DpAction>;

/// Drops the edits after the last output or packet-in: they would change a packet that
/// no port receives (OVS commits edits only at an output, so it never emits them).
pub fn trim_unsent_edits(actions: &mut DpActions) {
    let sent = actions.iter().rposition(DpAction::sends);
    actions.truncate(sent.map_or(0, |i| i + 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popped_tpids_are_a_stack_of_two_that_pushes_take_from() {
        let mut p = PoppedTpids::default();
        assert_eq!(p.take(TPID_OF_LAST_POP), 0x8100, "nothing popped");
        p.popped(0x88a8);
        p.popped(0x9100);
        // `normal` around an inner VID 0 tag: the outer one back first (second last).
        assert_eq!(p.take(TPID_OF_SECOND_LAST_POP), 0x88a8);
        assert_eq!(p.take(TPID_OF_LAST_POP), 0x9100);
        assert_eq!(p.take(TPID_OF_LAST_POP), 0x8100);
        p.popped(0x88a8);
        p.popped(0x9100);
        assert_eq!(p.take(TPID_OF_LAST_POP), 0x9100, "the top");
        assert_eq!(p.take(TPID_OF_LAST_POP), 0x88a8, "then the one below");
        assert_eq!(p.take(0x8100), 0x8100, "a real TPID is itself");
        p.popped(1);
        p.popped(2);
        p.popped(3);
        assert_eq!((p.take(TPID_OF_LAST_POP), p.take(TPID_OF_LAST_POP), p.take(TPID_OF_LAST_POP)), (3, 2, 0x8100));
    }

    #[test]
    fn received_tag_tpids_come_from_the_frame_and_stay() {
        let mut frame = [0u8; 24];
        frame[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        frame[16..18].copy_from_slice(&0x8100u16.to_be_bytes());
        let mut p = PoppedTpids::for_frame(&frame);
        p.popped(0x9100);
        assert_eq!(p.take(TPID_OF_RECEIVED_OUTER), 0x88a8);
        assert_eq!(p.take(TPID_OF_RECEIVED_OUTER), 0x88a8, "not taken off");
        assert_eq!(p.take(TPID_OF_RECEIVED_INNER), 0x8100);
        assert_eq!(p.take(TPID_OF_LAST_POP), 0x9100, "the popped ones apart");
        assert_eq!(PoppedTpids::for_frame(&frame[..14]).take(TPID_OF_RECEIVED_INNER), 0x8100, "short frame");
    }
}
