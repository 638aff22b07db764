//! The slow path: a deterministic state machine that answers PMD upcalls, keeps a mirror
//! of every PMD's megaflows, and keeps them right when rules or MAC tables change.
//!
//! # Design
//!
//! Written in the style of `quinn-proto`: no threads, no I/O, no clock. Every input
//! (an [`Upcall`], a [`PmdEvent`], a rule change, a tick, live statistics) is a method
//! call that takes `now_ms`, and every output is a list of `(pmd, PmdCommand)` for the
//! caller (the daemon's slow-path thread) to put on the PMDs' queues, in the order
//! given. The same inputs always give the same outputs.
//!
//! ```text
//!   Upcall ──> translate (bridge of in_port, its RuleTables + MacTable)
//!          ──> apply what `normal` learned; a new or moved MAC re-translates the
//!              megaflows (of every PMD) whose mac_deps name it: Remove unless Keep
//!          ──> answer the upcall's PMD with exactly one command:
//!                Install{id, key, megaflow (key & mask, mask, actions)}  normally
//!                Execute{key, actions}  if the PMD's mirror already has this key+mask
//!                                       or a megaflow covering the key (upcalls raced),
//!                                       or the PMD is at its flow limit
//!   PmdEvent ─> forget the ids; credit their final statistics to their rules
//!   executed ─> credit an Execute's packets to the rules of its key's translation
//!   rule change ─> new RuleTables version; revalidate the megaflows of the bridge the
//!                  change can affect, found through the bridge's index (`flow_index`):
//!                  Keep (re-point its rules/mac_deps) or Remove (never an in-place swap)
//!   tick ─────> MAC aging, rule idle/hard timeouts (deleted as by del-flows),
//!               ExpireIdle to every PMD
//! ```
//!
//! ## The mirror
//!
//! Each PMD has a [`PmdMirror`]: FlowId -> (key, mask, actions, bridge, rules, mac_deps,
//! learn, installed_at, credited stats), indexed by key+mask; each bridge indexes its
//! megaflows by the MAC entries they depend on, and (`flow_index`) by the rules they
//! matched and by the key bits their lookups saw. Megaflows name rules by [`RuleId`],
//! which a rule keeps across versions, so a rule change rewrites nothing in megaflows it
//! does not revalidate: a change of one rule costs O(rules) to build the version plus
//! the megaflows it can affect, not O(megaflows). An entry is forgotten when its `Remove`
//! is issued (commands to one PMD are applied in order, so an `Install` of the same
//! key+mask issued later is applied after the removal), or when the PMD reports it gone.
//! Flows whose `Remove` is issued wait in `removing` until their `Gone` event brings
//! their final statistics, so per-rule counters lose nothing.
//!
//! ## Consistency: what a caller may rely on
//!
//! After the caller has delivered the commands of a call to every PMD and every PMD
//! has applied them (a barrier), every megaflow in every PMD gives, for every packet it
//! covers, the decision of the current rules and MAC table. That is what makes "no
//! packet after a rule change returns is forwarded by a stale flow" hold: the daemon
//! waits for the barrier before replying. Between the call and the barrier a PMD may
//! still forward with the previous decision, as OVS does.
//!
//! MAC entries age out exactly when this state machine notices: every call that can
//! translate (upcall, rule change, tick, live statistics) first expires aged entries
//! and revalidates their dependants, so what a translation considers "learned" is
//! exactly what is in the table, and a megaflow that unicasts to an aged entry is
//! removed no later than the next such call.
//!
//! ## Decisions
//!
//! - A translation that was abandoned (resubmit loop: too deep, too many lookups) is
//!   installed as a *drop* megaflow with the translation's mask (which decides the
//!   abort, as the translator's differential test checks), so a looping rule set costs
//!   one translation per megaflow, not one per packet. Counted in `xlate_errors`.
//! - An upcall whose in_port is on no bridge is answered with `Execute` of drop.
//! - An upcall naming a PMD that does not exist cannot be answered; it is counted in
//!   `bad_upcalls` and ignored.
//! - If what `normal` learned from the upcall changes an entry the upcall's own
//!   decision depends on (a packet to itself, or a rewritten source), the key is
//!   translated once more against the updated table, so the megaflow is not stale at
//!   birth.
//! - Megaflows may partially overlap other megaflows of the same PMD (the translator
//!   picks witnesses per packet); both carry the same decision for the packets they
//!   share, so the PMD must install them with `insert_unchecked`. Only an identical
//!   key+mask, or a megaflow already covering the upcall's key, turns the answer into
//!   an `Execute`.
//! - Per-rule counters count every packet a rule handled. A megaflow's packets are
//!   credited to the rules of its latest translation (a megaflow kept across a rule
//!   change is re-pointed at the new version's rules); they include the parked packets
//!   its `Install` released (the PMD adds them to its statistics) and, for a refused
//!   install, the packets it executed anyway (in the `Refused` report). Packets an
//!   `Execute` released come back as counts for their key ([`SlowPath::credit_executed`])
//!   and are credited to the rules of that key's translation at that time.
//! - `replace_rules` keeps the counters of every rule whose (table, priority, match) is
//!   unchanged, as `ovs-ofctl replace-flows` (which modifies in place); `add_flows`
//!   resets the counters of the rules it replaces (an OFPFC_ADD of an identical flow).

mod executed;
mod flow_index;
mod flow_mod;
mod mirror;
mod port_map;
mod rule_deps;
mod rule_edit;
mod topology;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ferrovs_config::MatchSpec;
use ferrovs_config::rules::{Action, Groups, Rule};
use std::sync::Arc;

pub use flow_index::RuleId;
pub use flow_mod::{ChangeKind, FlowChange, FlowModDone, apply_change, outputs_to};
pub use mirror::{MirrorFlow, PmdMirror};
pub use rule_deps::{AddedRule, RuleDeps, TableLookup};
pub use rule_edit::{del_selected, del_selects, match_covers};

use crate::actions::DpActions;
use crate::key::{FlowKey, Mask};
use crate::megaflow::{Megaflow, MegaflowStats};
use crate::upcall::{FlowId, GoneReason, PmdCommand, PmdEvent, Upcall};
use crate::xlate::{
    BuildError, Expiry, LearnOutcome, MacKey, MacLearn, MacTable, MissMode, RuleCounters, RuleRef, RuleStats,
    RuleTables, Translation, Verdict, revalidate, translate,
};

/// One bridge as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// OpenFlow port numbers, in flood order (each bridge has its own).
    pub ports: Vec<u32>,
    /// The datapath's number of each port of `ports` (unique across the switch; what the
    /// PMDs' keys and actions use). Empty: the same numbers as `ports`.
    pub datapath_ports: Vec<u32>,
    pub rules: Vec<Rule>,
    /// The groups the rules may name.
    pub groups: Groups,
}

/// Limits and timers of the slow path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowPathConfig {
    /// Most megaflows installed in one PMD; beyond it, misses are answered by `Execute`.
    pub flow_limit_per_pmd: usize,
    /// Megaflows unused this long are removed by the PMDs (`ExpireIdle` on each tick).
    pub idle_expiry_ms: u64,
    /// MAC learning table aging time.
    pub mac_aging: Duration,
    /// MAC learning table capacity per bridge.
    pub mac_capacity: usize,
    /// Print the rules of an `add_flows` or `del_flows` change as it is compiled, for
    /// [`SlowPath::printed_rules`] (a caller that writes each change back as text:
    /// see `RuleTables::build`).
    pub print_changed_rules: bool,
    /// Fewest rules a bridge has for a change of a few rules (`add_flows`, `del_flows`,
    /// `replace_rules` that only deletes or changes actions, expiry) to be made in place
    /// (see `RuleTables::add_in_place`) rather than by a new version: below, a build
    /// takes a few milliseconds at most and gives the narrowest megaflows.
    pub add_in_place_from: usize,
}

impl Default for SlowPathConfig {
    fn default() -> Self {
        SlowPathConfig {
            flow_limit_per_pmd: 200_000,
            idle_expiry_ms: 10_000,
            mac_aging: MacTable::DEFAULT_AGING,
            mac_capacity: MacTable::DEFAULT_CAPACITY,
            print_changed_rules: false,
            add_in_place_from: 2048,
        }
    }
}

pub use ferrovs_config::rules::{GroupError, OFPG_MAX};

/// A group-mod (OpenFlow 1.1+): see [`SlowPath::group_mod`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    Add(u32, ferrovs_config::rules::Group),
    Modify(u32, ferrovs_config::rules::Group),
    /// [`OFPG_ALL`]: every group.
    Delete(u32),
    /// These groups and no others (a config reload): the rules naming a group that goes
    /// are deleted with it.
    Replace(Groups),
}

/// `OFPG_ALL`: every group (delete).
pub const OFPG_ALL: u32 = 0xffff_fffc;

