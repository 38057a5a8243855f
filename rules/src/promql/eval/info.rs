//! `info(v, {selector})` (experimental in Prometheus): enriches each series
//! of `v` with the data labels of the info series (`target_info` by
//! default) that share its identifying labels (`instance`, `job`).
//!
//! As Prometheus' `info.go`: series of `v` whose name the info-metric
//! name matchers accept are passed through; names marked for removal stay
//! marked; the info series are read at the time the first
//! selector of `v` reads (its `@` and offsets, and those of enclosing
//! subqueries); of two info series with the same identity the newer sample
//! wins, two at the same time are an error; a data label that would take
//! two values is an error; a series with no matching info series is
//! dropped when a data-label matcher does not accept the empty value.

use std::collections::{BTreeMap, HashMap};

use promql_parser::parser::{Expr, VectorSelector};

use super::{
    Ev, EvalError, SeriesBuilder, StepCursor, StepSeries, Val, eval_err, go_labels_string,
    offset_ms, unwrap_parens,
};
use crate::promql::storage::{MatchOp, Matcher};
use crate::promql::value::{Label, Labels, METRIC_NAME, Series, is_stale};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// The `__name__` matchers that pick info metrics: as given when one is
/// positive (`=`, `=~`); only negative ones are narrowed to `.+_info`; none
/// means `target_info`.
fn effective_name_matchers(given: Vec<Matcher>) -> Vec<Matcher> {
    if given
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Re(_)))
    {
        return given;
    }
    if given.is_empty() {
        return vec![Matcher::new(MatchOp::Equal, METRIC_NAME, TARGET_INFO)];
    }
    let mut out = Vec::with_capacity(given.len() + 1);
    if let Ok(re) = regex::Regex::new("^(?:.+_info)$") {
        let mut m = Matcher::new(MatchOp::Re(re), METRIC_NAME, "");
        m.value = ".+_info".to_string();
        out.push(m);
    }
    out.extend(given);
    out
}

/// Where the first selector of `info()`'s argument reads, relative to the
/// evaluation time.
#[derive(Debug, Clone, Copy, Default)]
struct ReadTime {
    at: Option<i64>,
    offset: i64,
}

