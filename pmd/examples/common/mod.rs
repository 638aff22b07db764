//! Shared by the forwarding benchmarks (`fwd_bench`, `flow_bench`, `capture_bench`): the
//! replayed capture, written to a file of its own in the temp directory and removed
//! afterwards, and the EAL start.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

use ferrovs_dpdk::Eal;
use ferrovs_e2e::pcap::write_frames;
use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, ipv4_header, udp_segment};

/// A capture file with a name unique to this process and call (`<prefix>-<pid>-<random>`)
/// in the temp directory; removed when dropped.
pub struct TempCapture {
    pub path: PathBuf,
}

impl TempCapture {
    /// Writes `n` (at least 1) 60-byte Ethernet/IPv4/UDP frames (64 on the wire),
    /// 198.18.0.1:1024+i -> 198.18.0.2:53, one per flow, with a valid IPv4 checksum.
    pub fn udp_flows(prefix: &str, n: usize) -> std::io::Result<TempCapture> {
        let random = RandomState::new().build_hasher().finish();
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{random:016x}.pcap", std::process::id()));
        let frames: Vec<Vec<u8>> = (0..n.max(1))
            .map(|i| {
                let udp = udp_segment(1024 + i as u16, 53, &[0xab; 18]);
                let ip = Ipv4Hdr { id: 0, ..Ipv4Hdr::new([198, 18, 0, 1], [198, 18, 0, 2], 17) };
                let mut f = eth_header([0x02, 0, 0, 0, 0, 2], [0x02, 0, 0, 0, 0, 1], 0x0800);
                f.extend(ipv4_header(&ip, &[], udp.len()));
                f.extend(udp);
                f
            })
            .collect();
        write_frames(&path, &frames)?;
        Ok(TempCapture { path })
    }

    /// The path as DPDK devargs take it.
    pub fn devarg(&self) -> &str {
        self.path.to_str().expect("the temp directory is UTF-8")
    }
}

impl Drop for TempCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts the EAL with `extra` (the `--eal` argument) on lcore 0, quietly.
pub fn init_eal(extra: &str) -> Eal {
    let mut args: Vec<String> = extra.split_whitespace().map(String::from).collect();
    args.extend(["-l", "0", "--log-level=error"].map(String::from));
    Eal::init(&args).expect("EAL")
}
