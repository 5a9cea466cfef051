"""The hot path's JSON lines are the same text the general formatter writes."""

from __future__ import annotations

import datetime
import io
import json
import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.log_lines import ENCODER, Scrubber, Timestamps, encode, log_fields
from gateway.logs import JsonFormatter, _Handler

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_the_encoder_built_once_writes_what_the_encoder_writes(value: Any) -> None:
    assert encode(value) == ENCODER.encode(value)


_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
FIELD_NAMES = st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(
    lambda name: name not in _RECORD_ATTRIBUTES
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6))
def test_a_fields_line_equals_the_formatted_record(fields: dict[str, Any]) -> None:
    formatter = JsonFormatter(Scrubber(["s3cr3t-value"]))
    record = logging.LogRecord(
        "stopgate.send", logging.INFO, __file__, 1, "send decided", None, None
    )
    record.__dict__.update(fields)
    from_record = json.loads(formatter.format(record))
    line = json.loads(formatter.fields_line("INFO", "stopgate.send", "send decided", fields))
    assert from_record.pop("ts") and line.pop("ts")
    assert line == from_record
    assert list(line) == list(from_record)


def test_a_credential_named_field_of_any_type_is_masked_and_the_line_stays_json() -> None:
    """Found by the property above: ``{"AUTHORIZATION": 0}`` was masked bare (no JSON)."""
    formatter = JsonFormatter(Scrubber(["s3cr3t-value"]))
    fields = {"a": {"AUTHORIZATION": 0, "Proxy-Authorization": None}, "b": "x s3cr3t-value"}
    line = json.loads(formatter.fields_line("INFO", "stopgate.test", "m", fields))
    assert line["a"] == {"AUTHORIZATION": "********", "Proxy-Authorization": "********"}
    assert line["b"] == "x ********"


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_timestamps_are_iso_8601_utc_to_the_microsecond(created: float) -> None:
    # The second's text is cached, the microseconds padded without a format spec: the result is
    # what datetime writes for the same instant (microseconds truncated, as the cache takes them).
    seconds = int(created)
    micros = min(int((created - seconds) * 1_000_000), 999_999)
    expected = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(microsecond=micros)
    stamps = Timestamps()
    assert stamps.text(created) == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert stamps.text(created) == stamps.text(created)  # and from the cache alike


def _own_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger that does not propagate, with Stopgate's handler and JSON format on a buffer
    (the root logger belongs to pytest here)."""
    stream = io.StringIO()
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter(Scrubber(["s3cr3t-value"])))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    for line in lines:
        assert line.pop("ts")
    return lines


def test_log_fields_writes_the_line_logging_writes_and_yields_to_a_filter_or_another_handler() -> (
    None
):
    fields = {"event": "send", "to": ["+16505550111"], "note": "with s3cr3t-value", "n": 1}
    logger, stream = _own_logger("stopgate.test.fast")
    log_fields(logger, logging.INFO, "send decided", fields)  # the direct path
    logger.info("send decided", extra=fields)  # logging's own
    direct, logged = _lines(stream)
    assert direct == logged
    assert list(direct) == list(logged)
    assert direct["note"] == "with ********"
    log_fields(logger, logging.DEBUG, "below the level", fields)
    assert _lines(stream) == [direct, logged]

    # A filter anywhere on the way is honoured: the line goes through logging.
    logger.addFilter(lambda record: record.getMessage() != "dropped")
    log_fields(logger, logging.INFO, "dropped", fields)
    log_fields(logger, logging.INFO, "kept", fields)
    assert [line["msg"] for line in _lines(stream)] == ["send decided"] * 2 + ["kept"]
    logger.filters.clear()

    # So is another handler: both get the line.
    other = io.StringIO()
    logger.addHandler(logging.StreamHandler(other))
    log_fields(logger, logging.INFO, "to both", fields)
    assert _lines(stream)[-1]["msg"] == "to both"
    assert other.getvalue() == "to both\n"
