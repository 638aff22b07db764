//! A sans-IO OpenFlow codec: bytes in, typed messages out, and back. OpenFlow 1.0
//! (wire version 0x01) and 1.3 (0x04), plus the Nicira extensions the unmodified
//! `ovs-ofctl` needs for its everyday work. No sockets, threads or clocks: a
//! connection layer feeds received bytes to [`next_message_len`] (framing) and
//! [`decode`], and writes what [`encode`] returns.
//!
//! # Using it
//!
//! - Framing: [`next_message_len`] says how many bytes the next message needs.
//! - [`decode`]`(&[u8]) -> Result<(Message, usize), DecodeError>` never panics (it is
//!   the fuzz entry point). A [`DecodeError`] is the [`OfpError`] OVS would answer with
//!   plus the first 64 bytes of the message; [`DecodeError::to_reply`] builds that
//!   `OFPT_ERROR`. [`OfpError::wire`] gives OVS's `(type, code)` per version,
//!   including OVS's Nicira codes in OpenFlow 1.0 (e.g. bad match field = `(0,263)`).
//! - Version negotiation: send [`Hello::offering`]`(&[Of10, Of13])`, then
//!   [`negotiate`] with the peer's hello (highest common version; a hello without
//!   bitmap offers every version up to its header's, as in OpenFlow 1.0).
//! - [`encode`] refuses ([`EncodeError`]) what the message's version cannot express.
//!
//! # Design
//!
//! One set of types for both versions, shaped for conversion into the rule model:
//! a [`Match`] is a list of [`MatchField`]s (field, value, optional mask) whatever the
//! wire form (1.0 `ofp_match`, 1.3 OXM, Nicira NXM), with [`Field`] named after
//! `ovs-fields(7)`; [`FlowMod`] carries [`Instruction`]s in both versions (1.0's action
//! list is one `ApplyActions`). Where two wire forms mean the same thing they are one
//! variant (`Output`, `PopVlan`); where they differ they stay apart (1.0
//! `SetVlanVid` vs 1.3 `SetField(vlan_vid)`, `vlan_tci` vs `vlan_vid`, `nw_tos` vs
//! `ip_dscp`, Nicira `NxDecTtl` vs `DecNwTtl`), so encoding a decoded message gives
//! back the same bytes — every message `ovs-ofctl` sent in the captures below does.
//! Port numbers are always OpenFlow 1.3's 32-bit numbers ([`port_from_of10`]).
//! Fields a version lacks read back as documented defaults and must keep them.
//!
//! Semantic checks stay with the rule model: prerequisites (`tcp_dst` without
//! `ip_proto=6`), port and table existence, action consistency. The codec checks
//! what the wire says: lengths, known types and fields, masks only where allowed,
//! no value bit outside its mask or field, no duplicate field.
//!
//! Connection state the next layer must keep, because it changes how messages mean:
//! the flow format (`NXT_SET_FLOW_FORMAT`: after `nxm`, flow stats requests arrive as
//! `NXST_FLOW` and must be answered with `NXST_FLOW` replies), whether
//! `NXT_FLOW_MOD_TABLE_ID` enabled table ids in 1.0 flow-mods (otherwise
//! `FlowMod::table_id` from a 1.0 / Nicira flow-mod means nothing: add to table 0,
//! delete from all tables), and the packet-in format (`NXT_SET_PACKET_IN_FORMAT`).
//!
//! # What `ovs-ofctl` sends (3.1.0)
//!
//! Captured with `config/tests/openflow_golden/capture-all.sh` against a minimal
//! switch; the bytes are in that directory and pinned by `tests/openflow_golden.rs`.
//! `|` separates connections: `ovs-ofctl` opens a new connection for each lookup
//! (table names, port names) and for the change itself. Every connection starts with
//! HELLO both ways (1.0: version 1, no bitmap; 1.3: version 4, bitmap {1.3}).
//! `ovs-ofctl` waits for each BARRIER reply; an `OFPT_ERROR` instead fails the command.
//!
//! OpenFlow 1.0 (the default):
//!
//! | subcommand | messages sent |
//! |---|---|
//! | `add-flow`, `mod-flows`, `del-flows` (`--strict`), `packet-out` | `OFPST_TABLE` \| `FEATURES_REQUEST` \| `FLOW_MOD` (or `PACKET_OUT`), `BARRIER_REQUEST` |
//! | same, when the rule needs NXM (registers, `nw_ttl`, IPv6, masked MACs, Nicira load/move of IPv6...) | ... \| `NXT_SET_FLOW_FORMAT(nxm)`, `BARRIER_REQUEST`, `NXT_FLOW_MOD`, `BARRIER_REQUEST` |
//! | same, with `table=N` given | ... \| `NXT_FLOW_MOD_TABLE_ID(enable)`, `BARRIER_REQUEST`, then the flow-mod (table in `command`'s high byte) |
//! | `dump-flows` | `NXT_SET_FLOW_FORMAT(nxm)`, `BARRIER_REQUEST`, `NXST_FLOW` request; with a match argument first `FEATURES_REQUEST` \| `OFPST_TABLE` \| |
//! | `dump-aggregate` | `NXT_SET_FLOW_FORMAT(nxm)`, `BARRIER_REQUEST`, `NXST_AGGREGATE` request |
//! | `show` | `FEATURES_REQUEST` (the 1.0 reply lists the ports) \| `GET_CONFIG_REQUEST` |
//! | `dump-ports` / `dump-ports-desc` / `dump-tables` | `OFPST_PORT(ANY)` / `OFPST_PORT_DESC` (type 13, an OVS extension in 1.0) / `OFPST_TABLE` |
//! | `mod-port P down` | `FEATURES_REQUEST` (port number and MAC) \| `PORT_MOD`, `BARRIER_REQUEST` |
//! | `dump-desc` | `OFPST_DESC` |
//! | `monitor SW 65534` | `GET_CONFIG_REQUEST`, `SET_CONFIG(miss_send_len=65534)`, `BARRIER_REQUEST`, `NXT_SET_PACKET_IN_FORMAT(nxt_packet_in2)`, `BARRIER_REQUEST` |
//!
//! OpenFlow 1.3 (`-O OpenFlow13`); no Nicira setup messages: NXM-only fields travel in
//! the OXM list under their NXM headers, Nicira actions inline:
//!
//! | subcommand | messages sent |
//! |---|---|
//! | `add-flow`, `mod-flows`, `del-flows` (`--strict`), `add-group`, `del-groups`, `packet-out` | `OFPMP_TABLE_FEATURES` (empty) \| `OFPMP_PORT_DESC` \| `FLOW_MOD` (or `GROUP_MOD` / `PACKET_OUT`), `BARRIER_REQUEST` |
//! | `dump-flows` | `OFPMP_FLOW` (all tables); with a match first `OFPMP_PORT_DESC` \| `OFPMP_TABLE_FEATURES` \| |
//! | `dump-aggregate` | `OFPMP_AGGREGATE` |
//! | `show` | `FEATURES_REQUEST`, `OFPMP_PORT_DESC` \| `GET_CONFIG_REQUEST` |
//! | `dump-ports` / `dump-ports-desc` / `dump-tables` | `OFPMP_PORT_STATS(ANY)` / `OFPMP_PORT_DESC` / `OFPMP_TABLE` |
//! | `dump-groups` / `dump-group-stats` | `OFPMP_GROUP_DESC` / `OFPMP_TABLE_FEATURES` \| `OFPMP_PORT_DESC` \| `OFPMP_GROUP(ALL)` |
//! | `mod-port P down` | `OFPMP_PORT_DESC` \| `PORT_MOD`, `BARRIER_REQUEST` |
//! | `dump-desc` | `OFPMP_DESC` |
//! | `monitor SW 65534` | as in 1.0: `GET_CONFIG_REQUEST`, `SET_CONFIG`, `BARRIER_REQUEST`, `NXT_SET_PACKET_IN_FORMAT(nxt_packet_in2)`, `BARRIER_REQUEST` |
//!
//! What the switch must answer for `ovs-ofctl` to carry on (learned while capturing):
//! ECHO, FEATURES (1.0: with ports), GET_CONFIG, BARRIER, and every statistics request
//! with a well-formed reply: an aggregate reply needs its 24-byte body (an empty one is
//! rejected), and a 1.3 table-features reply must carry, per table, the eight required
//! properties (instructions, next tables, write/apply actions, match, wildcards,
//! write/apply set-field), else `ovs-ofctl` gives up. `tests/openflow_replies.rs` pins
//! replies that `ovs-ofctl ofp-print` accepts. `ovs-ofctl` never sent ROLE or ECHO in
//! these captures (controllers do). `monitor` asks for `NXT_PACKET_IN2` packet-ins,
//! which this codec cannot encode: either the encoder learns `NXT_PACKET_IN2` or the
//! connection layer answers that request with an error (whether `monitor` then falls
//! back to standard packet-ins was not checked).
//!
//! # Not covered
//!
//! OpenFlow 1.1, 1.2, 1.4+; meters (the meter instruction and meter-mod are decoded,
//! a meter-mod's bands and the meter statistics/config replies kept as bytes); MPLS and PBB actions (refused as `OFPBAC_BAD_TYPE`; MPLS match fields are
//! decoded); queue configuration; bundles; `NXT_PACKET_IN`/`NXT_PACKET_IN2` bodies;
//! flow monitors; experimenter OXM classes (e.g. ONF `tcp_flags` in 1.3; OVS's NXM
//! `tcp_flags` is supported); `NXM_NX_COOKIE` (cookie masks in 1.0 NXM flow-mods);
//! Nicira actions other than resubmit, dec_ttl, note, load, load2, move, output_reg,
//! pop_queue and clone; table-features properties are kept as raw bytes.

