//! The Prometheus endpoint: ferrovs's counters as OpenMetrics text on `GET /metrics`,
//! when `[metrics] listen` is set (off by default).
//!
//! # Design
//!
//! A scrape must never touch the switch: the [`SnapshotCollector`] encodes the snapshot
//! the main thread last published (`published`, at most a second old) at scrape time,
//! with the `prometheus-client` crate's encoder. Nothing is registered or updated when
//! a counter moves, so the endpoint costs the switch nothing between scrapes, and every
//! number is the one `ferrovs-ctl --json show` / `pmd-stats-show` printed from the same
//! publication.
//!
//! Families (the `_total` suffix of counters and the unit suffixes are the encoder's):
//!
//! | family | labels | from |
//! |---|---|---|
//! | `ferrovs_port_{rx,tx}_packets_total`, `ferrovs_port_{rx,tx}_bytes_total` | bridge, port | `show` |
//! | `ferrovs_port_drops_total` | bridge, port, reason | `show` `drop_*` |
//! | `ferrovs_port_link_up` | bridge, port (absent while the link state is unknown) | `show` |
//! | `ferrovs_port_link_state` | bridge, port, state (up, down, unknown): 1 for the current one | `show` |
//! | `ferrovs_pmd_packets_total`, `ferrovs_pmd_iterations_total`, `ferrovs_pmd_upcalls_total`, `ferrovs_pmd_rx_pauses_total` | pmd, core | `pmd-stats-show` |
//! | `ferrovs_pmd_cycles_total` | pmd, core, state (busy, idle) | |
//! | `ferrovs_pmd_lookups_total` | pmd, core, level (emc, signature, megaflow, miss) | |
//! | `ferrovs_pmd_drops_total` | pmd, core, reason | |
//! | `ferrovs_pmd_megaflows`, `ferrovs_pmd_masks` (gauges) | pmd, core | |
//! | `ferrovs_slow_path_*_total`, `ferrovs_slow_path_mac_events_total{event}` | | slow path |
//! | `ferrovs_slow_path_upcall_duration_seconds` (histogram) | | slow path |
//!
//! PMD counters restart from 0 after `pmd-stats-clear`; Prometheus treats that as a
//! counter reset, so rates stay right.
//!
//! The HTTP side is [`MetricsServer`] (module `http`): one thread accepts, one short-lived thread per connection.

mod http;

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::protocol::{LinkState, PmdInfo, PortInfo};
use crate::published::{Published, Snapshot};

pub use http::MetricsServer;

/// Labels of one sample: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;
/// A label value and the counter of `T` it labels.
type Labelled<T> = (&'static str, fn(&T) -> u64);

/// Reads the published snapshot at every scrape.
#[derive(Debug)]
pub struct SnapshotCollector {
    published: Arc<Published>,
}

impl prometheus_client::collector::Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        match self.published.latest() {
            Some(s) => encode_snapshot(&s, &mut encoder),
            // Nothing published yet (the endpoint starts after the first publication,
            // so this is only a race at start): an empty exposition, not an error.
            None => Ok(()),
        }
    }
}

/// A registry holding only the snapshot collector.
pub fn registry(published: Arc<Published>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(SnapshotCollector { published }));
    r
}

/// The OpenMetrics text of `registry` (ending in `# EOF`).
pub fn exposition(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// One family of counters (`_total` is appended by the encoder).
fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
    }
    Ok(())
}

/// One family of gauges.
fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn port_labels(bridge: &str, p: &PortInfo) -> Labels {
    vec![("bridge", bridge.to_string()), ("port", p.name.clone())]
}

fn pmd_labels(p: &PmdInfo) -> Labels {
    vec![("pmd", p.pmd.to_string()), ("core", p.core.to_string())]
}

/// `base` plus one more label.
fn with(base: &Labels, key: &'static str, value: &str) -> Labels {
    let mut l = base.clone();
    l.push((key, value.to_string()));
    l
}

fn encode_snapshot(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    encode_ports(s, enc)?;
    encode_pmds(s, enc)?;
    encode_slow_path(s, enc)?;
    let pool = &s.show;
    gauges(
        enc,
        "ferrovs_mbufs_in_use",
        "Packet buffers taken from the pool",
        None,
        [(vec![], pool.mbufs_in_use as f64)],
    )?;
    gauges(enc, "ferrovs_mbuf_pool_size", "Packet buffers in the pool", None, [(vec![], pool.mbufs_total as f64)])?;
    gauges(
        enc,
        "ferrovs_stats_age",
        "Time since the main thread published these numbers",
        Some(&Unit::Seconds),
        [(vec![], s.taken.elapsed().as_secs_f64())],
    )
}

