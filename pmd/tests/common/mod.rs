//! The harness shared by the in-process DPDK test binaries (`ring`, `flow`): one EAL per
//! process, initialised on the main thread before the tests, which then run there one by
//! one (libtest-mimic, so `--list` works without touching DPDK); and the test's side of a
//! switch port ([`Peer`]).
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferrovs_dpdk::{BURST, Eal, MbufBatch, Mempool, Port, PortConfig, PortId, RxQueue, TxQueue, rx_burst, tx_burst};
use libtest_mimic::{Arguments, Failed, Trial};

static EAL: OnceLock<Eal> = OnceLock::new();

/// The process's EAL (initialised by [`run`]).
pub fn eal() -> &'static Eal {
    EAL.get().expect("EAL initialised in main")
}

/// No hugepages, no PCI: `FERROVS_TEST_EAL_ARGS` replaces the defaults.
pub fn eal_args() -> Vec<String> {
    let extra =
        std::env::var("FERROVS_TEST_EAL_ARGS").unwrap_or_else(|_| "--no-huge --no-shconf --no-pci -m 512".into());
    let mut v: Vec<String> = extra.split_whitespace().map(String::from).collect();
    v.extend(["-l", "0", "--log-level=error"].map(String::from));
    v
}

/// A name unique in this process (DPDK object names must be).
pub fn uniq(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{tag}{}", N.fetch_add(1, Ordering::SeqCst))
}

pub fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond { Ok(()) } else { Err(msg().into()) }
}

pub type TestFn = fn() -> Result<(), Failed>;

