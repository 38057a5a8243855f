//! The per-agent series limit: how many distinct series one sender (a
//! token's name, or its address when no tokens are configured) may have
//! created, so that one misbehaving agent with an unbounded label cannot
//! exhaust the store for everyone.
//!
//! Invariants: at most `max_agents` senders and `per_agent` series per
//! sender are tracked (a series is a 64-bit hash of its label set); a
//! series not seen for `idle_ms` stops counting, so a long-running agent
//! whose series churn slowly is not locked out; a sample of a series
//! beyond the limit is refused and counted, samples of known series
//! always pass.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use crate::translate::metrics::Sample;

#[derive(Debug, Default)]
struct AgentSeries {
    /// Series hash → last time seen (ms).
    series: HashMap<u64, i64>,
    last_purge_ms: i64,
    touched_ms: i64,
}

/// Tracks each sender's series.
#[derive(Debug)]
pub struct SeriesLimiter {
    per_agent: usize,
    max_agents: usize,
    idle_ms: i64,
    agents: Mutex<HashMap<String, AgentSeries>>,
}

/// How often, at most, a full sender's idle series are looked for.
const PURGE_INTERVAL_MS: i64 = 60_000;

fn series_hash(s: &Sample) -> u64 {
    let mut h = DefaultHasher::new();
    s.0.hash(&mut h);
    h.finish()
}

impl SeriesLimiter {
    pub fn new(per_agent: usize, max_agents: usize, idle_ms: i64) -> Self {
        SeriesLimiter {
            per_agent,
            max_agents: max_agents.max(1),
            idle_ms,
            agents: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the samples `agent` may write; returns them and the number
    /// refused.
    pub fn admit(&self, agent: &str, samples: Vec<Sample>, now_ms: i64) -> (Vec<Sample>, usize) {
        // Hash outside the lock: it is most of the work.
        let hashes: Vec<u64> = samples.iter().map(series_hash).collect();
        let mut agents = match self.agents.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !agents.contains_key(agent) && agents.len() >= self.max_agents {
            let oldest = agents
                .iter()
                .min_by_key(|(_, a)| a.touched_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                tracing::warn!(agent = %k, max_agents = self.max_agents, "series limit table full; forgot the sender heard from least recently");
                agents.remove(&k);
            }
        }
        let a = agents.entry(agent.to_string()).or_default();
        a.touched_ms = now_ms;
        let mut refused = 0;
        let mut kept = Vec::with_capacity(samples.len());
        for (s, h) in samples.into_iter().zip(hashes) {
            if let Some(seen) = a.series.get_mut(&h) {
                *seen = now_ms;
                kept.push(s);
                continue;
            }
            if a.series.len() >= self.per_agent
                && now_ms.saturating_sub(a.last_purge_ms) >= PURGE_INTERVAL_MS
            {
                let cutoff = now_ms.saturating_sub(self.idle_ms);
                a.series.retain(|_, seen| *seen >= cutoff);
                a.last_purge_ms = now_ms;
            }
            if a.series.len() >= self.per_agent {
                refused += 1;
                continue;
            }
            a.series.insert(h, now_ms);
            kept.push(s);
        }
        if refused > 0 {
            tracing::warn!(
                agent,
                refused,
                limit = self.per_agent,
                "samples refused: the sender is at its series limit"
            );
        }
        (kept, refused)
    }

    /// Series currently counted for `agent`.
    pub fn series_of(&self, agent: &str) -> usize {
        self.agents
            .lock()
            .map_or(0, |g| g.get(agent).map_or(0, |a| a.series.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_rules::promql::value::Labels;

    fn s(name: &str, t: i64) -> Sample {
        (Labels::from_pairs([("__name__", name)]), t, 1.0)
    }

    #[test]
    fn known_series_pass_new_ones_beyond_the_limit_do_not() {
        let l = SeriesLimiter::new(2, 10, 3_600_000);
        let (kept, refused) = l.admit("a", vec![s("x", 1), s("y", 1), s("z", 1), s("x", 2)], 0);
        assert_eq!(kept.len(), 3);
        assert_eq!(refused, 1);
        // Another sender has its own budget.
        assert_eq!(l.admit("b", vec![s("z", 1)], 0).1, 0);
        assert_eq!(l.series_of("a"), 2);
    }

    #[test]
    fn idle_series_stop_counting() {
        let l = SeriesLimiter::new(1, 10, 1_000);
        assert_eq!(l.admit("a", vec![s("x", 1)], 0).1, 0);
        assert_eq!(l.admit("a", vec![s("y", 1)], 500).1, 1);
        // x unseen for longer than idle_ms and the purge interval passed.
        assert_eq!(
            l.admit("a", vec![s("y", 1)], PURGE_INTERVAL_MS + 2_000).1,
            0
        );
        assert_eq!(l.series_of("a"), 1);
    }
}