/// Why a slow-path request was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlowPathError {
    #[error("no bridge named `{0}`")]
    UnknownBridge(String),
    #[error("bridge `{0}` is defined twice")]
    DuplicateBridge(String),
    #[error("group {id}: {error}")]
    Group { id: u32, error: GroupError },
    #[error("port {port} is on both bridge `{first}` and bridge `{second}`")]
    DuplicatePort { port: u32, first: String, second: String },
    #[error("bridge `{bridge}`: {error}")]
    Rules { bridge: String, error: BuildError },
}

/// What the slow path has done since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlowPathCounters {
    pub upcalls: u64,
    pub installs: u64,
    /// Every `Execute` (the sum of the reasons below and `no_bridge`).
    pub executes: u64,
    /// Executes because the translation's own learning changed a MAC entry an earlier
    /// lookup of it had read (installed at the key's next miss).
    pub executes_relearned: u64,
    /// Executes because the PMD already had this key+mask or a covering megaflow.
    pub executes_raced: u64,
    /// Executes because the PMD was at its flow limit.
    pub executes_flow_limit: u64,
    /// Upcalls whose in_port is on no bridge (answered with drop).
    pub no_bridge: u64,
    /// Upcalls from a PMD index that does not exist (not answered).
    pub bad_upcalls: u64,
    /// Abandoned translations (installed as drop).
    pub xlate_errors: u64,
    /// Megaflows removed by `Remove` commands.
    pub removes: u64,
    /// Megaflows re-translated after a rule or MAC change.
    pub revalidated: u64,
    /// MAC entries learned new or moved.
    pub mac_learned: u64,
    pub mac_moved: u64,
    pub mac_expired: u64,
    pub mac_evicted: u64,
    /// Rule-set versions installed (replace/add/del and timeouts).
    pub rule_changes: u64,
    /// Rules deleted by idle or hard timeout.
    pub rules_expired: u64,
    /// Megaflows reported gone by PMDs.
    pub flows_gone: u64,
    /// Of those, megaflows a PMD evicted at its flow limit.
    pub flows_evicted: u64,
    /// Packets executed by PMDs without a megaflow (`Execute` answers), credited to the
    /// rules of their key's translation.
    pub executed_packets: u64,
    /// Packets a slow-path megaflow sent here one by one (neighbour-discovery messages
    /// that ND rules may match), each translated with its frame's ND fields.
    pub slow_path_packets: u64,
}

/// A rule with its counters, for `dump-flows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDump {
    pub rule: Rule,
    pub packets: u64,
    pub bytes: u64,
    /// Since the rule was added.
    pub duration_ms: u64,
    /// Since the rule last had a packet (or was added).
    pub idle_ms: u64,
}

impl RuleDump {
    /// `rule` with counters `c` plus `extra` (packets, bytes) not yet credited, at `now`.
    fn new(rule: &Rule, c: RuleCounters, extra: (u64, u64), now: Duration) -> RuleDump {
        RuleDump {
            rule: rule.clone(),
            packets: c.packets + extra.0,
            bytes: c.bytes + extra.1,
            duration_ms: now.saturating_sub(c.installed_at).as_millis() as u64,
            idle_ms: now.saturating_sub(c.last_used).as_millis() as u64,
        }
    }
}

/// A rule with the `send_flow_rem` flag that timed out, with its final counters, for
/// the bridge's OpenFlow controllers (taken with [`SlowPath::take_expired`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRule {
    pub bridge: String,
    pub dump: RuleDump,
    pub reason: Expiry,
}

/// A rule with the `send_flow_rem` flag that a change request deleted (`del-flows`, a
/// group delete, a replacement of the rule set), with its counters when it went, for
/// the bridge's OpenFlow controllers (taken with [`SlowPath::take_deleted`]). Rules
/// that time out are [`ExpiredRule`]s; an OpenFlow flow-mod returns its own
/// ([`FlowModDone::removed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedRule {
    pub bridge: String,
    pub dump: RuleDump,
}

/// One mirrored megaflow, for `dump-dp-flows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpFlowDump {
    pub pmd: usize,
    pub id: FlowId,
    pub bridge: String,
    pub key: FlowKey,
    pub mask: Mask,
    pub actions: DpActions,
    pub installed_at: u64,
}

/// The answer to a trace request: the translation and the megaflow it would install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceResult {
    pub translation: Translation,
    pub megaflow: Megaflow,
}

struct Bridge {
    name: String,
    /// OpenFlow numbers, flood order.
    ports: Vec<u32>,
    /// OpenFlow numbers <-> the datapath's.
    port_map: port_map::PortMap,
    tables: RuleTables,
    stats: RuleStats,
    macs: MacTable,
    /// (VLAN, MAC) -> megaflows (pmd, id) whose decision looked it up.
    mac_index: HashMap<MacKey, BTreeSet<(usize, FlowId)>>,
    /// Stable names of `tables`' rules (what megaflows record).
    ids: flow_index::RuleIds,
    /// The bridge's megaflows by rule and by fixed key bits (see `flow_index`).
    flows: flow_index::FlowIndex,
}

/// A megaflow whose `Remove` was issued; waits for its final statistics.
struct Removing {
    bridge: usize,
    rules: Vec<RuleId>,
    credited: MegaflowStats,
}

/// Commands of one call: the removals of each PMD first (so that an `Install` of the
/// same key+mask in the same call comes after its removal), then the rest in order.
struct Out {
    removes: Vec<Vec<FlowId>>,
    rest: Vec<(usize, PmdCommand)>,
}

impl Out {
    fn new(n_pmds: usize) -> Out {
        Out { removes: vec![Vec::new(); n_pmds], rest: Vec::new() }
    }

    fn finish(self) -> Vec<(usize, PmdCommand)> {
        let mut v: Vec<(usize, PmdCommand)> = self
            .removes
            .into_iter()
            .enumerate()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(pmd, ids)| (pmd, PmdCommand::Remove { ids }))
            .collect();
        v.extend(self.rest);
        v
    }
}

/// Credited statistics after crediting `st` (never backwards).
fn advance(credited: MegaflowStats, st: &MegaflowStats) -> MegaflowStats {
    MegaflowStats { packets: st.packets.max(credited.packets), bytes: st.bytes.max(credited.bytes), ..*st }
}

fn ms(now_ms: u64) -> Duration {
    Duration::from_millis(now_ms)
}

/// The slow-path state machine. See the module documentation.
pub struct SlowPath {
    cfg: SlowPathConfig,
    bridges: Vec<Bridge>,
    port_bridge: HashMap<u32, usize>,
    mirrors: Vec<PmdMirror>,
    removing: HashMap<FlowId, Removing>,
    next_id: FlowId,
    counters: SlowPathCounters,
    /// Timed-out `send_flow_rem` rules not yet taken (bounded by [`MAX_EXPIRED_KEPT`]).
    expired: Vec<ExpiredRule>,
    /// Deleted `send_flow_rem` rules not yet taken (bounded the same way).
    deleted: Vec<DeletedRule>,
    /// Revalidate every megaflow of the bridge on each rule change (the reference the
    /// index is tested against).
    full_revalidation: bool,
}

/// At most this many unreported expirations are kept; older ones are dropped (a caller
/// that never takes them must not grow the slow path without bound).
pub const MAX_EXPIRED_KEPT: usize = 4096;

impl SlowPath {
    /// A slow path for `bridges` and `n_pmds` PMDs (numbered 0..n_pmds), created at
    /// `now_ms` (the install time of the initial rules, for hard timeouts).
    pub fn new(
        bridges: Vec<BridgeSpec>,
        n_pmds: usize,
        cfg: SlowPathConfig,
        now_ms: u64,
    ) -> Result<SlowPath, SlowPathError> {
        let mut port_bridge: HashMap<u32, usize> = HashMap::new();
        let mut built: Vec<Bridge> = Vec::with_capacity(bridges.len());
        for (i, b) in bridges.into_iter().enumerate() {
            if built.iter().any(|x| x.name == b.name) {
                return Err(SlowPathError::DuplicateBridge(b.name));
            }
            let port_map = port_map::PortMap::new(&b.ports, &b.datapath_ports);
            for p in port_map.dp_ports() {
                if let Some(&other) = port_bridge.get(&p) {
                    let first = if other == i { b.name.clone() } else { built[other].name.clone() };
                    return Err(SlowPathError::DuplicatePort { port: p, first, second: b.name });
                }
                port_bridge.insert(p, i);
            }
            let tables = RuleTables::new(b.rules, b.ports.clone())
                .and_then(|t| t.with_groups(Arc::new(b.groups)))
                .map_err(|error| SlowPathError::Rules { bridge: b.name.clone(), error })?;
            let stats = RuleStats::new(&tables, ms(now_ms));
            built.push(Bridge {
                name: b.name,
                ports: b.ports,
                port_map,
                ids: flow_index::RuleIds::new(tables.rules().len()),
                tables,
                stats,
                macs: MacTable::new(cfg.mac_aging, cfg.mac_capacity),
                mac_index: HashMap::new(),
                flows: Default::default(),
            });
        }
        Ok(SlowPath {
            cfg,
            bridges: built,
            port_bridge,
            mirrors: vec![PmdMirror::default(); n_pmds],
            removing: HashMap::new(),
            next_id: 1,
            counters: SlowPathCounters::default(),
            expired: Vec::new(),
            deleted: Vec::new(),
            full_revalidation: false,
        })
    }

