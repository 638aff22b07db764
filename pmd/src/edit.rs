//! Packet edits of datapath actions that the PMD applies itself.
//!
//! The layer-2 edits live here because two of them change the frame's length (VLAN push
//! and pop need the mbuf's headroom), which only the PMD can do. Edits of L3/L4 fields
//! (addresses, ports, TTL, DSCP/ECN, with checksum updates) are plain rewrites of bytes and
//! belong with the flow code: the switch takes them through a [`FrameEditor`] function
//! given in the options; without one, packets that need them are dropped and counted as
//! `drop_unsupported`, never forwarded unedited.

use ferrovs_dpdk::Mbuf;
use ferrovs_flowcache::actions::DpAction;

/// Result of applying one edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditResult {
    /// The frame was edited (or the action did not apply to it, e.g. no VLAN tag).
    Done,
    /// The action drops the packet (e.g. DecTtl on TTL 0 or 1).
    Drop,
    /// This editor does not implement the action.
    Unsupported,
}

/// An in-place editor for the actions that do not change the frame's length.
pub type FrameEditor = fn(&mut [u8], &DpAction) -> EditResult;

const ETH_HDR: usize = 14;

fn is_vlan_tpid(t: u16) -> bool {
    t == 0x8100 || t == 0x88a8
}

/// Inserts an outer 802.1Q tag. `false` if the frame is not Ethernet or the headroom is
/// too small (the packet is unchanged).
pub fn push_vlan(m: &mut Mbuf, tpid: u16, tci: u16) -> bool {
    if m.data().len() < 12 {
        return false;
    }
    let Some(d) = m.prepend(4) else { return false };
    d.copy_within(4..16, 0);
    d[12..14].copy_from_slice(&tpid.to_be_bytes());
    // The 0x1000 "present" bit of the key's TCI is not part of the wire TCI.
    d[14..16].copy_from_slice(&(tci & !0x1000).to_be_bytes());
    true
}

/// Removes the outer VLAN tag, if there is one. `false` only if the mbuf cannot be edited.
pub fn pop_vlan(m: &mut Mbuf) -> bool {
    {
        let Some(d) = m.data_mut() else { return false };
        if d.len() < ETH_HDR + 4 || !is_vlan_tpid(u16::from_be_bytes([d[12], d[13]])) {
            return true;
        }
        d.copy_within(0..12, 4);
    }
    m.adj(4)
}

/// Applies the L2 in-place edits (Ethernet addresses, VLAN VID/PCP) and, for the rest,
/// `editor` if given.
pub fn apply_in_place(frame: &mut [u8], action: &DpAction, editor: Option<FrameEditor>) -> EditResult {
    if frame.len() < ETH_HDR {
        return EditResult::Done;
    }
    let tagged = is_vlan_tpid(u16::from_be_bytes([frame[12], frame[13]])) && frame.len() >= ETH_HDR + 4;
    match *action {
        DpAction::SetEthDst(mac) => frame[0..6].copy_from_slice(&mac),
        DpAction::SetEthSrc(mac) => frame[6..12].copy_from_slice(&mac),
        DpAction::SetVlanVid(vid) if tagged => {
            let tci = u16::from_be_bytes([frame[14], frame[15]]);
            frame[14..16].copy_from_slice(&((tci & !0x0fff) | (vid & 0x0fff)).to_be_bytes());
        }
        DpAction::SetVlanPcp(pcp) if tagged => {
            let tci = u16::from_be_bytes([frame[14], frame[15]]);
            frame[14..16].copy_from_slice(&((tci & 0x1fff) | (((pcp & 7) as u16) << 13)).to_be_bytes());
        }
        DpAction::SetVlanVid(_) | DpAction::SetVlanPcp(_) => {}
        _ => {
            return match editor {
                Some(e) => e(frame, action),
                None => EditResult::Unsupported,
            };
        }
    }
    EditResult::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real 802.1Q-tagged frame: dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb, TCI
    // PCP 5 / VID 100, then IPv4.
    const TAGGED: [u8; 20] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x81, 0x00, 0xa0, 0x64, 0x08, 0x00,
        0x45, 0x00,
    ];

    #[test]
    fn vlan_vid_and_pcp_rewrite_keep_the_other_bits() {
        let mut f = TAGGED;
        assert_eq!(apply_in_place(&mut f, &DpAction::SetVlanVid(0xabc), None), EditResult::Done);
        assert_eq!(&f[14..16], &[0xaa, 0xbc]);
        assert_eq!(apply_in_place(&mut f, &DpAction::SetVlanPcp(1), None), EditResult::Done);
        assert_eq!(&f[14..16], &[0x2a, 0xbc]);
        assert_eq!(&f[16..], &TAGGED[16..]);
    }

    #[test]
    fn untagged_vlan_edits_change_nothing() {
        let mut f = [0u8; 20];
        f[12] = 0x08;
        let before = f;
        apply_in_place(&mut f, &DpAction::SetVlanVid(5), None);
        assert_eq!(f, before);
    }

    #[test]
    fn mac_rewrites_and_unsupported_without_editor() {
        let mut f = TAGGED;
        apply_in_place(&mut f, &DpAction::SetEthDst([1, 2, 3, 4, 5, 6]), None);
        apply_in_place(&mut f, &DpAction::SetEthSrc([7, 8, 9, 10, 11, 12]), None);
        assert_eq!(&f[0..12], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(apply_in_place(&mut f, &DpAction::SetTtl(3), None), EditResult::Unsupported);
        fn drop_all(_: &mut [u8], _: &DpAction) -> EditResult {
            EditResult::Drop
        }
        assert_eq!(apply_in_place(&mut f, &DpAction::DecTtl, Some(drop_all)), EditResult::Drop);
    }
}
