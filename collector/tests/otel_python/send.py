"""Sends metrics and logs to a Tocsin collector with the OpenTelemetry
Python SDK, once over OTLP/gRPC and once over OTLP/HTTP (protobuf), as an
instrumented application would: a MeterProvider with a
PeriodicExportingMetricReader flushed explicitly, a LoggerProvider with a
BatchLogRecordProcessor.

Each protocol gets its own metric names (`pysdk.<protocol>.…`) and its own
`service.instance.id` (`checkout-<protocol>-1`), so the caller can tell
which path delivered what. The gRPC pipeline uses cumulative temporality;
the HTTP one asks for delta counters and histograms, which the collector
must accumulate to the same totals. Both compress with gzip.

Measurements, in two collection rounds per protocol:
  counter        pysdk.<p>.transferred [By]      tx: 1000 then +24; rx: +5 in round 2
  up-down        pysdk.<p>.queue.depth [{item}]  +7 then -2
  gauge          pysdk.<p>.utilization [1]       0.5 then 0.75
  histogram      pysdk.<p>.request.duration [s]  bounds 0.1, 0.5, 1;
                 0.0625 and 0.25, then 0.375 and 2.0
Log records, one per severity number in SEVERITIES, body
"<p> <name>: ...".

Exits 0 only if every export the SDK made was acknowledged as a success.
"""

import argparse
import sys
import time

import grpc
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

# (severity number, severity text, body word)
SEVERITIES = [
    (SeverityNumber.TRACE, "TRACE", "trace"),
    (SeverityNumber.DEBUG, "DEBUG", "debug"),
    (SeverityNumber.INFO, "INFO", "info"),
    (SeverityNumber.INFO3, "NOTICE", "notice"),
    (SeverityNumber.WARN, "WARN", "warn"),
    (SeverityNumber.ERROR, "ERROR", "error"),
    (SeverityNumber.FATAL, "FATAL", "fatal"),
    (SeverityNumber.UNSPECIFIED, "", "unspecified"),
]

TIMEOUT_S = 10


def checked(exporter, what, results):
    """Wraps `exporter.export` to record what each export returned."""
    export = exporter.export

    def recording_export(batch, *args, **kwargs):
        result = export(batch, *args, **kwargs)
        results.append((what, result))
        return result

    exporter.export = recording_export
    return exporter


def resource(protocol):
    return Resource.create(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "service.instance.id": f"checkout-{protocol}-1",
            "service.version": "1.4.2",
            "host.name": "web-1",
            "deployment.environment.name": "staging",
        }
    )


def send(protocol, metric_exporter, log_exporter, results):
    reader = PeriodicExportingMetricReader(
        checked(metric_exporter, f"{protocol} metrics", results),
        # Only the explicit flushes below export.
        export_interval_millis=3_600_000,
    )
    meters = MeterProvider(resource=resource(protocol), metric_readers=[reader])
    meter = meters.get_meter("tocsin.test.checkout", "1.0")
    p = f"pysdk.{protocol}"
    transferred = meter.create_counter(f"{p}.transferred", unit="By")
    depth = meter.create_up_down_counter(f"{p}.queue.depth", unit="{item}")
    utilization = meter.create_gauge(f"{p}.utilization", unit="1")
    duration = meter.create_histogram(
        f"{p}.request.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=[0.1, 0.5, 1.0],
    )
    route = {"http.route": "/pay"}
    queue = {"queue": "payments"}

    transferred.add(1000, {"direction": "tx"})
    depth.add(7, queue)
    utilization.set(0.5)
    duration.record(0.0625, route)
    duration.record(0.25, route)
    if not meters.force_flush(timeout_millis=TIMEOUT_S * 1000):
        results.append((f"{protocol} metrics flush 1", "timed out"))

    transferred.add(24, {"direction": "tx"})
    transferred.add(5, {"direction": "rx"})
    depth.add(-2, queue)
    utilization.set(0.75)
    duration.record(0.375, route)
    duration.record(2.0, route)
    if not meters.force_flush(timeout_millis=TIMEOUT_S * 1000):
        results.append((f"{protocol} metrics flush 2", "timed out"))
    meters.shutdown()

    loggers = LoggerProvider(resource=resource(protocol))
    loggers.add_log_record_processor(
        BatchLogRecordProcessor(checked(log_exporter, f"{protocol} logs", results))
    )
    logger = loggers.get_logger("tocsin.test.checkout")
    for number, text, word in SEVERITIES:
        logger.emit(
            timestamp=time.time_ns(),
            severity_number=number,
            severity_text=text,
            body=f"{protocol} {word}: payment for order A-17 took 3 attempts",
            attributes={"order.id": "A-17", "attempts": 3},
        )
    if not loggers.force_flush(timeout_millis=TIMEOUT_S * 1000):
        results.append((f"{protocol} logs flush", "timed out"))
    loggers.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grpc", required=True, help="OTLP/gRPC endpoint, http://HOST:PORT")
    ap.add_argument("--http", required=True, help="OTLP/HTTP base URL, http://HOST:PORT")
    args = ap.parse_args()
    results = []

    send(
        "grpc",
        GrpcMetricExporter(
            endpoint=args.grpc,
            insecure=True,
            timeout=TIMEOUT_S,
            compression=grpc.Compression.Gzip,
        ),
        GrpcLogExporter(
            endpoint=args.grpc,
            insecure=True,
            timeout=TIMEOUT_S,
            compression=grpc.Compression.Gzip,
        ),
        results,
    )
    send(
        "http",
        HttpMetricExporter(
            endpoint=f"{args.http}/v1/metrics",
            timeout=TIMEOUT_S,
            compression=HttpCompression.Gzip,
            preferred_temporality={
                Counter: AggregationTemporality.DELTA,
                Histogram: AggregationTemporality.DELTA,
            },
        ),
        HttpLogExporter(
            endpoint=f"{args.http}/v1/logs",
            timeout=TIMEOUT_S,
            compression=HttpCompression.Gzip,
        ),
        results,
    )

    ok = (MetricExportResult.SUCCESS, LogRecordExportResult.SUCCESS)
    failed = [(what, r) for what, r in results if r not in ok]
    for what, r in results:
        print(f"export {what}: {r}")
    kinds = {what for what, _ in results}
    missing = [
        k
        for k in ("grpc metrics", "grpc logs", "http metrics", "http logs")
        if k not in kinds
    ]
    if failed or missing:
        print(f"failed exports: {failed}; never exported: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
