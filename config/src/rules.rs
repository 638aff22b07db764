//! Typed OpenFlow-lite rules: what `ovs-ofctl add-flow` lines and the TOML `[[rule]]`
//! tables parse into. No DPDK and no flow-key layout here: the translation in
//! `ferrovs-flowcache` turns a [`Match`] into a key/mask pair and [`Action`]s into
//! datapath actions.
//!
//! Field names and semantics follow `ovs-fields(7)` and `ovs-actions(7)` of Open vSwitch
//! 3.1, with OpenFlow 1.0 (`ovs-ofctl`'s default protocol set) conventions where they
//! differ: e.g. `dl_vlan`/`dl_vlan_pcp` are folded into one masked `vlan_tci` match the
//! way `ovs-ofctl` does, and `mod_vlan_vid` on an untagged packet pushes a tag.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A value under a mask. A set mask bit means the bit must equal the value's bit.
/// Invariant kept by constructors and the parser: `value & !mask == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Masked<T> {
    pub value: T,
    pub mask: T,
}

impl Masked<u64> {
    /// Whether `x` has this value under this mask (a cookie selected by a masked cookie).
    pub fn selects(&self, x: u64) -> bool {
        x & self.mask == self.value & self.mask
    }
}

/// The match part of a rule. `None` means wildcarded.
///
/// Several OpenFlow field names share one slot, as in OVS's `struct flow`:
/// `nw_proto` also holds `arp_op`; `nw_src`/`nw_dst` also hold `arp_spa`/`arp_tpa`;
/// `tp_src`/`tp_dst` also hold `icmp_type`/`icmp_code` (and their ICMPv6 forms);
/// `nw_tos` holds `ip_dscp` (upper six bits) and `nw_ecn` (lower two) under a mask;
/// `vlan_tci` holds `dl_vlan` and `dl_vlan_pcp` (with the 0x1000 "present" bit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub in_port: Option<u32>,
    pub dl_src: Option<Masked<[u8; 6]>>,
    pub dl_dst: Option<Masked<[u8; 6]>>,
    pub dl_type: Option<u16>,
    /// TCI of the outer VLAN tag, with 0x1000 set when a tag is present; `dl_vlan=0xffff`
    /// (no tag) is `value 0, mask 0xffff`.
    pub vlan_tci: Option<Masked<u16>>,
    pub nw_src: Option<Masked<Ipv4Addr>>,
    pub nw_dst: Option<Masked<Ipv4Addr>>,
    pub ipv6_src: Option<Masked<Ipv6Addr>>,
    pub ipv6_dst: Option<Masked<Ipv6Addr>>,
    /// The 20-bit IPv6 flow label.
    pub ipv6_label: Option<Masked<u32>>,
    pub nw_proto: Option<u8>,
    pub nw_tos: Option<Masked<u8>>,
    pub nw_ttl: Option<u8>,
    /// Bits as in the flow key: 0x01 = is a fragment, 0x02 = is a later fragment.
    /// `nw_frag=no` is value 0 mask 1, `yes` 1/1, `first` 1/3, `later` 3/3, `not_later` 0/2.
    pub nw_frag: Option<Masked<u8>>,
    pub tp_src: Option<Masked<u16>>,
    pub tp_dst: Option<Masked<u16>>,
    pub tcp_flags: Option<Masked<u16>>,
    pub arp_sha: Option<Masked<[u8; 6]>>,
    pub arp_tha: Option<Masked<[u8; 6]>>,
    /// IPv6 neighbour discovery (`nd_target`, `nd_sll`, `nd_tll`): not in the flow key;
    /// see [`MatchSlot::NdTarget`](crate::MatchSlot::NdTarget).
    pub nd_target: Option<Masked<Ipv6Addr>>,
    pub nd_sll: Option<Masked<[u8; 6]>>,
    pub nd_tll: Option<Masked<[u8; 6]>>,
    /// The first MPLS label stack entry (`mpls_label`, `mpls_tc`, `mpls_bos`, `mpls_ttl`
    /// are its bits).
    pub mpls_lse: Option<Masked<u32>>,
    /// `nd_reserved` and `nd_options_type` (exact values only, as in OVS): not in the
    /// flow key either.
    pub nd_reserved: Option<u32>,
    pub nd_options_type: Option<u8>,
    /// Register matches (`reg0`..`reg15`; `xreg`/`xxreg` are stored as the registers
    /// they cover), sorted by register, none with a zero mask. Registers are pipeline
    /// state, not packet fields: see [`Registers`].
    pub regs: Vec<(u8, Masked<u32>)>,
    /// `metadata`: pipeline state like the registers.
    pub metadata: Option<Masked<u64>>,
}