    // ----- Upcalls and events -------------------------------------------------------

    /// Answers a miss: exactly one `Install` or `Execute` to `up.pmd` (last in the
    /// list), preceded by any `Remove`s that MAC learning made necessary in any PMD.
    pub fn handle_upcall(&mut self, up: &Upcall, now_ms: u64) -> Vec<(usize, PmdCommand)> {
        let mut out = Out::new(self.mirrors.len());
        self.counters.upcalls += 1;
        if up.pmd >= self.mirrors.len() {
            self.counters.bad_upcalls += 1;
            return Vec::new();
        }
        self.expire_macs(now_ms, &mut out);
        let Some(&b) = self.port_bridge.get(&up.key.in_port()) else {
            self.counters.no_bridge += 1;
            self.counters.executes += 1;
            out.rest.push((up.pmd, PmdCommand::Execute { key: up.key, actions: Vec::new() }));
            return out.finish();
        };
        let now = ms(now_ms);
        let br = &self.bridges[b];
        // The bridge's view of the key: its own OpenFlow in_port.
        let of_key = br.port_map.of_key(&up.key);
        let t = translate(&br.tables, &br.macs, &of_key, now);
        // What an earlier `normal` learned, a later one of this translation already saw.
        // A learning that changes what another megaflow depended on revalidates it; one
        // that changes what this translation's own earlier lookups saw (a later `normal`
        // learned the destination an earlier one flooded to) leaves a decision the MAC
        // table no longer gives: the missed packets take it, as OVS's do (its translation
        // runs once, in order), and nothing is installed, so the key's next packet is
        // translated over the table as it now is.
        let mut unstable = false;
        for l in t.learns.clone() {
            let changed = self.learn(b, &l, now_ms);
            if !changed.is_empty() {
                self.revalidate_mac_deps(b, &changed, now_ms, &mut out);
                unstable |= t.mac_deps.iter().any(|d| changed.contains(d));
            }
        }
        if t.error.is_some() {
            self.counters.xlate_errors += 1;
        }
        let mirror = &self.mirrors[up.pmd];
        let raced = mirror.find_exact(&up.key, &t.mask).is_some() || mirror.find_covering(&up.key).is_some();
        if unstable || raced || mirror.len() >= self.cfg.flow_limit_per_pmd {
            if unstable {
                self.counters.executes_relearned += 1;
            } else if raced {
                self.counters.executes_raced += 1;
            } else {
                self.counters.executes_flow_limit += 1;
            }
            self.counters.executes += 1;
            let actions = self.bridges[b].port_map.dp_actions(&t.actions);
            out.rest.push((up.pmd, PmdCommand::Execute { key: up.key, actions }));
            return out.finish();
        }
        let id = self.next_id;
        self.next_id += 1;
        let megaflow = Megaflow::new(up.key, t.mask, self.bridges[b].port_map.dp_actions(&t.actions));
        let rule_deps = RuleDeps::of(&t, &self.bridges[b].tables, &of_key, &t.mask);
        let watched = self.bridges[b].ids.ids(&rule_deps::watched(&t, &self.bridges[b].tables));
        let flow = MirrorFlow {
            key: megaflow.key,
            mask: t.mask,
            actions: t.actions,
            bridge: b,
            rules: self.bridges[b].ids.ids(&t.rules),
            watched,
            mac_deps: t.mac_deps,
            rule_deps,
            learns: t.learns,
            installed_at: now_ms,
            credited: MegaflowStats::default(),
        };
        self.index_deps(b, up.pmd, id, &flow.mac_deps);
        self.bridges[b].flows.insert((up.pmd, id), &flow);
        self.mirrors[up.pmd].insert(id, flow);
        self.counters.installs += 1;
        out.rest.push((up.pmd, PmdCommand::Install { id, key: up.key, megaflow }));
        out.finish()
    }

    /// Forgets megaflows a PMD reports gone and credits their final statistics to the
    /// rules that produced them (for a `Refused` one: the parked packets the PMD executed
    /// with its actions). Unknown ids are ignored.
    pub fn handle_event(&mut self, ev: &PmdEvent, _now_ms: u64) {
        for (id, stats) in &ev.flows {
            self.counters.flows_gone += 1;
            if ev.reason == GoneReason::Evicted {
                self.counters.flows_evicted += 1;
            }
            let mirrored = self.mirrors.get_mut(ev.pmd).and_then(|m| m.remove(*id));
            if let Some(f) = mirrored {
                self.unindex_flow(ev.pmd, *id, &f);
                self.credit(f.bridge, &f.rules, f.credited, stats);
            } else if let Some(r) = self.removing.remove(id) {
                flow_index::shrink_if_sparse(&mut self.removing);
                self.credit(r.bridge, &r.rules, r.credited, stats);
            }
        }
    }

    /// Credits live megaflow statistics (e.g. read from the PMDs once a second) to their
    /// rules, so that rule idle timeouts and `dump_flows` see traffic of megaflows that
    /// never expire, and refreshes the MAC entries their packets would teach `normal`
    /// (those packets never reach the slow path), as OVS's revalidators do. A refresh
    /// that finds the entry gone re-learns it, which revalidates its dependants.
    pub fn update_stats(&mut self, live: &[(usize, FlowId, MegaflowStats)], now_ms: u64) -> Vec<(usize, PmdCommand)> {
        let mut out = Out::new(self.mirrors.len());
        // Credit first, and collect what the traffic teaches before MAC aging runs: a
        // megaflow about to be revalidated away still carried its packets.
        let mut learns: Vec<(usize, MacLearn)> = Vec::new();
        for (pmd, id, st) in live {
            let (b, rules, credited) = if let Some(f) = self.mirrors.get_mut(*pmd).and_then(|m| m.get_mut(*id)) {
                if st.packets > f.credited.packets {
                    learns.extend(f.learns.iter().map(|l| (f.bridge, *l)));
                }
                let old = f.credited;
                f.credited = advance(old, st);
                (f.bridge, f.rules.clone(), old)
            } else if let Some(r) = self.removing.get_mut(id) {
                let old = r.credited;
                r.credited = advance(old, st);
                (r.bridge, r.rules.clone(), old)
            } else {
                continue;
            };
            self.credit(b, &rules, credited, st);
        }
        self.expire_macs(now_ms, &mut out);
        for (b, l) in learns {
            let changed = self.learn(b, &l, now_ms);
            if !changed.is_empty() {
                self.revalidate_mac_deps(b, &changed, now_ms, &mut out);
            }
        }
        out.finish()
    }

    // ----- Rule changes -----------------------------------------------------------

    /// Replaces the rule set of `bridge` (atomically: on error nothing changes) and
    /// returns the `Remove`s that make every PMD consistent with it. Counters of rules
    /// whose (table, priority, match) is unchanged carry over.
    pub fn replace_rules(
        &mut self,
        bridge: &str,
        rules: Vec<Rule>,
        now_ms: u64,
    ) -> Result<Vec<(usize, PmdCommand)>, SlowPathError> {
        let b = self.bridge_index(bridge)?;
        let mut out = Out::new(self.mirrors.len());
        // An OpenFlow delete or modify, or a reload, often leaves most rules as they are:
        // the bridge's rules less some, or with the actions of some changed, is a change
        // in place (a pass comparing the lists instead of a build).
        let edit = Self::edit_of(self.bridges[b].tables.rules(), &rules);
        let notified = match &edit {
            Some(Edit::Delete(gone)) => self.notified_dumps(b, Self::flagged(gone), now_ms),
            Some(Edit::Modify(_)) => Vec::new(),
            None => self.notified_dumps(b, self.absent_from(b, &rules).into_iter(), now_ms),
        };
        match edit {
            Some(Edit::Delete(gone)) if self.in_place(b, gone.iter().filter(|g| **g).count()) => {
                self.delete_in_place(b, &gone, now_ms, &mut out);
                self.keep_deleted(b, notified);
                return Ok(out.finish());
            }
            Some(Edit::Modify(changed))
                if self.in_place(b, changed.len())
                    && changed.iter().all(|r| self.bridges[b].tables.valid_in_place(&rules[r.0 as usize])) =>
            {
                let mut rules = rules;
                let changes = changed
                    .iter()
                    .map(|r| {
                        let rule = &mut rules[r.0 as usize];
                        (*r, std::mem::take(&mut rule.actions), rule.cookie)
                    })
                    .collect();
                self.modify_in_place(b, changes, now_ms, &mut out);
                return Ok(out.finish());
            }
            _ => {}
        }
        self.change_rules(b, rules, usize::MAX, Replace::default(), now_ms, &mut out)?;
        self.keep_deleted(b, notified);
        Ok(out.finish())
    }

