#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::net::{IpAddr, Ipv4Addr};

use super::*;

const SEC: i64 = 1000;

fn agent(id: &str, host: &str, interval_ms: i64) -> AgentResource {
    AgentResource {
        id: id.into(),
        version: "0.1.0".into(),
        interval_ms: Some(interval_ms),
        interval_error: None,
        host_name: host.into(),
        service_name: "host".into(),
    }
}

fn report(reg: &AgentRegistry, a: &AgentResource, at: i64) {
    reg.observe(&[AgentReport {
        agent: a,
        address: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
        received_ms: at,
        clock_skew_seconds: Some(0.5),
    }]);
}

/// `tocsin_agent_up` per agent id.
fn up(reg: &AgentRegistry, now: i64) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = reg
        .series(now)
        .into_iter()
        .filter(|(l, _)| l.metric_name() == "tocsin_agent_up")
        .map(|(l, v)| (l.get("tocsin_agent_id").to_string(), v))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn counter(reg: &AgentRegistry, name: &str) -> f64 {
    reg.series(0)
        .into_iter()
        .find(|(l, _)| l.metric_name() == name)
        .map(|(_, v)| v)
        .unwrap()
}

#[test]
fn up_within_three_intervals_then_down_then_up_again() {
    let reg = AgentRegistry::default();
    let a = agent("a", "web-1", 10 * SEC);
    report(&reg, &a, 100 * SEC);
    assert_eq!(up(&reg, 100 * SEC), [("a".to_string(), 1.0)]);
    assert_eq!(up(&reg, 130 * SEC), [("a".to_string(), 1.0)]);
    assert_eq!(up(&reg, 130 * SEC + 1), [("a".to_string(), 0.0)]);
    // A longer declared interval widens the window.
    let slow = agent("a", "web-1", 60 * SEC);
    report(&reg, &slow, 200 * SEC);
    assert_eq!(up(&reg, 379 * SEC), [("a".to_string(), 1.0)]);
    assert_eq!(up(&reg, 381 * SEC), [("a".to_string(), 0.0)]);
    report(&reg, &slow, 400 * SEC);
    assert_eq!(up(&reg, 400 * SEC), [("a".to_string(), 1.0)]);

    let series = reg.series(400 * SEC);
    let (l, v) = series
        .iter()
        .find(|(l, _)| l.metric_name() == "tocsin_agent_up")
        .unwrap();
    assert_eq!(*v, 1.0);
    assert_eq!(
        l.to_string(),
        r#"tocsin_agent_up{host_name="web-1", tocsin_agent_id="a"}"#
    );
    // Skew only while up.
    let skew = |now| {
        reg.series(now)
            .into_iter()
            .filter(|(l, _)| l.metric_name() == "tocsin_agent_clock_skew_seconds")
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
    };
    assert_eq!(skew(400 * SEC), [0.5]);
    assert!(skew(600 * SEC).is_empty());

    let view = &reg.list(400 * SEC)[0];
    assert_eq!(view.address.as_deref(), Some("10.0.0.7"));
    assert_eq!(view.first_seen_ms, 100 * SEC);
    assert_eq!(view.last_seen_ms, 400 * SEC);
    assert_eq!(view.interval_ms, 60 * SEC);
    assert!(view.up);
}

#[test]
fn a_late_request_does_not_move_last_seen_back() {
    let reg = AgentRegistry::default();
    let a = agent("a", "web-1", 10 * SEC);
    report(&reg, &a, 100 * SEC);
    report(&reg, &a, 90 * SEC);
    assert_eq!(reg.list(100 * SEC)[0].last_seen_ms, 100 * SEC);
}