/// Number of 32-bit registers (`reg0`..`reg15`).
pub const N_REGS: usize = 16;

impl Match {
    /// The match on register `n`, if any.
    pub fn reg(&self, n: u8) -> Option<Masked<u32>> {
        self.regs.iter().find(|(i, _)| *i == n).map(|&(_, m)| m)
    }

    /// Sets (or with `None` or a zero mask, clears) the match on register `n`.
    pub fn set_reg(&mut self, n: u8, m: Option<Masked<u32>>) {
        self.regs.retain(|(i, _)| *i != n);
        if let Some(m) = m.filter(|m| m.mask != 0) {
            let at = self.regs.partition_point(|(i, _)| *i < n);
            self.regs.insert(at, (n, Masked { value: m.value & m.mask, mask: m.mask }));
        }
    }

    /// Whether the rule matches on any register or the metadata.
    pub fn matches_pipeline(&self) -> bool {
        !self.regs.is_empty() || self.metadata.is_some()
    }
}

/// The pipeline state a translation carries beside the packet: the registers and the
/// metadata. OVS starts every packet that enters from a port with all of it zero; only
/// `load`, `move`, `set_field` and `write_metadata` change it, and it is never part of
/// the datapath's flow key (so a match on it never widens a megaflow's mask: the values
/// follow from the packet bits and the actions that ran before).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Registers {
    pub regs: [u32; N_REGS],
    pub metadata: u64,
}

impl Registers {
    /// The value of a register, a wider view of several, or the metadata.
    pub fn get(&self, f: crate::field::PipelineField) -> u128 {
        match f {
            crate::field::PipelineField::Metadata => self.metadata.into(),
            _ => f.regs().fold(0, |acc, r| acc << 32 | u128::from(self.regs[usize::from(r)])),
        }
    }

    /// Sets a register, a wider view of several (its value's low bits in the last
    /// register), or the metadata.
    pub fn set(&mut self, f: crate::field::PipelineField, value: u128) {
        match f {
            crate::field::PipelineField::Metadata => self.metadata = value as u64,
            _ => {
                for (k, r) in f.regs().rev().enumerate() {
                    self.regs[usize::from(r)] = (value >> (32 * k)) as u32;
                }
            }
        }
    }

    /// Whether `m`'s register and metadata matches hold for these values.
    pub fn satisfy(&self, m: &Match) -> bool {
        m.regs.iter().all(|&(i, r)| self.regs[usize::from(i)] & r.mask == r.value)
            && m.metadata.is_none_or(|md| self.metadata & md.mask == md.value)
    }
}

