//! The capture stream: what follows the reply line of a `capture` request.
//!
//! ```text
//! -> {"cmd":"capture","port":"a","count":100,"duration_ms":null,"filter":"udp,tp_dst=53"}
//! <- {"ok":true,"result":{"cmd":"capture","port":"a","number":1,"snap_len":2048}}
//! <- frame record, frame record, ...            (binary, little-endian)
//! <- end record
//! <- {"frames":100,"filtered_out":7,"dropped":0,"reason":"count"}
//! ```
//!
//! A frame record is a 20-byte header, then the frame's captured bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | captured length `L` (1..=[`MAX_FRAME_BYTES`]) |
//! | 4..8 | length of the frame on the wire (`>= L`) |
//! | 8..16 | timestamp, nanoseconds since the Unix epoch |
//! | 16 | direction: 0 received on the port, 1 sent to it |
//! | 17..20 | zero |
//!
//! The end record is four zero bytes; one JSON line ([`CaptureEnd`]) follows it and the
//! daemon closes the connection. Binary records, not JSON: a capture may carry millions
//! of frames, and the client writes their bytes to the file as they are.
//!
//! The client stops a capture early by closing the connection; the daemon notices within
//! [`CAPTURE_POLL`] and disarms the capture.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest captured length a frame record may carry.
pub const MAX_FRAME_BYTES: u32 = 65_535;

/// Size of a frame record's header.
pub const FRAME_HEADER_BYTES: usize = 20;

/// Longest summary line accepted after the end record.
pub const MAX_END_LINE_BYTES: usize = 4096;

/// How often the daemon checks whether the client has gone while no frame arrives.
pub const CAPTURE_POLL: Duration = Duration::from_millis(100);

/// Which way a captured frame was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameDirection {
    /// Received on the port.
    In,
    /// Sent to the port.
    Out,
}

/// One captured frame as it travels to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    pub timestamp_ns: u64,
    pub orig_len: u32,
    pub direction: FrameDirection,
    pub data: Vec<u8>,
}

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureStop {
    /// `--count` frames were captured.
    Count,
    /// `--duration` passed.
    Duration,
    /// The daemon is stopping.
    Shutdown,
}

/// The summary after the end record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureEnd {
    /// Frames sent to the client.
    pub frames: u64,
    /// Frames captured that the filter did not match.
    pub filtered_out: u64,
    /// Frames the capture missed because the client read too slowly (no free buffer in
    /// the daemon); forwarding did not lose them.
    pub dropped: u64,
    pub reason: CaptureStop,
}

/// Appends a frame record for `data` to `out` (the daemon's side).
pub fn encode_frame(out: &mut Vec<u8>, timestamp_ns: u64, orig_len: u32, direction: FrameDirection, data: &[u8]) {
    let len = data.len().min(MAX_FRAME_BYTES as usize);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&orig_len.max(len as u32).to_le_bytes());
    out.extend_from_slice(&timestamp_ns.to_le_bytes());
    out.push(match direction {
        FrameDirection::In => 0,
        FrameDirection::Out => 1,
    });
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&data[..len]);
}

/// Appends the end record and the summary line to `out`.
pub fn encode_end(out: &mut Vec<u8>, end: &CaptureEnd) {
    out.extend_from_slice(&[0; 4]);
    // Numbers and fixed words: serializing cannot fail.
    out.extend(serde_json::to_vec(end).unwrap_or_default());
    out.push(b'\n');
}

/// One record of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Frame(FrameRecord),
    End(CaptureEnd),
}

