//! One file's claimed offsets in the log store's de-duplication index:
//! the byte offsets of the file's retained and in-flight records.
//!
//! An agent sends a file's records in increasing offset order, and the
//! store evicts them oldest first, so almost every claim is above every
//! offset claimed before and almost every release is of the lowest. Those
//! take the ends of `run`, a sorted deque: a comparison and a push or pop,
//! where a tree would walk and rebalance nodes for each record. Requests
//! in flight together are stored in any order, so a request's run of a
//! file's records is claimed at once ([`FileOffsets::claim_run`]) and
//! released at once when its block is evicted
//! ([`FileOffsets::release_run`]): one search, then the offsets above it
//! move (at most [`MAX_SHIFT`]). The rest costs a logarithm per offset:
//! - a claim below the highest that is not part of such a run (a resend
//!   whose records partly got through) goes to `others`, a tree;
//! - a release inside `run` (records inserted in another order than they
//!   were claimed, when appends overlap) marks the offset released in
//!   place, and marked offsets leave once they reach either end.
//!
//! Invariants: `run` is strictly increasing in its offsets (mark bit
//! aside); its ends are never marked; `run`'s unmarked offsets and
//! `others` are disjoint and together the claimed set, of `len` offsets;
//! an offset with the mark bit set (possible only from a text
//! `tocsin.file.offset`) lives in `others`.

use std::collections::{BTreeSet, VecDeque};

/// Marks an offset of `run` released.
const RELEASED: u64 = 1 << 63;
/// Most offsets moved up to fit a run below them into `run` at once
/// (see [`FileOffsets::claim_run`]); past it the caller claims the run
/// offset by offset, into `others`.
const MAX_SHIFT: usize = 1 << 16;

#[derive(Debug, Default)]
pub(super) struct FileOffsets {
    run: VecDeque<u64>,
    others: BTreeSet<u64>,
    len: usize,
}

impl FileOffsets {
    /// Claims `offset`: false when it is already claimed.
    pub(super) fn claim(&mut self, offset: u64) -> bool {
        if offset & RELEASED == 0 {
            if self.run.back().is_none_or(|&b| b < offset) {
                if self.others.contains(&offset) {
                    return false;
                }
                self.run.push_back(offset);
                self.len += 1;
                return true;
            }
            if let Ok(i) = self.find(offset) {
                if self.run[i] & RELEASED == 0 {
                    return false;
                }
                self.run[i] = offset;
                self.len += 1;
                return true;
            }
        }
        let fresh = self.others.insert(offset);
        self.len += usize::from(fresh);
        fresh
    }

