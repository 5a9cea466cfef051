"""Logging set-up: one JSON object per line (``serve``'s default) or plain text, with every
configured secret and every credential-looking value scrubbed before a line is written.

Fields of a JSON line: ``ts`` (UTC, ISO 8601, microseconds), ``level``, ``logger``, ``msg``, then
whatever the call passed in ``extra`` (the send path's ``request_id``, ``dialect``, ``from``,
``to``, ``decision``, ``reason``, ``segments``; a consent change's ``status``, ``source``, …),
and ``exc`` with the traceback of an exception.

Every configured secret and every credential-looking value (``Bearer``/``Basic`` credentials,
``Authorization`` header values, passwords in URLs) becomes ``********`` as the last step of
making a line: see :mod:`gateway.log_lines`, which makes the text of a JSON line. Nothing of
ours logs request headers; this is the net under that rule.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from gateway.config import LOG_LEVELS, Secret, Settings
from gateway.log_lines import (
    Scrubber,
    Timestamps,
    encode,
    fields_line,
    head,
    jsonable,
    register_direct,
)

LEVELS = LOG_LEVELS
FORMATS = ("json", "text")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold (to scrub from log output)."""
    found: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, Secret):
            found.append(value.reveal())
        elif isinstance(value, tuple | list):
            for item in value:
                visit(item)
        elif hasattr(value, "__dataclass_fields__"):
            for name in value.__dataclass_fields__:
                visit(getattr(value, name))

    for name in settings.__dataclass_fields__:
        visit(getattr(settings, name))
    return found


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line; see the module's docstring for the fields. The line's text is
    made by :mod:`gateway.log_lines`."""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__()
        self.scrub = scrubber or Scrubber()
        self.stamps = Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        line = head(self.stamps, record.created, record.levelname, record.name, record.getMessage())
        for key, value in _extras(record).items():
            line.setdefault(key, jsonable(value))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return self.scrub.json_text(encode(line))

    def fields_line(
        self,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any],
        members: str | None = None,
    ) -> str:
        """The line ``format`` makes of a record with these ``extra`` fields, built without one
        (see :func:`gateway.log_lines.fields_line`)."""
        return fields_line(self.scrub, self.stamps, level, logger, message, fields, members)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value …`` for people at a terminal."""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.scrub = scrubber or Scrubber()

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            pairs = " ".join(
                f"{k}={json.dumps(jsonable(v), ensure_ascii=False)}" for k, v in extras.items()
            )
            head, sep, tail = text.partition("\n")  # keep a traceback below the line
            text = f"{head} {pairs}{sep}{tail}"
        return self.scrub(text)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Stopgate's handler. Without a stream of its own it writes to whatever ``sys.stderr`` is
    at the time of each line (so a replaced or captured stderr is followed, never a closed
    one kept).

    Every line is written before the call that logged it returns: a send's decision line is
    in the log before its answer leaves (a batch per turn of the event loop was tried, and
    lost that order for a saving of a few per cent)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        super().emit(record)

    def write_line(self, line: str) -> None:
        """Write ``line``, formatted already, as ``emit`` writes a record's."""
        with self.lock:  # type: ignore[union-attr]
            if self._follow_stderr:
                self.stream = sys.stderr
            try:
                self.stream.write(line + self.terminator)
                self.stream.flush()
            except Exception:
                # Where the line cannot go it is dropped rather than the send failing.
                self.handleError(logging.makeLogRecord({"msg": "log write failed"}))


# Lines of the hot path skip the LogRecord when they go only to this handler with this format.
register_direct(_Handler, JsonFormatter)


def configure(
    *,
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> bool:
    """Install Stopgate's handler on the root logger (replacing one installed before), writing
    ``fmt`` lines at ``level`` to ``stream`` (stderr by default). Like ``logging.basicConfig``
    it leaves alone a process whose logging someone else configured (a host application, a
    test runner): then it does nothing and returns False."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {LEVELS}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    if len(ours) != len(root.handlers):
        return False
    scrubber = Scrubber(secrets)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter(scrubber) if fmt == "json" else TextFormatter(scrubber))
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return True


def configure_for(settings: Settings, *, default_format: str, stream: TextIO | None = None) -> None:
    """Logging as ``settings`` ask (``log_level``, ``log_format``; ``auto`` means
    ``default_format``), scrubbing every secret the settings hold."""
    fmt = default_format if settings.log_format == "auto" else settings.log_format
    configure(level=settings.log_level, fmt=fmt, secrets=settings_secrets(settings), stream=stream)