impl Ev<'_, '_> {
    /// The first vector selector of `e` in Prometheus' inspection order,
    /// with the `@` and offsets that decide when it reads.
    fn first_selector_time(&self, e: &Expr, mut acc: ReadTime) -> Option<ReadTime> {
        match e {
            Expr::VectorSelector(vs) => Some(self.selector_time(vs, acc)),
            Expr::MatrixSelector(ms) => Some(self.selector_time(&ms.vs, acc)),
            Expr::Subquery(sq) => {
                let off = offset_ms(&sq.offset);
                match self.at_ms(&sq.at) {
                    // An `@` on a subquery resets what enclosing ones added.
                    Some(at) => {
                        acc = ReadTime {
                            at: Some(at),
                            offset: off,
                        }
                    }
                    None => acc.offset = acc.offset.saturating_add(off),
                }
                self.first_selector_time(&sq.expr, acc)
            }
            Expr::Paren(p) => self.first_selector_time(&p.expr, acc),
            Expr::Unary(u) => self.first_selector_time(&u.expr, acc),
            Expr::Binary(b) => self
                .first_selector_time(&b.lhs, acc)
                .or_else(|| self.first_selector_time(&b.rhs, acc)),
            Expr::Aggregate(a) => self.first_selector_time(&a.expr, acc).or_else(|| {
                a.param
                    .as_ref()
                    .and_then(|p| self.first_selector_time(p, acc))
            }),
            Expr::Call(c) => c
                .args
                .args
                .iter()
                .find_map(|a| self.first_selector_time(a, acc)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => None,
        }
    }

    fn selector_time(&self, vs: &VectorSelector, acc: ReadTime) -> ReadTime {
        let off = offset_ms(&vs.offset);
        match self.at_ms(&vs.at) {
            Some(at) => ReadTime {
                at: Some(at),
                offset: off,
            },
            None => ReadTime {
                at: acc.at,
                offset: acc.offset.saturating_add(off),
            },
        }
    }

    pub(super) fn eval_info(&self, args: &[&Expr]) -> Result<Val, EvalError> {
        let Some(base_expr) = args.first() else {
            return Err(eval_err("info() expects an instant vector"));
        };
        let Val::Vector(base) = self.eval(base_expr)? else {
            return Err(eval_err("info() expects an instant vector"));
        };
        // Data-label matchers by label name; the `__name__` ones choose the
        // info metrics.
        let mut data_matchers: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
        match args.get(1).map(|a| unwrap_parens(a)) {
            Some(Expr::VectorSelector(sel)) => {
                let mut ms = sel.matchers.matchers.clone();
                if let Some(n) = &sel.name {
                    ms.push(Matcher::new(MatchOp::Equal, METRIC_NAME, n));
                }
                for m in ms {
                    data_matchers.entry(m.name.clone()).or_default().push(m);
                }
            }
            Some(_) => return Err(eval_err("info() expects a label selector")),
            None => {}
        }
        let names = effective_name_matchers(data_matchers.remove(METRIC_NAME).unwrap_or_default());
        // Info series themselves are not enriched.
        let ignored: Vec<bool> = base
            .iter()
            .map(|s| names.iter().all(|m| m.is_match(s.labels.metric_name())))
            .collect();
        let read = self
            .first_selector_time(base_expr, ReadTime::default())
            .unwrap_or_default();
        let info = self.fetch_info_series(&base, &ignored, &names, &data_matchers, read)?;
        self.combine_with_info(&base, &ignored, &info, &data_matchers)
    }

    /// Reads the info series matching the identifying labels of `base`,
    /// each as a per-step series whose value is the timestamp of the info
    /// sample in use.
    fn fetch_info_series(
        &self,
        base: &[StepSeries],
        ignored: &[bool],
        names: &[Matcher],
        data_matchers: &BTreeMap<String, Vec<Matcher>>,
        read: ReadTime,
    ) -> Result<Vec<StepSeries>, EvalError> {
        let mut id_values: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (s, ign) in base.iter().zip(ignored) {
            if *ign {
                continue;
            }
            for l in IDENTIFYING {
                let v = s.labels.get(l);
                if !v.is_empty() {
                    let vals = id_values.entry(l).or_default();
                    if !vals.iter().any(|x| x == v) {
                        vals.push(v.to_string());
                    }
                }
            }
        }
        if id_values.is_empty() {
            return Ok(Vec::new());
        }
        let mut matchers: Vec<Matcher> = Vec::new();
        for (name, vals) in &id_values {
            let re: Vec<String> = vals.iter().map(|v| regex::escape(v)).collect();
            let anchored = format!("^(?:{})$", re.join("|"));
            let compiled = regex::Regex::new(&anchored)
                .map_err(|e| eval_err(format!("info(): identifying label regex: {e}")))?;
            let mut m = Matcher::new(MatchOp::Re(compiled), name, "");
            m.value = re.join("|");
            matchers.push(m);
        }
        matchers.extend(names.iter().cloned());
        for ms in data_matchers.values() {
            matchers.extend(ms.iter().cloned());
        }

        let steps = self.steps();
        if steps == 0 {
            return Ok(Vec::new());
        }
        let reft = |ts: i64| read.at.unwrap_or(ts).saturating_sub(read.offset);
        let (first, last) = (reft(self.r.start), reft(self.r.end));
        let lookback = self.ctx.lookback;
        let mut selected: Vec<Series> = self.ctx.store.select(
            &matchers,
            first.saturating_sub(lookback).saturating_add(1),
            last,
        )?;
        selected.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut out = Vec::new();
        for s in selected {
            let mut points = Vec::new();
            let mut j = 0usize;
            for i in 0..steps {
                let ts = self.r.ts(i);
                let r = reft(ts);
                while j < s.samples.len() && s.samples[j].t <= r {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let smp = s.samples[j - 1];
                if smp.t <= r.saturating_sub(lookback) || is_stale(smp.v) {
                    continue;
                }
                // The value carries the info sample's own timestamp: of
                // two info series with the same identity the newer wins.
                points.push(crate::promql::value::Sample {
                    t: ts,
                    v: smp.t as f64,
                });
            }
            if !points.is_empty() {
                self.ctx.charge(points.len())?;
                out.push(StepSeries {
                    labels: s.labels,
                    drop_name: false,
                    points,
                });
            }
        }
        Ok(out)
    }

    fn combine_with_info(
        &self,
        base: &[StepSeries],
        ignored: &[bool],
        info: &[StepSeries],
        data_matchers: &BTreeMap<String, Vec<Matcher>>,
    ) -> Result<Val, EvalError> {
        // Identity of a series for one info metric: the metric name plus
        // the identifying labels.
        let sig = |name: &str, labels: &Labels| -> Labels {
            let mut v: Vec<Label> = labels
                .iter()
                .filter(|l| IDENTIFYING.contains(&l.name.as_str()))
                .cloned()
                .collect();
            v.push(Label {
                name: METRIC_NAME.to_string(),
                value: name.to_string(),
            });
            Labels::from_vec(v)
        };
        let mut info_names: Vec<String> = info
            .iter()
            .map(|s| s.labels.metric_name().to_string())
            .collect();
        info_names.sort();
        info_names.dedup();
        let base_sigs: Vec<Vec<(String, Labels)>> = base
            .iter()
            .map(|s| {
                info_names
                    .iter()
                    .map(|n| (n.clone(), sig(n, &s.labels)))
                    .collect()
            })
            .collect();
        let info_sigs: Vec<Labels> = info
            .iter()
            .map(|s| sig(s.labels.metric_name(), &s.labels))
            .collect();
        let all_match_empty = data_matchers.values().flatten().all(|m| m.is_match(""));

        let mut base_cur = StepCursor::new(base);
        let mut info_cur = StepCursor::new(info);
        let mut builder = SeriesBuilder::new(self);
        for i in 0..self.steps() {
            let ts = self.r.ts(i);
            let b = base_cur.at(base, ts);
            let inf = info_cur.at(info, ts);
            if b.is_empty() {
                continue;
            }
            // The info sample in use per identity: the newest one.
            let mut by_sig: HashMap<&Labels, (usize, i64)> = HashMap::new();
            for &(idx, orig_t) in &inf {
                let orig_t = orig_t as i64;
                match by_sig.get(&info_sigs[idx]).copied() {
                    Some((prev, prev_t)) => {
                        if prev_t < orig_t {
                            by_sig.insert(&info_sigs[idx], (idx, orig_t));
                        } else if prev_t == orig_t {
                            return Err(eval_err(format!(
                                "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                                go_labels_string(&info[prev].labels),
                                prev_t,
                                go_labels_string(&info[idx].labels),
                                orig_t
                            )));
                        }
                    }
                    None => {
                        by_sig.insert(&info_sigs[idx], (idx, orig_t));
                    }
                }
            }
            for &(bi, v) in &b {
                let bs = &base[bi];
                if ignored[bi] {
                    builder.add(bs.labels.clone(), bs.drop_name, ts, v)?;
                    continue;
                }
                let mut added: BTreeMap<String, String> = BTreeMap::new();
                let mut seen = false;
                for (_, s) in &base_sigs[bi] {
                    let Some(&(ii, _)) = by_sig.get(s) else {
                        continue;
                    };
                    seen = true;
                    for l in info[ii].labels.iter() {
                        if l.name == METRIC_NAME {
                            continue;
                        }
                        if !data_matchers.is_empty() && !data_matchers.contains_key(&l.name) {
                            continue;
                        }
                        if let Some(prev) = added.get(&l.name)
                            && *prev != l.value
                        {
                            return Err(eval_err(format!("conflicting label: {}", l.name)));
                        }
                        if bs.labels.has(&l.name) {
                            continue;
                        }
                        added.insert(l.name.clone(), l.value.clone());
                    }
                }
                if !seen && !all_match_empty {
                    continue;
                }
                let mut labels: Vec<Label> = bs.labels.iter().cloned().collect();
                labels.extend(added.into_iter().map(|(name, value)| Label { name, value }));
                builder.add(Labels::from_vec(labels), bs.drop_name, ts, v)?;
            }
        }
        Ok(Val::Vector(builder.finish()))
    }
}
