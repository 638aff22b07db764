//! Which PMD polls which rx queue, as OVS's `pmd-rxq-assign=cycles` with
//! `pmd-rxq-affinity` and its default `pmd-rxq-isolate=true`:
//!
//! - a pinned queue goes to its PMD, whatever the load;
//! - a PMD with a pinned queue is *isolated*: it gets no unpinned queue;
//! - unpinned queues go, busiest first, each to the non-isolated PMD with the least load
//!   so far (then the fewest queues, then the lowest index).
//!
//! When every PMD is isolated, unpinned queues go to the least loaded of all PMDs (OVS
//! leaves them unpolled and logs a warning; a queue nobody polls loses every frame).
//! Pure functions of loads and pins, tested here; `Switch` applies the result.

/// PMD `i` is isolated when some queue is pinned to it.
pub(crate) fn isolated(n_pmds: usize, pins: impl IntoIterator<Item = usize>) -> Vec<bool> {
    let mut iso = vec![false; n_pmds];
    for p in pins {
        if let Some(x) = iso.get_mut(p) {
            *x = true;
        }
    }
    iso
}

/// The PMD an unpinned queue goes to, given each PMD's (load, queue count): the least
/// loaded that is not isolated (every PMD when all are).
pub(crate) fn least_loaded(load: &[(u64, usize)], isolated: &[bool]) -> usize {
    let open = |p: &usize| !isolated.get(*p).copied().unwrap_or(false);
    let all_isolated = !(0..load.len()).any(|p| open(&p));
    (0..load.len()).filter(|p| all_isolated || open(p)).min_by_key(|&p| (load[p].0, load[p].1, p)).unwrap_or(0)
}

/// The PMD of each queue of `queues` ((load, pinned PMD)), assigned from scratch.
pub(crate) fn assign(queues: &[(u64, Option<usize>)], n_pmds: usize) -> Vec<usize> {
    let iso = isolated(n_pmds, queues.iter().filter_map(|q| q.1));
    let mut load = vec![(0u64, 0usize); n_pmds];
    let mut target = vec![0usize; queues.len()];
    for (i, &(cycles, pin)) in queues.iter().enumerate() {
        if let Some(p) = pin.filter(|&p| p < n_pmds) {
            target[i] = p;
            load[p].0 += cycles;
            load[p].1 += 1;
        }
    }
    let mut order: Vec<usize> = (0..queues.len()).filter(|&i| queues[i].1.is_none_or(|p| p >= n_pmds)).collect();
    order.sort_by(|&a, &b| queues[b].0.cmp(&queues[a].0).then(a.cmp(&b)));
    for i in order {
        let p = least_loaded(&load, &iso);
        load[p].0 += queues[i].0;
        load[p].1 += 1;
        target[i] = p;
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpinned_queues_go_by_load() {
        // Busiest first, each to the least loaded PMD.
        assert_eq!(assign(&[(10, None), (90, None), (50, None), (40, None)], 2), vec![0, 0, 1, 1]);
        assert_eq!(assign(&[], 2), Vec::<usize>::new());
    }

    #[test]
    fn pinned_queues_stay_and_isolate_their_pmd() {
        // Queue 0 (idle) pinned to PMD 1: the busy unpinned ones all go to PMD 0, and PMD
        // 1 gets nothing else however idle it is.
        assert_eq!(assign(&[(0, Some(1)), (90, None), (80, None), (70, None)], 2), vec![1, 0, 0, 0]);
        // Pins are kept against the load: both busy queues pinned to PMD 0.
        assert_eq!(assign(&[(90, Some(0)), (90, Some(0)), (1, None)], 3), vec![0, 0, 1]);
        // Three PMDs, one isolated: the unpinned queues share the other two.
        assert_eq!(assign(&[(5, Some(2)), (50, None), (40, None), (30, None)], 3), vec![2, 0, 1, 1]);
    }

    #[test]
    fn every_pmd_isolated_still_polls_unpinned_queues() {
        assert_eq!(assign(&[(90, Some(0)), (10, Some(1)), (50, None)], 2), vec![0, 1, 1]);
    }

    #[test]
    fn least_loaded_skips_isolated_pmds() {
        assert_eq!(least_loaded(&[(0, 0), (100, 3)], &[true, false]), 1);
        assert_eq!(least_loaded(&[(5, 1), (5, 0)], &[false, false]), 1, "same load: fewer queues");
        assert_eq!(least_loaded(&[(9, 0), (1, 0)], &[true, true]), 1, "all isolated: all count");
        assert_eq!(isolated(3, [2, 2]), vec![false, false, true]);
    }
}
