"""Logging set-up: one JSON object per line (``serve``'s default) or plain text, with every
configured secret and every credential-looking value scrubbed before a line is written.

Fields of a JSON line: ``ts`` (UTC, ISO 8601, microseconds), ``level``, ``logger``, ``msg``, then
whatever the call passed in ``extra`` (the send path's ``request_id``, ``dialect``, ``from``,
``to``, ``decision``, ``reason``, ``segments``; a consent change's ``status``, ``source``, …),
and ``exc`` with the traceback of an exception.

Scrubbing is the last step of formatting, so it covers the message, its arguments, the extra
fields and tracebacks alike: the values of the configured secrets (auth tokens, client secret,
JWT, admin and subscriber secrets), ``Bearer``/``Basic`` credentials, ``Authorization`` header
values and passwords in URLs (a store URL ``postgresql://user:password@host/db``) become
``********``. Nothing of ours logs request headers; this is the net under that rule.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from gateway.config import LOG_LEVELS, Secret, Settings

MASK = "********"
LEVELS = LOG_LEVELS
FORMATS = ("json", "text")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

_CREDENTIAL_WORDS = (
    ("authorization",),
    ("bearer", "basic"),
    ("://",),
    ("x-twilio-signature", "verification-token", "validation-token", "x-stopgate-signature"),
)
"""For each of :data:`_CREDENTIAL_PATTERNS`, words one of which any match contains. On ASCII
text (where lower-casing is exactly what the patterns' IGNORECASE does) a pattern none of whose
words occur cannot match, so it is not run: most log lines contain none of them."""

_CREDENTIAL_PATTERNS = (
    # "Authorization: bearer xyz", "'Authorization': 'Basic xyz'", "authorization=xyz"
    re.compile(
        r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|basic|digest)\s+)?"
        r"[^\s'\",;}\\]+"
    ),
    re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # userinfo of a URL: scheme://user:password@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@'\"\\]*:)[^@\s/'\"\\]+(@)"),
    # X-Twilio-Signature / Verification-Token / Validation-Token header values
    re.compile(
        r"(?i)((?:x-twilio-signature|verification-token|validation-token|x-stopgate-signature)"
        r"['\"]?\s*[:=]\s*['\"]?)[^\s'\",;}\\]+"
    ),
)


class Scrubber:
    """Replaces secret values and credential-looking text with ``********``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole. Very short values
        # (a misconfiguration) would mask half of every line: they are still masked, but only
        # as whole words.
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._exact = [v for v in values if len(v) >= 6]
        # As they appear inside a JSON string (quotes, backslashes, control characters).
        self._escaped = [e for e in (json.dumps(v)[1:-1] for v in self._exact) if e]
        short = [re.escape(v) for v in values if len(v) < 6]
        self._short = re.compile(r"\b(?:" + "|".join(short) + r")\b") if short else None

    def json_text(self, serialised: str) -> str:
        """Scrub a serialised JSON document without touching its syntax: secrets are matched
        as they appear escaped, and no pattern replaces a quote or a backslash."""
        return self._scrub(serialised, self._escaped)

    def __call__(self, text: str) -> str:
        return self._scrub(text, self._exact)

    def _scrub(self, text: str, values: list[str]) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        if self._short is not None:
            text = self._short.sub(MASK, text)
        return _mask_credentials(text)


def _mask_credentials(text: str) -> str:
    lowered = text.lower() if text.isascii() else None
    for pattern, words in zip(_CREDENTIAL_PATTERNS, _CREDENTIAL_WORDS, strict=True):
        if lowered is None or any(word in lowered for word in words):
            text = pattern.sub(_masked, text)
            if lowered is not None:
                lowered = text.lower()
    return text


def _masked(match: re.Match[str]) -> str:
    """The match with its credential part replaced (group 1 before it, group 2 after it)."""
    return match.group(1) + MASK + (match.group(2) if match.lastindex == 2 else "")


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


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # the usual case, without isinstance's subclass walk
        return value
    if kind is list and all(type(v) in _PLAIN for v in value):
        return value
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line; see the module's docstring for the fields."""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__()
        self.scrub = scrubber or Scrubber()

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "ts": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            line.setdefault(key, _jsonable(value))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # One pass over the serialised line covers every field, nested values included.
        return self.scrub.json_text(json.dumps(line, ensure_ascii=False, separators=(",", ":")))


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
                f"{k}={json.dumps(_jsonable(v), ensure_ascii=False)}" for k, v in extras.items()
            )
            head, sep, tail = text.partition("\n")  # keep a traceback below the line
            text = f"{head} {pairs}{sep}{tail}"
        return self.scrub(text)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Stopgate's handler. Without a stream of its own it writes to whatever ``sys.stderr`` is
    at the time of each line (so a replaced or captured stderr is followed, never a closed
    one kept)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        super().emit(record)


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
