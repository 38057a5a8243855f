//! What the collector's benchmarks share: settings from the environment,
//! the calling thread's CPU time and a deterministic random number
//! generator. Each benchmark includes
//! this module with `mod common;` and uses part of it.

#![allow(dead_code, reason = "each benchmark uses part of this module")]

/// The whole number in environment variable `name`, or `default` when it
/// is unset; anything else stops the benchmark with a message naming it.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number"))
        })
        .unwrap_or(default)
}

/// CPU time the calling thread has used so far, in seconds, from
/// `/proc/thread-self/schedstat` (Linux, nanosecond resolution: the tick
/// counts of `/proc/.../stat` are 10 ms, too coarse for rounds of a tenth
/// of a second); `None` where the platform does not tell it.
pub fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// xorshift64*: deterministic, fast, good enough for synthetic values; a
/// fixed seed gives the same data every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
