//! Ports: numbers, descriptions (`ofp_port` / OpenFlow 1.0 `ofp_phy_port`), port-status
//! and port-mod bodies.
//!
//! Port numbers are OpenFlow 1.3's 32-bit numbers everywhere in this module's types;
//! OpenFlow 1.0's 16-bit reserved ports (0xff00 and up) map to 0xffffff00 and up.

use super::Version;
use super::error::{EncodeError, OfpError};
use super::wire::{Reader, Writer};

/// `OFPP_IN_PORT`.
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
/// `OFPP_CONTROLLER`.
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
/// `OFPP_ANY` (`OFPP_NONE` in OpenFlow 1.0).
pub const OFPP_ANY: u32 = 0xffff_ffff;
/// `OFPG_ANY`: no group.
pub const OFPG_ANY: u32 = 0xffff_ffff;
/// `OFP_NO_BUFFER`.
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// A 16-bit OpenFlow 1.0 port number as a 32-bit one.
pub fn port_from_of10(p: u16) -> u32 {
    if p >= 0xff00 { 0xffff_0000 | u32::from(p) } else { u32::from(p) }
}

/// A 32-bit port number as OpenFlow 1.0's 16 bits, if it has that form.
pub fn port_to_of10(p: u32) -> Option<u16> {
    match p {
        0..0xff00 => Some(p as u16),
        0xffff_ff00.. => Some(p as u16),
        _ => None,
    }
}

pub(crate) fn read_port(r: &mut Reader, v: Version) -> Result<u32, OfpError> {
    match v {
        Version::Of10 => Ok(port_from_of10(r.u16()?)),
        Version::Of13 => r.u32(),
    }
}

/// The head `ofp_port` and `ofp_port_mod` share: port number and hardware address (1.3
/// pads both to 8-byte alignment).
fn read_port_and_addr(r: &mut Reader, v: Version) -> Result<(u32, [u8; 6]), OfpError> {
    let port_no = read_port(r, v)?;
    if v == Version::Of13 {
        r.skip(4)?;
    }
    let hw_addr = r.array()?;
    if v == Version::Of13 {
        r.skip(2)?;
    }
    Ok((port_no, hw_addr))
}

fn write_port_and_addr(w: &mut Writer, v: Version, port_no: u32, hw_addr: &[u8; 6]) -> Result<(), EncodeError> {
    write_port(w, v, port_no)?;
    if v == Version::Of13 {
        w.zeros(4);
    }
    w.bytes(hw_addr);
    if v == Version::Of13 {
        w.zeros(2);
    }
    Ok(())
}

pub(crate) fn write_port(w: &mut Writer, v: Version, p: u32) -> Result<(), EncodeError> {
    match v {
        Version::Of10 => w.u16(port_to_of10(p).ok_or(EncodeError::Invalid("port number beyond OpenFlow 1.0's range"))?),
        Version::Of13 => w.u32(p),
    }
    Ok(())
}

/// A port description. `curr_speed`/`max_speed` (kbps) exist only in OpenFlow 1.3 and
/// read back as 0 from OpenFlow 1.0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    /// At most 15 bytes (the wire field is 16 with a NUL).
    pub name: String,
    /// `OFPPC_*` bits (`PORT_DOWN` = 1, `NO_RECV` = 4, `NO_FWD` = 0x20, `NO_PACKET_IN` = 0x40).
    pub config: u32,
    /// `OFPPS_*` bits (`LINK_DOWN` = 1).
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    pub curr_speed: u32,
    pub max_speed: u32,
}

/// The wire size of one port description.
pub(crate) fn port_len(v: Version) -> usize {
    match v {
        Version::Of10 => 48,
        Version::Of13 => 64,
    }
}

impl Port {
    pub(crate) fn decode(r: &mut Reader, v: Version) -> Result<Port, OfpError> {
        let (port_no, hw_addr) = read_port_and_addr(r, v)?;
        let name = r.string(16)?;
        let mut p = Port { port_no, hw_addr, name, ..Port::default() };
        for slot in [&mut p.config, &mut p.state, &mut p.curr, &mut p.advertised, &mut p.supported, &mut p.peer] {
            *slot = r.u32()?;
        }
        if v == Version::Of13 {
            p.curr_speed = r.u32()?;
            p.max_speed = r.u32()?;
        }
        Ok(p)
    }

    pub(crate) fn encode(&self, w: &mut Writer, v: Version) -> Result<(), EncodeError> {
        write_port_and_addr(w, v, self.port_no, &self.hw_addr)?;
        w.string(&self.name, 16);
        for x in [self.config, self.state, self.curr, self.advertised, self.supported, self.peer] {
            w.u32(x);
        }
        if v == Version::Of13 {
            w.u32(self.curr_speed);
            w.u32(self.max_speed);
        }
        Ok(())
    }
}

/// Why a port-status message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortReason {
    Add,
    Delete,
    Modify,
}

/// `OFPT_PORT_STATUS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortStatus {
    pub reason: PortReason,
    pub desc: Port,
}

impl PortStatus {
    pub(crate) fn decode(r: &mut Reader, v: Version) -> Result<Self, OfpError> {
        let reason = match r.u8()? {
            0 => PortReason::Add,
            1 => PortReason::Delete,
            2 => PortReason::Modify,
            _ => return Err(OfpError::BadValue),
        };
        r.skip(7)?;
        Ok(PortStatus { reason, desc: Port::decode(r, v)? })
    }

    pub(crate) fn encode(&self, w: &mut Writer, v: Version) -> Result<(), EncodeError> {
        w.u8(self.reason as u8);
        w.zeros(7);
        self.desc.encode(w, v)
    }
}

/// `OFPT_PORT_MOD`: change the `config` bits selected by `mask`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMod {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub config: u32,
    pub mask: u32,
    pub advertise: u32,
}

impl PortMod {
    pub(crate) fn decode(r: &mut Reader, v: Version) -> Result<Self, OfpError> {
        let (port_no, hw_addr) = read_port_and_addr(r, v)?;
        let pm = PortMod { port_no, hw_addr, config: r.u32()?, mask: r.u32()?, advertise: r.u32()? };
        r.skip(4)?;
        Ok(pm)
    }

    pub(crate) fn encode(&self, w: &mut Writer, v: Version) -> Result<(), EncodeError> {
        write_port_and_addr(w, v, self.port_no, &self.hw_addr)?;
        w.u32(self.config);
        w.u32(self.mask);
        w.u32(self.advertise);
        w.zeros(4);
        Ok(())
    }
}