mod action;
pub mod convert;
mod error;
mod field;
mod flow;
mod match10;
mod msg;
mod multipart;
mod port;
mod wire;

pub use action::{Action, FieldSlice, Instruction, NX_VENDOR_ID};
pub use error::{DecodeError, ERROR_DATA_LEN, EncodeError, OfpError};
pub use field::{Field, Match, MatchField, N_REGS};
pub use flow::{
    AggregateStats, FlowMod, FlowModCommand, FlowRemoved, FlowRemovedReason, FlowStats, FlowStatsRequest,
    OFPFF_CHECK_OVERLAP, OFPFF_SEND_FLOW_REM, OFPFF10_EMERG, OFPFF13_NO_BYT_COUNTS, OFPFF13_NO_PKT_COUNTS,
    OFPFF13_RESET_COUNTS,
};
pub use msg::{
    AsyncConfig, Body, ErrorMsg, FeaturesReply, FlowFormat, GroupMod, GroupModCommand, Hello, METER_BAND_LEN, Message,
    MeterMod, MeterModCommand, PacketIn, PacketInFormat, PacketOut, Role, SwitchConfig, TableMod, Version, decode,
    encode, negotiate, next_message_len,
};
pub use multipart::{
    Bucket, Desc, GroupDesc, GroupStats, GroupType, MeterFeatures, MpReply, MpRequest, MultipartReply,
    MultipartRequest, PortStats, TableFeatures, TableStats,
};
pub use port::{
    NO_BUFFER, OFPG_ANY, OFPP_ANY, OFPP_CONTROLLER, OFPP_IN_PORT, Port, PortMod, PortReason, PortStatus,
    port_from_of10, port_to_of10,
};
