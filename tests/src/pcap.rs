//! Classic pcap files, the one place the workspace reads and writes them (on the
//! `pcap-file` crate): the end-to-end tests' captures, `ferrovs-gen`'s benchmark
//! captures, and the PMD examples' replay files.
//!
//! Files are written little-endian, version 2.4, snaplen 65535, Ethernet link type,
//! microsecond timestamps: the same bytes as the reference workload generator
//! (shared/bench/gen_pcap.py) writes, which `ferrovs-gen`'s tests check.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{Endianness, PcapError};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

fn io_err(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// A pcap file being written, one frame at a time (buffered: call [`PcapOut::finish`]).
pub struct PcapOut {
    w: PcapWriter<BufWriter<File>>,
}

impl PcapOut {
    /// Creates (truncates) `path` and writes the file header.
    pub fn create(path: &Path) -> io::Result<PcapOut> {
        let header = PcapHeader { endianness: Endianness::Little, ..PcapHeader::default() };
        let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
        Ok(PcapOut { w: PcapWriter::with_header(file, header).map_err(io_err)? })
    }

    /// Appends one frame, captured whole, with timestamp `ts`.
    pub fn frame(&mut self, ts: Duration, frame: &[u8]) -> io::Result<()> {
        self.w.write_packet(&PcapPacket::new(ts, frame.len() as u32, frame)).map_err(io_err)?;
        Ok(())
    }

    /// Flushes the file.
    pub fn finish(self) -> io::Result<()> {
        self.w.into_writer().flush()
    }
}

/// Writes `frames` to `path`, frame `i` at timestamp `i` microseconds.
pub fn write_frames(path: &Path, frames: &[Vec<u8>]) -> io::Result<()> {
    let mut out = PcapOut::create(path)?;
    for (i, f) in frames.iter().enumerate() {
        out.frame(Duration::from_micros(i as u64), f)?;
    }
    out.finish()
}

/// Every frame of the pcap file at `path` (either byte order).
pub fn read_frames(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut r = PcapReader::new(File::open(path)?).map_err(io_err)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.map_err(io_err)?.data.into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_the_header_is_the_reference_one() {
        let path = std::env::temp_dir().join(format!("ferrovs-pcap-test-{}.pcap", std::process::id()));
        let frames = vec![vec![1u8; 60], vec![2u8; 14], Vec::new()];
        write_frames(&path, &frames).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let back = read_frames(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.unwrap(), frames);
        // magic a1b2c3d4 (LE), 2.4, tz 0, sigfigs 0, snaplen 65535, Ethernet.
        assert_eq!(
            &bytes[..24],
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(bytes.len(), 24 + 3 * 16 + 60 + 14);
    }
}