    /// The `send_flow_rem` rules of bridge `b` whose identity (table, priority, match)
    /// `rules` lacks: those a replacement by `rules` deletes. Only those rules are looked
    /// for, so a bridge without any costs one pass over its rules.
    fn absent_from(&self, b: usize, rules: &[Rule]) -> Vec<RuleRef> {
        let old = self.bridges[b].tables.rules();
        let notified: Vec<RuleRef> =
            (0..old.len() as u32).map(RuleRef).filter(|r| old[r.0 as usize].send_flow_rem).collect();
        let kept: std::collections::HashSet<(u8, u16, &ferrovs_config::Match)> = if notified.is_empty() {
            Default::default()
        } else {
            rules.iter().map(|r| (r.table, r.priority, &r.matches)).collect()
        };
        notified
            .into_iter()
            .filter(|r| {
                let o = &old[r.0 as usize];
                !kept.contains(&(o.table, o.priority, &o.matches))
            })
            .collect()
    }

    /// `new` as an edit of `old` that can be made in place, if it is one: the same rules
    /// in the same order less some (flagged), or the same rules but for the actions of
    /// some (listed; the rest of each rule, its identity included, as before).
    fn edit_of(old: &[Rule], new: &[Rule]) -> Option<Edit> {
        if new.len() < old.len() {
            let mut gone = vec![true; old.len()];
            let mut next = new.iter().peekable();
            for (i, r) in old.iter().enumerate() {
                if next.peek() == Some(&r) {
                    gone[i] = false;
                    next.next();
                }
            }
            return next.peek().is_none().then_some(Edit::Delete(gone));
        }
        if new.len() != old.len() {
            return None;
        }
        let mut changed = Vec::new();
        for (i, (o, n)) in old.iter().zip(new).enumerate() {
            if o == n {
                continue;
            }
            // Destructured whole: a field added to `Rule` must be thought about here.
            let Rule { table, priority, cookie, idle_timeout, hard_timeout, send_flow_rem, matches, actions: _ } = o;
            let same_but_actions = (*table, *priority, *cookie, *idle_timeout, *hard_timeout, *send_flow_rem, matches)
                == (n.table, n.priority, n.cookie, n.idle_timeout, n.hard_timeout, n.send_flow_rem, &n.matches);
            if !same_but_actions {
                return None;
            }
            changed.push(RuleRef(i as u32));
        }
        Some(Edit::Modify(changed))
    }

    /// Gives the rules of bridge `b` in `changes` their new actions and cookie, in place
    /// (a [`SlowPath::replace_rules`] that changed only those, an OpenFlow modify): the
    /// rules keep their ids and counters (as a replacement keeps those of an unchanged
    /// identity), and the megaflows that used a changed rule, or that a changed rule could
    /// now decide, are revalidated.
    fn modify_in_place(&mut self, b: usize, changes: Vec<(RuleRef, Vec<Action>, u64)>, now_ms: u64, out: &mut Out) {
        // MAC aging first, while the rules and their ids agree (see `add_in_place`).
        self.expire_macs(now_ms, out);
        let br = &mut self.bridges[b];
        let changed: Vec<RuleRef> = changes.iter().map(|(r, _, _)| *r).collect();
        for (r, actions, cookie) in changes {
            br.tables.modify_in_place(r, actions, cookie);
        }
        let br = &self.bridges[b];
        let dead_ids: Vec<RuleId> = changed.iter().map(|r| br.ids.id(*r)).collect();
        let delta = self.delta_in_place(b, changed.clone(), &changed);
        self.revalidate_change(b, &delta, &dead_ids, now_ms, out);
    }

    /// Adds, modifies or deletes groups of `bridge`, as one rule-set version: every
    /// megaflow of the bridge is revalidated (a full revalidation, simpler than tracking
    /// which megaflows used which group). Deleting a group also deletes the rules that
    /// use it, as OVS does. Returns the commands and the number of rules deleted.
    pub fn group_mod(
        &mut self,
        bridge: &str,
        change: GroupChange,
        now_ms: u64,
    ) -> Result<(Vec<(usize, PmdCommand)>, usize), SlowPathError> {
        let b = self.bridge_index(bridge)?;
        let refuse = |id: u32, error: GroupError| Err(SlowPathError::Group { id, error });
        let mut groups: Groups = (*self.bridges[b].tables.groups).clone();
        let adding = matches!(change, GroupChange::Add(..));
        match change {
            GroupChange::Add(id, g) | GroupChange::Modify(id, g) => {
                match (adding, groups.contains_key(&id)) {
                    (true, true) => return refuse(id, GroupError::Exists),
                    (false, false) => return refuse(id, GroupError::Unknown),
                    _ => {}
                }
                if let Err(error) = g.check(id) {
                    return refuse(id, error);
                }
                groups.insert(id, g);
            }
            GroupChange::Delete(id) => {
                groups.retain(|g, _| id != OFPG_ALL && *g != id);
            }
            GroupChange::Replace(new) => {
                if let Some((&id, error)) = new.iter().find_map(|(id, g)| g.check(*id).err().map(|e| (id, e))) {
                    return refuse(id, error);
                }
                groups = new;
            }
        }
        // The rules a group delete (or replacement) takes: those naming a group the bridge
        // no longer has (none after an add or a modify).
        let rules = self.bridges[b].tables.rules();
        let gone: Vec<bool> = rules.iter().map(|r| r.groups().any(|g| !groups.contains_key(&g))).collect();
        let list: Vec<Rule> = rules.iter().zip(&gone).filter(|(_, g)| !**g).map(|(r, _)| r.clone()).collect();
        let deleted = rules.len() - list.len();
        let notified = self.notified_dumps(b, Self::flagged(&gone), now_ms);
        let mut out = Out::new(self.mirrors.len());
        self.change_rules(
            b,
            list,
            usize::MAX,
            Replace { groups: Some(Arc::new(groups)), ..Replace::default() },
            now_ms,
            &mut out,
        )?;
        self.keep_deleted(b, notified);
        Ok((out.finish(), deleted))
    }

    /// Sets what a table miss does on `bridge` (see [`MissMode`]) and returns the
    /// commands that make every PMD consistent with it (every megaflow of the bridge is
    /// revalidated when it changes).
    pub fn set_miss_mode(
        &mut self,
        bridge: &str,
        miss: MissMode,
        now_ms: u64,
    ) -> Result<Vec<(usize, PmdCommand)>, SlowPathError> {
        let b = self.bridge_index(bridge)?;
        if self.bridges[b].tables.miss == miss {
            return Ok(Vec::new());
        }
        let rules = self.bridges[b].tables.rules().to_vec();
        let mut out = Out::new(self.mirrors.len());
        self.change_rules(b, rules, usize::MAX, Replace { miss: Some(miss), ..Replace::default() }, now_ms, &mut out)?;
        Ok(out.finish())
    }

    /// The datapath actions a packet-out's `actions` (in the rule model) have on `frame`
    /// received on `in_port` of `bridge` (which may be a reserved port such as
    /// `OFPP_CONTROLLER`): `Err` for an unknown bridge; a translation that failed drops.
    pub fn packet_out(
        &self,
        bridge: &str,
        frame: &[u8],
        in_port: u32,
        actions: &[ferrovs_config::rules::Action],
        now_ms: u64,
    ) -> Result<DpActions, SlowPathError> {
        let br = &self.bridges[self.bridge_index(bridge)?];
        // `in_port` is the bridge's OpenFlow number (or a pseudo port); the actions go to
        // a PMD, in datapath numbers.
        let key = crate::extract::extract(frame, in_port);
        let nd = crate::extract::nd_fields(frame);
        let t = crate::xlate::translate_actions(&br.tables, &br.macs, &key, &nd, in_port, ms(now_ms), actions);
        Ok(br.port_map.dp_actions(&t.actions))
    }