fn encode_ports(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let ports: Vec<(Labels, &PortInfo)> =
        s.show.bridges.iter().flat_map(|b| b.ports.iter().map(move |p| (port_labels(&b.name, p), p))).collect();
    let each = |f: fn(&PortInfo) -> u64| ports.iter().map(move |(l, p)| (l.clone(), f(p)));
    counters(enc, "ferrovs_port_rx_packets", "Packets received on the port", None, each(|p| p.rx_packets))?;
    counters(enc, "ferrovs_port_rx", "Bytes received on the port", Some(&Unit::Bytes), each(|p| p.rx_bytes))?;
    counters(enc, "ferrovs_port_tx_packets", "Packets sent on the port", None, each(|p| p.tx_packets))?;
    counters(enc, "ferrovs_port_tx", "Bytes sent on the port", Some(&Unit::Bytes), each(|p| p.tx_bytes))?;
    let reasons: [Labelled<PortInfo>; 9] = [
        ("tx_full", |p| p.drop_tx_full),
        ("no_rule", |p| p.drop_no_rule),
        ("action", |p| p.drop_action),
        ("malformed", |p| p.drop_malformed),
        ("unsupported", |p| p.drop_unsupported),
        ("no_mbuf", |p| p.drop_no_mbuf),
        ("oversize", |p| p.drop_oversize),
        ("admin_down_rx", |p| p.drop_admin_down_rx),
        ("admin_down_tx", |p| p.drop_admin_down_tx),
    ];
    counters(
        enc,
        "ferrovs_port_drops",
        "Packets dropped: tx_full (sent here, tx queue full), no_rule, action, malformed, unsupported, \
         no_mbuf (received here), oversize (longer than the MTU allows, sent here), admin_down_rx and \
         admin_down_tx (received here or sent here while the port was administratively down)",
        None,
        ports.iter().flat_map(|(l, p)| reasons.iter().map(move |(r, f)| (with(l, "reason", r), f(p)))),
    )?;
    // A port whose link state is unknown (its interface is in another namespace) has no
    // link_up sample: 0 would say "down", which is not known either.
    gauges(
        enc,
        "ferrovs_port_link_up",
        "1 when the port's link is up, 0 when down; no sample when unknown",
        None,
        ports
            .iter()
            .filter(|(_, p)| p.link_state != LinkState::Unknown)
            .map(|(l, p)| (l.clone(), if p.link_up { 1.0 } else { 0.0 })),
    )?;
    let states = [LinkState::Up, LinkState::Down, LinkState::Unknown];
    gauges(
        enc,
        "ferrovs_port_link_state",
        "1 for the port's link state (up, down, or unknown: its interface is in another network namespace)",
        None,
        ports.iter().flat_map(|(l, p)| {
            states.iter().map(move |s| (with(l, "state", s.as_str()), if *s == p.link_state { 1.0 } else { 0.0 }))
        }),
    )
}

