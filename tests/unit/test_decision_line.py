"""The send decision line's template writes exactly what the JSON encoder writes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.log_lines import encode
from gateway.sending import _decision_members

TEXT = st.text(max_size=24)
COUNT = st.integers(min_value=0, max_value=10**6)


@st.composite
def decision_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event": "send",
        "request_id": draw(TEXT),
        "dialect": draw(st.sampled_from(["twilio", "ringcentral"])),
        "from": draw(st.none() | TEXT),
        "to": draw(st.lists(TEXT, max_size=4)),
        "recipients": draw(COUNT),
        "decision": draw(TEXT),
        "reason": draw(TEXT),
        "segments": draw(st.none() | COUNT),
        "status": draw(st.none() | st.integers(min_value=100, max_value=599)),
    }
    if draw(st.booleans()):
        fields["segments_before"] = draw(COUNT)
    if draw(st.booleans()):
        fields["blocked"] = draw(
            st.lists(
                st.tuples(TEXT, TEXT).map(lambda pair: {"to": pair[0], "reason": pair[1]}),
                min_size=1,
                max_size=3,
            )
        )
    if draw(st.booleans()):
        fields["upstream_status"] = draw(st.integers(min_value=100, max_value=599))
    return fields


@settings(max_examples=400, deadline=None)
@given(decision_fields())
def test_the_template_is_the_encoders_text(fields: dict[str, Any]) -> None:
    assert _decision_members(fields) == encode(fields)[1:-1]
