//! OTLP export of the process's own metrics and traces: the exporters
//! (tonic for gRPC, reqwest for HTTP), a periodic metric reader and a
//! batch span processor, both with the process's resource.
//!
//! Invariants: the spans waiting for export are bounded
//! (`max_queued_spans`); beyond it spans are dropped, counted in
//! `tocsin_telemetry_spans_dropped_total` and logged (see [`crate::spans`]). Every export request is
//! bounded by `timeout`. The SDK runs its reader and processor on threads
//! of its own; the network I/O of both transports runs on the Tokio
//! runtime that was current at [`build`], which must therefore keep
//! running until the providers are shut down.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};

use crate::config::{OtlpSettings, Protocol};
use crate::spans::{BoundedProcessor, CountingExporter, QUEUE_SLACK, SpanCounts};
use crate::{SelfMetrics, Service, TelemetryError};

/// Spans per export request, at most.
const MAX_EXPORT_BATCH: usize = 512;
/// How long a finished span may wait for a batch to fill.
const SPAN_DELAY: Duration = Duration::from_secs(5);

/// The providers built from `telemetry.otlp`.
pub(crate) struct Providers {
    pub meter: SdkMeterProvider,
    pub tracer: Option<SdkTracerProvider>,
}

/// The resource every exported metric and span carries.
pub(crate) fn resource(service: &Service) -> Resource {
    Resource::builder()
        .with_service_name(service.name)
        .with_attributes([
            KeyValue::new("service.version", service.version),
            KeyValue::new("host.name", service.host_name.clone()),
        ])
        .build()
}

/// Builds the exporters and providers; must run inside a Tokio runtime.
pub(crate) fn build(o: &OtlpSettings, service: &Service) -> Result<Providers, TelemetryError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    let fail = |message: String| TelemetryError::Exporter {
        endpoint: o.endpoint.clone(),
        message,
    };
    let (metrics, spans) = match o.protocol {
        Protocol::Grpc => grpc::exporters(o, &runtime).map_err(fail)?,
        Protocol::Http => http::exporters(o, &runtime).map_err(fail)?,
    };
    let resource = resource(service);
    let reader = PeriodicReader::builder(metrics)
        .with_interval(o.interval)
        .build();
    let meter = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(reader)
        .build();
    let tracer = o.traces.then(|| {
        let counts = SpanCounts::new(o.max_queued_spans);
        counts.register(&SelfMetrics::from_provider(&meter, "tocsin-telemetry"));
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(o.max_queued_spans + QUEUE_SLACK)
            .with_max_export_batch_size(MAX_EXPORT_BATCH.min(o.max_queued_spans))
            .with_scheduled_delay(SPAN_DELAY)
            .build();
        let exporter = CountingExporter {
            inner: spans,
            counts: counts.clone(),
        };
        let processor = BoundedProcessor {
            inner: BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build(),
            counts,
        };
        SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                o.sample_ratio,
            ))))
            .with_resource(resource)
            .with_span_processor(processor)
            .build()
    });
    Ok(Providers { meter, tracer })
}

/// Header name and value pairs, `authorization` from the token included.
fn headers(o: &OtlpSettings) -> Vec<(String, String)> {
    let mut h = o.headers.clone();
    if let Some(token) = &o.token {
        h.push(("authorization".into(), format!("Bearer {token}")));
    }
    h
}

#[cfg(feature = "grpc")]
mod grpc {
    use opentelemetry_otlp::WithTonicConfig as _;
    use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    use super::*;

    pub(super) fn exporters(
        o: &OtlpSettings,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(MetricExporter, SpanExporter), String> {
        let mut endpoint = Endpoint::from_shared(o.endpoint.clone())
            .map_err(|e| e.to_string())?
            .connect_timeout(o.timeout)
            .timeout(o.timeout);
        if o.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &o.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
        }
        // The channel's connection task runs on the runtime; the SDK's
        // threads only hand it requests.
        let channel = {
            let _entered = runtime.enter();
            endpoint.connect_lazy()
        };
        let mut metadata = MetadataMap::new();
        for (name, value) in headers(o) {
            let key = MetadataKey::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name}: {e}"))?;
            let mut value: MetadataValue<_> = value
                .parse()
                .map_err(|_| format!("header {name}: the value is not valid metadata"))?;
            if name == "authorization" {
                value.set_sensitive(true);
            }
            metadata.insert(key, value);
        }
        let metrics = MetricExporter::builder()
            .with_tonic()
            .with_channel(channel.clone())
            .with_metadata(metadata.clone())
            .with_timeout(o.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let spans = SpanExporter::builder()
            .with_tonic()
            .with_channel(channel)
            .with_metadata(metadata)
            .with_timeout(o.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok((metrics, spans))
    }
}

#[cfg(not(feature = "grpc"))]
mod grpc {
    use super::*;

    pub(super) fn exporters(
        _: &OtlpSettings,
        _: &tokio::runtime::Handle,
    ) -> Result<(MetricExporter, SpanExporter), String> {
        Err("this build cannot export over gRPC; use protocol: http".into())
    }
}

#[cfg(feature = "http")]
mod http {
    use std::collections::HashMap;
    use std::sync::Arc;

    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::WithHttpConfig as _;

    use super::*;

    /// reqwest's async client needs the Tokio reactor, and the SDK calls
    /// exporters from threads of its own: each request is spawned on the
    /// runtime and awaited from there.
    #[derive(Debug)]
    struct OnRuntime {
        client: reqwest::Client,
        runtime: tokio::runtime::Handle,
    }

    #[async_trait::async_trait]
    impl HttpClient for OnRuntime {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = self.client.clone();
            self.runtime
                .spawn(async move { client.send_bytes(request).await })
                .await?
        }
    }

    pub(super) fn exporters(
        o: &OtlpSettings,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(MetricExporter, SpanExporter), String> {
        // reqwest is built without a default crypto provider; Tocsin uses
        // ring everywhere. Installing fails only when one is installed
        // already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A redirect would turn the POST into a GET elsewhere.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(o.timeout)
            .connect_timeout(o.timeout);
        if let Some(ca) = &o.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(ca)
                .map_err(|e| format!("tls.ca_file: {e}"))?;
            builder = builder.tls_certs_only(certs);
        }
        let client: Arc<dyn HttpClient> = Arc::new(OnRuntime {
            client: builder.build().map_err(|e| e.to_string())?,
            runtime: runtime.clone(),
        });
        let headers: HashMap<String, String> = headers(o).into_iter().collect();
        let metrics = MetricExporter::builder()
            .with_http()
            .with_shared_http_client(client.clone())
            .with_endpoint(format!("{}/v1/metrics", o.endpoint))
            .with_headers(headers.clone())
            .with_timeout(o.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let spans = SpanExporter::builder()
            .with_http()
            .with_shared_http_client(client)
            .with_endpoint(format!("{}/v1/traces", o.endpoint))
            .with_headers(headers)
            .with_timeout(o.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok((metrics, spans))
    }
}

#[cfg(not(feature = "http"))]
mod http {
    use super::*;

    pub(super) fn exporters(
        _: &OtlpSettings,
        _: &tokio::runtime::Handle,
    ) -> Result<(MetricExporter, SpanExporter), String> {
        Err("this build cannot export over HTTP; use protocol: grpc".into())
    }
}
