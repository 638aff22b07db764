//! The time base of the flow pipeline: milliseconds since a TSC value shared by every PMD
//! and the slow path.
//!
//! The conversion from TSC ticks to milliseconds is pure ([`PipelineClock::ms_at`]); the
//! only read of the hardware counter is [`PipelineClock::now_ms`], once per burst or
//! command. Everything below the PMD (the flow cache, the parking table, the slow path)
//! takes the resulting milliseconds as an argument.

use ferrovs_dpdk::rdtsc;

/// Milliseconds since a TSC value shared by every PMD and the slow path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineClock {
    tsc_hz: u64,
    start_tsc: u64,
    /// ms = (ticks * mult) >> 64: one multiply instead of a division per read, see `new`.
    mult: u64,
}

impl PipelineClock {
    /// A clock counting from `start_tsc` (an [`rdtsc`] value) at `tsc_hz` ticks per second
    /// (`Eal::tsc_hz`). Frequencies below 1 MHz (none is real) are taken as 1 MHz, so that
    /// a zero never divides.
    pub fn new(tsc_hz: u64, start_tsc: u64) -> PipelineClock {
        let hz = tsc_hz.max(1_000_000);
        // Rounded up, so that a whole number of milliseconds of ticks is not read as one
        // less; the excess stays below 1e-5 ms per day of uptime.
        let mult = ((1000u128 << 64).div_ceil(hz as u128)) as u64;
        PipelineClock { tsc_hz, start_tsc, mult }
    }

    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    pub fn start_tsc(&self) -> u64 {
        self.start_tsc
    }

    /// Milliseconds between the start and the TSC value `tsc` (0 before the start).
    #[inline]
    pub fn ms_at(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.start_tsc);
        ((ticks as u128 * self.mult as u128) >> 64) as u64
    }

    /// Milliseconds since the start, now (reads the TSC).
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.ms_at(rdtsc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_converts_ticks_to_ms() {
        let c = PipelineClock::new(2_500_000_000, 1_000);
        assert_eq!(c.ms_at(500), 0);
        assert_eq!(c.ms_at(1_000 + 2_500_000_000), 1000);
        assert_eq!(c.ms_at(1_000 + 2_500_000 * 7), 7);
        // A day later, still exact to the ms.
        assert_eq!(c.ms_at(1_000 + 2_500_000_000 * 86_400), 86_400_000);
        assert_eq!(c.ms_at(1_000 + 2_500_000 * 7 - 1), 6);
        let z = PipelineClock::new(0, 0);
        assert_eq!(z.ms_at(1_000_000), 1000);
    }
}
