//! The storage interface the evaluator reads through ([`Queryable`]) and an
//! in-memory implementation ([`MemStorage`]) used by the rule unit-test
//! runner, the PromQL conformance tests and anyone who needs a small store.
//!
//! Invariant: `select` returns each matching series once, with its samples
//! (staleness markers included) in strictly increasing time order, limited
//! to the requested inclusive window.

use std::collections::{BTreeMap, HashMap};

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

/// A simple in-memory series store with a metric-name index.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    series: Vec<Series>,
    by_labels: HashMap<Labels, usize>,
    by_name: BTreeMap<String, Vec<usize>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample; a sample at an existing timestamp replaces it.
    pub fn add(&mut self, labels: &Labels, t: i64, v: f64) {
        let idx = match self.by_labels.get(labels) {
            Some(&i) => i,
            None => {
                let i = self.series.len();
                self.series.push(Series {
                    labels: labels.clone(),
                    samples: Vec::new(),
                });
                self.by_labels.insert(labels.clone(), i);
                self.by_name
                    .entry(labels.metric_name().to_string())
                    .or_default()
                    .push(i);
                i
            }
        };
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
        let s = self.series.get(*self.by_labels.get(labels)?)?;
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

    fn candidates<'a>(&'a self, matchers: &[Matcher]) -> Box<dyn Iterator<Item = usize> + 'a> {
        let name_eq = matchers
            .iter()
            .find(|m| m.name == super::value::METRIC_NAME && matches!(m.op, MatchOp::Equal));
        match name_eq {
            Some(m) => Box::new(
                self.by_name
                    .get(&m.value)
                    .into_iter()
                    .flat_map(|v| v.iter().copied()),
            ),
            None => Box::new(0..self.series.len()),
        }
    }
}

impl Queryable for MemStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let mut out = Vec::new();
        for i in self.candidates(matchers) {
            let s = &self.series[i];
            if !matchers.iter().all(|m| matches(m, &s.labels)) {
                continue;
            }
            let lo = s.samples.partition_point(|x| x.t < mint);
            let hi = s.samples.partition_point(|x| x.t <= maxt);
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