fn encode_pmds(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let pmds: Vec<(Labels, &PmdInfo)> = s.pmd.pmds.iter().map(|p| (pmd_labels(p), p)).collect();
    let each = |f: fn(&PmdInfo) -> u64| pmds.iter().map(move |(l, p)| (l.clone(), f(p)));
    counters(enc, "ferrovs_pmd_packets", "Packets the PMD received", None, each(|p| p.packets))?;
    counters(enc, "ferrovs_pmd_iterations", "Poll loop iterations", None, each(|p| p.iterations))?;
    counters(
        enc,
        "ferrovs_pmd_cycles",
        "TSC cycles spent busy (processing packets) or idle (polling empty queues)",
        None,
        pmds.iter()
            .flat_map(|(l, p)| [(with(l, "state", "busy"), p.busy_cycles), (with(l, "state", "idle"), p.idle_cycles)]),
    )?;
    let levels: [Labelled<PmdInfo>; 4] = [
        ("emc", |p| p.emc_hits),
        ("signature", |p| p.signature_hits),
        ("megaflow", |p| p.megaflow_hits),
        ("miss", |p| p.misses),
    ];
    counters(
        enc,
        "ferrovs_pmd_lookups",
        "Flow cache lookups by the level that answered (miss: none did)",
        None,
        pmds.iter().flat_map(|(l, p)| levels.iter().map(move |(lv, f)| (with(l, "level", lv), f(p)))),
    )?;
    counters(enc, "ferrovs_pmd_upcalls", "Misses sent to the slow path", None, each(|p| p.upcalls_sent))?;
    counters(
        enc,
        "ferrovs_pmd_rx_pauses",
        "Loop iterations that left rx queues whose packets miss alone while the parking table was short",
        None,
        each(|p| p.rx_pauses),
    )?;
    let reasons: [Labelled<PmdInfo>; 4] = [
        ("upcall_queue_full", |p| p.drop_upcall_queue_full),
        ("park_full", |p| p.drop_park_full),
        ("park_timeout", |p| p.drop_park_timeout),
        ("bad_output", |p| p.drop_bad_output),
    ];
    counters(
        enc,
        "ferrovs_pmd_drops",
        "Packets the PMD dropped: upcall queue full, no room to park a packet awaiting its flow, parked too \
         long, output to a port that does not exist",
        None,
        pmds.iter().flat_map(|(l, p)| reasons.iter().map(move |(r, f)| (with(l, "reason", r), f(p)))),
    )?;
    let each_gauge = |f: fn(&PmdInfo) -> u64| pmds.iter().map(move |(l, p)| (l.clone(), f(p) as f64));
    gauges(enc, "ferrovs_pmd_megaflows", "Megaflows installed in the PMD", None, each_gauge(|p| p.megaflows))?;
    gauges(enc, "ferrovs_pmd_masks", "Distinct megaflow masks in the PMD", None, each_gauge(|p| p.masks))?;
    gauges(enc, "ferrovs_pmd_running", "1 while the PMD thread runs", None, each_gauge(|p| p.running as u64))?;
    let each = |f: fn(&PmdInfo) -> u64| pmds.iter().map(move |(l, p)| (l.clone(), f(p)));
    counters(enc, "ferrovs_pmd_evictions", "Megaflows evicted at the flow limit", None, each(|p| p.evictions))?;
    counters(
        enc,
        "ferrovs_pmd_reports_lost",
        "Reports to the slow path that were lost",
        None,
        each(|p| p.reports_lost),
    )?;
    counters(
        enc,
        "ferrovs_pmd_frees_on_pmd",
        "Heap values of the slow path's commands the PMD freed itself (their way back was full)",
        None,
        each(|p| p.frees_on_pmd),
    )?;
    gauges(
        enc,
        "ferrovs_tsc_frequency",
        "TSC ticks per second, to turn cycles into time",
        Some(&Unit::Other("hertz".into())),
        [(vec![], s.pmd.tsc_hz as f64)],
    )
}