/// A packet field that `load` and `move` can read (and, where `PacketFieldDef::access`
/// allows, write), named as OVS's NXM fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketField {
    /// `in_port` (`NXM_OF_IN_PORT`): OpenFlow 1.0's 16-bit port number.
    InPort,
    /// `in_port_oxm` (`OXM_OF_IN_PORT`): the same port as OpenFlow 1.1's 32-bit number.
    InPortOxm,
    EthSrc,
    EthDst,
    EthType,
    VlanTci,
    /// `vlan_vid` (`OXM_OF_VLAN_VID`): the 12 VID bits of the outer TCI.
    VlanVid,
    /// `vlan_pcp` (`OXM_OF_VLAN_PCP`): the 3 PCP bits of the outer TCI.
    VlanPcp,
    IpProto,
    IpSrc,
    IpDst,
    IpTtl,
    /// `nw_tos` (`NXM_OF_IP_TOS`): the TOS byte with its ECN bits read as zero.
    IpTos,
    /// `ip_dscp` (`OXM_OF_IP_DSCP`): the six DSCP bits.
    IpDscp,
    /// `nw_ecn` / `ip_ecn` (`NXM_NX_IP_ECN`).
    IpEcn,
    /// `nw_frag` (`NXM_NX_IP_FRAG`), read-only.
    IpFrag,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    /// `tcp_flags` (`NXM_NX_TCP_FLAGS`), read-only.
    TcpFlags,
    IcmpType,
    IcmpCode,
    Icmpv6Type,
    Icmpv6Code,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    /// `mpls_label` (`OXM_OF_MPLS_LABEL`): the 20-bit label of the first MPLS entry.
    MplsLabel,
    /// `mpls_tc` (`OXM_OF_MPLS_TC`): its 3-bit traffic class.
    MplsTc,
    /// `mpls_bos` (`OXM_OF_MPLS_BOS`), read-only: its bottom-of-stack bit.
    MplsBos,
    /// `mpls_ttl` (`NXM_NX_MPLS_TTL`): its TTL.
    MplsTtl,
    /// The neighbour-discovery fields: not in the flow key, read and written per packet
    /// by the slow path.
    NdTarget,
    NdSll,
    NdTll,
    /// `nd_reserved` (`ERICOXM_OF_ICMPV6_ND_RESERVED`).
    NdReserved,
    /// `nd_options_type` (`ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE`).
    NdOptionsType,
}

/// What a `load`/`move` operand names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubfieldField {
    /// `reg0`..`reg15` (`NXM_NX_REGn`).
    Reg(u8),
    /// `xreg0`..`xreg7` (`OXM_OF_PKT_REGn`): registers 2n (high half) and 2n+1.
    Xreg(u8),
    /// `xxreg0`..`xxreg3` (`NXM_NX_XXREGn`): registers 4n (highest) to 4n+3.
    Xxreg(u8),
    /// `metadata` (`OXM_OF_METADATA`).
    Metadata,
    Packet(PacketField),
}

/// Bits `ofs..ofs + n_bits` of a field: `NXM_NX_REG0[0..15]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subfield {
    pub field: SubfieldField,
    pub ofs: u16,
    pub n_bits: u16,
}

impl Subfield {
    /// The field's bits this subfield covers, as a value of the field.
    pub fn bits(&self) -> u128 {
        let ones = if self.n_bits >= 128 { u128::MAX } else { (1u128 << self.n_bits) - 1 };
        ones << self.ofs
    }
}

/// What OVS's action check (`ofpacts_check`, run by `ovs-ofctl` on every rule) knows of
/// the packet's VLAN tags at a point of an action list: whether the outer tag and the one
/// behind it are surely there (OVS's flow holds two tags). It decides whether a VLAN field
/// may be set, whether OpenFlow 1.1+'s `mod_vlan_vid`/`mod_vlan_pcp` push a tag first, and
/// refuses a third `push_vlan` (`OFPBAC_BAD_TAG`). A `strip_vlan` uncovers the tag behind:
/// after two pushes and a strip a tag is still known to be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VlanTags {
    outer: bool,
    inner: bool,
}

impl VlanTags {
    /// At the start of a rule's actions: the outer tag is known from a match that requires
    /// the 0x1000 bit of `vlan_tci`; nothing is known of a second tag.
    pub fn of_match(m: &Match) -> Self {
        VlanTags { outer: m.vlan_tci.is_some_and(|t| t.mask & t.value & 0x1000 != 0), inner: false }
    }

    /// Whether the packet surely has a (outer) VLAN tag.
    pub fn tagged(&self) -> bool {
        self.outer
    }

