//! Ports whose device goes away under the running switch, and comes back.
//!
//! The main thread asks once a second (never a PMD: this reads files); a port found gone
//! is detached (`crate::reconcile::detach_port`: out of the datapath and of its bridge's
//! port set, megaflows revalidated, still in the desired state and the file), and a
//! detached port whose device is back is probed again with the same devargs and
//! reattached (`crate::reconcile::reattach_port`).
//!
//! What is seen:
//! - **net_tap ports with `iface=NAME`** (and every bridge's internal port). The TAP's
//!   file descriptors are the daemon's own: `/proc/self/fdinfo` says which interface each
//!   `/dev/net/tun` descriptor is attached to (`iff:`), and a deleted interface (`ip link
//!   del`, or its network namespace deleted) leaves its descriptors attached to none,
//!   wherever the interface was. A port is gone when no descriptor names its interface and
//!   some descriptor names none (so a TAP renamed in another namespace is not taken for a
//!   deleted one). It is back when an interface of its name exists in ferrovsd's network
//!   namespace (`/sys/class/net/NAME`); net_tap then attaches to it, which needs a
//!   multi-queue TAP without packet information (`ip tuntap add dev NAME mode tap
//!   multi_queue`). A TAP recreated in another namespace cannot be seen by name, so that
//!   port stays detached.
//! - **Devices whose driver raises DPDK's removal interrupt** (`RTE_ETH_EVENT_INTR_RMV`:
//!   hot-unplugged PCI devices, failsafe and similar; not net_tap, net_af_packet, net_pcap,
//!   net_null or net_ring): the DPDK binding records the event
//!   ([`ferrovs_dpdk::take_removed_ports`]); such a port, once detached, is probed again
//!   every [`REPROBE_EVERY`] until its device is back.
//!
//! Not seen: a net_tap without `iface=` (its name is the driver's choice), a vhost-user
//! peer that goes (the port stays, with its link down), an af_packet interface deleted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ferrovs_config::{Config, PortConfig, PortDevice};

/// How often a detached port that is not a TAP is probed again.
pub const REPROBE_EVERY: Duration = Duration::from_secs(5);

/// The interface a port's device is a TAP of, if it is a net_tap with `iface=`.
pub fn tap_interface(p: &PortConfig) -> Option<&str> {
    match &p.device {
        PortDevice::Vdev { driver, .. } if driver == "net_tap" => {
            p.devargs.split(',').skip(1).find_map(|a| a.strip_prefix("iface=")).filter(|n| !n.is_empty())
        }
        _ => None,
    }
}

/// What this process's `/dev/net/tun` descriptors are attached to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TunDescriptors {
    /// The interfaces named by at least one descriptor.
    pub attached: HashSet<String>,
    /// Descriptors attached to no interface (theirs was deleted).
    pub orphans: usize,
}

impl TunDescriptors {
    /// Reads `/proc/self/fd` and `/proc/self/fdinfo`.
    pub fn read() -> std::io::Result<TunDescriptors> {
        let mut out = TunDescriptors::default();
        for entry in std::fs::read_dir("/proc/self/fd")? {
            let Ok(entry) = entry else { continue };
            if std::fs::read_link(entry.path()).is_ok_and(|t| t.as_os_str() == "/dev/net/tun") {
                let info =
                    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy()));
                // A descriptor closed meanwhile has no fdinfo: not counted either way.
                if let Ok(info) = info {
                    out.add_fdinfo(&info);
                }
            }
        }
        Ok(out)
    }

    /// Counts one descriptor from its fdinfo text (`iff:\tNAME`, empty when detached).
    fn add_fdinfo(&mut self, info: &str) {
        match info.lines().find_map(|l| l.strip_prefix("iff:")).map(str::trim) {
            Some("") => self.orphans += 1,
            Some(name) => {
                self.attached.insert(name.to_string());
            }
            None => {}
        }
    }
}

/// A port to detach or reattach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    Gone(String),
    Back(String),
}

/// The periodic check (see the module doc).
pub struct DeviceWatch {
    last_reprobe: Instant,
    /// Ports the removal interrupt reported, not yet detached.
    removed: HashSet<String>,
}

impl DeviceWatch {
    pub fn new(now: Instant) -> DeviceWatch {
        DeviceWatch { last_reprobe: now, removed: HashSet::new() }
    }

    /// Port `name`'s driver reported its device removed.
    pub fn removal_reported(&mut self, name: &str) {
        self.removed.insert(name.to_string());
    }

