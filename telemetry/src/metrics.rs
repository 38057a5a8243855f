//! Self metrics: the small API through which the collector and the agent
//! hand their existing counters to OpenTelemetry.
//!
//! Counters and gauges are observable instruments: the process keeps
//! counting in its own atomics as it does for `/metrics` and its log
//! lines, and the callback given here reads them when the periodic
//! reader collects (once per export interval, on the reader's thread).
//! Histograms are recorded where the event happens.
//!
//! Invariant: without `telemetry.otlp` every handle here is disabled:
//! registering stores nothing, callbacks are never called, recording does
//! nothing.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// The provider [`crate::init`] installed, when OTLP export is configured.
static GLOBAL: OnceLock<(SdkMeterProvider, &'static str)> = OnceLock::new();

pub(crate) fn set_global(provider: SdkMeterProvider, scope: &'static str) -> bool {
    GLOBAL.set((provider, scope)).is_ok()
}

/// Where instruments are registered; cheap to clone.
#[derive(Clone)]
pub struct SelfMetrics {
    meter: Option<Meter>,
}

impl fmt::Debug for SelfMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfMetrics")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl SelfMetrics {
    /// A handle that registers nothing.
    pub fn disabled() -> Self {
        SelfMetrics { meter: None }
    }

    /// The process's self metrics: exported when [`crate::init`] set up
    /// OTLP export, disabled otherwise (and in tests that start no
    /// telemetry).
    pub fn global() -> Self {
        SelfMetrics {
            meter: GLOBAL.get().map(|(p, scope)| p.meter(scope)),
        }
    }

    /// Instruments of `provider` under the instrumentation scope `scope`.
    pub fn from_provider(provider: &SdkMeterProvider, scope: &'static str) -> Self {
        SelfMetrics {
            meter: Some(provider.meter(scope)),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.meter.is_some()
    }

    /// A monotonic counter (an OTLP cumulative sum). `read` reports the
    /// current totals, one per attribute set, when the reader collects.
    /// Names follow `tocsin_<component>_<thing>_total`, as on `/metrics`.
    pub fn counter<F>(&self, name: impl Into<Cow<'static, str>>, description: &'static str, read: F)
    where
        F: Fn(&mut Observer<'_, u64>) + Send + Sync + 'static,
    {
        if let Some(meter) = &self.meter {
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |i| read(&mut Observer { inner: i }))
                .build();
        }
    }

    /// A gauge; `unit` is a UCUM unit such as `By` or `s`, or empty.
    pub fn gauge<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        description: &'static str,
        unit: &'static str,
        read: F,
    ) where
        F: Fn(&mut Observer<'_, f64>) + Send + Sync + 'static,
    {
        if let Some(meter) = &self.meter {
            let mut b = meter
                .f64_observable_gauge(name)
                .with_description(description);
            if !unit.is_empty() {
                b = b.with_unit(unit);
            }
            b.with_callback(move |i| read(&mut Observer { inner: i }))
                .build();
        }
    }

    /// A histogram with explicit bucket `boundaries` (upper bounds,
    /// ascending), recorded with [`Histogram::record`].
    pub fn histogram(
        &self,
        name: impl Into<Cow<'static, str>>,
        description: &'static str,
        unit: &'static str,
        boundaries: &[f64],
    ) -> Histogram {
        Histogram(self.meter.as_ref().map(|meter| {
            let mut b = meter
                .f64_histogram(name)
                .with_description(description)
                .with_boundaries(boundaries.to_vec());
            if !unit.is_empty() {
                b = b.with_unit(unit);
            }
            b.build()
        }))
    }
}

/// What a callback reports through.
pub struct Observer<'a, T> {
    inner: &'a dyn AsyncInstrument<T>,
}

impl<T> Observer<'_, T> {
    /// Reports `value` for the attribute set `attributes`.
    pub fn observe(&mut self, value: T, attributes: &[(&str, &str)]) {
        let attrs: Vec<KeyValue> = attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
            .collect();
        self.inner.observe(value, &attrs);
    }
}

/// A histogram; recording into a disabled one does nothing.
#[derive(Clone, Default)]
pub struct Histogram(Option<opentelemetry::metrics::Histogram<f64>>);

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Histogram").field(&self.0.is_some()).finish()
    }
}

impl Histogram {
    pub fn disabled() -> Self {
        Histogram(None)
    }

    pub fn record(&self, value: f64) {
        if let Some(h) = &self.0 {
            h.record(value, &[]);
        }
    }

    /// Records `value` for the attribute set `attributes`.
    pub fn record_with(&self, value: f64, attributes: &[(&'static str, &'static str)]) {
        if let Some(h) = &self.0 {
            let attrs: Vec<KeyValue> = attributes
                .iter()
                .map(|&(k, v)| KeyValue::new(k, v))
                .collect();
            h.record(value, &attrs);
        }
    }
}