    /// Applies one action of the list (nested lists are the caller's: a `clone` or
    /// `write_actions` starts from a copy). `Err` for a `push_vlan` onto two known tags.
    pub fn apply(&mut self, a: &Action) -> Result<(), &'static str> {
        match a {
            Action::PushVlan(_) => {
                if self.inner {
                    return Err("a third VLAN tag: OVS's action check holds two (OFPBAC_BAD_TAG)");
                }
                *self = VlanTags { outer: true, inner: self.outer };
            }
            // OVS marks the outer tag present; the tag pushed for it under 1.1+ is not
            // shifted into its check.
            Action::ModVlanVid(_) | Action::ModVlanPcp(_) => self.outer = true,
            Action::StripVlan => *self = VlanTags { outer: self.inner, inner: false },
            Action::Load { .. } | Action::Move { .. } => self.outer = tagged_after_write(a, self.outer),
            _ => {}
        }
        Ok(())
    }
}

/// Whether the packet surely has a VLAN tag after a `load`/`move` (`a`) when it had one
/// (`tagged`) before, as OVS's action check tracks it (it applies the write to the flow it
/// checks with): a load of the TCI's 0x1000 bit sets it to that bit, a move into that bit
/// clears it (the value is unknown), a load or move into `vlan_pcp` sets it. Other
/// actions: `tagged` unchanged.
pub fn tagged_after_write(a: &Action, tagged: bool) -> bool {
    const CFI: u128 = 0x1000;
    match *a {
        Action::Load { dst: Subfield { field: SubfieldField::Packet(PacketField::VlanTci), .. }, .. }
        | Action::Move { dst: Subfield { field: SubfieldField::Packet(PacketField::VlanTci), .. }, .. }
            if a_dst_bits(a) & CFI == 0 =>
        {
            tagged
        }
        Action::Load {
            dst: Subfield { field: SubfieldField::Packet(PacketField::VlanTci), ofs, .. }, value, ..
        } => (value << ofs) & CFI != 0,
        Action::Move { dst: Subfield { field: SubfieldField::Packet(PacketField::VlanTci), .. }, .. } => false,
        Action::Load { dst: Subfield { field: SubfieldField::Packet(PacketField::VlanPcp), .. }, .. }
        | Action::Move { dst: Subfield { field: SubfieldField::Packet(PacketField::VlanPcp), .. }, .. } => true,
        _ => tagged,
    }
}

fn a_dst_bits(a: &Action) -> u128 {
    match a {
        Action::Load { dst, .. } | Action::Move { dst, .. } => dst.bits(),
        _ => 0,
    }
}

/// A field that `set_field` (and the `mod_*` shorthands) can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetField {
    DlSrc([u8; 6]),
    DlDst([u8; 6]),
    /// VID of the outer tag (no effect on an untagged packet for `set_field`; see
    /// [`Action::ModVlanVid`] for the pushing form).
    VlanVid(u16),
    VlanPcp(u8),
    NwSrc(Ipv4Addr),
    NwDst(Ipv4Addr),
    Ipv6Src(Ipv6Addr),
    Ipv6Dst(Ipv6Addr),
    /// The 20-bit IPv6 flow label.
    Ipv6Label(u32),
    /// DSCP, as the six-bit value (`ip_dscp`); `mod_nw_tos:N` is `IpDscp(N >> 2)`.
    IpDscp(u8),
    NwEcn(u8),
    NwTtl(u8),
    TpSrc(u16),
    TpDst(u16),
}

/// Where `resubmit` looks the packet up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resubmit {
    /// `None`: keep the current in_port (`resubmit(,T)`).
    pub in_port: Option<u32>,
    /// `None`: the current table (`resubmit:PORT`).
    pub table: Option<u8>,
}

/// The port of [`Action::OutputTrunc`] written `IN_PORT` (`OFPP_IN_PORT`, in the 32-bit
/// form rules keep reserved ports in, as [`LOCAL_PORT`](crate::ports::LOCAL_PORT)).
pub const OUTPUT_TRUNC_IN_PORT: u32 = 0xffff_fff8;

