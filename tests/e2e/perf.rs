//! `pmd-perf-show`: the PMD's iteration histograms move with traffic, agree with the PMD's
//! counters, and `pmd-stats-clear` clears them; ferrovs-ctl and `ovs-appctl` show them.

use std::time::Duration;

use ferrovs_e2e::{Daemon, TempDir, frames, wait_until};
use libtest_mimic::Failed;
use serde_json::Value;

use crate::counter;

/// A histogram of PMD 0 (`pmd-stats-show --json`), as counts per log2 bucket.
fn histogram(stats: &Value, name: &str) -> Result<Vec<u64>, Failed> {
    let h = stats["pmds"][0]["histograms"][name].as_array().ok_or_else(|| format!("no histogram {name}: {stats}"))?;
    Ok(h.iter().map(|v| v.as_u64().unwrap_or(u64::MAX)).collect())
}

/// The least and the most that the samples of a log2 histogram can add up to (bucket 0
/// holds 0, bucket i the values 2^(i-1) to 2^i - 1; the last bucket is open, so its
/// bound is the caller's `cap` per sample).
fn sum_bounds(h: &[u64], cap: u64) -> (u64, u64) {
    let (mut lo, mut hi) = (0, 0);
    for (i, &n) in h.iter().enumerate() {
        let floor = if i == 0 { 0 } else { 1u64 << (i - 1) };
        let ceil = if i == 0 {
            0
        } else if i + 1 == h.len() {
            cap
        } else {
            (1u64 << i) - 1
        };
        lo += n * floor;
        hi += n * ceil;
    }
    (lo, hi)
}

/// Waits until the histograms of PMD 0 account for every rx burst the PMD counted (they
/// are published every 64 iterations, the counters every busy one); returns the stats.
fn settled(d: &Daemon, want_packets: u64) -> Result<Value, Failed> {
    let mut last = Value::Null;
    let ok = wait_until(Duration::from_secs(10), || {
        last = d.ctl_json(&["pmd-stats-show"]);
        let p = &last["pmds"][0];
        let batches: u64 = histogram(&last, "packets_per_batch").map(|h| h.iter().sum()).unwrap_or(0);
        p["packets"].as_u64() == Some(want_packets) && p["rx_bursts"].as_u64() == Some(batches)
    });
    if !ok {
        return Err(format!("the histograms never caught up with {want_packets} packets: {last}").into());
    }
    Ok(last)
}

/// Checks that the histograms of `stats` describe `packets` packets in `rx_bursts` bursts.
fn consistent(stats: &Value, packets: u64) -> Result<(), Failed> {
    let batch = histogram(stats, "packets_per_batch")?;
    let per_it = histogram(stats, "packets_per_iteration")?;
    let (lo, hi) = sum_bounds(&batch, 32);
    if !(lo..=hi).contains(&packets) || batch.iter().sum::<u64>() == 0 {
        return Err(format!("{packets} packets, but the batch histogram adds up to {lo}..={hi}: {batch:?}").into());
    }
    let (lo, hi) = sum_bounds(&per_it, u64::MAX / 1024);
    if !(lo..=hi).contains(&packets) {
        return Err(format!("{packets} packets, but packets/it adds up to {lo}..={hi}: {per_it:?}").into());
    }
    let busy_its: u64 = per_it[1..].iter().sum();
    let cpp: u64 = histogram(stats, "cycles_per_packet")?.iter().sum();
    if busy_its == 0 || cpp != busy_its {
        return Err(format!("{busy_its} busy iterations, {cpp} cycles/pkt samples: {stats}").into());
    }
    // Both per-iteration histograms count every iteration (published together; the
    // iteration counter itself is published on another cadence, so it is not compared).
    let its: u64 = histogram(stats, "cycles_per_iteration")?.iter().sum();
    if its == 0 || per_it.iter().sum::<u64>() != its {
        return Err(format!("{its} iterations in cycles/it, {} in packets/it", per_it.iter().sum::<u64>()).into());
    }
    Ok(())
}

pub fn pmd_perf_histograms_move_and_clear() -> Result<(), Failed> {
    let (d, ns, tap) = crate::capture::tap_switch(TempDir::new(), "", "");
    let sent: Vec<Vec<u8>> = (0..100u16).map(|i| frames::ipv4_udp([198, 18, 0, 1], [198, 18, 0, 2], i, 9)).collect();
    // What the kernel may send while the tap is set up is not part of the count.
    std::thread::sleep(Duration::from_millis(300));
    let rx_before = counter(&d.port_counters("a").ok_or("port a")?, "rx_packets");
    crate::flows::ctl_ok(&d, &["pmd-stats-clear"])?;
    ns.send_frames(&tap, &sent);
    let before = settled(&d, 100)?;
    consistent(&before, 100)?;

    crate::flows::ctl_ok(&d, &["pmd-stats-clear"])?;
    let cleared = d.ctl_json(&["pmd-stats-show"]);
    for name in ["packets_per_batch", "cycles_per_packet"] {
        if histogram(&cleared, name)?.iter().any(|&n| n > 0) {
            return Err(format!("{name} not cleared: {cleared}").into());
        }
    }
    if histogram(&cleared, "packets_per_iteration")?[1..].iter().any(|&n| n > 0) {
        return Err(format!("busy iterations left after the clear: {cleared}").into());
    }

    ns.send_frames(&tap, &sent[..40]);
    let after = settled(&d, 40)?;
    consistent(&after, 40)?;
    let a = d.port_counters("a").ok_or("port a")?;
    if counter(&a, "rx_packets") != rx_before + 140 {
        return Err(format!("port a: {a}").into());
    }

    let text = crate::flows::ctl_ok(&d, &["pmd-perf-show"])?;
    let target = d.socket.with_file_name("ferrovsd.ctl");
    let appctl = std::process::Command::new("ovs-appctl")
        .arg("-t")
        .arg(&target)
        .arg("dpif-netdev/pmd-perf-show")
        .output()
        .map_err(|e| format!("ovs-appctl cannot run ({e}); deploy/test.sh installs openvswitch-common"))?;
    let appctl = String::from_utf8_lossy(&appctl.stdout).into_owned();
    for out in [&text, &appctl] {
        if !out.contains("Histograms") || !out.contains("pkts/batch") || !out.contains("Rx batches:") {
            return Err(format!("pmd-perf-show without its histograms:\n{out}").into());
        }
    }
    drop(d.stop());
    Ok(())
}