#[test]
fn list_is_sorted_by_host_then_id_and_keeps_known_fields() {
    let reg = AgentRegistry::default();
    for (id, host) in [("z", "a-host"), ("b", "b-host"), ("a", "b-host")] {
        report(&reg, &agent(id, host, 10 * SEC), SEC);
    }
    // A resource without host or version (a log input's, say) does not
    // blank what is known.
    let mut bare = agent("b", "", 10 * SEC);
    bare.version = String::new();
    report(&reg, &bare, 2 * SEC);
    let got: Vec<(String, String, String)> = reg
        .list(2 * SEC)
        .into_iter()
        .map(|a| (a.host_name, a.id, a.version))
        .collect();
    assert_eq!(
        got,
        [
            ("a-host".into(), "z".into(), "0.1.0".into()),
            ("b-host".into(), "a".into(), "0.1.0".into()),
            ("b-host".into(), "b".into(), "0.1.0".into()),
        ]
    );
}

#[test]
fn expiry_forgets_after_seven_days_and_marks_the_series_stale() {
    let reg = AgentRegistry::default();
    report(&reg, &agent("old", "h1", 10 * SEC), 0);
    report(&reg, &agent("new", "h2", 10 * SEC), 2 * 24 * 3600 * SEC);
    assert_eq!(reg.maintain(EXPIRE_AFTER_MS).unwrap().expired, 0);
    let r = reg.maintain(EXPIRE_AFTER_MS + 1).unwrap();
    assert_eq!(r.expired, 1);
    assert_eq!(up(&reg, EXPIRE_AFTER_MS + 1), [("new".to_string(), 0.0)]);
    assert_eq!(counter(&reg, "tocsin_agents_expired_total"), 1.0);
    let stale: Vec<String> = reg.take_retired().iter().map(|l| l.to_string()).collect();
    assert_eq!(
        stale,
        [
            r#"tocsin_agent_clock_skew_seconds{host_name="h1", tocsin_agent_id="old"}"#,
            r#"tocsin_agent_up{host_name="h1", tocsin_agent_id="old"}"#,
        ]
    );
    assert!(reg.take_retired().is_empty());
}

#[test]
fn forget_removes_one_agent() {
    let reg = AgentRegistry::default();
    report(&reg, &agent("a", "h", 10 * SEC), 0);
    report(&reg, &agent("b", "h", 10 * SEC), 0);
    assert!(reg.forget("a").unwrap());
    assert!(!reg.forget("a").unwrap());
    assert_eq!(up(&reg, 0), [("b".to_string(), 1.0)]);
    assert_eq!(counter(&reg, "tocsin_agents_forgotten_total"), 1.0);
    assert_eq!(reg.take_retired().len(), 2);
    // It comes back as new with its next report.
    report(&reg, &agent("a", "h", 10 * SEC), 50 * SEC);
    assert_eq!(reg.list(50 * SEC)[0].first_seen_ms, 50 * SEC);
}

#[test]
fn a_forgotten_agent_that_returns_before_the_write_gets_no_stale_marker() {
    let reg = AgentRegistry::default();
    report(&reg, &agent("a", "h", 10 * SEC), 0);
    assert!(reg.forget("a").unwrap());
    report(&reg, &agent("a", "h", 10 * SEC), SEC);
    assert!(reg.take_retired().is_empty());
}

#[test]
fn a_new_host_name_ends_the_old_series() {
    let reg = AgentRegistry::default();
    report(&reg, &agent("a", "old-name", 10 * SEC), 0);
    report(&reg, &agent("a", "new-name", 10 * SEC), SEC);
    let stale = reg.take_retired();
    assert_eq!(stale.len(), 2);
    assert!(stale.iter().all(|l| l.get("host_name") == "old-name"));
    let series = reg.series(SEC);
    assert!(
        series
            .iter()
            .filter(|(l, _)| l.has("tocsin_agent_id"))
            .all(|(l, _)| l.get("host_name") == "new-name")
    );
}

#[test]
fn the_inventory_is_bounded_and_evicts_the_least_recently_seen() {
    let reg = AgentRegistry::new(AgentRegistryOptions {
        max_agents: 2,
        ..AgentRegistryOptions::default()
    });
    report(&reg, &agent("a", "h", 10 * SEC), 3 * SEC);
    report(&reg, &agent("b", "h", 10 * SEC), SEC);
    report(&reg, &agent("c", "h", 10 * SEC), 2 * SEC);
    let ids: Vec<String> = reg.list(3 * SEC).into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(counter(&reg, "tocsin_agents_evicted_total"), 1.0);
    assert_eq!(counter(&reg, "tocsin_agents_known"), 2.0);
    assert!(
        reg.take_retired()
            .iter()
            .all(|l| l.get("tocsin_agent_id") == "b")
    );
}

