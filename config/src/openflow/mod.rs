//! A sans-IO OpenFlow codec: bytes in, typed messages out, and back. OpenFlow 1.0
//! (wire version 0x01) and 1.3 (0x04), plus the Nicira extensions the unmodified
//! `ovs-ofctl` needs for its everyday work. No sockets, threads or clocks: a
//! connection layer feeds received bytes to [`next_message_len`] / [`decode`] and
//! writes what [`encode`] returns.
//!
//! TODO(doc): the exchange list is filled in below.

mod action;
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
    AsyncConfig, Body, ErrorMsg, FeaturesReply, FlowFormat, GroupMod, GroupModCommand, Hello, Message, PacketIn,
    PacketInFormat, PacketOut, Role, SwitchConfig, TableMod, Version, decode, encode, negotiate, next_message_len,
};
pub use multipart::{
    Bucket, Desc, GroupDesc, GroupStats, GroupType, MpReply, MpRequest, MultipartReply, MultipartRequest, PortStats,
    TableFeatures, TableStats,
};
pub use port::{
    NO_BUFFER, OFPG_ANY, OFPP_ANY, OFPP_CONTROLLER, OFPP_IN_PORT, Port, PortMod, PortReason, PortStatus,
    port_from_of10, port_to_of10,
};
