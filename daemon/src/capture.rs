//! `ferrovs-ctl capture` on the daemon's side: arm a capture of one port, filter what the
//! PMDs copy, stream it to the client, disarm.
//!
//! ```text
//! control connection ─► main thread: port name ─► number, filter parsed, capture armed
//!   (ferrovs_pmd::capture: buffers allocated here, the port's flag set for the PMDs)
//!   ─► a `capture-PORT` thread owns the connection and the capture:
//!        reply line; then, until --count, --duration, the client leaving or shutdown:
//!        take copied frames ─► filter (flow key extraction, here, not on the PMD)
//!        ─► frame records to the client ─► buffers back to the PMDs
//!   ─► end record and summary; the capture handle drops: flag cleared, buffers freed
//! ```
//!
//! The filter is an `ovs-ofctl` match (`udp,tp_dst=53`), parsed by config's match parser
//! and checked against flowcache's key of each frame, so it means exactly what it means
//! in a rule. `in_port` is refused (a capture is of one port, and each frame says whether
//! it came in or went out), and so are `table`, `priority` and `cookie`.
//!
//! The thread never blocks the PMDs: when it (or the client behind it) is slow, the
//! PMDs run out of free buffers and count capture drops. Writes to the client have the
//! protocol's line deadline; a client that stops reading for that long loses the capture.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrovs_config::Config;
use ferrovs_flowcache::extract::extract;
use ferrovs_flowcache::key::{FlowKey, Mask};
use ferrovs_pmd::capture::{CaptureHandle, CaptureTaps, DEFAULT_CAPTURE_BUFFERS, Direction, SNAP_LEN};

use crate::protocol::capture::{CAPTURE_POLL, CaptureEnd, CaptureStop, FrameDirection, encode_end, encode_frame};
use crate::protocol::{CaptureReply, LINE_TIMEOUT, Reply, Request, Response};

/// Bytes of frame records gathered before they are written to the client.
const WRITE_CHUNK: usize = 1 << 16;

/// A capture filter: which frames to keep.
#[derive(Debug, Clone)]
pub struct CaptureFilter {
    value: FlowKey,
    mask: Mask,
}

impl CaptureFilter {
    /// Parses an `ovs-ofctl` match (see the module doc). An empty one keeps everything.
    pub fn parse(text: &str) -> Result<CaptureFilter, String> {
        let spec = ferrovs_config::parse_match(text)
            .map_err(|e| format!("filter: column {}: {}", e.position.column, e.reason))?;
        if spec.table.is_some() || spec.priority.is_some() || spec.cookie.is_some() {
            return Err("filter: table, priority and cookie select rules, not frames".into());
        }
        if spec.matches.in_port.is_some() {
            return Err(
                "filter: in_port cannot be used: a capture is of one port, and each frame says whether it was \
                 received or sent"
                    .into(),
            );
        }
        let (value, mask) = ferrovs_flowcache::xlate::match_key(&spec.matches);
        Ok(CaptureFilter { value: value.masked(&mask), mask })
    }

    /// Whether `frame` matches.
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.value.matches(&self.mask, &extract(frame, 0))
    }
}

/// TSC readings to wall-clock nanoseconds.
#[derive(Debug, Clone, Copy)]
struct TscClock {
    base_ns: u128,
    base_tsc: u64,
    hz: u64,
}

impl TscClock {
    fn now(hz: u64) -> TscClock {
        let base_tsc = ferrovs_dpdk::rdtsc();
        let base_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        TscClock { base_ns, base_tsc, hz: hz.max(1) }
    }

    fn ns(&self, tsc: u64) -> u64 {
        let since = tsc.saturating_sub(self.base_tsc) as u128;
        (self.base_ns + since * 1_000_000_000 / self.hz as u128) as u64
    }
}

