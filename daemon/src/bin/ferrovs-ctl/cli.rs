// ferrovs-ctl's command line. Shared with daemon/build.rs, which renders the shell
// completions and the man page from these definitions at build time, so this file uses
// only clap, std and ferrovs_config (and no inner attributes: build.rs `include!`s it).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ferrovs-ctl",
    version,
    about = "Control a running ferrovsd",
    long_about = "Control a running ferrovsd (the ferrovs userspace virtual switch) over its control socket: \
                  show ports and PMD statistics, add, delete and dump OpenFlow-lite rules, trace packets, \
                  reload the configuration, stop the daemon.",
    after_help = "Exit status: 0 on success; 1 when the daemon cannot be reached or refuses the request \
                  (the reason is printed on standard error)."
)]
pub struct Cli {
    /// Control socket of the daemon (the config's `[control]` socket).
    #[arg(long, short = 's', value_name = "PATH", default_value = ferrovs_config::DEFAULT_CONTROL_SOCKET, env = "FERROVS_SOCKET")]
    pub socket: PathBuf,
    /// Print the daemon's reply as JSON (one object, tagged `"cmd"`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// The OpenFlow version rules are read in, as ovs-ofctl's `-O`, before or after the
    /// command: OpenFlow10 (its default) or OpenFlow13, where `mod_vlan_vid` without a
    /// VLAN match is push_vlan + set_field as ovs-ofctl encodes it (add-flow, add-flows;
    /// del-flows only checks it: a match reads the same in both); dump-flows prints the
    /// rules as `ovs-ofctl -O VERSION dump-flows` does. A list (`OpenFlow10,OpenFlow13`)
    /// is its highest version, as ovs-ofctl negotiates it.
    #[arg(short = 'O', long = "protocols", value_name = "VERSION", global = true)]
    pub protocols: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Bridges, ports, link state and counters.
    Show,
    /// Per-PMD statistics: packets, cycles per packet, busy/idle, cache hits.
    PmdStatsShow,
    /// Per-PMD iteration figures and histograms (cycles and packets per iteration,
    /// cycles per packet, packets per rx batch), as `ovs-appctl dpif-netdev/pmd-perf-show`.
    PmdPerfShow,
    /// Reset the PMD statistics (counters and histograms).
    PmdStatsClear,
    /// Reassign rx queues to PMDs by their measured load since the last rebalance.
    PmdRxqRebalance,
    /// Stop ferrovsd cleanly.
    Stop,
    /// Add a rule (ovs-ofctl syntax), e.g. `add-flow br0 "tcp,tp_dst=80,actions=output:2"`.
    AddFlow {
        /// The bridge to add the rule to.
        bridge: String,
        /// The rule: `[table=T,][priority=P,]MATCH,actions=ACTIONS`, as for ovs-ofctl add-flow.
        flow: String,
    },
    /// Add every rule of FILE (one per line, `#` comments) as one atomic change, of any
    /// size (the file is streamed; the command waits until the change is applied).
    AddFlows {
        /// The bridge to add the rules to.
        bridge: String,
        /// File of rules, one per line in ovs-ofctl syntax (read by ferrovs-ctl).
        file: PathBuf,
    },
    /// Delete the rules that match MATCH (all rules without it).
    DelFlows {
        /// The bridge to delete rules from.
        bridge: String,
        /// Match fields in ovs-ofctl syntax; every rule that matches at least these is deleted.
        r#match: Option<String>,
    },
    /// The rules of a bridge with their counters.
    DumpFlows {
        /// The bridge whose rules to print.
        bridge: String,
    },
    /// The megaflows installed in the PMDs.
    DumpDpFlows,
    /// Connect a bridge to OpenFlow controllers (`tcp:IP:PORT`, `ptcp:PORT[:IP]`).
    SetController {
        /// The bridge.
        bridge: String,
        /// The controller targets; they replace the bridge's current ones.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Disconnect a bridge from its OpenFlow controllers.
    DelController {
        /// The bridge.
        bridge: String,
    },
    /// A bridge's OpenFlow controllers and how many are connected.
    GetController {
        /// The bridge.
        bridge: String,
    },
    /// Trace a packet described in ovs-ofctl syntax through a bridge's tables.
    Trace {
        /// The bridge whose tables the packet goes through.
        bridge: String,
        /// The packet's fields, e.g. `in_port=1,tcp,nw_dst=10.0.0.1,tp_dst=80`.
        packet: String,
    },
    /// Re-read the config file and apply what changed: bridges, ports, rules (also SIGHUP).
    Reload,
    /// Add a bridge (no ports, no rules; its changes are written back to the config).
    AddBr {
        /// The new bridge's name.
        bridge: String,
    },
    /// Delete a bridge; refused while it has ports unless --force.
    DelBr {
        /// The bridge to delete.
        bridge: String,
        /// Delete its ports too.
        #[arg(long)]
        force: bool,
    },
    /// The bridges, one per line.
    ListBr,
    /// Add a port to a running bridge, e.g. `add-port br0 tap2 net_tap2,iface=fvs-tap2`.
    AddPort {
        /// The bridge to add the port to.
        bridge: String,
        /// The port's name (unique across the switch).
        port: String,
        /// DPDK device arguments: `net_tap2,iface=NAME`, `0000:01:00.0`, ...
        devargs: String,
        /// OpenFlow port number (default: the lowest free one).
        #[arg(long, value_name = "N")]
        number: Option<u32>,
        /// Receive queues (default 1).
        #[arg(long, value_name = "Q")]
        rx_queues: Option<u16>,
        /// MTU (default 1500): longer frames are not sent on this port.
        #[arg(long, value_name = "M")]
        mtu: Option<u16>,
    },
    /// Delete a port: `del-port [BRIDGE] PORT`, as ovs-vsctl.
    DelPort {
        /// The bridge (optional; checked when given), then the port.
        #[arg(num_args = 1..=2, required = true, value_name = "[BRIDGE] PORT")]
        names: Vec<String>,
    },
    /// Change a port's settings: `mtu=M`, `admin=up|down`, `rxq_affinity=QUEUE:CPU,...`
    /// (applied in place), `rx_queues=Q`, `devargs=D`, `number=N` (these re-create the port).
    SetPort {
        /// `[BRIDGE] PORT KEY=VALUE...`: the bridge (optional, as in ovs-vsctl's form;
        /// checked when given), the port, then its settings.
        #[arg(num_args = 2.., required = true, value_name = "[BRIDGE] PORT KEY=VALUE")]
        args: Vec<String>,
    },
    /// The ports of a bridge, one per line.
    ListPorts {
        /// The bridge whose ports to list.
        bridge: String,
    },
    /// Capture the frames a port receives and sends into a pcapng file (written by
    /// ferrovs-ctl), until --count frames, --duration seconds, or Ctrl-C.
    Capture {
        /// The port to capture (its name in the config).
        port: String,
        /// The pcapng file to write (created or truncated).
        file: PathBuf,
        /// Stop after this many frames (that match --filter).
        #[arg(long, short = 'c', value_name = "N")]
        count: Option<u64>,
        /// Stop after this many seconds (fractions allowed).
        #[arg(long, short = 'd', value_name = "SECONDS")]
        duration: Option<f64>,
        /// Keep only frames that match, in ovs-ofctl match syntax, e.g. `udp,tp_dst=53`
        /// (no in_port: every frame is of PORT).
        #[arg(long, short = 'f', value_name = "MATCH")]
        filter: Option<String>,
    },
    /// Print a shell completion script to standard output (needs no daemon).
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
    /// Print this program's manual page (roff, section 1) to standard output (needs no daemon).
    Man,
}

/// Shells with a completion script (build.rs writes each to `completion.NAME` in OUT_DIR).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}
