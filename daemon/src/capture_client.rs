//! `ferrovs-ctl capture`: the client side of a capture. It sends the `capture` request,
//! reads the capture stream (`protocol::capture`) and writes the frames as pcapng with
//! the `pcap-file` crate.
//!
//! The file is written here, by the client, not by the daemon: ferrovsd runs confined
//! (systemd's `ProtectSystem`, `ProtectHome`) and must not write to paths a client names,
//! and the client may live in another mount namespace.
//!
//! The pcapng file has one section (`ferrovs-ctl` as its application), one interface
//! (Ethernet, the port's name, nanosecond timestamps, the capture's snap length) and one
//! Enhanced Packet Block per frame, whose `epb_flags` say whether the frame was received
//! on the port (inbound) or sent to it (outbound).

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};

use crate::protocol::capture::{CaptureEnd, FrameDirection, FrameRecord, Record, read_record};
use crate::protocol::{CaptureReply, LINE_TIMEOUT, Reply, Request, Response};

/// `epb_flags` direction bits (pcapng, section "Enhanced Packet Block Flags Word").
const EPB_INBOUND: u32 = 1;
const EPB_OUTBOUND: u32 = 2;

/// How a capture ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOutcome {
    /// Frames written to the file.
    pub written: u64,
    /// The daemon's summary; `None` when the client stopped the capture (`stop` was set)
    /// before the daemon ended it.
    pub end: Option<CaptureEnd>,
}

/// A pcapng file being written, one frame at a time.
pub struct PcapNgOut<W: Write> {
    w: PcapNgWriter<W>,
}

fn pcap_err(e: pcap_file::PcapError) -> String {
    format!("writing pcapng: {e}")
}

impl<W: Write> PcapNgOut<W> {
    /// Writes the section header and the one interface (`port`, keeping `snap_len` bytes).
    pub fn new(out: W, port: &str, snap_len: u32) -> Result<PcapNgOut<W>, String> {
        let section = SectionHeaderBlock {
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "ferrovs-ctl {}",
                env!("CARGO_PKG_VERSION")
            )))],
            ..SectionHeaderBlock::default()
        };
        let mut w = PcapNgWriter::with_section_header(out, section).map_err(pcap_err)?;
        let interface = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: snap_len,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(port.to_string())),
                // pcap-file writes timestamps in nanoseconds.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        w.write_pcapng_block(interface).map_err(pcap_err)?;
        Ok(PcapNgOut { w })
    }

    pub fn frame(&mut self, f: &FrameRecord) -> Result<(), String> {
        let flags = match f.direction {
            FrameDirection::In => EPB_INBOUND,
            FrameDirection::Out => EPB_OUTBOUND,
        };
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(f.timestamp_ns),
            original_len: f.orig_len,
            data: Cow::Borrowed(&f.data),
            options: vec![EnhancedPacketOption::Flags(flags)],
        };
        self.w.write_pcapng_block(block).map_err(pcap_err)?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.w.into_inner()
    }
}

/// Runs the capture `req` (a `Request::Capture`) against the daemon at `socket`, writing
/// pcapng to what `open` returns; `open` is called once the daemon has armed the capture
/// (so a refused capture creates no file). Setting `stop` ends the capture (the
/// connection is closed, which the daemon notices); the frames received until then are
/// kept.
pub fn capture<W: Write>(
    socket: &Path,
    req: &Request,
    stop: Arc<AtomicBool>,
    open: impl FnOnce(&CaptureReply) -> Result<W, String>,
) -> Result<(CaptureOutcome, W), String> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to {}: {e} (is ferrovsd running?)", socket.display()))?;
    stream.set_write_timeout(Some(LINE_TIMEOUT)).map_err(|e| e.to_string())?;
    (&stream).write_all(&req.to_line()).map_err(|e| format!("send: {e}"))?;
    let mut reader = BufReader::with_capacity(1 << 16, &stream);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(|e| format!("receive: {e}"))?;
    let start = match serde_json::from_slice::<Response>(&line) {
        Err(e) => return Err(format!("bad reply from ferrovsd ({e}): {}", String::from_utf8_lossy(&line).trim_end())),
        Ok(Response::Err(e)) => return Err(e),
        Ok(Response::Ok(Reply::Capture(r))) => r,
        Ok(Response::Ok(other)) => return Err(format!("ferrovsd answered another request: {other:?}")),
    };
    let mut file = PcapNgOut::new(open(&start)?, &start.port, start.snap_len)?;

    // Closes the connection when told to stop, which ends the read below.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, closer) = (done.clone(), stream.try_clone().map_err(|e| e.to_string())?);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let mut written = 0u64;
    let result = loop {
        match read_record(&mut reader) {
            Ok(Record::Frame(f)) => {
                if let Err(e) = file.frame(&f) {
                    break Err(e);
                }
                written += 1;
            }
            Ok(Record::End(end)) => break Ok(Some(end)),
            Err(e) => break Err(e),
        }
    };
    done.store(true, Ordering::Relaxed);
    let stopped_here = watcher.join().unwrap_or(false);
    let end = match result {
        Ok(end) => end,
        // Cut by our own shutdown: the frames so far are the capture.
        Err(_) if stopped_here => None,
        Err(e) => return Err(format!("{e} (after {written} frames)")),
    };
    Ok((CaptureOutcome { written, end }, file.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn frames_come_back_from_the_pcapng_with_their_direction() {
        let frames = [
            FrameRecord { timestamp_ns: 1_000_000_007, orig_len: 60, direction: FrameDirection::In, data: vec![1; 60] },
            FrameRecord {
                timestamp_ns: 2_000_000_009,
                orig_len: 3000,
                direction: FrameDirection::Out,
                data: vec![2; 33],
            },
        ];
        let mut out = PcapNgOut::new(Vec::new(), "port-a", 2048).unwrap();
        for f in &frames {
            out.frame(f).unwrap();
        }
        let bytes = out.into_inner();
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut got = Vec::new();
        let mut interfaces = 0;
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => {
                    interfaces += 1;
                    assert_eq!((i.linktype, i.snaplen), (DataLink::ETHERNET, 2048));
                    assert!(i.options.contains(&InterfaceDescriptionOption::IfName("port-a".into())));
                }
                Block::EnhancedPacket(p) => {
                    let dir = if p.options.contains(&EnhancedPacketOption::Flags(EPB_INBOUND)) {
                        FrameDirection::In
                    } else {
                        assert!(p.options.contains(&EnhancedPacketOption::Flags(EPB_OUTBOUND)));
                        FrameDirection::Out
                    };
                    got.push(FrameRecord {
                        timestamp_ns: p.timestamp.as_nanos() as u64,
                        orig_len: p.original_len,
                        direction: dir,
                        data: p.data.into_owned(),
                    });
                }
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert_eq!(interfaces, 1);
        assert_eq!(got, frames);
    }
}