/// Reads the records of a capture stream (the client's side). Every length is checked
/// before anything is allocated for it; a malformed stream is an error, never a panic.
pub fn read_record(r: &mut impl Read) -> Result<Record, String> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    read_exact(r, &mut head[..4], "record")?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if len == 0 {
        let mut line = Vec::new();
        r.take(MAX_END_LINE_BYTES as u64 + 1).read_to_end(&mut line).map_err(|e| format!("capture summary: {e}"))?;
        if line.len() > MAX_END_LINE_BYTES {
            return Err(format!("capture summary longer than {MAX_END_LINE_BYTES} bytes"));
        }
        let text = line.strip_suffix(b"\n").ok_or("capture summary without its newline")?;
        return serde_json::from_slice(text).map(Record::End).map_err(|e| format!("bad capture summary: {e}"));
    }
    if len > MAX_FRAME_BYTES {
        return Err(format!("frame record of {len} bytes (at most {MAX_FRAME_BYTES})"));
    }
    read_exact(r, &mut head[4..], "frame record header")?;
    let orig_len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let timestamp_ns = u64::from_le_bytes(head[8..16].try_into().map_err(|_| "header")?);
    let direction = match head[16] {
        0 => FrameDirection::In,
        1 => FrameDirection::Out,
        d => return Err(format!("bad frame direction {d}")),
    };
    if head[17..20] != [0; 3] {
        return Err("frame record padding is not zero".into());
    }
    if orig_len < len {
        return Err(format!("frame of {orig_len} bytes on the wire but {len} captured"));
    }
    let mut data = vec![0; len as usize];
    read_exact(r, &mut data, "frame")?;
    Ok(Record::Frame(FrameRecord { timestamp_ns, orig_len, direction, data }))
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!("the capture stream ended inside a {what}"),
        _ => format!("reading the capture stream: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut b = Vec::new();
        encode_frame(&mut b, 1_700_000_000_123_456_789, 1514, FrameDirection::In, &[7; 60]);
        encode_frame(&mut b, 5, 0, FrameDirection::Out, b"xy");
        let end = CaptureEnd { frames: 2, filtered_out: 1, dropped: 3, reason: CaptureStop::Count };
        encode_end(&mut b, &end);
        let mut r = &b[..];
        let want = FrameRecord {
            timestamp_ns: 1_700_000_000_123_456_789,
            orig_len: 1514,
            direction: FrameDirection::In,
            data: vec![7; 60],
        };
        assert_eq!(read_record(&mut r), Ok(Record::Frame(want)));
        // A wire length below the captured one is raised to it.
        let want = FrameRecord { timestamp_ns: 5, orig_len: 2, direction: FrameDirection::Out, data: b"xy".to_vec() };
        assert_eq!(read_record(&mut r), Ok(Record::Frame(want)));
        assert_eq!(read_record(&mut r), Ok(Record::End(end)));
        assert!(r.is_empty());
    }

    #[test]
    fn malformed_streams_are_refused() {
        let mut good = Vec::new();
        encode_frame(&mut good, 1, 60, FrameDirection::In, &[1; 60]);
        for cut in [1, 4, 10, 20, 79] {
            let e = read_record(&mut &good[..cut]).unwrap_err();
            assert!(e.contains("ended inside"), "{cut}: {e}");
        }
        let mut big = good.clone();
        big[..4].copy_from_slice(&(MAX_FRAME_BYTES + 1).to_le_bytes());
        assert!(read_record(&mut &big[..]).unwrap_err().contains("at most"));
        let mut dir = good.clone();
        dir[16] = 2;
        assert!(read_record(&mut &dir[..]).unwrap_err().contains("direction"));
        let mut short = good.clone();
        short[4..8].copy_from_slice(&10u32.to_le_bytes());
        assert!(read_record(&mut &short[..]).unwrap_err().contains("on the wire"));
        let mut pad = good;
        pad[18] = 1;
        assert!(read_record(&mut &pad[..]).unwrap_err().contains("padding"));
        assert!(read_record(&mut &b"\0\0\0\0{}\n"[..]).unwrap_err().contains("bad capture summary"));
        assert!(read_record(&mut &b"\0\0\0\0{\"frames\":1"[..]).unwrap_err().contains("newline"));
    }
}