    /// The ports of `running` to detach (device gone) and to reattach (device back);
    /// `is_detached` says which are detached now.
    pub fn check(
        &mut self,
        now: Instant,
        running: &Config,
        is_detached: impl Fn(&str) -> bool,
        tun: &TunDescriptors,
        interface_exists: impl Fn(&str) -> bool,
    ) -> Vec<DeviceEvent> {
        let reprobe = now.duration_since(self.last_reprobe) >= REPROBE_EVERY;
        if reprobe {
            self.last_reprobe = now;
        }
        let mut out = Vec::new();
        for p in running.bridges.iter().flat_map(|b| &b.ports) {
            let detached = is_detached(&p.name);
            let tap = tap_interface(p);
            let event = match (detached, tap) {
                (false, _) if self.removed.remove(&p.name) => Some(DeviceEvent::Gone(p.name.clone())),
                (false, Some(iface)) if tun.orphans > 0 && !tun.attached.contains(iface) => {
                    Some(DeviceEvent::Gone(p.name.clone()))
                }
                (true, Some(iface)) if interface_exists(iface) => Some(DeviceEvent::Back(p.name.clone())),
                (true, None) if reprobe => Some(DeviceEvent::Back(p.name.clone())),
                _ => None,
            };
            out.extend(event);
        }
        out
    }
}

/// Whether a network interface `name` exists in this network namespace.
pub fn interface_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[[bridge]]\nname = \"br0\"\n\n[[bridge.port]]\nname = \"a\"\nnumber = 1\n\
                    devargs = \"net_tap0,iface=ta\"\n\n[[bridge.port]]\nname = \"n\"\nnumber = 2\n\
                    devargs = \"net_null0\"\n";
        Config::from_str(text, ".").unwrap()
    }

    fn tun(attached: &[&str], orphans: usize) -> TunDescriptors {
        TunDescriptors { attached: attached.iter().map(|s| s.to_string()).collect(), orphans }
    }

    #[test]
    fn fdinfo_names_the_interface_or_none() {
        let mut t = TunDescriptors::default();
        t.add_fdinfo("pos:\t0\nflags:\t02004002\nmnt_id:\t15\nino:\t1\niff:\tta\n");
        t.add_fdinfo("pos:\t0\nflags:\t02004002\niff:\t\n");
        t.add_fdinfo("pos:\t0\nflags:\t02\n");
        assert_eq!(t, tun(&["ta"], 1));
    }

    #[test]
    fn a_deleted_tap_goes_and_comes_back_by_name() {
        let c = config();
        assert_eq!(tap_interface(&c.bridges[0].ports[0]), Some("br0"), "the internal port is a TAP too");
        let t0 = Instant::now();
        let mut w = DeviceWatch::new(t0);
        let none = |_: &str| false;
        // Every TAP attached: nothing happens.
        assert_eq!(w.check(t0, &c, none, &tun(&["br0", "ta"], 0), |_| true), vec![]);
        // ta's interface is gone (an orphan descriptor), wherever it was.
        assert_eq!(w.check(t0, &c, none, &tun(&["br0"], 2), |_| false), vec![DeviceEvent::Gone("a".into())]);
        // Not attached by name but no orphan: renamed elsewhere, not deleted.
        assert_eq!(w.check(t0, &c, none, &tun(&["br0"], 0), |_| false), vec![]);
        // Detached: back once an interface of its name exists here.
        let a_detached = |n: &str| n == "a";
        assert_eq!(w.check(t0, &c, a_detached, &tun(&["br0"], 0), |_| false), vec![]);
        let back = w.check(t0, &c, a_detached, &tun(&["br0"], 0), |n| n == "ta");
        assert_eq!(back, vec![DeviceEvent::Back("a".into())]);
    }

    #[test]
    fn a_removal_interrupt_detaches_and_reprobes_on_a_timer() {
        let c = config();
        let t0 = Instant::now();
        let mut w = DeviceWatch::new(t0);
        let all = tun(&["br0", "ta"], 0);
        w.removal_reported("n");
        assert_eq!(w.check(t0, &c, |_| false, &all, |_| true), vec![DeviceEvent::Gone("n".into())]);
        let n_detached = |n: &str| n == "n";
        assert_eq!(w.check(t0 + Duration::from_secs(1), &c, n_detached, &all, |_| true), vec![]);
        let later = t0 + REPROBE_EVERY;
        assert_eq!(w.check(later, &c, n_detached, &all, |_| true), vec![DeviceEvent::Back("n".into())]);
    }
}
