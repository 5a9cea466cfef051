"""The send path's lock-free histogram is exposed exactly as prometheus_client's Histogram."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway.metrics import _LATENCY_BUCKETS, LoopHistogram


def exposition(registry: CollectorRegistry) -> list[str]:
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
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
