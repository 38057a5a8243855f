//! The storage interface the evaluator reads through ([`Queryable`]) and an
//! in-memory implementation ([`MemStorage`]) used by the rule unit-test
//! runner, the PromQL conformance tests and anyone who needs a small store.
//!
//! Invariant: `select` returns each matching series once, with its samples
//! (staleness markers included) in strictly increasing time order, limited
//! to the requested inclusive window.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

pub use promql_parser::label::{MatchOp, Matcher};

use super::value::{Labels, Sample, Series};

/// A failure of the underlying store, reported to the query's caller.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// Read access to stored series.
pub trait Queryable {
    /// Every series whose labels satisfy all `matchers`, with its samples in
    /// `[mint, maxt]` (milliseconds, inclusive), oldest first. Series with no
    /// sample in the window may be returned or omitted.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError>;
}

/// Whether one matcher accepts a label set (an absent label matches as `""`).
pub fn matches(m: &Matcher, labels: &Labels) -> bool {
    m.is_match(labels.get(&m.name))
}

/// A small, fast hasher for the store's own keys (label sets and pointer
/// identities it created): FxHash's multiply-rotate. Not for keys an
/// adversary picks, which the store never holds.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = super::value::fx_mix(self.0, n);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// An in-memory series store with an inverted label index.
///
/// Invariants: `postings[name][value]` lists, ascending, the index of every
/// series carrying that label; `by_ptr` maps the address of a label set's
/// shared storage to its series and is only trusted after checking that
/// the series holds that very allocation.
#[derive(Debug, Default)]
pub struct MemStorage {
    series: Vec<Series>,
    by_labels: HashMap<Labels, usize, FxBuild>,
    by_ptr: HashMap<usize, usize, FxBuild>,
    postings: HashMap<String, BTreeMap<String, Vec<usize>>, FxBuild>,
    visible_until: Option<i64>,
    /// Per series, where the last selected window started and ended: the
    /// next search starts there. Only a speed-up: any value is correct.
    hints: Vec<[AtomicU32; 2]>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of the series with exactly `labels`, if stored.
    fn index_of(&self, labels: &Labels) -> Option<usize> {
        // Callers usually pass the same shared label set again and again
        // (a loader's series, a rule's output): find it by address first.
        if let Some(&i) = self.by_ptr.get(&labels.ptr_id())
            && self
                .series
                .get(i)
                .is_some_and(|s| s.labels.same_storage(labels))
        {
            return Some(i);
        }
        self.by_labels.get(labels).copied()
    }

    /// Adds a series' samples in one go; an empty series takes the vector
    /// as it is when it is in strictly increasing time order.
    pub fn add_series(&mut self, labels: &Labels, samples: Vec<Sample>) {
        let idx = self.index_or_insert(labels);
        let sorted = samples.windows(2).all(|w| w[0].t < w[1].t);
        if self.series[idx].samples.is_empty() && sorted {
            self.series[idx].samples = samples;
        } else {
            for s in samples {
                self.add(labels, s.t, s.v);
            }
        }
    }

    /// Hides samples after `t` from queries (`None` shows everything): a
    /// store loaded with a whole test's input answers as if it held only
    /// what was written up to the evaluation time.
    pub fn set_visible_until(&mut self, t: Option<i64>) {
        self.visible_until = t;
    }

    fn index_or_insert(&mut self, labels: &Labels) -> usize {
        if let Some(i) = self.index_of(labels) {
            return i;
        }
        let i = self.series.len();
        self.series.push(Series {
            labels: labels.clone(),
            samples: Vec::new(),
        });
        self.hints.push([AtomicU32::new(0), AtomicU32::new(0)]);
        self.by_labels.insert(labels.clone(), i);
        for l in labels.iter() {
            self.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(i);
        }
        i
    }

    /// Adds one sample; a sample at an existing timestamp replaces it.
    pub fn add(&mut self, labels: &Labels, t: i64, v: f64) {
        let idx = self.index_or_insert(labels);
        // Remember this allocation: the next add with the same label set
        // skips hashing the labels. Label sets built afresh each time
        // would grow the map without bound, so it is cleared past a size
        // proportional to the store.
        if self.by_ptr.len() > 4 * self.series.len() + 1024 {
            self.by_ptr.clear();
        }
        self.by_ptr.insert(labels.ptr_id(), idx);
        let samples = &mut self.series[idx].samples;
        match samples.last() {
            Some(last) if last.t < t => samples.push(Sample { t, v }),
            None => samples.push(Sample { t, v }),
            _ => match samples.binary_search_by(|s| s.t.cmp(&t)) {
                Ok(i) => samples[i].v = v,
                Err(i) => samples.insert(i, Sample { t, v }),
            },
        }
    }