/// Initialises the EAL (unless only listing) and runs `tests` on this thread.
pub fn run(tests: Vec<(&'static str, TestFn)>) -> ! {
    let mut args = Arguments::from_args();
    let trials: Vec<Trial> = tests.into_iter().map(|(name, f)| Trial::test(name, f)).collect();
    if !args.list {
        args.test_threads = Some(1);
        match Eal::init(&eal_args()) {
            Ok(e) => {
                let _ = EAL.set(e);
            }
            Err(e) => {
                eprintln!("cannot initialise DPDK: {e}");
                std::process::exit(1);
            }
        }
    }
    libtest_mimic::run(&args, trials).exit()
}

/// The test's side of one switch port: the other end of a ring pair, opened with
/// `n_q` rx and tx queues.
pub struct Peer {
    pub rxqs: Vec<RxQueue>,
    pub txqs: Vec<TxQueue>,
    _port: Port,
}

impl Peer {
    /// Configures and starts the peer end `port_id` of a ring pair, with `n_q` queues.
    pub fn open(port_id: PortId, n_q: u16, pool: &Mempool) -> Result<Peer, Failed> {
        let cfg = PortConfig { n_rxq: n_q, n_txq: n_q, rx_desc: 256, tx_desc: 256 };
        let port = Port::configure(eal(), port_id, &cfg, pool)?;
        port.start()?;
        let rxqs = (0..n_q).map(|q| port.rx_queue(q)).collect::<Result<Vec<_>, _>>()?;
        let txqs = (0..n_q).map(|q| port.tx_queue(q)).collect::<Result<Vec<_>, _>>()?;
        Ok(Peer { rxqs, txqs, _port: port })
    }

    /// Sends `frames` (copied into mbufs of `pool`) on tx queue `q`, a burst of up to
    /// [`BURST`] at a time: each burst is enqueued on the ring at once, so the switch's
    /// PMD sees it whole.
    pub fn send(&mut self, pool: &Mempool, q: usize, frames: &[Vec<u8>]) -> Result<(), Failed> {
        for chunk in frames.chunks(BURST) {
            let mut batch = MbufBatch::new();
            for f in chunk {
                batch.push(pool.alloc_frame(f)?).map_err(|_| "batch full")?;
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while !batch.is_empty() {
                tx_burst(&mut self.txqs[q], &mut batch);
                check(Instant::now() < deadline, || "peer could not send (ring full)".into())?;
            }
        }
        Ok(())
    }

    /// Receives on every rx queue until `n` frames arrived (then a short grace period to
    /// catch unexpected extra frames) or `wait` passed; returns copies of the frames.
    pub fn recv(&mut self, n: usize, wait: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        let mut batch = MbufBatch::new();
        let mut poll = |out: &mut Vec<Vec<u8>>| {
            for q in self.rxqs.iter_mut() {
                while rx_burst(q, &mut batch) > 0 {
                    for m in batch.drain() {
                        out.push(m.data().to_vec());
                    }
                }
            }
        };
        loop {
            poll(&mut out);
            if out.len() >= n {
                std::thread::sleep(Duration::from_millis(20));
                poll(&mut out);
                return out;
            }
            if Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Frees whatever is waiting on the rx queues (before checking that every mbuf came
    /// back to its pool).
    pub fn drain(&mut self) {
        let _ = self.recv(usize::MAX, Duration::ZERO);
    }
}

/// Polls `get` every millisecond until its value satisfies `ok` (counters are published
/// once per burst or loop iteration), for up to 3 s.
pub fn wait_for<T: std::fmt::Debug>(what: &str, get: impl Fn() -> T, ok: impl Fn(&T) -> bool) -> Result<T, Failed> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let v = get();
        if ok(&v) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}: {v:#?}").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stops `sw` (its PMDs flush and free what they hold), frees what waits at the peers,
/// and checks that every mbuf of `pool` and of the switch's pool came back.
pub fn stop_and_check_pools<M: Send + 'static>(
    sw: ferrovs_pmd::Switch<M>,
    mut peers: Vec<Peer>,
    pool: &Mempool,
) -> Result<(), Failed> {
    let sw_pool = sw.mempool().clone();
    sw.stop();
    for p in peers.iter_mut() {
        p.drain();
    }
    drop(peers);
    check(pool.in_use() == 0 && sw_pool.in_use() == 0, || "mbufs still in use".into())
}

/// A pipeline whose PMD thread counts its allocations (`ferrovs_dpdk::alloc_count`)
/// between `Count(true)` and `Count(false)`, so everything the poll loop does in between
/// (its own code included) is counted. The binary must install the counting allocator.
pub struct Counted<P>(pub P);

/// The messages of a [`Counted`] pipeline.
pub enum CountedMsg<M> {
    Inner(M),
    Count(bool),
}

impl<P: ferrovs_pmd::Pipeline> ferrovs_pmd::Pipeline for Counted<P> {
    type Message = CountedMsg<P::Message>;

    fn classify<'s, 'p, B: ferrovs_pmd::RxBurst<'p>>(
        &'s mut self,
        in_port: u32,
        pkts: B,
        out: &mut [ferrovs_pmd::Verdict<'s>],
    ) -> ferrovs_pmd::Classified {
        self.0.classify(in_port, pkts, out)
    }

    fn miss(&mut self, in_port: u32, at: usize, pkt: ferrovs_dpdk::Mbuf) -> Option<ferrovs_dpdk::Mbuf> {
        self.0.miss(in_port, at, pkt)
    }

    fn misses_done(&mut self, inject: &mut ferrovs_pmd::Injector<'_>) {
        self.0.misses_done(inject)
    }

    fn handle_message(&mut self, msg: Self::Message, inject: &mut ferrovs_pmd::Injector<'_>) {
        match msg {
            CountedMsg::Inner(m) => self.0.handle_message(m, inject),
            CountedMsg::Count(on) => ferrovs_dpdk::alloc_count::count_this_thread(on),
        }
    }

    fn housekeeping(&mut self, inject: &mut ferrovs_pmd::Injector<'_>) -> bool {
        self.0.housekeeping(inject)
    }

    fn packet_in_sink(&self) -> Option<ferrovs_pmd::PacketInSink> {
        self.0.packet_in_sink()
    }
}
