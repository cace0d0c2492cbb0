"""OpenTelemetry traces: gRPC server spans, exported by OTLP when configured, and the trace
context carried through the Redis stream so a fan-out delivery links to the send."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)
tracer = trace.get_tracer("chat_service")

_enabled = False


def enabled() -> bool:
    return _enabled


def setup(service_name: str, pod: str, processor: SpanProcessor | None = None) -> bool:
    """Install a tracer provider when OTEL_EXPORTER_OTLP_ENDPOINT is set (or a processor is
    given, as tests do) and instrument the grpc.aio server. Returns whether tracing is on."""
    global _enabled
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if processor is None and not endpoint:
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, "service.instance.id": pod})
    )
    if processor is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer

    GrpcAioInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    _enabled = True
    log.info("tracing on (OTLP endpoint %s)", endpoint or "custom processor")
    return True


def current_traceparent() -> str:
    """The W3C traceparent of the current span, '' when not tracing."""
    if not _enabled:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def record_delivery(traceparent: str, group_id: int) -> None:
    """A span on the receiving pod, linked to the span that published the event."""
    if not _enabled or not traceparent:
        return
    carrier: Mapping[str, str] = {"traceparent": traceparent}
    parent = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    with tracer.start_as_current_span(
        "chat.fanout.receive",
        links=[trace.Link(parent)],
        attributes={"chat.group_id": group_id},
    ):
        pass


class TraceIdFilter(logging.Filter):
    """Adds trace_id/span_id of the current span to log records (for JSON logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        return True