#[test]
fn overlong_ids_are_refused_and_invalid_intervals_counted() {
    let reg = AgentRegistry::default();
    report(&reg, &agent(&"x".repeat(MAX_FIELD_BYTES + 1), "h", SEC), 0);
    assert!(reg.is_empty());
    assert_eq!(counter(&reg, "tocsin_agents_refused_total"), 1.0);
    let mut a = agent("a", &"h".repeat(MAX_FIELD_BYTES + 10), 10 * SEC);
    a.interval_ms = None;
    a.interval_error = Some("tocsin.agent.interval = \"soon\" is not valid".into());
    report(&reg, &a, 0);
    report(&reg, &a, 1);
    assert_eq!(counter(&reg, "tocsin_agents_invalid_interval_total"), 2.0);
    let v = &reg.list(0)[0];
    assert_eq!(v.host_name.len(), MAX_FIELD_BYTES);
    assert_eq!(v.interval_ms, DEFAULT_AGENT_INTERVAL_MS);
}

#[test]
fn persistence_round_trip_known_agents_are_down_until_they_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sqlite");
    let opts = AgentRegistryOptions::default();
    {
        let (reg, restored) = AgentRegistry::open(&path, opts).unwrap();
        assert_eq!(restored, RestoreReport::default());
        report(&reg, &agent("a", "web-1", 10 * SEC), 100 * SEC);
        // A new agent is written at once: no maintain() before the "crash".
    }
    {
        let (reg, restored) = AgentRegistry::open(&path, opts).unwrap();
        assert_eq!(restored.restored, 1);
        // Within its interval, but not reported since this start: down.
        assert_eq!(up(&reg, 101 * SEC), [("a".to_string(), 0.0)]);
        let v = &reg.list(101 * SEC)[0];
        assert_eq!(
            (v.host_name.as_str(), v.version.as_str(), v.first_seen_ms),
            ("web-1", "0.1.0", 100 * SEC)
        );
        assert_eq!(v.address.as_deref(), Some("10.0.0.7"));
        assert_eq!(v.clock_skew_seconds, Some(0.5));
        // Later reports are batched: written by maintain().
        let mut newer = agent("a", "web-1", 20 * SEC);
        newer.version = "0.2.0".into();
        report(&reg, &newer, 200 * SEC);
        assert_eq!(up(&reg, 200 * SEC), [("a".to_string(), 1.0)]);
        report(&reg, &agent("b", "web-2", 10 * SEC), 200 * SEC);
        let r = reg.maintain(200 * SEC).unwrap();
        assert_eq!((r.written, r.expired), (1, 0));
        assert!(reg.forget("b").unwrap());
    }
    let (reg, _) = AgentRegistry::open(&path, opts).unwrap();
    let got = reg.list(200 * SEC);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].version, "0.2.0");
    assert_eq!(got[0].interval_ms, 20 * SEC);
    assert_eq!(got[0].last_seen_ms, 200 * SEC);
    assert!(!got[0].up);
    // Expiry deletes the row too.
    assert_eq!(
        reg.maintain(200 * SEC + EXPIRE_AFTER_MS + 1)
            .unwrap()
            .deleted,
        1
    );
    drop(reg);
    let (reg, _) = AgentRegistry::open(&path, opts).unwrap();
    assert!(reg.is_empty());
}

#[test]
fn a_lowered_cap_evicts_the_least_recently_seen_stored_agents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sqlite");
    {
        let (reg, _) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            report(&reg, &agent(id, "h", 10 * SEC), i as i64 * SEC);
        }
    }
    let small = AgentRegistryOptions {
        max_agents: 2,
        ..AgentRegistryOptions::default()
    };
    let (reg, restored) = AgentRegistry::open(&path, small).unwrap();
    assert_eq!((restored.restored, restored.evicted), (2, 1));
    let ids: Vec<String> = reg.list(0).into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["b", "c"]);
    assert_eq!(reg.maintain(3 * SEC).unwrap().deleted, 1);
    drop(reg);
    let (reg, _) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
    assert_eq!(reg.len(), 2);
}