/// The smallest `max_len` of [`Action::OutputTrunc`]: an Ethernet header.
pub const OUTPUT_TRUNC_MIN_LEN: u32 = 14;

/// One action of a rule, applied in order (OpenFlow 1.0 "action list" semantics).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `output:N` (or a bare port number). Output to the ingress port is dropped, as in
    /// OpenFlow; use [`Action::InPort`] for that.
    Output(u32),
    /// `output:SRC[...]`: out the port whose number is in the bits of a register or field
    /// when the action runs (a 16-bit OpenFlow port: the reserved ones, `IN_PORT`,
    /// `NORMAL`, `FLOOD`, `ALL`, `CONTROLLER`, `LOCAL` and `TABLE`, act as their actions; a
    /// larger value or a port the bridge lacks sends nothing), as OVS's `output_reg`.
    OutputReg(Subfield),
    /// `output(port=P,max_len=N)`: out port `P` (a port number, [`LOCAL_PORT`] or
    /// [`OUTPUT_TRUNC_IN_PORT`]) cut to its first `max_len` bytes (at least 14); the
    /// packet itself stays whole for the actions after it. As OVS's `output_trunc`, the
    /// ingress port and `IN_PORT` send nothing.
    ///
    /// [`LOCAL_PORT`]: crate::ports::LOCAL_PORT
    OutputTrunc { port: u32, max_len: u32 },
    /// `in_port`: send back out the ingress port.
    InPort,
    /// `flood`: every port of the bridge but the ingress port (and ports with no-flood).
    Flood,
    /// `all`: every port of the bridge but the ingress port.
    All,
    /// `normal`: VLAN-aware MAC-learning L2 switch.
    Normal,
    /// `mod_vlan_vid:V`: set the VID, pushing a tag (PCP 0) if the packet has none.
    ModVlanVid(u16),
    /// `mod_vlan_pcp:P`: set the PCP, pushing a tag (VID 0) if the packet has none.
    ModVlanPcp(u8),
    /// `strip_vlan` / `pop_vlan`.
    StripVlan,
    /// `push_vlan:TPID`.
    PushVlan(u16),
    /// `set_field:V->F` and the `mod_dl_src`, `mod_nw_dst`, `mod_tp_src`... shorthands.
    Set(SetField),
    /// `dec_ttl`: decrement TTL / hop limit; a packet whose TTL is 0 or 1 is dropped
    /// (no controller, so no ICMP time-exceeded is generated), and the rest of the
    /// actions are not executed for it.
    DecTtl,
    /// `resubmit:PORT`, `resubmit(,T)`, `resubmit(PORT,T)`.
    Resubmit(Resubmit),
    /// `controller:MAX_LEN` / `output:CONTROLLER`: send the packet (at most `max_len`
    /// bytes of it; 65535 = all) to the bridge's OpenFlow controllers as a packet-in.
    Controller { max_len: u16 },
    /// `group:G`: the actions of group G of the bridge (OpenFlow 1.1+ groups; `all`:
    /// every bucket on its own copy of the packet, `indirect`: the one bucket).
    Group(u32),
    /// `goto_table:T`: continue in table T after this rule's actions (T must be greater
    /// than the current table).
    GotoTable(u8),
    /// `load:VALUE->DST[...]` (Nicira `NXAST_REG_LOAD`), or with `set_field` true the
    /// OpenFlow 1.2+ `set_field:VALUE->FIELD` of a whole register or the metadata
    /// (printed so under OpenFlow 1.3, as `load` under 1.0, as `ovs-ofctl` does).
    /// `value` is already shifted down: it fills `dst`'s `n_bits`.
    Load { dst: Subfield, value: u128, set_field: bool },
    /// `move:SRC[...]->DST[...]` (Nicira `NXAST_REG_MOVE`); both have `n_bits` bits.
    Move { src: Subfield, dst: Subfield },
    /// The OpenFlow 1.1+ `write_metadata:VALUE[/MASK]` instruction: after the other
    /// actions (before `goto_table`), the metadata bits under `mask` become `value`'s.
    WriteMetadata { value: u64, mask: u64 },
    /// `note:HH.HH...`: bytes for the controller's eyes, padded as `ovs-ofctl` encodes
    /// them; does nothing to the packet.
    Note(Vec<u8>),
    /// `clone(ACTIONS)`: the actions on a copy of the packet (and of the registers);
    /// afterwards the packet is as it was before them.
    Clone(Vec<Action>),
    /// The OpenFlow 1.1+ `clear_actions` instruction: empties the action set (after the
    /// rule's other actions, before its `write_actions`).
    ClearActions,
    /// The OpenFlow 1.1+ `write_actions(ACTIONS)` instruction: adds the actions to the
    /// action set, which runs when the pipeline ends, in OVS's fixed order, at most one
    /// action of each kind (see ovs-actions(7) "The action set"; the translator's
    /// `action_set` module).
    WriteActions(Vec<Action>),
}