    /// A packet a slow-path megaflow sent here with its bytes (a neighbour-discovery
    /// message that ND rules may match: see `xlate::translate`), received on datapath
    /// port `dp_in_port`: translated with the frame's ND fields, the datapath actions to
    /// execute on it, plus the commands MAC learning made necessary. `None` if the port
    /// is on no bridge. Nothing is installed: every such packet comes here.
    pub fn slow_path_packet(
        &mut self,
        frame: &[u8],
        dp_in_port: u32,
        now_ms: u64,
    ) -> Option<(DpActions, Vec<(usize, PmdCommand)>)> {
        let mut out = Out::new(self.mirrors.len());
        self.counters.slow_path_packets += 1;
        let Some(&b) = self.port_bridge.get(&dp_in_port) else {
            self.counters.no_bridge += 1;
            return None;
        };
        let key = crate::extract::extract(frame, dp_in_port);
        let nd = crate::extract::nd_fields(frame);
        let br = &self.bridges[b];
        let of_key = br.port_map.of_key(&key);
        let t = crate::xlate::translate_with_nd(&br.tables, &br.macs, &of_key, &nd, ms(now_ms));
        if t.error.is_some() {
            self.counters.xlate_errors += 1;
        }
        // Its rules count it here: the slow-path megaflow that sent it credits none.
        self.bridges[b].stats.credit(&t.rules, 1, frame.len() as u64, ms(now_ms));
        for l in &t.learns {
            let changed = self.learn(b, l, now_ms);
            if !changed.is_empty() {
                self.revalidate_mac_deps(b, &changed, now_ms, &mut out);
            }
        }
        Some((self.bridges[b].port_map.dp_actions(&t.actions), out.finish()))
    }

    /// `ovs-ofctl add-flows`: each rule replaces the rule with the same table, priority
    /// and match (its counters restart) or is added.
    pub fn add_flows(
        &mut self,
        bridge: &str,
        rules: Vec<Rule>,
        now_ms: u64,
    ) -> Result<Vec<(usize, PmdCommand)>, SlowPathError> {
        let b = self.bridge_index(bridge)?;
        let tables = &self.bridges[b].tables;
        let n_old = tables.rules().len();
        // A few rules into many: in place, beside the version (see
        // `RuleTables::add_in_place`), until so many were added that a build pays.
        if self.in_place(b, rules.len()) {
            let mut out = Out::new(self.mirrors.len());
            self.add_in_place(b, rules, now_ms, &mut out)?;
            return Ok(out.finish());
        }
        // The existing rules (unique identities) followed by the new ones: building the
        // version replaces a rule in place by a later one of the same identity, which is
        // `add-flows` (see `rule_edit`), in one identity pass.
        let old = self.bridges[b].tables.rules();
        // Into an empty bridge (a bulk load), the new rules are the list: moving a
        // million of them into another vector cost a tenth of the change.
        let list = if n_old == 0 {
            rules
        } else {
            let mut list = Vec::with_capacity(n_old + rules.len());
            list.extend_from_slice(old);
            list.extend(rules);
            list
        };
        let mut out = Out::new(self.mirrors.len());
        let replace = Replace { print: self.cfg.print_changed_rules, list_edit: ListEdit::Added, ..Replace::default() };
        self.change_rules(b, list, n_old, replace, now_ms, &mut out)?;
        Ok(out.finish())
    }

    /// `ovs-ofctl del-flows` (non-strict): deletes every rule selected by `spec` (see
    /// [`del_selects`]). Returns the commands and the number of rules deleted.
    pub fn del_flows(
        &mut self,
        bridge: &str,
        spec: &MatchSpec,
        now_ms: u64,
    ) -> Result<(Vec<(usize, PmdCommand)>, usize), SlowPathError> {
        let b = self.bridge_index(bridge)?;
        let gone = del_selected(spec, &self.bridges[b].tables);
        let deleted = gone.iter().filter(|g| **g).count();
        let notified = self.notified_dumps(b, Self::flagged(&gone), now_ms);
        let mut out = Out::new(self.mirrors.len());
        if self.in_place(b, deleted) {
            self.delete_in_place(b, &gone, now_ms, &mut out);
        } else {
            let old = self.bridges[b].tables.rules();
            let list: Vec<Rule> = old.iter().zip(&gone).filter(|(_, g)| !**g).map(|(r, _)| r.clone()).collect();
            let replace = Replace {
                print: self.cfg.print_changed_rules,
                list_edit: ListEdit::Deleted(gone),
                ..Replace::default()
            };
            self.change_rules(b, list, usize::MAX, replace, now_ms, &mut out)?;
        }
        self.keep_deleted(b, notified);
        Ok((out.finish(), deleted))
    }

    /// Periodic work, about once a second: MAC aging, rule idle/hard timeouts (the
    /// expired rules are deleted as one rule change per bridge), and `ExpireIdle` to
    /// every PMD (last).
    pub fn tick(&mut self, now_ms: u64) -> Vec<(usize, PmdCommand)> {
        let mut out = Out::new(self.mirrors.len());
        self.expire_macs(now_ms, &mut out);
        for b in 0..self.bridges.len() {
            let br = &self.bridges[b];
            let expired = br.stats.expired(&br.tables, ms(now_ms));
            if expired.is_empty() {
                continue;
            }
            let mut gone = vec![false; br.tables.rules().len()];
            for (r, reason) in &expired {
                gone[r.0 as usize] = true;
                let rule = &br.tables.rules()[r.0 as usize];
                if rule.send_flow_rem {
                    let dump = RuleDump::new(rule, br.stats.get(*r), (0, 0), ms(now_ms));
                    if self.expired.len() >= MAX_EXPIRED_KEPT {
                        self.expired.remove(0);
                    }
                    self.expired.push(ExpiredRule { bridge: br.name.clone(), dump, reason: *reason });
                }
            }
            if self.in_place(b, expired.len()) {
                self.delete_in_place(b, &gone, now_ms, &mut out);
                self.counters.rules_expired += expired.len() as u64;
                continue;
            }
            let list: Vec<Rule> =
                br.tables.rules().iter().zip(&gone).filter(|(_, g)| !**g).map(|(r, _)| r.clone()).collect();
            // Deleting rules from a valid set cannot make it invalid.
            if self.change_rules(b, list, usize::MAX, Replace::default(), now_ms, &mut out).is_ok() {
                self.counters.rules_expired += expired.len() as u64;
            }
        }
        for pmd in 0..self.mirrors.len() {
            out.rest.push((pmd, PmdCommand::ExpireIdle { idle_ms: self.cfg.idle_expiry_ms }));
        }
        out.finish()
    }

    /// The `send_flow_rem` rules that timed out since the last call, oldest first.
    pub fn take_expired(&mut self) -> Vec<ExpiredRule> {
        std::mem::take(&mut self.expired)
    }

    /// The `send_flow_rem` rules that change requests deleted since the last call, in
    /// the order they went.
    pub fn take_deleted(&mut self) -> Vec<DeletedRule> {
        std::mem::take(&mut self.deleted)
    }

    /// The `send_flow_rem` rules among `refs` of bridge `b`, with their counters at
    /// `now_ms`: what a change about to delete them reports.
    fn notified_dumps(&self, b: usize, refs: impl Iterator<Item = RuleRef>, now_ms: u64) -> Vec<RuleDump> {
        let br = &self.bridges[b];
        refs.map(|r| (br.tables.rule(r), r))
            .filter(|(rule, _)| rule.send_flow_rem)
            .map(|(rule, r)| RuleDump::new(rule, br.stats.get(r), (0, 0), ms(now_ms)))
            .collect()
    }

    /// Keeps the dumps of `send_flow_rem` rules a change of bridge `b` deleted, for
    /// [`SlowPath::take_deleted`].
    fn keep_deleted(&mut self, b: usize, dumps: Vec<RuleDump>) {
        for dump in dumps {
            if self.deleted.len() >= MAX_EXPIRED_KEPT {
                self.deleted.remove(0);
            }
            self.deleted.push(DeletedRule { bridge: self.bridges[b].name.clone(), dump });
        }
    }

