//! OpenFlow errors: what the switch answers a message it cannot accept with.
//!
//! [`OfpError`] names one error independently of the protocol version; [`OfpError::wire`]
//! gives the `(type, code)` pair that OVS sends for it in a given version (OpenFlow 1.0
//! lacks many types, and OVS fills the gaps with Nicira codes such as `(1,523)` for a bad
//! set-field type; see `ovs-ofctl ofp-print` of an error message). A [`DecodeError`] is
//! an `OfpError` together with the first 64 bytes of the message that caused it, which
//! is exactly what goes into the `OFPT_ERROR` reply ([`DecodeError::to_reply`]).

use super::{Body, ErrorMsg, Message, Version};

/// One OpenFlow error condition, named after OVS's `OFPERR_*` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfpError {
    /// `OFPHFC_INCOMPATIBLE`: no common version.
    HelloIncompatible,
    /// `OFPBRC_BAD_VERSION`.
    BadVersion,
    /// `OFPBRC_BAD_TYPE`: unknown message type.
    BadType,
    /// `OFPBRC_BAD_STAT` / `OFPBRC_BAD_MULTIPART`: unknown statistics type.
    BadStat,
    /// `OFPBRC_BAD_VENDOR` / `BAD_EXPERIMENTER`: unknown vendor id.
    BadVendor,
    /// `OFPBRC_BAD_SUBTYPE` / `BAD_EXP_TYPE`: unknown vendor message subtype.
    BadSubtype,
    /// `OFPBRC_BAD_LEN`: wrong length for the message type.
    BadLen,
    /// `OFPBRC_BAD_TABLE_ID`.
    BadTableId,
    /// `OFPBRC_BAD_PORT`.
    BadPort,
    /// `OFPBAC_BAD_TYPE`: unknown action type.
    BadActionType,
    /// `OFPBAC_BAD_LEN`.
    BadActionLen,
    /// `OFPBAC_BAD_VENDOR`.
    BadActionVendor,
    /// `OFPBAC_BAD_VENDOR_TYPE`: unknown Nicira action subtype.
    BadActionVendorType,
    /// `OFPBAC_BAD_OUT_PORT`.
    BadActionOutPort,
    /// `OFPBAC_BAD_ARGUMENT`.
    BadActionArgument,
    /// `OFPBAC_BAD_OUT_GROUP`: a group action naming a group the switch lacks (1.3).
    BadOutGroup,
    /// `OFPBAC_BAD_SET_TYPE`: set-field of an unknown or unsettable field.
    BadSetType,
    /// `OFPBAC_BAD_SET_LEN`.
    BadSetLen,
    /// `OFPBAC_BAD_SET_ARGUMENT`.
    BadSetArgument,
    /// `OFPBIC_UNKNOWN_INST`.
    UnknownInstruction,
    /// `OFPBIC_UNSUP_INST`: known but not supported (e.g. meter).
    UnsupportedInstruction,
    /// `OFPBIC_BAD_LEN`.
    BadInstructionLen,
    /// `OFPBMC_BAD_TYPE`: not an OXM match.
    BadMatchType,
    /// `OFPBMC_BAD_LEN`.
    BadMatchLen,
    /// `OFPBMC_BAD_WILDCARDS`.
    BadWildcards,
    /// `OFPBMC_BAD_FIELD`: unknown or unsupported field.
    BadField,
    /// `OFPBMC_BAD_VALUE`.
    BadValue,
    /// `OFPBMC_BAD_MASK`: a mask on a field that takes none, or bits outside the value.
    BadMask,
    /// `OFPBMC_BAD_PREREQ`.
    BadPrereq,
    /// `OFPBMC_DUP_FIELD`.
    DupField,
    /// `OFPFMFC_BAD_COMMAND`.
    FlowModBadCommand,
    /// `OFPFMFC_BAD_FLAGS`.
    FlowModBadFlags,
    /// `OFPGMFC_BAD_TYPE`.
    GroupModBadType,
    /// `OFPGMFC_BAD_COMMAND`.
    GroupModBadCommand,
    /// `OFPGMFC_BAD_BUCKET`.
    GroupModBadBucket,
    /// `OFPMMFC_INVALID_METER`: what OVS answers a meter add or modify when its
    /// datapath has no meters.
    InvalidMeter,
    /// `OFPMMFC_BAD_COMMAND`.
    MeterModBadCommand,
    /// `OFPMMFC_BAD_FLAGS`: both `KBPS` and `PKTPS`.
    MeterModBadFlags,
    /// `OFPPMFC_BAD_PORT`.
    PortModBadPort,
    /// `OFPRRFC_BAD_ROLE`.
    BadRole,
    /// `NXBRC_UNENCODABLE_ERROR`: what OpenFlow 1.0 gets for an error it has no code for.
    Unencodable,
}

/// `(OpenFlow 1.0 pair, OpenFlow 1.3 pair)`; `None` where the version has no code.
type WirePairs = (Option<(u16, u16)>, Option<(u16, u16)>);

impl OfpError {
    const ALL: [OfpError; 41] = {
        use OfpError::*;
        [
            HelloIncompatible,
            BadVersion,
            BadType,
            BadStat,
            BadVendor,
            BadSubtype,
            BadLen,
            BadTableId,
            BadPort,
            BadActionType,
            BadActionLen,
            BadActionVendor,
            BadActionVendorType,
            BadActionOutPort,
            BadActionArgument,
            BadOutGroup,
            BadSetType,
            BadSetLen,
            BadSetArgument,
            UnknownInstruction,
            UnsupportedInstruction,
            BadInstructionLen,
            BadMatchType,
            BadMatchLen,
            BadWildcards,
            BadField,
            BadValue,
            BadMask,
            BadPrereq,
            DupField,
            FlowModBadCommand,
            FlowModBadFlags,
            GroupModBadType,
            GroupModBadCommand,
            GroupModBadBucket,
            InvalidMeter,
            MeterModBadCommand,
            MeterModBadFlags,
            PortModBadPort,
            BadRole,
            Unencodable,
        ]
    };