    /// Claims `offsets`, increasing, at once when none of them is claimed
    /// and no claimed offset lies between them: true then; false, nothing
    /// claimed, otherwise (the caller then claims them one by one). Meant
    /// for a request's run of one file's records: it lands in `run`
    /// wherever it falls, also when it overtook or was overtaken by
    /// another request's run, for the cost of moving the offsets above it.
    pub(super) fn claim_run(&mut self, offsets: &[u64]) -> bool {
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return true;
        };
        if last & RELEASED != 0 || !offsets.windows(2).all(|w| w[0] < w[1]) {
            return false;
        }
        if self.others.range(first..=last).next().is_some() {
            return false;
        }
        let p = self.run.partition_point(|&o| (o & !RELEASED) < first);
        if self.run.get(p).is_some_and(|&o| (o & !RELEASED) <= last) {
            return false;
        }
        match self.run.len() - p {
            0 => self.run.extend(offsets),
            above if above <= MAX_SHIFT => {
                let tail: Vec<u64> = self.run.drain(p..).collect();
                self.run.extend(offsets);
                self.run.extend(tail);
            }
            _ => return false,
        }
        self.len += offsets.len();
        true
    }

    /// Releases `offsets`, increasing, at once when they lie side by side
    /// in `run`, none released (as the offsets a run claimed do, unless
    /// some were released and claimed again since): true then; false,
    /// nothing released, otherwise (the caller then releases them one by
    /// one).
    pub(super) fn release_run(&mut self, offsets: &[u64]) -> bool {
        let Some(&first) = offsets.first() else {
            return true;
        };
        if first & RELEASED != 0 {
            return false;
        }
        let p = self.run.partition_point(|&o| (o & !RELEASED) < first);
        let end = p + offsets.len();
        if end > self.run.len() || !self.run.range(p..end).eq(offsets) {
            return false;
        }
        self.run.drain(p..end);
        while self.run.front().is_some_and(|&o| o & RELEASED != 0) {
            self.run.pop_front();
        }
        while self.run.back().is_some_and(|&o| o & RELEASED != 0) {
            self.run.pop_back();
        }
        self.len -= offsets.len();
        true
    }

    /// Releases `offset`: false when it was not claimed.
    pub(super) fn release(&mut self, offset: u64) -> bool {
        if offset & RELEASED != 0 {
            let was = self.others.remove(&offset);
            self.len -= usize::from(was);
            return was;
        }
        if self.run.front() == Some(&offset) {
            self.run.pop_front();
            while self.run.front().is_some_and(|&o| o & RELEASED != 0) {
                self.run.pop_front();
            }
            self.len -= 1;
            return true;
        }
        if self.others.remove(&offset) {
            self.len -= 1;
            return true;
        }
        match self.find(offset) {
            Ok(i) if self.run[i] & RELEASED == 0 => {
                if i + 1 == self.run.len() {
                    self.run.pop_back();
                    while self.run.back().is_some_and(|&o| o & RELEASED != 0) {
                        self.run.pop_back();
                    }
                } else {
                    self.run[i] |= RELEASED;
                }
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    /// Offsets claimed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where `offset` is in `run`, marked or not.
    fn find(&self, offset: u64) -> Result<usize, usize> {
        self.run.binary_search_by(|&o| (o & !RELEASED).cmp(&offset))
    }

    #[cfg(test)]
    fn contains(&self, offset: u64) -> bool {
        self.others.contains(&offset)
            || offset & RELEASED == 0
                && self.find(offset).is_ok_and(|i| self.run[i] & RELEASED == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_claims_and_releases_stay_in_the_run() {
        let mut f = FileOffsets::default();
        for o in (0..100).map(|i| i * 150) {
            assert!(f.claim(o));
        }
        assert!(!f.claim(0) && !f.claim(150 * 99));
        assert!(f.others.is_empty());
        assert_eq!(f.len(), 100);
        for o in (0..100).map(|i| i * 150) {
            assert!(f.release(o));
        }
        assert!(f.is_empty() && f.run.is_empty());
    }

    #[test]
    fn releases_inside_the_run_leave_once_they_reach_an_end() {
        let mut f = FileOffsets::default();
        for o in 0..6 {
            f.claim(o);
        }
        assert!(f.release(2) && f.release(3));
        assert!(!f.release(3));
        assert_eq!(f.run.len(), 6);
        assert!(f.claim(3), "a released offset can be claimed again");
        assert!(f.release(3));
        assert!(f.release(0) && f.release(1));
        assert_eq!(f.run, [4, 5], "marked offsets left with the front");
        assert!(f.release(5));
        assert_eq!(f.run, [4]);
        assert!(f.release(4));
        assert!(f.is_empty() && f.run.is_empty());
    }

    #[test]
    fn a_resend_below_the_run_is_claimed_beside_it() {
        let mut f = FileOffsets::default();
        for o in [200, 300, 100, 50, 300, 250] {
            f.claim(o);
        }
        assert_eq!(f.run, [200, 300]);
        assert_eq!(f.others, BTreeSet::from([50, 100, 250]));
        assert!(!f.claim(100) && !f.claim(250) && !f.claim(200));
        // The run's top goes; an offset held beside it is still claimed.
        assert!(f.release(300));
        assert!(!f.claim(250));
        assert!(f.claim(300));
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn runs_are_claimed_and_released_at_once_wherever_they_land() {
        let mut f = FileOffsets::default();
        // Requests of 4 offsets, the second overtaken by the third.
        assert!(f.claim_run(&[0, 1, 2, 3]));
        assert!(f.claim_run(&[8, 9, 10, 11]));
        assert!(f.claim_run(&[4, 5, 6, 7]));
        assert_eq!(f.run, (0..12).collect::<Vec<_>>());
        assert!(f.others.is_empty());
        assert_eq!(f.len(), 12);
        // A repeat, an overlap, or offsets around a claimed one: refused,
        // nothing claimed.
        assert!(!f.claim_run(&[9, 10]));
        assert!(!f.claim_run(&[11, 12]));
        assert!(!f.claim_run(&[12, 12]));
        assert_eq!(f.len(), 12);
        // Released in the order the blocks hold them.
        assert!(f.release_run(&[8, 9, 10, 11]));
        assert!(!f.release_run(&[8, 9]), "released already");
        assert!(!f.release_run(&[3, 5]), "not side by side");
        assert!(f.release_run(&[0, 1, 2, 3]));
        assert!(f.release_run(&[4, 5, 6, 7]));
        assert!(f.is_empty() && f.run.is_empty());
    }

    /// One operation of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        Claim(u64),
        Release(u64),
        ClaimRun(Vec<u64>),
        ReleaseRun(Vec<u64>),
    }

    fn offset() -> impl Strategy<Value = u64> {
        prop_oneof![
            8 => 0u64..64,
            1 => Just(RELEASED),
            1 => RELEASED..=u64::MAX,
            1 => Just(RELEASED - 1),
        ]
    }

    /// Mostly increasing runs (some with a step back or a repeat).
    fn run() -> impl Strategy<Value = Vec<u64>> {
        prop_oneof![
            4 => (0u64..64, 1u64..4, 1usize..8)
                .prop_map(|(start, step, n)| (0..n as u64).map(|i| start + i * step).collect()),
            1 => proptest::collection::vec(offset(), 0..5),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => offset().prop_map(Op::Claim),
            3 => offset().prop_map(Op::Release),
            2 => run().prop_map(Op::ClaimRun),
            2 => run().prop_map(Op::ReleaseRun),
        ]
    }

    proptest! {
        /// Claims and releases answer as a set would (runs all or
        /// nothing, at once exactly when they can be), the deque keeps its
        /// shape, and nothing outlives the last release.
        #[test]
        fn offsets_behave_as_a_set(
            in_order in 0u64..48,
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let mut f = FileOffsets::default();
            let mut model = BTreeSet::new();
            // A run claimed in order first, as an agent sends a file.
            for o in 0..in_order {
                prop_assert!(f.claim(o * 2));
                model.insert(o * 2);
            }
            for op in ops {
                let touched: Vec<u64> = match &op {
                    Op::Claim(o) | Op::Release(o) => vec![*o],
                    Op::ClaimRun(v) | Op::ReleaseRun(v) => v.clone(),
                };
                match op {
                    Op::Claim(o) => prop_assert_eq!(f.claim(o), model.insert(o)),
                    Op::Release(o) => prop_assert_eq!(f.release(o), model.remove(&o)),
                    Op::ClaimRun(v) => {
                        let increasing = v.windows(2).all(|w| w[0] < w[1]);
                        let possible = match (v.first(), v.last()) {
                            (Some(&first), Some(&last)) => {
                                increasing
                                    && last & RELEASED == 0
                                    && model.range(first..=last).next().is_none()
                                    && !f.run.iter().any(|&o| {
                                        o & RELEASED != 0
                                            && (first..=last).contains(&(o & !RELEASED))
                                    })
                            }
                            _ => true,
                        };
                        prop_assert_eq!(f.claim_run(&v), possible, "{:?}", v);
                        if possible {
                            model.extend(v.iter().copied());
                        }
                    }
                    Op::ReleaseRun(v) => {
                        // Unmarked offsets side by side in the deque (a
                        // marked one equals no offset the mark bit clear).
                        let window = v.first().filter(|&&o| o & RELEASED == 0).and_then(|&first| {
                            let p = f.run.iter().position(|&o| o == first)?;
                            Some(f.run.range(p..).take(v.len()).eq(v.iter()))
                        });
                        let possible = v.is_empty() || window == Some(true);
                        prop_assert_eq!(f.release_run(&v), possible, "{:?}", v);
                        if possible {
                            for o in &v {
                                prop_assert!(model.remove(o));
                            }
                        }
                    }
                }
                prop_assert_eq!(f.len(), model.len());
                prop_assert!(f.run.iter().zip(f.run.iter().skip(1)).all(|(a, b)| (a & !RELEASED) < (b & !RELEASED)));
                prop_assert!(f.run.front().is_none_or(|o| o & RELEASED == 0));
                prop_assert!(f.run.back().is_none_or(|o| o & RELEASED == 0));
                for o in model.iter().copied().chain(touched).chain([0, 63]) {
                    prop_assert_eq!(f.contains(o), model.contains(&o), "{}", o);
                }
            }
            for o in std::mem::take(&mut model) {
                prop_assert!(f.release(o));
            }
            prop_assert!(f.is_empty() && f.run.is_empty() && f.others.is_empty());
        }
    }
}