fn encode_slow_path(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let sp = &s.pmd.slow_path;
    let st = &sp.state;
    let one = |v: u64| [(Labels::new(), v)];
    counters(enc, "ferrovs_slow_path_upcalls_handled", "Upcalls the slow path handled", None, one(sp.upcalls_handled))?;
    counters(enc, "ferrovs_slow_path_installs", "Megaflows installed", None, one(st.installs))?;
    counters(enc, "ferrovs_slow_path_executes", "Upcalls answered without installing", None, one(st.executes))?;
    counters(
        enc,
        "ferrovs_slow_path_executes_relearned",
        "Upcalls answered without installing because their own MAC learning changed what they read",
        None,
        one(st.executes_relearned),
    )?;
    counters(enc, "ferrovs_slow_path_removes", "Megaflows removed", None, one(st.removes))?;
    counters(
        enc,
        "ferrovs_slow_path_revalidations",
        "Megaflows re-translated after a rule or MAC change",
        None,
        one(st.revalidated),
    )?;
    counters(enc, "ferrovs_slow_path_rule_changes", "Rule changes applied", None, one(st.rule_changes))?;
    counters(enc, "ferrovs_slow_path_rules_expired", "Rules removed by their timeouts", None, one(st.rules_expired))?;
    counters(
        enc,
        "ferrovs_slow_path_executed_packets",
        "Packets executed without a megaflow, credited to their rules",
        None,
        one(st.executed_packets),
    )?;
    counters(
        enc,
        "ferrovs_slow_path_packets",
        "Packets translated one by one in the slow path (neighbour-discovery messages ND rules may match)",
        None,
        one(st.slow_path_packets),
    )?;
    counters(
        enc,
        "ferrovs_slow_path_xlate_errors",
        "Translations abandoned (installed as drop)",
        None,
        one(st.xlate_errors),
    )?;
    counters(
        enc,
        "ferrovs_slow_path_commands_undelivered",
        "Commands a stuck PMD did not take",
        None,
        one(sp.commands_undelivered),
    )?;
    counters(
        enc,
        "ferrovs_slow_path_mac_events",
        "MAC learning table events",
        None,
        [
            ("learned", st.mac_learned),
            ("moved", st.mac_moved),
            ("expired", st.mac_expired),
            ("evicted", st.mac_evicted),
        ]
        .map(|(e, v)| (vec![("event", e.to_string())], v)),
    )?;
    let h = &sp.upcall_latency;
    let bounds = h.bounds_us.iter().map(|b| b / 1e6).chain(std::iter::once(f64::INFINITY));
    let buckets: Vec<(f64, u64)> = bounds.zip(h.counts.iter().copied()).collect();
    let count = h.counts.iter().sum();
    let mut m = enc.encode_descriptor(
        "ferrovs_slow_path_upcall_duration",
        "Time the slow path took per upcall (translation and delivery to the PMD)",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    m.encode_histogram::<NoLabelSet>(h.sum_us / 1e6, count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::samples;
    use std::time::Instant;

    fn text() -> String {
        let published = Arc::new(Published::default());
        published.publish(Snapshot { show: samples::show(), pmd: samples::pmd_stats(), taken: Instant::now() });
        exposition(&registry(published)).unwrap()
    }

    /// The value of the sample line `name{labels} value` written exactly so.
    fn sample(text: &str, series: &str) -> f64 {
        let line = text.lines().find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series));
        let line = line.unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    #[test]
    fn families_carry_the_snapshot_numbers() {
        let t = text();
        let show = samples::show();
        let br = &show.bridges[0];
        let p = &br.ports[0];
        let l = format!("bridge=\"{}\",port=\"{}\"", br.name, p.name);
        assert_eq!(sample(&t, &format!("ferrovs_port_rx_packets_total{{{l}}}")), p.rx_packets as f64);
        assert_eq!(sample(&t, &format!("ferrovs_port_tx_bytes_total{{{l}}}")), p.tx_bytes as f64);
        assert_eq!(sample(&t, &format!("ferrovs_port_drops_total{{{l},reason=\"no_mbuf\"}}")), p.drop_no_mbuf as f64);
        let admin_tx = sample(&t, &format!("ferrovs_port_drops_total{{{l},reason=\"admin_down_tx\"}}"));
        assert_eq!(admin_tx, p.drop_admin_down_tx as f64);
        let pmd = samples::pmd_stats();
        let q = &pmd.pmds[0];
        let l = format!("pmd=\"{}\",core=\"{}\"", q.pmd, q.core);
        assert_eq!(
            sample(&t, &format!("ferrovs_pmd_lookups_total{{{l},level=\"signature\"}}")),
            q.signature_hits as f64
        );
        assert_eq!(
            sample(&t, &format!("ferrovs_pmd_drops_total{{{l},reason=\"park_timeout\"}}")),
            q.drop_park_timeout as f64
        );
        assert_eq!(sample(&t, &format!("ferrovs_pmd_cycles_total{{{l},state=\"idle\"}}")), q.idle_cycles as f64);
        assert_eq!(sample(&t, &format!("ferrovs_pmd_megaflows{{{l}}}")), q.megaflows as f64);
        let st = &pmd.slow_path.state;
        assert_eq!(sample(&t, "ferrovs_slow_path_mac_events_total{event=\"moved\"}"), st.mac_moved as f64);
        assert_eq!(sample(&t, "ferrovs_slow_path_revalidations_total"), st.revalidated as f64);
        assert!(t.contains("# TYPE ferrovs_slow_path_upcall_duration_seconds histogram"), "{t}");
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_in_seconds() {
        let t = text();
        // The sample: bounds 5 and 50 us, counts 100, 17 and 1 above, 413 us in all.
        assert_eq!(sample(&t, "ferrovs_slow_path_upcall_duration_seconds_bucket{le=\"0.000005\"}"), 100.0);
        assert_eq!(sample(&t, "ferrovs_slow_path_upcall_duration_seconds_bucket{le=\"0.00005\"}"), 117.0);
        assert_eq!(sample(&t, "ferrovs_slow_path_upcall_duration_seconds_bucket{le=\"+Inf\"}"), 118.0);
        assert_eq!(sample(&t, "ferrovs_slow_path_upcall_duration_seconds_count"), 118.0);
        assert!((sample(&t, "ferrovs_slow_path_upcall_duration_seconds_sum") - 413e-6).abs() < 1e-12);
    }

    #[test]
    fn nothing_published_is_an_empty_exposition() {
        assert_eq!(exposition(&registry(Arc::new(Published::default()))).unwrap(), "# EOF\n");
    }
}