#[test]
fn eviction_deletes_the_row_with_the_new_agents_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sqlite");
    let small = AgentRegistryOptions {
        max_agents: 1,
        ..AgentRegistryOptions::default()
    };
    {
        let (reg, _) = AgentRegistry::open(&path, small).unwrap();
        report(&reg, &agent("a", "h", 10 * SEC), 0);
        report(&reg, &agent("b", "h", 10 * SEC), SEC);
    }
    let (reg, restored) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
    assert_eq!(restored.restored, 1);
    assert_eq!(reg.list(0)[0].id, "b");
}

/// The (last seen, id) index holds exactly the agents in the table.
fn assert_index_consistent(reg: &AgentRegistry) {
    let inner = reg.lock();
    let want: BTreeSet<(i64, String)> = inner
        .agents
        .values()
        .map(|e| (e.stored.last_seen_ms, e.stored.id.clone()))
        .collect();
    assert_eq!(inner.by_seen, want);
}

#[test]
fn eviction_follows_the_last_seen_index_through_updates_forget_and_expiry() {
    let reg = AgentRegistry::new(AgentRegistryOptions {
        max_agents: 3,
        ..AgentRegistryOptions::default()
    });
    report(&reg, &agent("a", "h", 10 * SEC), SEC);
    report(&reg, &agent("b", "h", 10 * SEC), 2 * SEC);
    report(&reg, &agent("c", "h", 10 * SEC), 3 * SEC);
    assert_index_consistent(&reg);
    // "a" reports again: "b" is now the least recently seen.
    report(&reg, &agent("a", "h", 10 * SEC), 4 * SEC);
    // A late request does not move it back.
    report(&reg, &agent("a", "h", 10 * SEC), 0);
    // A new host name keeps it indexed once.
    report(&reg, &agent("c", "h2", 10 * SEC), 5 * SEC);
    assert_index_consistent(&reg);
    report(&reg, &agent("d", "h", 10 * SEC), 6 * SEC);
    let ids = |reg: &AgentRegistry| -> Vec<String> {
        let mut v: Vec<String> = reg.list(0).into_iter().map(|a| a.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&reg), ["a", "c", "d"]);
    assert_index_consistent(&reg);
    // Forgetting one frees a place: no eviction for the next.
    assert!(reg.forget("a").unwrap());
    assert_index_consistent(&reg);
    report(&reg, &agent("e", "h", 10 * SEC), 7 * SEC);
    assert_eq!(ids(&reg), ["c", "d", "e"]);
    assert_eq!(counter(&reg, "tocsin_agents_evicted_total"), 1.0);
    // Same last seen: the smaller id goes first.
    report(&reg, &agent("f", "h", 10 * SEC), 7 * SEC);
    assert_eq!(ids(&reg), ["d", "e", "f"]);
    report(&reg, &agent("g", "h", 10 * SEC), 7 * SEC);
    assert_eq!(ids(&reg), ["e", "f", "g"]);
    assert_eq!(counter(&reg, "tocsin_agents_evicted_total"), 3.0);
    assert_index_consistent(&reg);
    // Expiry takes the oldest from the index, and only those.
    report(&reg, &agent("e", "h", 10 * SEC), 9 * SEC);
    let r = reg.maintain(8 * SEC + EXPIRE_AFTER_MS).unwrap();
    assert_eq!(r.expired, 2);
    assert_eq!(ids(&reg), ["e"]);
    assert_index_consistent(&reg);
}

