//! Per-agent clock skew: how far an agent's timestamps run ahead of (or
//! behind) the collector's clock, for `tocsin_agent_clock_skew_seconds` and
//! the agent inventory.
//!
//! Each request gives one observation: its newest timestamp minus its
//! arrival time. Transport delay and spooled replays only ever make an
//! observation more negative, so the estimate is the largest of the last
//! [`WINDOW`] observations — the least-delayed one. Invariant: the table
//! holds at most `max_agents` agents; a new agent beyond that evicts the
//! one heard from least recently (counted).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Observations kept per agent.
pub const WINDOW: usize = 8;

#[derive(Debug, Clone)]
struct Entry {
    recent: [i64; WINDOW],
    len: usize,
    next: usize,
    updated_ms: i64,
}

/// One agent's skew as the liveness code reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSkew {
    pub agent_id: String,
    /// Positive: the agent's clock is ahead.
    pub skew_seconds: f64,
    /// When the last observation arrived (ms).
    pub updated_ms: i64,
}

/// The skew table shared by all receivers.
#[derive(Debug)]
pub struct ClockSkew {
    max_agents: usize,
    agents: Mutex<HashMap<String, Entry>>,
    evicted: AtomicU64,
}

impl ClockSkew {
    pub fn new(max_agents: usize) -> Self {
        ClockSkew {
            max_agents: max_agents.max(1),
            agents: Mutex::new(HashMap::new()),
            evicted: AtomicU64::new(0),
        }
    }

    /// Records that a request from `agent_id` whose newest timestamp is
    /// `newest_ms` arrived at `received_ms`.
    pub fn observe(&self, agent_id: &str, newest_ms: i64, received_ms: i64) {
        let obs = newest_ms.saturating_sub(received_ms);
        let mut agents = match self.agents.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !agents.contains_key(agent_id) && agents.len() >= self.max_agents {
            let oldest = agents
                .iter()
                .min_by_key(|(_, e)| e.updated_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                agents.remove(&k);
                self.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent = %k, max_agents = self.max_agents, "clock skew table full; forgot the agent heard from least recently");
            }
        }
        let e = agents.entry(agent_id.to_string()).or_insert(Entry {
            recent: [0; WINDOW],
            len: 0,
            next: 0,
            updated_ms: received_ms,
        });
        e.recent[e.next] = obs;
        e.next = (e.next + 1) % WINDOW;
        e.len = (e.len + 1).min(WINDOW);
        e.updated_ms = received_ms;
    }

    /// The current estimate for one agent.
    pub fn get(&self, agent_id: &str) -> Option<AgentSkew> {
        let agents = match self.agents.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        agents.get(agent_id).map(|e| skew_of(agent_id, e))
    }

    /// Every agent's estimate, sorted by agent id.
    pub fn snapshot(&self) -> Vec<AgentSkew> {
        let agents = match self.agents.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut v: Vec<AgentSkew> = agents.iter().map(|(k, e)| skew_of(k, e)).collect();
        v.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        v
    }

    /// Agents forgotten because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

fn skew_of(agent_id: &str, e: &Entry) -> AgentSkew {
    let best = e.recent[..e.len].iter().copied().max().unwrap_or(0);
    AgentSkew {
        agent_id: agent_id.to_string(),
        skew_seconds: best as f64 / 1000.0,
        updated_ms: e.updated_ms,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn the_least_delayed_recent_observation_wins() {
        let s = ClockSkew::new(10);
        s.observe("a", 10_000 - 250, 10_000);
        // A spooled replay: old timestamps, not a slow clock.
        s.observe("a", 5_000, 20_000);
        assert_eq!(s.get("a").unwrap().skew_seconds, -0.25);
        for i in 0..WINDOW as i64 {
            s.observe("a", 30_000 + i * 1000 + 2_000, 30_000 + i * 1000);
        }
        let got = s.get("a").unwrap();
        assert_eq!(got.skew_seconds, 2.0);
        assert_eq!(got.updated_ms, 30_000 + (WINDOW as i64 - 1) * 1000);
        assert!(s.get("b").is_none());
    }

    #[test]
    fn table_is_bounded() {
        let s = ClockSkew::new(2);
        s.observe("a", 0, 1);
        s.observe("b", 0, 2);
        s.observe("c", 0, 3);
        let ids: Vec<String> = s.snapshot().into_iter().map(|x| x.agent_id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(s.evicted(), 1);
    }
}
