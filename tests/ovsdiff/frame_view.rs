//! A read-only look into a frame for classifying differences: VLAN tags, the IP
//! header, fragments, the L4 header. Written independently of ferrovs's parser (it only
//! serves to name a difference, never to decide what is right).

/// IPv6 extension headers (type, offset), the upper-layer protocol and its offset.
type Ipv6Chain = (Vec<(u8, usize)>, u8, usize);

pub struct View<'a> {
    pub bytes: &'a [u8],
    tags: usize,
    ethertype: u16,
    l3: usize,
}

impl<'a> View<'a> {
    pub fn parse(bytes: &'a [u8]) -> View<'a> {
        let mut at = 12;
        let mut tags = 0;
        let mut ethertype = 0;
        while at + 2 <= bytes.len() {
            ethertype = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            if (ethertype == 0x8100 || ethertype == 0x88a8) && at + 4 <= bytes.len() {
                tags += 1;
                at += 4;
            } else {
                at += 2;
                break;
            }
        }
        View { bytes, tags, ethertype, l3: at }
    }

    pub fn vlan_tags(&self) -> usize {
        self.tags
    }

    /// The IPv4 or IPv6 header fails the sanity checks of a flow extraction: fewer bytes
    /// than its fixed header (20 or 40) or than IPv4's IHL says, an IHL below 5, or a
    /// total (payload) length below the header or beyond the bytes received. The packet
    /// has the EtherType and no parsed IP fields.
    pub fn ip_header_unparsable(&self) -> bool {
        let h = self.bytes.get(self.l3..).unwrap_or(&[]);
        match self.ethertype {
            0x0800 => {
                let ihl = h.first().map_or(0, |b| (b & 0x0f) as usize * 4);
                h.len() < 20 || ihl < 20 || h.len() < ihl || {
                    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
                    total < ihl || total > h.len()
                }
            }
            0x86dd => h.len() < 40 || 40 + u16::from_be_bytes([h[4], h[5]]) as usize > h.len(),
            _ => false,
        }
    }

    /// An ARP frame (0x0806) whose header is not Ethernet/IPv4 ARP of 28 bytes: the key
    /// holds none of its fields.
    pub fn arp_header_unparsable(&self) -> bool {
        let h = self.l3_bytes();
        self.ethertype == 0x0806 && (h.len() < 28 || h[..6] != [0, 1, 8, 0, 6, 4])
    }

    /// An Ethernet/IPv4 ARP frame (0x0806) the key parses: its 16-bit opcode.
    pub fn arp_op(&self) -> Option<u16> {
        let h = self.l3_bytes();
        (self.ethertype == 0x0806 && !self.arp_header_unparsable()).then(|| u16::from_be_bytes([h[6], h[7]]))
    }

    /// An MPLS frame (0x8847 or 0x8848) whose first label stack entry OVS 3.1 does not
    /// count: fewer than its four bytes after the EtherType, or four zero bytes.
    pub fn mpls_entry_zero_or_cut(&self) -> bool {
        let lse = self.l3_bytes();
        matches!(self.ethertype, 0x8847 | 0x8848) && (lse.len() < 4 || lse[..4] == [0; 4])
    }

    /// The bytes from the L3 header on.
    pub fn l3_bytes(&self) -> &'a [u8] {
        self.bytes.get(self.l3..).unwrap_or(&[])
    }

    fn ipv4(&self) -> Option<&'a [u8]> {
        let h = self.bytes.get(self.l3..)?;
        (self.ethertype == 0x0800 && h.len() >= 20 && h[0] >> 4 == 4).then_some(h)
    }

    pub fn ipv4_proto(&self) -> Option<u8> {
        self.ipv4().map(|h| h[9])
    }

    /// The first fragment of a fragmented IPv4 packet (offset 0, more fragments) or an
    /// IPv6 one (a fragment header with offset 0 and M set).
    pub fn first_fragment(&self) -> bool {
        let v4 = self.ipv4().is_some_and(|h| u16::from_be_bytes([h[6], h[7]]) & 0x3fff == 0x2000);
        v4 || self.ipv6_fragment_words().any(|w| w & 0xfff8 == 0 && w & 1 == 1)
    }

    /// Where the upper-layer header starts (IPv4 or IPv6, behind its extension headers).
    pub fn upper_layer_offset(&self) -> Option<usize> {
        self.l4_offset().or_else(|| self.ipv6_chain().map(|(_, _, at)| self.l3 + at))
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

    /// The offset word (offset, reserved bits, M) of each IPv6 fragment header.
    fn ipv6_fragment_words(&self) -> impl Iterator<Item = u16> + '_ {
        let seen = self.ipv6_chain().map(|(seen, _, _)| seen).unwrap_or_default();
        seen.into_iter()
            .filter(|&(t, _)| t == 44)
            .map(|(_, at)| u16::from_be_bytes([self.bytes[self.l3 + at + 2], self.bytes[self.l3 + at + 3]]))
    }

    /// An IPv6 fragment header with offset 0 and no more fragments.
    pub fn ipv6_atomic_fragment(&self) -> bool {
        self.ipv6_fragment_words().any(|w| w == 0)
    }

    pub fn ipv6_has_routing_header(&self) -> bool {
        self.ipv6_chain().is_some_and(|(seen, _, _)| seen.iter().any(|(t, _)| *t == 43))
    }

    /// Offset in the frame of the TCP/UDP/ICMPv6 checksum of an IPv6 packet.
    pub fn ipv6_l4_checksum_offset(&self) -> Option<usize> {
        let (_, proto, at) = self.ipv6_chain()?;
        let field = match proto {
            6 => 16,
            17 => 6,
            58 => 2,
            _ => return None,
        };
        let off = self.l3 + at + field;
        (off + 2 <= self.bytes.len()).then_some(off)
    }

    /// Whether the TCP/UDP/ICMPv6 checksum of an IPv6 packet is right for its pseudo-header
    /// (the destination in the IPv6 header: no routing header is followed) and payload
    /// up to the payload length.
    pub fn ipv6_l4_checksum_ok(&self) -> bool {
        let Some((_, proto, at)) = self.ipv6_chain() else { return false };
        let h = &self.bytes[self.l3..];
        let end = (40 + u16::from_be_bytes([h[4], h[5]]) as usize).min(h.len());
        let Some(l4) = h.get(at..end) else { return false };
        let mut sum: u64 = h[8..40].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u64).sum();
        sum += l4.len() as u64 + proto as u64;
        sum += l4.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64).sum::<u64>();
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }
}
