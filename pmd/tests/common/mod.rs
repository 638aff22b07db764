//! The harness shared by the in-process DPDK test binaries (`ring`, `flow`): one EAL per
//! process, initialised on the main thread before the tests, which then run there one by
//! one (libtest-mimic, so `--list` works without touching DPDK).
#![allow(dead_code)]

use std::sync::OnceLock;

use ferrovs_dpdk::Eal;
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
