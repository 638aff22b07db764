//! A read-only look into a frame for classifying differences: VLAN tags, the L3
//! header, fragments, the L4 header. Written independently of ferrovs's parser (it only
//! serves to name a difference, never to decide what is right).

/// IPv6 extension headers (type, offset), the upper-layer protocol and its offset.
type Ipv6Chain = (Vec<(u8, usize)>, u8, usize);

pub struct View<'a> {
    pub bytes: &'a [u8],
    tags: usize,
    dei: bool,
    ethertype: u16,
    l3: usize,
}

impl<'a> View<'a> {
    pub fn parse(bytes: &'a [u8]) -> View<'a> {
        let mut at = 12;
        let mut tags = 0;
        let mut dei = false;
        let mut ethertype = 0;
        while at + 2 <= bytes.len() {
            ethertype = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            if (ethertype == 0x8100 || ethertype == 0x88a8) && at + 4 <= bytes.len() {
                tags += 1;
                dei |= bytes[at + 2] & 0x10 != 0;
                at += 4;
            } else {
                at += 2;
                break;
            }
        }
        View { bytes, tags, dei, ethertype, l3: at }
    }

    pub fn vlan_tags(&self) -> usize {
        self.tags
    }

    pub fn any_dei(&self) -> bool {
        self.dei
    }

    pub fn is_ip(&self) -> bool {
        self.ethertype == 0x0800 || self.ethertype == 0x86dd
    }

    fn ipv4(&self) -> Option<&'a [u8]> {
        let h = self.bytes.get(self.l3..)?;
        (self.ethertype == 0x0800 && h.len() >= 20 && h[0] >> 4 == 4).then_some(h)
    }

    pub fn ipv4_proto(&self) -> Option<u8> {
        self.ipv4().map(|h| h[9])
    }

    pub fn ipv4_later_fragment(&self) -> bool {
        self.ipv4().is_some_and(|h| u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0)
    }

    pub fn ipv4_header_checksum_ok(&self) -> bool {
        let Some(h) = self.ipv4() else { return true };
        let ihl = (h[0] & 0x0f) as usize * 4;
        if ihl < 20 || h.len() < ihl {
            return true;
        }
        let mut s: u32 = h[..ihl].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s == 0xffff
    }

    /// Where the L4 header starts (IPv4 only).
    pub fn l4_offset(&self) -> Option<usize> {
        let h = self.ipv4()?;
        let ihl = (h[0] & 0x0f) as usize * 4;
        (ihl >= 20 && h.len() >= ihl).then_some(self.l3 + ihl)
    }

    pub fn l4_bytes(&self) -> &'a [u8] {
        self.l4_offset().and_then(|o| self.bytes.get(o..)).unwrap_or(&[])
    }

    /// IP EtherType but a header no parser can read: truncated, IHL < 5, a total
    /// length beyond the frame, or IPv6 extension headers running past the end.
    pub fn ip_unparsable(&self) -> bool {
        let h = self.bytes.get(self.l3..).unwrap_or(&[]);
        match self.ethertype {
            0x0800 => {
                h.len() < 20 || h[0] >> 4 != 4 || (h[0] & 0x0f) < 5 || {
                    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
                    total > h.len() || total < (h[0] & 0x0f) as usize * 4
                }
            }
            0x86dd => {
                h.len() < 40 || u16::from_be_bytes([h[4], h[5]]) as usize + 40 > h.len() || self.ipv6_chain().is_none()
            }
            _ => false,
        }
    }

    /// The TCP data offset (first fragments and unfragmented packets only).
    pub fn tcp_data_offset(&self) -> Option<u8> {
        if let Some(h) = self.ipv4() {
            if h[9] != 6 || self.ipv4_later_fragment() {
                return None;
            }
            let l4 = self.l4_bytes();
            return l4.get(12).map(|b| b >> 4);
        }
        let (_, proto, at) = self.ipv6_chain()?;
        if proto != 6 || self.ipv6_later_fragment() {
            return None;
        }
        self.bytes.get(self.l3 + at + 12).map(|b| b >> 4)
    }

    /// Walks the IPv6 extension headers: the headers seen (type, offset in the IPv6
    /// packet), then the upper-layer protocol and its offset, or `None` when the chain
    /// runs past the end of the frame.
    fn ipv6_chain(&self) -> Option<Ipv6Chain> {
        let h = self.bytes.get(self.l3..)?;
        if self.ethertype != 0x86dd || h.len() < 40 {
            return None;
        }
        let mut seen = Vec::new();
        let mut next = h[6];
        let mut at = 40;
        while matches!(next, 0 | 43 | 44 | 60) && seen.len() < 8 {
            let len = if next == 44 { 8 } else { (*h.get(at + 1)? as usize + 1) * 8 };
            if at + len > h.len() {
                return None;
            }
            seen.push((next, at));
            next = h[at];
            at += len;
        }
        Some((seen, next, at))
    }

    fn ipv6_fragment_field(&self) -> Option<u16> {
        let (seen, _, _) = self.ipv6_chain()?;
        let (_, at) = seen.into_iter().find(|(t, _)| *t == 44)?;
        let h = &self.bytes[self.l3..];
        Some(u16::from_be_bytes([h[at + 2], h[at + 3]]))
    }

    /// An IPv6 fragment header with offset 0 and no more fragments.
    pub fn ipv6_atomic_fragment(&self) -> bool {
        self.ipv6_fragment_field() == Some(0)
    }

    /// An IPv6 fragment header with a non-zero offset.
    pub fn ipv6_later_fragment(&self) -> bool {
        self.ipv6_fragment_field().is_some_and(|f| f >> 3 != 0)
    }

    pub fn ipv6_has_routing_header(&self) -> bool {
        self.ipv6_chain().is_some_and(|(seen, _, _)| seen.iter().any(|(t, _)| *t == 43))
    }

    /// An outer VLAN TPID with too few bytes after it for the tag and an EtherType.
    pub fn partial_vlan_tag(&self) -> bool {
        let t = self.bytes.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
        matches!(t, Some(0x8100 | 0x88a8)) && self.bytes.len() < 18
    }

    pub fn is_icmp(&self) -> bool {
        self.ipv4_proto() == Some(1) || self.ipv6_chain().is_some_and(|(_, p, _)| p == 58)
    }
}
