"""OpenTelemetry setup and W3C ``traceparent`` helpers.

One SDK ``TracerProvider`` per process (`setup_tracing`, idempotent):

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: spans are batched to that OTLP/HTTP endpoint; the
  sampler is the SDK's default (parent-based, always on) or ``OTEL_TRACES_SAMPLER``.
- not set: nothing is exported and, unless ``OTEL_TRACES_SAMPLER`` says otherwise, nothing
  is recorded either (always-off sampler): spans still get ids, so ``traceparent`` flows
  through every hop and log lines carry trace ids, at the cost of an id per span.
- ``OTEL_SDK_DISABLED=true``: no provider at all (the no-op API).

Trace context crosses process boundaries as a ``traceparent`` string: HTTP headers
(`extract`), Ray actor/task call arguments and Redis stream fields (`current_traceparent`
on the sending side, `span_from` on the receiving side).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

TRACER_NAME = "pocdojo"
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


class SwitchableSampler(Sampler):
    """Delegates to a sampler that can be swapped at run time (tests turn recording on
    in a process whose provider was set up without an exporter)."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"Switchable{{{self.delegate.get_description()}}}"


def _env_sampler() -> Sampler | None:
    if not os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    sampler: Sampler = _get_from_env_or_default()
    return sampler


def tracing_enabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def setup_tracing(service: str) -> TracerProvider | None:
    """Install this process's tracer provider (first call wins; later calls return it)."""
    global _provider
    if _provider is not None or not tracing_enabled():
        return _provider
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    default = ParentBased(ALWAYS_ON) if endpoint else ALWAYS_OFF
    sampler = SwitchableSampler(_env_sampler() or default)
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or service,
            "service.namespace": "pocdojo",
        }
    )
    provider = TracerProvider(sampler=sampler, resource=resource)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def record_to(exporter: SpanExporter, *, batch: bool = False) -> TracerProvider:
    """Record every span from now on and hand it to ``exporter`` (tests: the in-memory
    exporter). Sets the provider up first if needed."""
    provider = setup_tracing("pocdojo") or TracerProvider()
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    if isinstance(provider.sampler, SwitchableSampler):
        provider.sampler.delegate = ParentBased(ALWAYS_ON)
    return provider


def flush_spans(timeout_s: float = 5.0) -> None:
    """Export the spans batched so far (a Ray task's worker may be killed or exit right after
    the task). Nothing to do, and next to no cost, when nothing is exported."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def recording() -> bool:
    """Whether spans are being recorded at all (so callers can skip building attributes)."""
    return (
        _provider is not None
        and isinstance(_provider.sampler, SwitchableSampler)
        and _provider.sampler.delegate is not ALWAYS_OFF
    )


@functools.cache
def tracer() -> trace.Tracer:
    """The platform's tracer. Cached: ``get_tracer`` builds a tracer (and reads span limits
    from the environment) on every call; before `setup_tracing` this is a proxy that
    follows the provider once it is set."""
    return trace.get_tracer(TRACER_NAME)


# --- propagation --------------------------------------------------------------------------


def extract(carrier: Mapping[str, str]) -> Context:
    """The context a ``traceparent`` (and ``tracestate``) in ``carrier`` describes."""
    return _PROPAGATOR.extract(carrier)


def context_from(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to send along with a call or message;
    None outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def span_from(
    traceparent: str | None,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
) -> Iterator[trace.Span]:
    """A span continuing the trace ``traceparent`` names (a new trace without one), current
    for the block: what the receiving side of an actor call or a stream message runs in."""
    with tracer().start_as_current_span(
        name, context=context_from(traceparent), kind=kind, attributes=attributes
    ) as span:
        yield span


def trace_id_hex(span: trace.Span | None = None) -> str | None:
    span_context = (span or trace.get_current_span()).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