    /// The value stored for exactly `labels` at exactly `t`, if any.
    pub fn sample_at(&self, labels: &Labels, t: i64) -> Option<f64> {
        let s = self.series.get(self.index_of(labels)?)?;
        let i = s.samples.binary_search_by(|x| x.t.cmp(&t)).ok()?;
        s.samples.get(i).map(|x| x.v)
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// All series, in insertion order.
    pub fn all_series(&self) -> &[Series] {
        &self.series
    }

    /// The newest timestamp held, if any.
    pub fn max_time(&self) -> Option<i64> {
        self.series
            .iter()
            .filter_map(|s| s.samples.last().map(|x| x.t))
            .max()
    }

    /// Indices, ascending, of the series whose label `m.name` is present
    /// and accepted by `m`.
    fn postings_for(&self, m: &Matcher) -> Vec<usize> {
        let Some(values) = self.postings.get(&m.name) else {
            return Vec::new();
        };
        if let MatchOp::Equal = m.op {
            return values.get(&m.value).cloned().unwrap_or_default();
        }
        let mut lists = values.iter().filter(|(v, _)| m.is_match(v)).map(|(_, l)| l);
        let Some(first) = lists.next() else {
            return Vec::new();
        };
        let mut out = first.clone();
        let mut merged = false;
        for l in lists {
            out.extend_from_slice(l);
            merged = true;
        }
        if merged {
            out.sort_unstable();
        }
        out
    }

    /// Indices, ascending, of the series all `matchers` accept. A matcher
    /// that accepts the empty value also accepts series without the label,
    /// so it filters instead of selecting through the index.
    fn matching(&self, matchers: &[Matcher]) -> Vec<usize> {
        let mut selected: Option<Vec<usize>> = None;
        for m in matchers.iter().filter(|m| !m.is_match("")) {
            let list = self.postings_for(m);
            selected = Some(match selected {
                None => list,
                Some(prev) => intersect_sorted(&prev, &list),
            });
            if selected.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let filters: Vec<&Matcher> = matchers.iter().filter(|m| m.is_match("")).collect();
        let keep = |i: &usize| filters.iter().all(|m| matches(m, &self.series[*i].labels));
        match selected {
            Some(list) => list.into_iter().filter(keep).collect(),
            None => (0..self.series.len()).filter(keep).collect(),
        }
    }
}

/// `samples.partition_point(pred)`, found by galloping from `hint` (where
/// the edge was last time) in whichever direction it lies: a rule
/// evaluated step after step moves each window edge by a sample or two,
/// so this costs the log of the distance moved, not of the series.
fn partition_near(samples: &[Sample], hint: usize, pred: impl Fn(&Sample) -> bool) -> usize {
    let n = samples.len();
    let h = hint.min(n);
    if h < n && pred(&samples[h]) {
        // The edge is after `h`.
        let mut lo = h + 1;
        let mut step = 1;
        loop {
            let probe = h.saturating_add(step);
            if probe >= n {
                return lo + samples[lo..].partition_point(&pred);
            }
            if !pred(&samples[probe]) {
                return lo + samples[lo..probe].partition_point(&pred);
            }
            lo = probe + 1;
            step *= 2;
        }
    }
    // The edge is at or before `h`.
    let mut hi = h;
    let mut step = 1;
    loop {
        if step > h {
            return samples[..hi].partition_point(&pred);
        }
        let probe = h - step;
        if pred(&samples[probe]) {
            return probe + 1 + samples[probe + 1..hi].partition_point(&pred);
        }
        hi = probe;
        step *= 2;
    }
}

fn intersect_sorted(a: &[usize], b: &[usize]) -> Vec<usize> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl Queryable for MemStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let maxt = self.visible_until.map_or(maxt, |v| maxt.min(v));
        let mut out = Vec::new();
        if maxt < mint {
            return Ok(out);
        }
        for i in self.matching(matchers) {
            let s = &self.series[i];
            let hints = self.hints.get(i);
            let hint =
                |k: usize| hints.map_or(s.samples.len(), |h| h[k].load(Ordering::Relaxed) as usize);
            let hi = partition_near(&s.samples, hint(1), |x| x.t <= maxt);
            let lo = partition_near(&s.samples[..hi], hint(0).min(hi), |x| x.t < mint);
            if let Some(h) = hints {
                h[0].store(u32::try_from(lo).unwrap_or(u32::MAX), Ordering::Relaxed);
                h[1].store(u32::try_from(hi).unwrap_or(u32::MAX), Ordering::Relaxed);
            }
            if lo >= hi {
                continue;
            }
            out.push(Series {
                labels: s.labels.clone(),
                samples: s.samples[lo..hi].to_vec(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_filters_by_matchers_and_window() {
        let mut st = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        for t in 0..10 {
            st.add(&a, t * 1000, t as f64);
            st.add(&b, t * 1000, -(t as f64));
        }
        let m = vec![
            Matcher::new(MatchOp::Equal, "__name__", "up"),
            Matcher::new(MatchOp::Equal, "job", "a"),
        ];
        let got = st.select(&m, 2000, 4000).expect("select");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels, a);
        assert_eq!(
            got[0].samples.iter().map(|s| s.t).collect::<Vec<_>>(),
            vec![2000, 3000, 4000]
        );
    }

    #[test]
    fn regex_negative_and_empty_matchers_follow_prometheus() {
        let mut st = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("zone", "eu")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "db")]);
        let c = Labels::from_pairs([("__name__", "down"), ("job", "api")]);
        for l in [&a, &b, &c] {
            st.add(l, 1000, 1.0);
        }
        let sel = |ms: Vec<Matcher>| -> Vec<String> {
            let mut v: Vec<String> = st
                .select(&ms, 0, 2000)
                .expect("select")
                .into_iter()
                .map(|s| s.labels.to_string())
                .collect();
            v.sort();
            v
        };
        let re = |op: fn(regex::Regex) -> MatchOp, name: &str, v: &str| {
            Matcher::new(
                op(regex::Regex::new(&format!("^(?:{v})$")).expect("regex")),
                name,
                v,
            )
        };
        // zone="" and zone!~".+" select series without the label.
        assert_eq!(
            sel(vec![
                Matcher::new(MatchOp::Equal, "__name__", "up"),
                Matcher::new(MatchOp::Equal, "zone", "")
            ]),
            vec![b.to_string()]
        );
        assert_eq!(
            sel(vec![
                re(MatchOp::NotRe, "zone", ".+"),
                Matcher::new(MatchOp::Equal, "job", "api")
            ]),
            vec![c.to_string()]
        );
        assert_eq!(sel(vec![re(MatchOp::Re, "job", "a.*|d.*")]).len(), 3);
        assert_eq!(
            sel(vec![Matcher::new(MatchOp::NotEqual, "job", "api")]),
            vec![b.to_string()]
        );
        assert!(sel(vec![Matcher::new(MatchOp::Equal, "job", "none")]).is_empty());
    }

    #[test]
    fn the_same_label_set_is_found_by_address_or_by_value() {
        let mut st = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "x"), ("i", "1")]);
        let a_copy = Labels::from_pairs([("__name__", "x"), ("i", "1")]);
        st.add(&a, 1000, 1.0);
        st.add(&a_copy, 2000, 2.0);
        st.add(&a, 3000, 3.0);
        assert_eq!(st.series_count(), 1);
        assert_eq!(st.sample_at(&a_copy, 3000), Some(3.0));
    }

    #[test]
    fn partition_near_agrees_with_partition_point_from_any_hint() {
        for n in 0..24usize {
            let samples: Vec<Sample> = (0..n)
                .map(|i| Sample {
                    t: i as i64 * 2,
                    v: 0.0,
                })
                .collect();
            for cut in -1..(2 * n as i64 + 2) {
                for hint in 0..n + 3 {
                    assert_eq!(
                        partition_near(&samples, hint, |x| x.t < cut),
                        samples.partition_point(|x| x.t < cut),
                        "n={n} cut={cut} hint={hint}"
                    );
                }
            }
        }
    }

    #[test]
    fn samples_after_the_visibility_bound_are_hidden() {
        let mut st = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "x")]);
        st.add_series(
            &a,
            (0..10)
                .map(|i| Sample {
                    t: i * 1000,
                    v: i as f64,
                })
                .collect(),
        );
        st.set_visible_until(Some(4500));
        let m = [Matcher::new(MatchOp::Equal, "__name__", "x")];
        let got = st.select(&m, 0, 100_000).expect("select");
        assert_eq!(got[0].samples.last().map(|s| s.t), Some(4000));
        assert!(st.select(&m, 5000, 6000).expect("select").is_empty());
        st.set_visible_until(None);
        assert_eq!(
            st.select(&m, 0, 100_000).expect("select")[0].samples.len(),
            10
        );
    }

    #[test]
    fn out_of_order_add_is_sorted_and_replaces() {
        let mut st = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "x")]);
        st.add(&a, 2000, 2.0);
        st.add(&a, 1000, 1.0);
        st.add(&a, 2000, 3.0);
        let s = &st.all_series()[0].samples;
        assert_eq!(
            s,
            &vec![Sample { t: 1000, v: 1.0 }, Sample { t: 2000, v: 3.0 }]
        );
    }
}