/// The running captures of the daemon.
pub struct Captures {
    tsc_hz: u64,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Captures {
    pub fn new(tsc_hz: u64) -> Captures {
        Captures { tsc_hz, stop: Arc::new(AtomicBool::new(false)), threads: Vec::new() }
    }

    /// Starts the capture `req` (a `Request::Capture`) on `taps`, streaming to
    /// `connection`. On success the capture's thread owns the connection and writes the
    /// returned reply on it first; on error nothing was armed and nothing written.
    pub fn start(
        &mut self,
        taps: &Arc<CaptureTaps>,
        config: &Config,
        datapath_number: impl Fn(&str) -> Option<u32>,
        req: &Request,
        peer_uid: Option<u32>,
        connection: UnixStream,
    ) -> Result<CaptureReply, String> {
        self.threads.retain(|t| !t.is_finished());
        let Request::Capture { port, count, duration_ms, filter } = req else {
            return Err(format!("{req:?} is not a capture"));
        };
        let number = config
            .bridges
            .iter()
            .flat_map(|b| &b.ports)
            .find(|p| &p.name == port)
            .map(|p| p.number)
            .ok_or_else(|| format!("no port named {port:?}"))?;
        // The PMDs know ports by the datapath's numbers (OpenFlow numbers are per bridge).
        let dp_number = datapath_number(port).unwrap_or(number);
        let filter = filter.as_deref().map(CaptureFilter::parse).transpose()?;
        if *count == Some(0) {
            return Err("--count must be at least 1".into());
        }
        let clock = TscClock::now(self.tsc_hz);
        let handle = taps.arm(dp_number, DEFAULT_CAPTURE_BUFFERS).map_err(|e| e.to_string())?;
        let reply = CaptureReply { port: port.clone(), number, snap_len: SNAP_LEN as u32 };
        let session = Session {
            connection,
            handle,
            filter,
            count: *count,
            deadline: duration_ms.map(|ms| Instant::now() + Duration::from_millis(ms)),
            clock,
            stop: self.stop.clone(),
        };
        tracing::info!(
            target: "ferrovs_daemon::control",
            uid = ?peer_uid,
            "capture of port {port} started (count {count:?}, duration {duration_ms:?} ms, filter {:?})",
            req_filter(req)
        );
        let first = Response::Ok(Reply::Capture(reply.clone())).to_line();
        let name = port.clone();
        let t = std::thread::Builder::new()
            .name(format!("capture-{number}"))
            .spawn(move || session.run(&name, first))
            .map_err(|e| format!("cannot start the capture thread: {e}"))?;
        self.threads.push(t);
        Ok(reply)
    }

    /// Ends every capture (each client gets its summary) and waits for their threads.
    pub fn stop_all(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn req_filter(req: &Request) -> Option<&str> {
    match req {
        Request::Capture { filter, .. } => filter.as_deref(),
        _ => None,
    }
}

/// One capture, on its own thread.
struct Session {
    connection: UnixStream,
    handle: CaptureHandle,
    filter: Option<CaptureFilter>,
    count: Option<u64>,
    deadline: Option<Instant>,
    clock: TscClock,
    stop: Arc<AtomicBool>,
}

/// Whether the peer has closed its end (it never sends after its request).
fn peer_closed(s: &UnixStream) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    let mut b = [0u8; 1];
    match recv(s.as_raw_fd(), &mut b, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Ok(0) => true,
        Ok(_) => false,
        Err(nix::errno::Errno::EAGAIN) => false,
        Err(_) => true,
    }
}

impl Session {
    fn run(self, port: &str, first: Vec<u8>) {
        match self.stream(first) {
            Ok(end) => tracing::info!(
                target: "ferrovs_daemon::control",
                "capture of port {port} ended ({:?}): {} frames, {} filtered out, {} dropped",
                end.reason,
                end.frames,
                end.filtered_out,
                end.dropped
            ),
            Err(why) => tracing::info!(target: "ferrovs_daemon::control", "capture of port {port} ended: {why}"),
        }
        // Dropping the handle disarms the capture and frees its buffers.
    }

    fn stream(&self, first: Vec<u8>) -> Result<CaptureEnd, String> {
        let mut conn = &self.connection;
        let write = |conn: &mut &UnixStream, b: &[u8]| {
            use std::io::Write;
            conn.write_all(b).map_err(|e| format!("the client went away ({e})"))
        };
        conn.set_write_timeout(Some(LINE_TIMEOUT)).map_err(|e| e.to_string())?;
        write(&mut conn, &first)?;
        let (mut frames, mut filtered_out) = (0u64, 0u64);
        let mut buf = Vec::with_capacity(WRITE_CHUNK + ferrovs_dpdk::BURST * (SNAP_LEN + 64));
        let mut last_check = Instant::now();
        let reason = loop {
            let mut took = false;
            while let Some(burst) = self.handle.try_next() {
                took = true;
                let direction = match burst.direction {
                    Direction::Rx => FrameDirection::In,
                    Direction::Tx => FrameDirection::Out,
                };
                let ns = self.clock.ns(burst.tsc);
                for f in burst.frames() {
                    if self.count.is_some_and(|c| frames >= c) {
                        break;
                    }
                    if self.filter.as_ref().is_none_or(|flt| flt.matches(f.bytes)) {
                        encode_frame(&mut buf, ns, f.orig_len, direction, f.bytes);
                        frames += 1;
                    } else {
                        filtered_out += 1;
                    }
                }
                self.handle.recycle(burst);
                if self.count.is_some_and(|c| frames >= c) || buf.len() >= WRITE_CHUNK {
                    break;
                }
            }
            if !buf.is_empty() {
                write(&mut conn, &buf)?;
                buf.clear();
            }
            if self.count.is_some_and(|c| frames >= c) {
                break CaptureStop::Count;
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                break CaptureStop::Duration;
            }
            if self.stop.load(Ordering::Relaxed) {
                break CaptureStop::Shutdown;
            }
            if !took {
                std::thread::sleep(Duration::from_millis(1));
                if last_check.elapsed() >= CAPTURE_POLL {
                    if peer_closed(&self.connection) {
                        return Err("the client closed the connection".into());
                    }
                    last_check = Instant::now();
                }
            }
        };
        let end = CaptureEnd { frames, filtered_out, dropped: self.handle.dropped(), reason };
        encode_end(&mut buf, &end);
        write(&mut conn, &buf)?;
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_flowcache::testpkt::{Ipv4Hdr, eth_header, ipv4_header, tcp_header, udp_segment};

    fn ipv4(proto: u8, l4: Vec<u8>, src: [u8; 4]) -> Vec<u8> {
        let mut f = eth_header([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 0x0800);
        f.extend(ipv4_header(&Ipv4Hdr::new(src, [198, 18, 0, 2], proto), &[], l4.len()));
        f.extend(l4);
        f
    }

    #[test]
    fn filter_keeps_what_the_match_says() {
        let dns = ipv4(17, udp_segment(1000, 53, b"q"), [198, 18, 0, 1]);
        let other_port = ipv4(17, udp_segment(1000, 54, b"q"), [198, 18, 0, 1]);
        let tcp_53 = ipv4(6, tcp_header(1000, 53, 0x02, 5), [198, 18, 0, 1]);
        let far = ipv4(17, udp_segment(1000, 53, b"q"), [10, 1, 2, 3]);
        let mut arp = eth_header([0xff; 6], [2, 0, 0, 0, 0, 1], 0x0806);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.resize(60, 0);

        let f = CaptureFilter::parse("udp,tp_dst=53").unwrap();
        let kept: Vec<bool> = [&dns, &other_port, &tcp_53, &far, &arp].iter().map(|x| f.matches(x)).collect();
        assert_eq!(kept, [true, false, false, true, false]);

        let f = CaptureFilter::parse("ip,nw_src=198.18.0.0/15").unwrap();
        let kept: Vec<bool> = [&dns, &other_port, &tcp_53, &far, &arp].iter().map(|x| f.matches(x)).collect();
        assert_eq!(kept, [true, true, true, false, false]);

        let all = CaptureFilter::parse("").unwrap();
        assert!([&dns, &arp, &far].iter().all(|x| all.matches(x)));
        // A runt or garbage is just another frame that the filter may or may not keep.
        assert!(all.matches(&[1, 2, 3]));
        assert!(!f.matches(&[1, 2, 3]));
    }

    #[test]
    fn filter_refuses_what_does_not_select_frames() {
        let e = CaptureFilter::parse("in_port=1,udp").unwrap_err();
        assert!(e.contains("in_port"), "{e}");
        let e = CaptureFilter::parse("priority=5,udp").unwrap_err();
        assert!(e.contains("priority"), "{e}");
        let e = CaptureFilter::parse("udp,tp_dts=53").unwrap_err();
        assert!(e.starts_with("filter: column 5"), "{e}");
        // Prerequisites as for rules: a port without a protocol is refused.
        assert!(CaptureFilter::parse("tp_dst=53").is_err());
    }

    #[test]
    fn tsc_clock_turns_ticks_into_wall_time() {
        let c = TscClock { base_ns: 1_000_000_000_000, base_tsc: 500, hz: 2_000_000_000 };
        assert_eq!(c.ns(500), 1_000_000_000_000);
        assert_eq!(c.ns(2_000_000_500), 1_000_000_000_000 + 1_000_000_000);
        assert_eq!(c.ns(100), 1_000_000_000_000, "a frame before the base is stamped at it");
    }
}