#[test]
fn refused_ids_are_all_counted_but_logged_once_a_minute() {
    let reg = AgentRegistry::default();
    let long = "x".repeat(MAX_FIELD_BYTES + 1);
    // The first is logged at once, the next ones only counted.
    assert!(reg.refuse(long.len(), 0));
    for i in 1..100 {
        assert!(!reg.refuse(long.len(), i * SEC / 10));
    }
    assert_eq!(reg.lock_refused_log().pending, 99);
    // A minute after the last line, the next refusal logs the count.
    assert!(reg.refuse(long.len() + 5, REFUSED_LOG_EVERY_MS));
    assert_eq!(reg.lock_refused_log().pending, 0);
    // Through observe(), counted the same way.
    report(&reg, &agent(&long, "h", SEC), REFUSED_LOG_EVERY_MS + 1);
    assert_eq!(reg.lock_refused_log().pending, 1);
    assert_eq!(counter(&reg, "tocsin_agents_refused_total"), 102.0);
    // When refusals stop, maintain() says the rest once the minute is up.
    reg.maintain(REFUSED_LOG_EVERY_MS + 2).unwrap();
    assert_eq!(reg.lock_refused_log().pending, 1);
    reg.maintain(2 * REFUSED_LOG_EVERY_MS).unwrap();
    assert_eq!(reg.lock_refused_log().pending, 0);
    assert!(reg.is_empty());
}

#[test]
fn an_agent_going_down_ends_its_skew_series_with_a_staleness_marker() {
    let reg = AgentRegistry::default();
    let a = agent("a", "h", 10 * SEC);
    report(&reg, &a, 0);
    let has_skew = |now| {
        reg.series(now)
            .iter()
            .any(|(l, _)| l.metric_name() == "tocsin_agent_clock_skew_seconds")
    };
    assert!(has_skew(10 * SEC));
    assert!(reg.take_retired().is_empty());
    // Down: no value, a staleness marker once; up stays written as 0.
    assert!(!has_skew(31 * SEC));
    let stale: Vec<String> = reg.take_retired().iter().map(|l| l.to_string()).collect();
    assert_eq!(
        stale,
        [r#"tocsin_agent_clock_skew_seconds{host_name="h", tocsin_agent_id="a"}"#]
    );
    assert_eq!(up(&reg, 40 * SEC), [("a".to_string(), 0.0)]);
    assert!(reg.take_retired().is_empty());
    // Up again, then down again: another marker.
    report(&reg, &a, 50 * SEC);
    assert!(has_skew(50 * SEC));
    assert!(reg.take_retired().is_empty());
    assert!(!has_skew(90 * SEC));
    assert_eq!(reg.take_retired().len(), 1);
    // Back up before the marker is written: no marker for a live series.
    report(&reg, &a, 100 * SEC);
    assert!(!has_skew(131 * SEC));
    assert!(has_skew(100 * SEC));
    assert!(reg.take_retired().is_empty());
    // An agent loaded from the database never had a skew value written by
    // this process: no marker for it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sqlite");
    {
        let (before, _) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
        report(&before, &a, 0);
    }
    let (reg, _) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
    assert_eq!(reg.len(), 1);
    reg.series(SEC);
    assert!(reg.take_retired().is_empty());
}

#[test]
fn unreadable_stored_rows_are_skipped_counted_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sqlite");
    {
        let (reg, _) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
        report(&reg, &agent("a", "h", 10 * SEC), SEC);
        report(&reg, &agent("b", "h", 10 * SEC), 2 * SEC);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE agent SET last_seen_ms = 'yesterday' WHERE id = 'a'",
        [],
    )
    .unwrap();
    drop(conn);
    let (reg, restored) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
    assert_eq!((restored.restored, restored.skipped), (1, 1));
    assert_eq!(reg.list(0)[0].id, "b");
    assert_eq!(counter(&reg, "tocsin_agents_db_rows_skipped_total"), 1.0);
    // The agent reporting again replaces its row.
    report(&reg, &agent("a", "h", 10 * SEC), 3 * SEC);
    drop(reg);
    let (reg, restored) = AgentRegistry::open(&path, AgentRegistryOptions::default()).unwrap();
    assert_eq!((restored.restored, restored.skipped), (2, 0));
    assert_eq!(reg.len(), 2);
}
