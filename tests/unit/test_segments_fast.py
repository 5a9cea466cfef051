"""The division that counts a basic-GSM-7 text agrees with the segment walk."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from policy.segments import GSM7_BASIC, Encoding, count_segments, segment_total, split_segments

basic_text = st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC)), max_size=1200)


@settings(max_examples=600)
@given(basic_text)
@example("")
@example("a" * 160)
@example("a" * 161)
@example("a" * 306)
@example("a" * 307)
def test_a_basic_text_counts_as_its_walk(text: str) -> None:
    count = count_segments(text)
    assert count.encoding is Encoding.GSM7
    assert count.units == len(text)
    assert count.segments == len(split_segments(text))


@settings(max_examples=600)
@given(basic_text | st.text(max_size=400))
@example("a" * 161)
@example("é" * 71)
def test_the_segment_total_is_the_counts(text: str) -> None:
    assert segment_total(text) == count_segments(text).segments
