//! Where the ruler hands its alerts: the in-process equivalent of
//! Prometheus sending to Alertmanager. After each evaluation a group hands
//! over the alerts that need sending (newly firing, still firing after the
//! resend delay, or just resolved), as Prometheus' `sendAlerts` selects
//! them; the incident manager consumes them.
//!
//! The hand-over never blocks an evaluation: [`ChannelSink`] is a bounded
//! queue that drops the batch when full and counts it (a dropped firing
//! alert is sent again after the resend delay; a dropped resolution is
//! not, which is why the consumer must keep up and the drop is logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tocsin_rules::promql::Labels;
use tokio::sync::mpsc;

/// One alert as handed to the incident manager (Alertmanager's alert
/// model). Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingAlert {
    /// The alert's labels, external labels added under them.
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    /// When the alert started firing.
    pub starts_at_ms: i64,
    /// When it resolved, or until when this notification is valid if it
    /// is still firing (four times the larger of interval and resend
    /// delay, so a stopped ruler's alerts resolve by themselves).
    pub ends_at_ms: i64,
    /// True when the alert is resolved.
    pub resolved: bool,
    /// A link to the alert's expression on the API's query page.
    pub generator_url: String,
    /// The rule file and group that raised it.
    pub file: String,
    pub group: String,
}

/// The receiver of the alerts each evaluation produces.
pub trait AlertSink: Send + Sync + 'static {
    /// Takes one group evaluation's alerts; must not block.
    fn send(&self, alerts: Vec<OutgoingAlert>);

    /// Alerts this sink could not take, since start (a self metric).
    fn dropped_alerts(&self) -> u64;
}

/// A bounded queue of alert batches.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: mpsc::Sender<Vec<OutgoingAlert>>,
    dropped: Arc<AtomicU64>,
    dropped_batches: Arc<AtomicU64>,
}

impl ChannelSink {
    /// A sink holding at most `capacity` batches, and its receiving end.
    pub fn new(capacity: usize) -> (ChannelSink, mpsc::Receiver<Vec<OutgoingAlert>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            ChannelSink {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
                dropped_batches: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Alerts dropped because the queue was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AlertSink for ChannelSink {
    fn dropped_alerts(&self) -> u64 {
        self.dropped()
    }

    fn send(&self, alerts: Vec<OutgoingAlert>) {
        if alerts.is_empty() {
            return;
        }
        let n = alerts.len();
        if let Err(e) = self.tx.try_send(alerts) {
            let before = self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            let batches = self.dropped_batches.fetch_add(1, Ordering::Relaxed);
            // The first drop and every hundredth after: a consumer that
            // stays away must not flood the log.
            if batches.is_multiple_of(100) {
                let reason = match e {
                    mpsc::error::TrySendError::Full(_) => "queue full",
                    mpsc::error::TrySendError::Closed(_) => "no consumer",
                };
                tracing::warn!(
                    dropped = n,
                    dropped_total = before + n as u64,
                    reason,
                    "alerts dropped before the incident manager"
                );
            }
        }
    }
}

/// The generator URL Prometheus gives an alert: the query page with the
/// expression (Prometheus' `strutil.TableLinkForExpression`).
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("g0.expr", expr)
        .append_pair("g0.tab", "1")
        .finish();
    format!("{external_url}/graph?{q}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str) -> OutgoingAlert {
        OutgoingAlert {
            labels: Labels::from_pairs([("alertname", name)]),
            annotations: Vec::new(),
            starts_at_ms: 0,
            ends_at_ms: 1,
            resolved: false,
            generator_url: String::new(),
            file: "f".into(),
            group: "g".into(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (sink, mut rx) = ChannelSink::new(1);
        sink.send(vec![alert("A")]);
        sink.send(vec![alert("B"), alert("C")]);
        sink.send(Vec::new());
        assert_eq!(sink.dropped(), 2);
        let got = rx.try_recv().unwrap();
        assert_eq!(got[0].labels.get("alertname"), "A");
        assert!(rx.try_recv().is_err());
        drop(rx);
        sink.send(vec![alert("D")]);
        assert_eq!(sink.dropped(), 3);
    }

    #[test]
    fn generator_urls_point_at_the_query_page() {
        assert_eq!(
            generator_url("http://t:9466", "up == 0"),
            "http://t:9466/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        );
    }
}