    fn pairs(self) -> WirePairs {
        use OfpError::*;
        let both = |t, c| (Some((t, c)), Some((t, c)));
        match self {
            HelloIncompatible => both(0, 0),
            BadVersion => both(1, 0),
            BadType => both(1, 1),
            BadStat => both(1, 2),
            BadVendor => both(1, 3),
            BadSubtype => both(1, 4),
            BadLen => both(1, 6),
            BadTableId => (Some((1, 512)), Some((1, 9))),
            BadPort => (Some((1, 514)), Some((1, 11))),
            BadActionType => both(2, 0),
            BadActionLen => both(2, 1),
            BadActionVendor => both(2, 2),
            BadActionVendorType => both(2, 3),
            BadActionOutPort => both(2, 4),
            BadActionArgument => both(2, 5),
            BadOutGroup => (None, Some((2, 9))),
            BadSetType => (Some((1, 523)), Some((2, 13))),
            BadSetLen => (Some((1, 524)), Some((2, 14))),
            BadSetArgument => (Some((1, 525)), Some((2, 15))),
            UnknownInstruction => (None, Some((3, 0))),
            UnsupportedInstruction => (Some((2, 257)), Some((3, 1))),
            BadInstructionLen => (None, Some((3, 7))),
            BadMatchType => (None, Some((4, 0))),
            BadMatchLen => (None, Some((4, 1))),
            BadWildcards => (Some((1, 262)), Some((4, 5))),
            BadField => (Some((0, 263)), Some((4, 6))),
            BadValue => (Some((1, 258)), Some((4, 7))),
            BadMask => (Some((1, 259)), Some((4, 8))),
            BadPrereq => (Some((1, 260)), Some((4, 9))),
            DupField => (Some((1, 261)), Some((4, 10))),
            FlowModBadCommand => (Some((3, 4)), Some((5, 6))),
            FlowModBadFlags => (Some((3, 258)), Some((5, 7))),
            GroupModBadType => (None, Some((6, 10))),
            GroupModBadCommand => (None, Some((6, 11))),
            GroupModBadBucket => (None, Some((6, 12))),
            InvalidMeter => (None, Some((12, 2))),
            MeterModBadCommand => (None, Some((12, 4))),
            MeterModBadFlags => (None, Some((12, 5))),
            PortModBadPort => (Some((4, 0)), Some((7, 0))),
            BadRole => (Some((1, 513)), Some((11, 2))),
            Unencodable => (Some((1, 521)), None),
        }
    }

    /// The `(type, code)` OVS sends for this error in `version`. Errors OpenFlow 1.0
    /// has no code for become `NXBRC_UNENCODABLE_ERROR` there.
    pub fn wire(self, version: Version) -> (u16, u16) {
        let (of10, of13) = self.pairs();
        match version {
            Version::Of10 => of10.unwrap_or((1, 521)),
            // Only `Unencodable` lacks an OpenFlow 1.3 pair (OVS sends it as a Nicira
            // experimenter error there); nothing produces it for 1.3, and should
            // something, `OFPBRC_BAD_TYPE` is the nearest standard code.
            Version::Of13 => of13.unwrap_or((1, 1)),
        }
    }

    /// The error a received `(type, code)` pair names, if it is one of ours.
    pub fn from_wire(version: Version, err_type: u16, code: u16) -> Option<OfpError> {
        Self::ALL.into_iter().find(|e| {
            let (of10, of13) = e.pairs();
            let pair = if version == Version::Of10 { of10 } else { of13 };
            pair == Some((err_type, code))
        })
    }
}

/// Why a received message could not be decoded: the error to answer with and the
/// first 64 bytes of the message (the `data` of the `OFPT_ERROR` reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub error: OfpError,
    /// The version of the offending message's header, when it is one we speak.
    pub version: Option<Version>,
    pub xid: u32,
    pub data: Vec<u8>,
}

/// How many bytes of an offending message an error reply carries.
pub const ERROR_DATA_LEN: usize = 64;

impl DecodeError {
    pub(crate) fn new(error: OfpError, msg: &[u8]) -> Self {
        let version = msg.first().and_then(|&v| Version::from_wire(v));
        let xid = msg.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
        DecodeError { error, version, xid, data: msg[..msg.len().min(ERROR_DATA_LEN)].to_vec() }
    }

    /// The `OFPT_ERROR` message to send back on a connection that negotiated
    /// `version` (OVS answers in the connection's version even when the offending
    /// message claimed another), with the offending message's xid.
    pub fn to_reply(&self, version: Version) -> Message {
        let (err_type, code) = self.error.wire(version);
        Message { version, xid: self.xid, body: Body::Error(ErrorMsg { err_type, code, data: self.data.clone() }) }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot decode OpenFlow message: {:?}", self.error)
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded: it uses something the chosen version cannot
/// express, or a length does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0} cannot be expressed in OpenFlow {1}")]
    Unsupported(&'static str, Version),
    #[error("{0} is too long for its length field")]
    TooLong(&'static str),
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

/// `n` as a u16 length field.
pub(crate) fn len16(n: usize, what: &'static str) -> Result<u16, EncodeError> {
    u16::try_from(n).map_err(|_| EncodeError::TooLong(what))
}