/// The OpenFlow group types ferrovs supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// Every bucket, each on its own copy of the packet, in order (flooding).
    All,
    /// The one bucket (a shared next hop).
    Indirect,
}

/// One group of a bridge: what `group:ID` does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    pub kind: GroupKind,
    /// Each bucket's actions (no `goto_table`); `Indirect` has exactly one.
    pub buckets: Vec<Vec<Action>>,
}

/// A bridge's groups by id.
pub type Groups = std::collections::BTreeMap<u32, Group>;

/// The largest group id (`OFPG_MAX`); the ids above are reserved (`ALL`, `ANY`).
pub const OFPG_MAX: u32 = 0xffff_ff00;

/// Why a group (or a change of one) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("already exists")]
    Exists,
    #[error("does not exist")]
    Unknown,
    #[error("is a reserved group id")]
    Invalid,
    #[error("an indirect group has exactly one bucket")]
    IndirectBuckets,
    #[error("a bucket may not contain goto_table")]
    BadBucketAction,
}

impl Group {
    /// Whether this is a valid group `id`: an id up to [`OFPG_MAX`], one bucket when
    /// indirect, no `goto_table` in a bucket (as OVS checks a group-mod).
    pub fn check(&self, id: u32) -> Result<(), GroupError> {
        if id > OFPG_MAX {
            return Err(GroupError::Invalid);
        }
        if self.kind == GroupKind::Indirect && self.buckets.len() != 1 {
            return Err(GroupError::IndirectBuckets);
        }
        if self.buckets.iter().flatten().any(|a| matches!(a, Action::GotoTable(_))) {
            return Err(GroupError::BadBucketAction);
        }
        Ok(())
    }
}

impl Rule {
    /// The groups this rule's actions name.
    pub fn groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.actions.iter().filter_map(|a| if let Action::Group(g) = a { Some(*g) } else { None })
    }
}

/// One OpenFlow-lite rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub table: u8,
    /// 0..=65535; `ovs-ofctl`'s default is 32768.
    pub priority: u16,
    pub cookie: u64,
    /// Seconds; 0 = never.
    pub idle_timeout: u16,
    /// Seconds; 0 = never.
    pub hard_timeout: u16,
    /// `send_flow_rem` (`OFPFF_SEND_FLOW_REM`): tell the bridge's controllers when the
    /// rule expires or is deleted by a flow-mod.
    pub send_flow_rem: bool,
    pub matches: Match,
    /// Empty = drop.
    pub actions: Vec<Action>,
}

/// Where a piece of input came from, for error messages: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Rule {
    /// The default priority of `ovs-ofctl add-flow`.
    pub const DEFAULT_PRIORITY: u16 = 32768;

    /// A rule of table 0 with `ovs-ofctl add-flow`'s defaults (priority 32768, no cookie,
    /// no timeouts, no flags).
    pub fn new(matches: Match, actions: Vec<Action>) -> Rule {
        Rule {
            table: 0,
            priority: Rule::DEFAULT_PRIORITY,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
            matches,
            actions,
        }
    }
}
