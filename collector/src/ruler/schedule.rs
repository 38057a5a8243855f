//! When a rule group is evaluated, as Prometheus schedules it: every group
//! runs on a grid of its interval shifted by an offset derived from a hash
//! of its file and name, so groups with the same interval spread over the
//! interval instead of all evaluating at once, and a group keeps the same
//! slots across restarts and reloads (its `for` arithmetic and its
//! recorded series' timestamps stay regular).
//!
//! Invariants: every evaluation timestamp is `offset (mod interval)`;
//! timestamps only grow; a slot that has already passed when the group is
//! ready again is skipped and counted as missed, never evaluated late.

use xxhash_rust::xxh64::xxh64;

/// The offset of a group within its interval (ms), in `[0, interval)`.
pub fn offset_ms(file: &str, group: &str, interval_ms: i64) -> i64 {
    if interval_ms <= 0 {
        return 0;
    }
    // The separator cannot occur in a file name and a group name at the
    // same position ambiguously: 0xff is not valid UTF-8.
    let mut key = Vec::with_capacity(file.len() + group.len() + 1);
    key.extend_from_slice(group.as_bytes());
    key.push(0xff);
    key.extend_from_slice(file.as_bytes());
    let h = xxh64(&key, 0);
    // interval_ms > 0, so the remainder fits an i64.
    i64::try_from(h % interval_ms.unsigned_abs()).unwrap_or(0)
}

/// The latest slot at or before `now_ms` (Prometheus' `EvalTimestamp`).
pub fn slot_at_or_before(now_ms: i64, interval_ms: i64, offset_ms: i64) -> i64 {
    if interval_ms <= 0 {
        return now_ms;
    }
    let adj = now_ms.saturating_sub(offset_ms);
    adj.saturating_sub(adj.rem_euclid(interval_ms))
        .saturating_add(offset_ms)
}

/// The first slot a group started at `now_ms` evaluates: the next one
/// strictly after the current slot, as Prometheus (a freshly started group
/// never evaluates at a time some earlier incarnation may already have).
pub fn first_slot(now_ms: i64, interval_ms: i64, offset_ms: i64) -> i64 {
    slot_at_or_before(now_ms, interval_ms, offset_ms).saturating_add(interval_ms.max(1))
}

/// Given the slot a group waited for and the time it woke up, the slot to
/// evaluate now and how many slots were missed on the way (the group was
/// still busy, or the process was stalled).
pub fn catch_up(due_ms: i64, now_ms: i64, interval_ms: i64) -> (i64, u64) {
    if interval_ms <= 0 || now_ms < due_ms {
        return (due_ms, 0);
    }
    let behind = (now_ms - due_ms) / interval_ms;
    (
        due_ms.saturating_add(behind.saturating_mul(interval_ms)),
        u64::try_from(behind).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    #[test]
    fn offsets_are_stable_and_spread() {
        let a = offset_ms("/etc/tocsin/rules/a.yaml", "api", MIN);
        assert_eq!(a, offset_ms("/etc/tocsin/rules/a.yaml", "api", MIN));
        let distinct: std::collections::BTreeSet<i64> = (0..50)
            .map(|i| offset_ms("f.yaml", &format!("g{i}"), MIN))
            .collect();
        assert!(distinct.len() > 40, "offsets collide: {distinct:?}");
        assert_ne!(
            offset_ms("a", "bc", MIN),
            offset_ms("ab", "c", MIN),
            "file/group boundary must matter"
        );
    }

    #[test]
    fn first_slot_is_the_next_aligned_one() {
        assert_eq!(slot_at_or_before(125_000, MIN, 5_000), 125_000);
        assert_eq!(slot_at_or_before(124_999, MIN, 5_000), 65_000);
        assert_eq!(first_slot(125_000, MIN, 5_000), 185_000);
        assert_eq!(first_slot(130_000, MIN, 5_000), 185_000);
    }

    #[test]
    fn late_wake_ups_skip_and_count_missed_slots() {
        assert_eq!(catch_up(60_000, 60_000, MIN), (60_000, 0));
        assert_eq!(catch_up(60_000, 119_999, MIN), (60_000, 0));
        assert_eq!(catch_up(60_000, 120_000, MIN), (120_000, 1));
        assert_eq!(catch_up(60_000, 300_500, MIN), (300_000, 4));
    }

    proptest! {
        #[test]
        fn slots_stay_on_the_grid(now in -1_000_000_000i64..1_000_000_000_000, interval in 1i64..86_400_000, file in "[a-z/]{0,12}", group in "[a-z]{1,8}") {
            let off = offset_ms(&file, &group, interval);
            prop_assert!((0..interval).contains(&off));
            let s = slot_at_or_before(now, interval, off);
            prop_assert!(s <= now && now - s < interval);
            prop_assert_eq!((s - off).rem_euclid(interval), 0);
            let f = first_slot(now, interval, off);
            prop_assert!(f > now && f - now <= interval);
            let (t, missed) = catch_up(f, now + 3 * interval, interval);
            prop_assert_eq!((t - off).rem_euclid(interval), 0);
            prop_assert!(t <= now + 3 * interval && now + 3 * interval - t < interval);
            prop_assert_eq!(i64::try_from(missed).unwrap_or(-1), (t - f) / interval);
        }
    }
}
