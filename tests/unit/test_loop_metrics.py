"""The send path's lock-free histogram and counter are exposed exactly as prometheus_client's
Histogram and Counter."""

from __future__ import annotations

import re

import prometheus_client
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.metrics import _LATENCY_BUCKETS, LoopCounter, LoopHistogram


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text exposition, with each ``_created`` sample's time (when it was made) left out."""
    return [
        re.sub(r"(_created\{.*\}) \S+$", r"\1 T", line)
        for line in generate_latest(registry).decode().splitlines()
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["twilio", "ringcentral"]),
            st.floats(min_value=0, max_value=10) | st.sampled_from(_LATENCY_BUCKETS),
        ),
        max_size=40,
    )
)
def test_the_same_observations_read_the_same(observations: list[tuple[str, float]]) -> None:
    reference, ours = CollectorRegistry(), CollectorRegistry()
    library = Histogram(
        "stopgate_t_seconds", "doc", ("dialect",), buckets=_LATENCY_BUCKETS, registry=reference
    )
    loop = LoopHistogram(
        "stopgate_t_seconds", "doc", ("dialect",), buckets=_LATENCY_BUCKETS, registry=ours
    )
    for dialect, value in observations:
        library.labels(dialect).observe(value)
        loop.labels(dialect).observe(value)
    assert exposition(ours) == exposition(reference)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["twilio", "ringcentral"]),
            st.sampled_from(["allowed", "blocked", "refused"]),
            st.integers(min_value=0, max_value=3),
        ),
        max_size=40,
    )
)
def test_the_same_increments_count_the_same(increments: list[tuple[str, str, int]]) -> None:
    reference, ours = CollectorRegistry(), CollectorRegistry()
    library = Counter("stopgate_t", "doc", ("dialect", "decision"), registry=reference)
    loop = LoopCounter("stopgate_t", "doc", ("dialect", "decision"), registry=ours)
    for dialect, decision, amount in increments:
        library.labels(dialect, decision).inc(amount)
        loop.labels(dialect, decision).inc(amount)
    assert exposition(ours) == exposition(reference)
    created = [line for line in generate_latest(ours).decode().splitlines() if "_created{" in line]
    assert len(created) == len({(d, k) for d, k, _ in increments})


def test_a_counter_refuses_to_go_down() -> None:
    counter = LoopCounter("stopgate_t", "doc", ("dialect",), registry=CollectorRegistry())
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("twilio").inc(-1)


def test_created_samples_follow_prometheus_clients_switch() -> None:
    reference, ours = CollectorRegistry(), CollectorRegistry()
    Counter("stopgate_t", "doc", ("dialect",), registry=reference).labels("twilio").inc()
    LoopCounter("stopgate_t", "doc", ("dialect",), registry=ours).labels("twilio").inc()
    Histogram("stopgate_h", "doc", ("op",), buckets=(0.1, 1.0), registry=reference).labels(
        "get"
    ).observe(0.1)
    LoopHistogram("stopgate_h", "doc", ("op",), buckets=(0.1, 1.0), registry=ours).labels(
        "get"
    ).observe(0.1)
    assert exposition(ours) == exposition(reference)
    assert b"stopgate_h_created{" in generate_latest(ours)
    prometheus_client.disable_created_metrics()
    try:
        assert generate_latest(ours) == generate_latest(reference)
        assert b"_created" not in generate_latest(ours)
    finally:
        prometheus_client.enable_created_metrics()
    assert b"stopgate_t_created" in generate_latest(ours)
