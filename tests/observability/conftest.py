"""Fixtures of the observability tests: recorded spans of this process (in-memory exporter)
and an OTLP/HTTP receiver for the spans of other processes (Ray workers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pocdojo.observability import tracing
from tests.observability.collector import Collector


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Every span this process records from now on (the uvicorn app, the gateway thread)."""
    exporter = InMemorySpanExporter()
    tracing.record_to(exporter)
    return exporter


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    span_exporter.clear()
    return span_exporter


@pytest.fixture(scope="session")
def otlp_collector() -> Iterator[Collector]:
    collector = Collector().start()
    yield collector
    collector.stop()