    /// The rules flagged in `gone` (one flag per rule of a bridge), as references.
    fn flagged(gone: &[bool]) -> impl Iterator<Item = RuleRef> + '_ {
        gone.iter().enumerate().filter(|(_, g)| **g).map(|(i, _)| RuleRef(i as u32))
    }

    // ----- Queries ------------------------------------------------------------------

    /// Translates `key` on `bridge` as an upcall would (without learning or installing).
    pub fn trace(&self, bridge: &str, key: &FlowKey, now_ms: u64) -> Result<TraceResult, SlowPathError> {
        let br = &self.bridges[self.bridge_index(bridge)?];
        let translation = translate(&br.tables, &br.macs, key, ms(now_ms));
        let megaflow = Megaflow::new(*key, translation.mask, translation.actions.clone());
        Ok(TraceResult { translation, megaflow })
    }

    /// The rules of `bridge` with their counters: credited statistics plus the traffic
    /// of the live megaflows in `live` (pmd, id, current stats) not yet credited.
    pub fn dump_flows(
        &self,
        bridge: &str,
        live: &[(usize, FlowId, MegaflowStats)],
        now_ms: u64,
    ) -> Result<Vec<RuleDump>, SlowPathError> {
        let b = self.bridge_index(bridge)?;
        let br = &self.bridges[b];
        let mut extra: Vec<(u64, u64)> = vec![(0, 0); br.tables.rules().len()];
        for (pmd, id, st) in live {
            let Some(f) = self.mirrors.get(*pmd).and_then(|m| m.get(*id)) else { continue };
            if f.bridge != b {
                continue;
            }
            let dp = st.packets.saturating_sub(f.credited.packets);
            let db = st.bytes.saturating_sub(f.credited.bytes);
            for r in br.ids.resolve_all(&f.rules) {
                if let Some(e) = extra.get_mut(r.0 as usize) {
                    e.0 += dp;
                    e.1 += db;
                }
            }
        }
        let now = ms(now_ms);
        Ok(br
            .tables
            .rules()
            .iter()
            .enumerate()
            .map(|(i, rule)| RuleDump::new(rule, br.stats.get(RuleRef(i as u32)), extra[i], now))
            .collect())
    }

    /// Every mirrored megaflow, by PMD then id.
    pub fn dump_dp_flows(&self) -> Vec<DpFlowDump> {
        let mut v = Vec::new();
        for (pmd, m) in self.mirrors.iter().enumerate() {
            for (id, f) in m.iter() {
                v.push(DpFlowDump {
                    pmd,
                    id,
                    bridge: self.bridges[f.bridge].name.clone(),
                    key: f.key,
                    mask: f.mask,
                    actions: self.bridges[f.bridge].port_map.dp_actions(&f.actions),
                    installed_at: f.installed_at,
                });
            }
        }
        v
    }

    pub fn counters(&self) -> SlowPathCounters {
        self.counters
    }

    /// Megaflows mirrored for `pmd` (0 for an unknown PMD).
    pub fn n_flows(&self, pmd: usize) -> usize {
        self.mirrors.get(pmd).map_or(0, |m| m.len())
    }

    pub fn n_pmds(&self) -> usize {
        self.mirrors.len()
    }

    /// Megaflows removed but not yet reported gone.
    pub fn n_removing(&self) -> usize {
        self.removing.len()
    }

    /// Bridge names, in configuration order.
    pub fn bridge_names(&self) -> Vec<&str> {
        self.bridges.iter().filter(|b| !b.name.is_empty()).map(|b| b.name.as_str()).collect()
    }

    pub fn bridge_ports(&self, bridge: &str) -> Option<&[u32]> {
        self.bridges.iter().find(|b| b.name == bridge).map(|b| b.ports.as_slice())
    }

    /// The bridge a datapath port belongs to.
    pub fn bridge_of_port(&self, port: u32) -> Option<&str> {
        self.port_bridge.get(&port).map(|&b| self.bridges[b].name.as_str())
    }

    /// The current rules of `bridge` (duplicates of one identity merged, input order).
    pub fn rules(&self, bridge: &str) -> Option<&[Rule]> {
        self.bridges.iter().find(|b| b.name == bridge).map(|b| b.tables.rules())
    }

    /// The current rules of `bridge` as text (as [`SlowPath::rules`]), if the last build
    /// printed them ([`SlowPathConfig::print_changed_rules`]) or they were kept
    /// ([`SlowPath::keep_printed_rules`]); changes in place keep them current.
    pub fn printed_rules(&self, bridge: &str) -> Option<Arc<Vec<String>>> {
        self.bridges.iter().find(|b| b.name == bridge).and_then(|b| b.tables.printed())
    }

    /// The changes to [`SlowPath::printed_rules`] of `bridge` since the last call (see
    /// `RuleTables::take_text_edits`): `None` when they must be written whole.
    pub fn take_rule_text_edits(
        &mut self,
        bridge: &str,
    ) -> Option<Vec<ferrovs_config::persist::journal::RuleTextEdit>> {
        self.bridges.iter_mut().find(|b| b.name == bridge).and_then(|b| b.tables.take_text_edits())
    }

    /// Keeps `texts`, the current rules of `bridge` printed, for
    /// [`SlowPath::printed_rules`] (see `RuleTables::keep_printed`), and gives them back
    /// shared (`None`: no such bridge).
    pub fn keep_printed_rules(&mut self, bridge: &str, texts: Vec<String>) -> Option<Arc<Vec<String>>> {
        self.bridges.iter_mut().find(|b| b.name == bridge).map(|b| b.tables.keep_printed(texts))
    }

    /// The groups of `bridge`.
    pub fn groups(&self, bridge: &str) -> Option<Arc<Groups>> {
        self.bridges.iter().find(|b| b.name == bridge).map(|b| b.tables.groups.clone())
    }

    /// The current compiled rule-set version of `bridge`.
    pub fn tables(&self, bridge: &str) -> Option<&RuleTables> {
        self.bridges.iter().find(|b| b.name == bridge).map(|b| &b.tables)
    }

    pub fn mac_table(&self, bridge: &str) -> Option<&MacTable> {
        self.bridges.iter().find(|b| b.name == bridge).map(|b| &b.macs)
    }

    /// The mirror of `pmd`.
    pub fn mirror(&self, pmd: usize) -> Option<&PmdMirror> {
        self.mirrors.get(pmd)
    }

    // ----- Internals ----------------------------------------------------------------

    fn bridge_index(&self, name: &str) -> Result<usize, SlowPathError> {
        self.bridges
            .iter()
            .position(|b| !b.name.is_empty() && b.name == name)
            .ok_or_else(|| SlowPathError::UnknownBridge(name.to_string()))
    }

    /// Credits a megaflow's traffic since `credited` to those of its `rules` that still exist.
    fn credit(&mut self, b: usize, rules: &[RuleId], credited: MegaflowStats, st: &MegaflowStats) {
        let dp = st.packets.saturating_sub(credited.packets);
        let db = st.bytes.saturating_sub(credited.bytes);
        if dp > 0 || db > 0 {
            let br = &mut self.bridges[b];
            br.stats.credit(&br.ids.resolve_all(rules), dp, db, ms(st.used));
        }
    }

    /// Applies a learning to bridge `b`'s MAC table; returns the entries whose change
    /// can alter decisions (new, moved, evicted).
    fn learn(&mut self, b: usize, l: &MacLearn, now_ms: u64) -> Vec<MacKey> {
        let r = self.bridges[b].macs.learn(l, ms(now_ms));
        let mut changed = Vec::new();
        match r.outcome {
            LearnOutcome::New => {
                self.counters.mac_learned += 1;
                changed.push(MacKey { vlan: l.vlan, mac: l.mac });
            }
            LearnOutcome::Moved { .. } => {
                self.counters.mac_learned += 1;
                self.counters.mac_moved += 1;
                changed.push(MacKey { vlan: l.vlan, mac: l.mac });
            }
            LearnOutcome::Refreshed => {}
        }
        if let Some(k) = r.evicted {
            self.counters.mac_evicted += 1;
            changed.push(k);
        }
        changed
    }

    fn expire_macs(&mut self, now_ms: u64, out: &mut Out) {
        for b in 0..self.bridges.len() {
            let gone = self.bridges[b].macs.expire(ms(now_ms));
            if !gone.is_empty() {
                self.counters.mac_expired += gone.len() as u64;
                self.revalidate_mac_deps(b, &gone, now_ms, out);
            }
        }
    }

    /// Re-translates the megaflows of bridge `b` that depend on any of `keys`.
    fn revalidate_mac_deps(&mut self, b: usize, keys: &[MacKey], now_ms: u64, out: &mut Out) {
        let mut flows: BTreeSet<(usize, FlowId)> = BTreeSet::new();
        for k in keys {
            if let Some(s) = self.bridges[b].mac_index.get(k) {
                flows.extend(s.iter().copied());
            }
        }
        for (pmd, id) in flows {
            self.revalidate_flow(pmd, id, now_ms, out);
        }
    }

    /// Revalidates one mirrored megaflow against its bridge's current state: keeps it
    /// (re-pointing its rules and dependencies at the fresh translation) or removes it.
    fn revalidate_flow(&mut self, pmd: usize, id: FlowId, now_ms: u64, out: &mut Out) {
        let Some(f) = self.mirrors[pmd].get(id) else { return };
        let b = f.bridge;
        let br = &self.bridges[b];
        let of_key = br.port_map.of_key(&f.key);
        let rv = revalidate(&br.tables, &br.macs, ms(now_ms), &of_key, &f.mask, &f.actions);
        self.counters.revalidated += 1;
        match rv.verdict {
            Verdict::Keep => {
                let old_deps = f.mac_deps.clone();
                self.unindex_deps(b, pmd, id, &old_deps);
                let t = rv.translation;
                self.index_deps(b, pmd, id, &t.mac_deps);
                let br = &mut self.bridges[b];
                if let Some(f) = self.mirrors[pmd].get_mut(id) {
                    br.flows.remove((pmd, id), f);
                    f.rule_deps = RuleDeps::of(&t, &br.tables, &of_key, &f.mask);
                    f.rules = br.ids.ids(&t.rules);
                    f.watched = br.ids.ids(&rule_deps::watched(&t, &br.tables));
                    f.mac_deps = t.mac_deps;
                    f.learns = t.learns;
                    br.flows.insert((pmd, id), f);
                }
            }
            Verdict::Replace(_) | Verdict::Delete => self.remove_flow(pmd, id, out),
        }
    }

    fn remove_flow(&mut self, pmd: usize, id: FlowId, out: &mut Out) {
        let Some(f) = self.mirrors[pmd].remove(id) else { return };
        self.unindex_flow(pmd, id, &f);
        self.removing.insert(id, Removing { bridge: f.bridge, rules: f.rules, credited: f.credited });
        out.removes[pmd].push(id);
        self.counters.removes += 1;
    }

    /// Drops a megaflow just taken out of a mirror from its bridge's indexes.
    fn unindex_flow(&mut self, pmd: usize, id: FlowId, f: &MirrorFlow) {
        self.unindex_deps(f.bridge, pmd, id, &f.mac_deps);
        self.bridges[f.bridge].flows.remove((pmd, id), f);
    }

    fn index_deps(&mut self, b: usize, pmd: usize, id: FlowId, deps: &[MacKey]) {
        for d in deps {
            self.bridges[b].mac_index.entry(*d).or_default().insert((pmd, id));
        }
    }

    fn unindex_deps(&mut self, b: usize, pmd: usize, id: FlowId, deps: &[MacKey]) {
        let index = &mut self.bridges[b].mac_index;
        for d in deps {
            if let Some(s) = index.get_mut(d) {
                s.remove(&(pmd, id));
                if s.is_empty() {
                    index.remove(d);
                }
            }
        }
    }

    /// Installs `rules` as bridge `b`'s new version and revalidates the megaflows the
    /// change can affect (see `rule_deps`). A rule given at index `replaced_from` or
    /// later that took the place of one given before it (same identity: an `add-flows`
    /// of an existing rule) restarts its counters. Atomic.
    fn change_rules(
        &mut self,
        b: usize,
        rules: Vec<Rule>,
        replaced_from: usize,
        replace: Replace,
        now_ms: u64,
        out: &mut Out,
    ) -> Result<(), SlowPathError> {
        let br = &self.bridges[b];
        let groups = replace.groups.unwrap_or_else(|| br.tables.groups.clone());
        let mut new_tables = RuleTables::build(rules, br.ports.clone(), replace.print)
            .and_then(|t| t.with_groups(groups))
            .map_err(|error| SlowPathError::Rules { bridge: br.name.clone(), error })?;
        let br = &mut self.bridges[b];
        if let Some(edits) = text_edits_of(&mut br.tables, &new_tables, &replace.list_edit, replaced_from) {
            new_tables.carry_text_edits(edits);
        }
        let br = &self.bridges[b];
        new_tables.miss = replace.miss.unwrap_or(br.tables.miss);
        self.expire_macs(now_ms, out);
        let br = &mut self.bridges[b];
        // Kept positions follow first occurrences, so a rule at a position below
        // `replaced_from` whose last occurrence was at or after it was replaced.
        let is_reset = |r: RuleRef| (r.0 as usize) < replaced_from && new_tables.source_index(r) >= replaced_from;
        let reset_refs: Vec<RuleRef> =
            (0..new_tables.rules().len().min(replaced_from) as u32).map(RuleRef).filter(|r| is_reset(*r)).collect();
        let new_stats = RuleStats::carry_over(&br.tables, &br.stats, &new_tables, &reset_refs, ms(now_ms));
        // Old version's rule -> the same rule (by identity) in the new version, which
        // keeps its id (and so its megaflows' credits) unless its counters restart.
        let remap: Vec<Option<RuleRef>> = br
            .tables
            .rules()
            .iter()
            .map(|r| new_tables.find(r.table, r.priority, &r.matches).filter(|n| !is_reset(*n)))
            .collect();
        // A group change revalidates the whole bridge (megaflows do not record the
        // groups their translation used).
        let same_bridge_state = new_tables.miss == br.tables.miss && Arc::ptr_eq(&new_tables.groups, &br.tables.groups);
        let delta = if same_bridge_state && !self.full_revalidation {
            RuleDelta::new(&br.tables, &new_tables, &remap)
        } else {
            RuleDelta::Full
        };
        // Megaflows name rules by stable id: nothing of theirs is rewritten, and the
        // ids of gone rules stop resolving (see `flow_index`).
        let dead_ids: Vec<RuleId> = match &delta {
            RuleDelta::Partial { dead, .. } => dead.iter().map(|r| br.ids.id(*r)).collect(),
            RuleDelta::Full => Vec::new(),
        };
        br.ids.next_version(&remap, new_tables.rules().len());
        br.tables = new_tables;
        br.stats = new_stats;
        self.revalidate_change(b, &delta, &dead_ids, now_ms, out);
        Ok(())
    }

    /// `add_flows` into bridge `b` in place (see `RuleTables::add_in_place`): the same
    /// outcome as [`SlowPath::change_rules`] of the bridge's rules followed by `rules`,
    /// without touching what the change leaves as it was (the rules' ids, counters and
    /// compiled forms).
    fn add_in_place(&mut self, b: usize, rules: Vec<Rule>, now_ms: u64, out: &mut Out) -> Result<(), SlowPathError> {
        // MAC aging first: it re-translates the megaflows of aged entries, which must see
        // rules that all have ids and counters (between the tables' change below and the
        // ids' renewal, a translation that reached an added rule had none: a panic).
        self.expire_macs(now_ms, out);
        let br = &mut self.bridges[b];
        let done =
            br.tables.add_in_place(rules).map_err(|error| SlowPathError::Rules { bridge: br.name.clone(), error })?;
        let n = br.tables.rules().len();
        // A replaced rule is a rule gone (its id no longer resolves) and one added in its
        // place, with counters from zero.
        let dead_ids: Vec<RuleId> = done.replaced.iter().map(|r| br.ids.id(*r)).collect();
        br.ids.renew(&done.replaced, n);
        br.stats.restart(&done.replaced, n, ms(now_ms));
        let added: Vec<RuleRef> = done.replaced.iter().copied().chain(done.appended.map(RuleRef)).collect();
        let delta = self.delta_in_place(b, done.replaced, &added);
        self.revalidate_change(b, &delta, &dead_ids, now_ms, out);
        Ok(())
    }

    /// Whether a change of `n` rules to bridge `b` is made in place (see
    /// `RuleTables::add_in_place` and `delete_in_place`): into a large version, while
    /// few were changed in place since it was built.
    fn in_place(&self, b: usize, n: usize) -> bool {
        let tables = &self.bridges[b].tables;
        let size = tables.rules().len();
        size >= self.cfg.add_in_place_from.max(1) && tables.changed_in_place() + n <= RuleTables::in_place_limit(size)
    }

    /// `del_flows` of the rules `r` with `gone[r]` from bridge `b`, in place: the same
    /// outcome as [`SlowPath::change_rules`] of the rules kept.
    fn delete_in_place(&mut self, b: usize, gone: &[bool], now_ms: u64, out: &mut Out) {
        // MAC aging first, while the rules and their ids agree (see `add_in_place`).
        self.expire_macs(now_ms, out);
        let br = &mut self.bridges[b];
        let dead: Vec<RuleRef> = (0..gone.len() as u32).filter(|r| gone[*r as usize]).map(RuleRef).collect();
        let dead_ids: Vec<RuleId> = dead.iter().map(|r| br.ids.id(*r)).collect();
        let new_position = br.tables.delete_in_place(gone);
        let br = &mut self.bridges[b];
        br.ids.close_up(&new_position);
        br.stats.close_up(gone);
        let delta = self.delta_in_place(b, dead, &[]);
        self.revalidate_change(b, &delta, &dead_ids, now_ms, out);
    }

    /// What a change in place of bridge `b` did, for `revalidate_change`: the rules
    /// `dead` gone (or changed) and `added` new (or changed), in the current version; the
    /// whole bridge past `MAX_FILTERED_ADDS` added rules, as for a new version.
    fn delta_in_place(&self, b: usize, dead: Vec<RuleRef>, added: &[RuleRef]) -> RuleDelta {
        if added.len() > MAX_FILTERED_ADDS || self.full_revalidation {
            return RuleDelta::Full;
        }
        let tables = &self.bridges[b].tables;
        RuleDelta::Partial { dead, added: added.iter().map(|r| AddedRule::of(tables, *r)).collect() }
    }

    /// Revalidates the megaflows of bridge `b` that a change described by `delta` may
    /// affect (all of them for `RuleDelta::Full`): those that used a rule now gone (whose
    /// ids were `dead_ids`) and those an added rule overlaps.
    fn revalidate_change(&mut self, b: usize, delta: &RuleDelta, dead_ids: &[RuleId], now_ms: u64, out: &mut Out) {
        self.counters.rule_changes += 1;
        let mut candidates: Vec<(usize, FlowId)> = Vec::new();
        if let RuleDelta::Partial { .. } = delta {
            for id in dead_ids {
                self.bridges[b].flows.users_of(*id, &mut candidates);
            }
        }
        let affected: BTreeSet<(usize, FlowId)> = match delta {
            RuleDelta::Full => (0..self.mirrors.len())
                .flat_map(|pmd| self.mirrors[pmd].ids_of_bridge(b).into_iter().map(move |id| (pmd, id)))
                .collect(),
            RuleDelta::Partial { added, .. } => {
                let br = &self.bridges[b];
                for a in added {
                    let start = candidates.len();
                    br.flows.overlapping(a, &mut candidates);
                    // The rest of the test: table, winner priority, lookup in_port.
                    let mirrors = &self.mirrors;
                    let mut i = start;
                    while i < candidates.len() {
                        let (pmd, id) = candidates[i];
                        let keep = mirrors[pmd].get(id).is_some_and(|f| f.rule_deps.may_be_changed_by(&f.key, a));
                        if keep {
                            i += 1;
                        } else {
                            candidates.swap_remove(i);
                        }
                    }
                }
                let affected: BTreeSet<(usize, FlowId)> = candidates.into_iter().collect();
                #[cfg(test)]
                self.check_index(b, dead_ids, added, &affected);
                affected
            }
        };
        // Most of the bridge revalidated: rebuild its index from the survivors rather
        // than unlink every removed megaflow (see `flow_index`). Kept megaflows are
        // re-indexed by their revalidation; the others are put back after it.
        let indexed = self.bridges[b].flows.len();
        let rebuild = affected.len() * 2 >= indexed;
        if rebuild {
            self.bridges[b].flows = flow_index::FlowIndex::default();
        }
        for &(pmd, id) in &affected {
            self.revalidate_flow(pmd, id, now_ms, out);
        }
        // `affected` is drawn from the index: as large as it, it holds every megaflow.
        if rebuild && affected.len() < indexed {
            for (pmd, mirror) in self.mirrors.iter().enumerate() {
                for id in mirror.ids_of_bridge(b) {
                    if !affected.contains(&(pmd, id))
                        && let Some(f) = mirror.get(id)
                    {
                        self.bridges[b].flows.insert((pmd, id), f);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
impl SlowPath {
    /// Unit tests: the megaflows the index found for a change are exactly those a walk
    /// over every mirror with the `rule_deps` test finds.
    fn check_index(&self, b: usize, dead: &[RuleId], added: &[AddedRule], found: &BTreeSet<(usize, FlowId)>) {
        let mut walk = BTreeSet::new();
        for (pmd, m) in self.mirrors.iter().enumerate() {
            for (id, f) in m.iter().filter(|(_, f)| f.bridge == b) {
                let hit = f.rules.iter().chain(&f.watched).any(|r| dead.contains(r))
                    || added.iter().any(|a| f.rule_deps.may_be_changed_by(&f.key, a));
                if hit {
                    walk.insert((pmd, id));
                }
            }
        }
        assert_eq!(*found, walk, "the index and a walk over the mirrors disagree");
    }
}

/// A new rule list as a change that can be made in place (see `SlowPath::edit_of`).
enum Edit {
    /// The rules flagged are deleted.
    Delete(Vec<bool>),
    /// The rules listed get other actions.
    Modify(Vec<RuleRef>),
}

/// The edits that turn the printed rules of `old` into those of `new`, built from it by
/// `list_edit` (`replaced_from`: see [`SlowPath::change_rules`]), after `old`'s own edits
/// not yet taken; `None` when they are not known (either version not printed, `old`'s
/// edits not known, or the list edit not one of the known kinds).
fn text_edits_of(
    old: &mut RuleTables,
    new: &RuleTables,
    list_edit: &ListEdit,
    replaced_from: usize,
) -> Option<Vec<ferrovs_config::persist::journal::RuleTextEdit>> {
    use ferrovs_config::persist::journal::RuleTextEdit;
    if matches!(list_edit, ListEdit::Unknown) {
        return None;
    }
    let (before, after) = (old.printed()?, new.printed()?);
    // A bulk load is written whole anyway: no million texts copied into edits first.
    let at_least = match list_edit {
        ListEdit::Unknown => return None,
        ListEdit::Added => after.len().saturating_sub(before.len()),
        ListEdit::Deleted(gone) => gone.iter().filter(|g| **g).count(),
        ListEdit::Modified(changed) => changed.len(),
    };
    if at_least > new.max_text_edits() {
        return None;
    }
    let mut edits = old.take_text_edits()?;
    match list_edit {
        ListEdit::Unknown => return None,
        ListEdit::Added => {
            // The current rules keep their places (their identities are unique); a later
            // rule of one of them took its place.
            for p in 0..new.rules().len() {
                let from = new.source_index(RuleRef(p as u32));
                if p >= before.len() {
                    edits.push(RuleTextEdit::Add(after[p].clone()));
                } else if from >= replaced_from {
                    edits.push(RuleTextEdit::Replace { old: before[p].clone(), new: after[p].clone() });
                }
            }
        }
        ListEdit::Deleted(gone) => {
            edits.extend(before.iter().zip(gone).filter(|(_, g)| **g).map(|(t, _)| RuleTextEdit::Delete(t.clone())));
        }
        ListEdit::Modified(changed) => {
            for r in changed {
                let p = r.0 as usize;
                edits.push(RuleTextEdit::Replace { old: before[p].clone(), new: after[p].clone() });
            }
        }
    }
    Some(edits)
}

/// Bridge-wide state a rule change may replace along with the rules (`None`: kept).
#[derive(Default)]
struct Replace {
    miss: Option<MissMode>,
    groups: Option<Arc<Groups>>,
    /// Print the new version's rules as it is compiled (`add-flows`, `del-flows`: see
    /// [`SlowPathConfig::print_changed_rules`]).
    print: bool,
    /// What the change did to the rule list, when it is one of these: the new version
    /// then carries the printed rules' edits on (see `RuleTables::take_text_edits`), so
    /// the write-back journals a change that was built, not made in place.
    list_edit: ListEdit,
}

/// How a rule change's list follows from the current one (see [`Replace::list_edit`]).
#[derive(Default)]
enum ListEdit {
    /// Not known (a reload, a group or miss-mode change): the rules are written whole.
    #[default]
    Unknown,
    /// The rules added after the current ones (`add-flows`: a rule of an existing
    /// identity replaces it where it is).
    Added,
    /// The current rules less those flagged.
    Deleted(Vec<bool>),
    /// The current rules, these with new actions or cookie.
    Modified(Vec<RuleRef>),
}

/// Most rules a change may add (or modify) and still revalidate only the megaflows that
/// overlap them: an added rule costs at worst one cheap test per megaflow (see
/// `flow_index`), a re-translation a few microseconds, so beyond this a full
/// revalidation is about as fast.
const MAX_FILTERED_ADDS: usize = 256;

/// What a rule change did, in the terms `rule_deps` can test a megaflow against.
enum RuleDelta {
    /// Revalidate every megaflow of the bridge.
    Full,
    Partial {
        /// Rules of the old version deleted, or whose actions changed.
        dead: Vec<RuleRef>,
        /// Rules of the new version that are new or changed.
        added: Vec<AddedRule>,
    },
}

impl RuleDelta {
    /// The delta from `old` to `new`, where `remap` maps each old rule to the new rule
    /// of the same identity that keeps its counters.
    fn new(old: &RuleTables, new: &RuleTables, remap: &[Option<RuleRef>]) -> RuleDelta {
        let mut dead = Vec::new();
        let mut kept_new = vec![false; new.rules().len()];
        // Kept rules of one (table, priority) must stay in the same relative order: the
        // first in input order wins a tie.
        let mut last_pos: HashMap<(u8, u16), u32> = HashMap::new();
        for (i, m) in remap.iter().enumerate() {
            let old_rule = &old.rules()[i];
            match m {
                Some(n) if new.rule(*n).actions == old_rule.actions => {
                    kept_new[n.0 as usize] = true;
                    let prev = last_pos.insert((old_rule.table, old_rule.priority), n.0);
                    if prev.is_some_and(|p| p > n.0) {
                        return RuleDelta::Full;
                    }
                }
                _ => dead.push(RuleRef(i as u32)),
            }
        }
        let n_added = kept_new.iter().filter(|k| !**k).count();
        if n_added > MAX_FILTERED_ADDS {
            return RuleDelta::Full;
        }
        let added = kept_new
            .iter()
            .enumerate()
            .filter(|(_, k)| !**k)
            .map(|(i, _)| AddedRule::of(new, RuleRef(i as u32)))
            .collect();
        RuleDelta::Partial { dead, added }
    }
}

#[cfg(test)]
mod tests;
