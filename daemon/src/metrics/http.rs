//! Just enough HTTP/1.1 for a Prometheus scraper: `GET /metrics` (and `HEAD`) answered
//! with the exposition, 404 for any other path, 405 for any other method, 400 for what
//! is not a request; one response per connection (`Connection: close`).
//!
//! A scraper is a trusted, infrequent client, so the server is plain threads on
//! `std::net`: one accepts, and each connection gets its own thread with read and write
//! deadlines, so a client that stalls holds only its own thread, and only for
//! [`IO_TIMEOUT`]. At most [`MAX_CONNECTIONS`] are served at once; more are closed
//! unanswered. The request head is read up to [`MAX_HEAD_BYTES`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::registry::Registry;

use crate::published::Published;

/// Deadline for reading the request and for writing the response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at the same time.
pub const MAX_CONNECTIONS: usize = 8;
/// Longest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 8192;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The endpoint, bound (so a bad or busy address fails before DPDK starts) but not yet
/// serving.
pub struct MetricsServer {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        Ok(MetricsServer { listener: Some(listener), addr, stop: Arc::new(AtomicBool::new(false)), join: None })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts answering scrapes from what `published` holds.
    pub fn serve(&mut self, published: Arc<Published>) -> io::Result<()> {
        let Some(listener) = self.listener.take() else { return Ok(()) };
        let registry = Arc::new(super::registry(published));
        let stop = self.stop.clone();
        let join = std::thread::Builder::new()
            .name("ferrovs-metrics".into())
            .spawn(move || accept_loop(listener, registry, stop))?;
        self.join = Some(join);
        Ok(())
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            // Wake the accept() with a connection of our own; it sees the flag and ends.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = j.join();
        }
    }
}

fn accept_loop(listener: TcpListener, registry: Arc<Registry>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Ok(stream) = conn else { continue };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            continue; // closed unanswered
        }
        let (registry, active2) = (registry.clone(), active.clone());
        let spawned = std::thread::Builder::new().name("ferrovs-scrape".into()).spawn(move || {
            if let Err(e) = serve_connection(stream, &registry) {
                tracing::debug!("metrics connection: {e}");
            }
            active2.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The request head up to its blank line (or the size limit, or the peer's end).
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// What to answer: status line, extra headers, content type, body.
struct Response {
    status: &'static str,
    headers: &'static str,
    content_type: &'static str,
    body: String,
    /// HEAD: the headers of the GET answer, no body.
    head_only: bool,
}

fn respond_to(head: &[u8], registry: &Registry) -> Response {
    let plain = |status, headers, body: &str| Response {
        status,
        headers,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
        head_only: false,
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return plain("400 Bad Request", "", "bad request line\n");
    };
    if !version.starts_with("HTTP/1.") {
        return plain("400 Bad Request", "", "HTTP/1.x only\n");
    }
    if method != "GET" && method != "HEAD" {
        return plain("405 Method Not Allowed", "Allow: GET, HEAD\r\n", "GET /metrics\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Response { head_only: method == "HEAD", ..plain("404 Not Found", "", "not found; try /metrics\n") };
    }
    match super::exposition(registry) {
        Ok(body) => {
            Response { status: "200 OK", headers: "", content_type: OPENMETRICS, body, head_only: method == "HEAD" }
        }
        Err(_) => plain("500 Internal Server Error", "", "encoding failed\n"),
    }
}

fn serve_connection(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let r = respond_to(&head, registry);
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len(),
        r.headers
    );
    if !r.head_only {
        out.push_str(&r.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::samples;
    use crate::published::Snapshot;
    use std::time::Instant;

    /// Sends `request` to a fresh server and returns (status line, body).
    fn exchange(server: &MetricsServer, request: &[u8]) -> (String, String) {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.parse().unwrap())
            .unwrap_or_else(|| panic!("no length in {head}"));
        if !head.starts_with("HTTP/1.1 200") || !request.starts_with(b"HEAD") {
            assert_eq!(len, body.len(), "{head}");
        }
        (head.lines().next().unwrap_or_default().to_string(), body.to_string())
    }

    fn server() -> MetricsServer {
        let published = Arc::new(Published::default());
        published.publish(Snapshot { show: samples::show(), pmd: samples::pmd_stats(), taken: Instant::now() });
        let mut s = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        s.serve(published).unwrap();
        s
    }

    #[test]
    fn answers_metrics_and_refuses_the_rest() {
        let s = server();
        let (status, body) = exchange(&s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.contains("ferrovs_port_rx_packets_total{") && body.ends_with("# EOF\n"), "{body}");
        let (status, _) = exchange(&s, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (status, body) = exchange(&s, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
        assert_eq!(exchange(&s, b"GET / HTTP/1.1\r\n\r\n").0, "HTTP/1.1 404 Not Found");
        assert_eq!(exchange(&s, b"GET /metricsx HTTP/1.1\r\n\r\n").0, "HTTP/1.1 404 Not Found");
        assert_eq!(exchange(&s, b"POST /metrics HTTP/1.1\r\n\r\n").0, "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(exchange(&s, b"hello\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
        assert_eq!(exchange(&s, b"GET /metrics SPDY/3\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
    }

    #[test]
    fn a_stalled_client_does_not_block_others() {
        let s = server();
        // Connected, never sends: holds one connection thread until IO_TIMEOUT.
        let _stalled = TcpStream::connect(s.local_addr()).unwrap();
        let (status, _) = exchange(&s, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
    }

    #[test]
    fn a_busy_address_is_an_error_at_bind() {
        let s = server();
        assert!(MetricsServer::bind(s.local_addr()).is_err());
    }
}
