//! The CPUs the calling thread may run on (`sched_getaffinity(2)`, `sched_setaffinity(2)`).
//!
//! Why the binding has this: `rte_eal_init` pins the thread that calls it to the main
//! lcore's CPU, and every thread that thread starts afterwards inherits that one CPU. A
//! daemon that starts its other threads (slow path, control, the rule build's helpers)
//! after the EAL would run them all on one CPU, however many the host has, and
//! `std::thread::available_parallelism` (which reads the affinity) would count one. The
//! daemon reads its CPUs before the EAL and gives them back after it (as Open vSwitch does
//! after its own EAL start), less the PMD threads' CPUs.
//!
//! Sets are lists of CPU numbers, ascending; up to 1,024 CPUs (glibc's `CPU_SETSIZE`).

use std::ffi::c_int;

/// 64-bit words of a CPU mask: 1,024 CPUs.
const MASK_WORDS: usize = 16;

unsafe extern "C" {
    // glibc's wrappers; pid 0 is the calling thread. `pid_t` is `int` on Linux.
    fn sched_getaffinity(pid: c_int, cpusetsize: usize, mask: *mut u64) -> c_int;
    fn sched_setaffinity(pid: c_int, cpusetsize: usize, mask: *const u64) -> c_int;
}

/// The CPUs the calling thread may run on.
pub fn thread_affinity() -> std::io::Result<Vec<usize>> {
    let mut mask = [0u64; MASK_WORDS];
    // SAFETY: `mask` is a writable buffer of exactly the size passed; the call writes at
    // most that many bytes and keeps no pointer to it.
    let ret = unsafe { sched_getaffinity(0, std::mem::size_of_val(&mask), mask.as_mut_ptr()) };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((0..MASK_WORDS * 64).filter(|&c| mask[c / 64] & (1 << (c % 64)) != 0).collect())
}

/// Lets the calling thread run on `cpus` (and the threads it starts afterwards, which
/// inherit it). An empty set, or CPUs of which none is online, is refused by the kernel.
pub fn set_thread_affinity(cpus: &[usize]) -> std::io::Result<()> {
    let mut mask = [0u64; MASK_WORDS];
    for &c in cpus {
        if c >= MASK_WORDS * 64 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("CPU {c}: at most 1,024 CPUs")));
        }
        mask[c / 64] |= 1 << (c % 64);
    }
    // SAFETY: `mask` is a readable buffer of exactly the size passed; the call only reads it.
    let ret = unsafe { sched_setaffinity(0, std::mem::size_of_val(&mask), mask.as_ptr()) };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_affinity_reads_back_and_is_inherited() {
        // On a thread of its own: the affinity is the thread's.
        std::thread::spawn(|| {
            let all = thread_affinity().expect("read");
            assert!(!all.is_empty(), "a running thread runs somewhere");
            let one = *all.last().expect("non-empty");
            set_thread_affinity(&[one]).expect("set");
            assert_eq!(thread_affinity().expect("read"), vec![one]);
            let child = std::thread::spawn(|| thread_affinity().expect("read")).join().expect("child");
            assert_eq!(child, vec![one], "a thread started afterwards inherits the set");
            assert_eq!(std::thread::available_parallelism().map(|n| n.get()).ok(), Some(1));
            set_thread_affinity(&all).expect("restore");
            assert_eq!(thread_affinity().expect("read"), all);
        })
        .join()
        .expect("test thread");
    }

    #[test]
    fn sets_outside_the_mask_or_empty_are_refused() {
        std::thread::spawn(|| {
            assert_eq!(set_thread_affinity(&[5000]).map_err(|e| e.kind()), Err(std::io::ErrorKind::InvalidInput));
            assert!(set_thread_affinity(&[]).is_err(), "no CPU at all");
        })
        .join()
        .expect("test thread");
    }
}
