//! `SlotPolicy::plan_inserts` predicts exactly what the next new-entry sets
//! do: for any history of sets, reads and removals, the planned slots are
//! the slots those sets return, and each set evicts exactly the entry whose
//! slot it reuses (nothing else leaves). And `SlotPolicy::read_many`, which
//! takes a shorter path while no entry may expire, is the same reads one by
//! one.

use proptest::prelude::*;
use stratacache::local::SlotPolicy;
use stratacache::Expiry;

#[derive(Debug, Clone)]
enum Op {
    Set,
    Read(u32),
    Remove(u32),
    Weighted(u64),
    Timed(u64),
    Touch(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Set),
        4 => (0u32..40).prop_map(Op::Read),
        2 => (0u32..40).prop_map(Op::Remove),
        1 => (1u64..30).prop_map(Op::Weighted),
        1 => (1u64..50).prop_map(Op::Timed),
        1 => (0u32..40).prop_map(Op::Touch),
    ]
}

fn apply(policy: &mut SlotPolicy, op: &Op, now: u64, removed: &mut Vec<u32>) {
    match *op {
        Op::Set => {
            policy.set(None, 0, Expiry::Default, now, removed);
        }
        Op::Read(slot) => {
            policy.read(slot, now, removed);
        }
        Op::Remove(slot) => {
            policy.remove(slot);
        }
        Op::Weighted(w) => {
            policy.set(None, w, Expiry::Default, now, removed);
        }
        Op::Timed(ttl) => {
            policy.set(None, 0, Expiry::AfterMs(ttl), now, removed);
        }
        Op::Touch(slot) => {
            policy.touch(slot, Expiry::Never, now, removed);
        }
    }
}

proptest! {
    #[test]
    fn planned_slots_are_the_slots_the_sets_take(
        max_entries in 1usize..24,
        max_weight in prop_oneof![Just(u64::MAX), 20u64..100],
        history in prop::collection::vec(op(), 0..120),
        want in 1usize..64,
    ) {
        let mut policy = SlotPolicy::new(max_entries, max_weight).unwrap();
        // The same history again, for the batched sets.
        let mut batched = SlotPolicy::new(max_entries, max_weight).unwrap();
        let mut removed = Vec::new();
        let mut now = 1_000;
        for op in &history {
            now += 7;
            apply(&mut policy, op, now, &mut removed);
            apply(&mut batched, op, now, &mut removed);
        }
        let mut plan = Vec::new();
        policy.plan_inserts(want, &mut plan);
        let stats_before = policy.stats();
        // The plan is empty exactly when an entry may still expire.
        let may_expire = (0..64).any(|s| matches!(policy.expires_at(s), Some(Some(_))));
        if may_expire {
            prop_assert!(plan.is_empty());
            return Ok(());
        }
        prop_assert!(plan.len() <= want);
        let held_before = policy.len();
        for &slot in &plan {
            let was_held = policy.holds(slot);
            removed.clear();
            let got = policy.set(None, 0, Expiry::Default, now, &mut removed);
            prop_assert_eq!(got, Some(slot));
            if was_held {
                prop_assert_eq!(&removed, &vec![slot], "only the reused slot's entry leaves");
            } else {
                prop_assert!(removed.is_empty());
            }
        }
        let stats = policy.stats();
        prop_assert_eq!(stats.inserts - stats_before.inserts, plan.len() as u64);
        // One batch of the same sets leaves the same state.
        removed.clear();
        batched.set_new_many(plan.len(), now, &mut removed);
        prop_assert!(removed.is_empty(), "evicted slots are the new entries': not reported");
        prop_assert_eq!(batched.stats(), stats);
        prop_assert_eq!(batched.weight(), policy.weight());
        prop_assert_eq!(
            batched.slots_by_recency().collect::<Vec<_>>(),
            policy.slots_by_recency().collect::<Vec<_>>()
        );
        for &slot in &plan {
            prop_assert!(batched.holds(slot));
            prop_assert_eq!(batched.expires_at(slot), Some(None));
        }
        // The plan stops only at `want` or where it would evict its own entries.
        if plan.len() < want {
            prop_assert!(policy.len() == max_entries && plan.len() >= held_before.min(max_entries));
        }
    }
}

proptest! {
    #[test]
    fn a_batch_of_reads_is_the_reads_one_by_one(
        max_entries in 1usize..24,
        max_weight in prop_oneof![Just(u64::MAX), 20u64..100],
        default_ttl in prop_oneof![3 => Just(None), 1 => (1u64..100).prop_map(Some)],
        history in prop::collection::vec(op(), 0..120),
        reads in prop::collection::vec(prop_oneof![0u32..40, Just(u32::MAX)], 0..80),
        later in prop_oneof![Just(0u64), 1u64..60, Just(u64::MAX)],
    ) {
        let new = || {
            SlotPolicy::new(max_entries, max_weight)
                .and_then(|p| p.with_default_ttl(default_ttl))
                .unwrap()
        };
        let (mut one_by_one, mut batched) = (new(), new());
        let mut removed = Vec::new();
        let mut now = 1_000;
        for op in &history {
            now += 7;
            apply(&mut one_by_one, op, now, &mut removed);
            apply(&mut batched, op, now, &mut removed);
        }
        let now = now.saturating_add(later);
        let mut removed_one = Vec::new();
        let mut hits = 0;
        for &slot in &reads {
            hits += u64::from(one_by_one.read(slot, now, &mut removed_one));
        }
        let before = batched.stats();
        let mut removed_batch = Vec::new();
        batched.read_many(&reads, now, &mut removed_batch);
        prop_assert_eq!(removed_batch, removed_one);
        prop_assert_eq!(batched.stats(), one_by_one.stats());
        prop_assert_eq!(batched.stats().hits - before.hits, hits);
        prop_assert_eq!(
            batched.slots_by_recency().collect::<Vec<_>>(),
            one_by_one.slots_by_recency().collect::<Vec<_>>()
        );
        for slot in 0..40 {
            prop_assert_eq!(batched.expires_at(slot), one_by_one.expires_at(slot));
        }
        // Both still know whether an entry may expire (a plan exists only
        // while none may).
        let may_expire = default_ttl.is_some()
            || (0..40).any(|s| matches!(batched.expires_at(s), Some(Some(_))));
        let mut plan = Vec::new();
        batched.plan_inserts(8, &mut plan);
        prop_assert_eq!(plan.is_empty(), may_expire);
    }
}

#[test]
fn a_full_cache_plans_its_least_recently_used_slots_in_order() {
    let mut policy = SlotPolicy::new(3, u64::MAX).unwrap();
    let mut removed = Vec::new();
    for _ in 0..3 {
        policy.set(None, 0, Expiry::Default, 0, &mut removed);
    }
    assert!(policy.read(0, 0, &mut removed));
    let mut plan = Vec::new();
    policy.plan_inserts(10, &mut plan);
    assert_eq!(plan, [1, 2, 0], "LRU first; never a planned entry");
    policy.set(None, 0, Expiry::AfterMs(5), 0, &mut removed);
    policy.plan_inserts(10, &mut plan);
    assert!(plan.is_empty(), "an entry with a TTL makes the plan empty");
}
