//! The OpenFlow 1.1+ action set: what `write_actions` accumulates and the pipeline runs
//! when it ends.
//!
//! # Design
//!
//! As in OVS, the set is kept as the plain list of every action written since the last
//! `clear_actions` (in order), and only turned into the list to execute when it runs
//! ([`execution_list`], OVS's `ofpacts_execute_action_set`). That list is, in this order:
//! - the last `strip_vlan`/`pop_vlan`, the last `push_vlan`, the last `dec_ttl` (one
//!   slot each; OVS's order for them);
//! - every field write (`set_field`, `mod_*`, `load`, `move`), in the order written: a
//!   later write of a field wins as it would in the set;
//! - one final action, and only if there is one the whole list runs at all: `group`
//!   beats an output (`output`, `in_port`, `flood`, `all`, `normal`, `controller`), which
//!   beats `resubmit`; of one kind the last written.
//!
//! Other actions (`note`, `clone`, instructions) cannot be in the set: the parser refuses
//! them in `write_actions`, and they are skipped here as OVS skips them.
//!
//! Group buckets are action sets too (OpenFlow; OVS runs each through the same
//! function), so a bucket's actions are ordered this way before they run.

use ferrovs_config::rules::Action;

/// The kind of an action in the action set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One slot per action type, executed first, in this order.
    Slot(usize),
    /// A field write: all of them, in order.
    Write,
    /// A final action of this priority (higher wins).
    Final(u8),
    /// Not allowed in the action set.
    Invalid,
}

const SLOTS: usize = 3;

fn kind(a: &Action) -> Kind {
    match a {
        Action::StripVlan => Kind::Slot(0),
        Action::PushVlan(_) => Kind::Slot(1),
        Action::DecTtl => Kind::Slot(2),
        // OVS's OFPACT_SET_VLAN_VID/PCP (pushing a tag if there is none) are writes.
        Action::Set(_) | Action::Load { .. } | Action::Move { .. } | Action::ModVlanVid(_) | Action::ModVlanPcp(_) => {
            Kind::Write
        }
        Action::Resubmit(_) => Kind::Final(0),
        Action::Output(_)
        | Action::InPort
        | Action::Flood
        | Action::All
        | Action::Normal
        | Action::Controller { .. } => Kind::Final(1),
        Action::Group(_) => Kind::Final(2),
        Action::GotoTable(_)
        | Action::WriteMetadata { .. }
        | Action::Note(_)
        | Action::Clone(_)
        | Action::OutputReg(_)
        | Action::OutputTrunc { .. }
        | Action::ClearActions
        | Action::WriteActions(_) => Kind::Invalid,
    }
}

/// The actions the action set `set` (every action written to it, in order) executes, in
/// execution order: empty if it holds no final action. See the module documentation.
pub(crate) fn execution_list(set: &[Action]) -> Vec<Action> {
    let mut slots: [Option<&Action>; SLOTS] = [None; SLOTS];
    let mut writes = Vec::new();
    let mut last: Option<(u8, &Action)> = None;
    for a in set {
        match kind(a) {
            Kind::Slot(i) => slots[i] = Some(a),
            Kind::Write => writes.push(a),
            Kind::Final(p) if last.is_none_or(|(q, _)| p >= q) => last = Some((p, a)),
            Kind::Final(_) | Kind::Invalid => {}
        }
    }
    let Some((_, last)) = last else { return Vec::new() };
    slots.into_iter().flatten().chain(writes).chain(std::iter::once(last)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<Action> {
        ferrovs_config::parse_flow(&format!("ip,actions={text}")).unwrap().actions
    }

    #[test]
    fn the_set_runs_in_ovs_order_with_one_action_per_slot() {
        // The order OVS's trace prints for this set (`action set is: ...`).
        let set = list("output:2,dec_ttl,mod_nw_dst:1.2.3.4,strip_vlan,push_vlan:0x88a8,output:3,push_vlan:0x8100");
        assert_eq!(execution_list(&set), list("strip_vlan,push_vlan:0x8100,dec_ttl,mod_nw_dst:1.2.3.4,output:3"));
        // Every write stays, in order.
        let set = list("mod_nw_dst:1.2.3.4,mod_dl_src:00:00:00:00:00:01,mod_nw_dst:1.2.3.5,normal");
        assert_eq!(execution_list(&set), set);
    }

    #[test]
    fn a_group_beats_an_output_which_beats_a_resubmit() {
        assert_eq!(execution_list(&list("group:1,output:2,resubmit(,3)")), list("group:1"));
        assert_eq!(execution_list(&list("resubmit(,3),output:2,flood")), list("flood"));
        assert_eq!(execution_list(&list("resubmit(,3),resubmit(,4)")), list("resubmit(,4)"));
    }

    #[test]
    fn without_a_final_action_nothing_runs() {
        assert_eq!(execution_list(&list("dec_ttl,mod_nw_dst:1.2.3.4,push_vlan:0x8100")), vec![]);
        assert_eq!(execution_list(&[]), vec![]);
    }
}
