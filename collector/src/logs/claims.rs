//! One file's claimed offsets in the log store's de-duplication index:
//! the byte offsets of the file's retained and in-flight records.
//!
//! An agent sends a file's records in increasing offset order, and the
//! store evicts them oldest first, so almost every claim is above every
//! offset claimed before and almost every release is of the lowest. Those
//! take the ends of `run`, a sorted deque: a comparison and a push or pop,
//! where a tree would walk and rebalance nodes for each record. The rest
//! still costs a logarithm:
//! - a claim below the highest (a resend after a later request got
//!   through) goes to `others`, a tree;
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

    proptest! {
        /// Claims and releases answer as a set would, the deque keeps its
        /// shape, and nothing outlives the last release.
        #[test]
        fn offsets_behave_as_a_set(
            in_order in 0u64..48,
            ops in proptest::collection::vec(
                (
                    any::<bool>(),
                    prop_oneof![
                        8 => 0u64..64,
                        1 => Just(RELEASED),
                        1 => RELEASED..=u64::MAX,
                        1 => Just(RELEASED - 1),
                    ],
                ),
                0..300,
            ),
        ) {
            let mut f = FileOffsets::default();
            let mut model = BTreeSet::new();
            // A run claimed in order first, as an agent sends a file.
            for o in 0..in_order {
                prop_assert!(f.claim(o * 2));
                model.insert(o * 2);
            }
            for (claim, offset) in ops {
                if claim {
                    prop_assert_eq!(f.claim(offset), model.insert(offset));
                } else {
                    prop_assert_eq!(f.release(offset), model.remove(&offset));
                }
                prop_assert_eq!(f.len(), model.len());
                prop_assert!(f.run.iter().zip(f.run.iter().skip(1)).all(|(a, b)| (a & !RELEASED) < (b & !RELEASED)));
                prop_assert!(f.run.front().is_none_or(|o| o & RELEASED == 0));
                prop_assert!(f.run.back().is_none_or(|o| o & RELEASED == 0));
                for o in model.iter().copied().chain([offset, 0, 63]) {
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
