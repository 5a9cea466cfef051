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
import time
from collections.abc import Callable, Iterable
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


_CREDENTIAL_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-twilio-signature",
        "verification-token",
        "validation-token",
        "x-stopgate-signature",
    }
)
"""Field names whose whole value is a credential, whatever its type."""

_ANY_CREDENTIAL_WORD = ("authorization", "bearer", "basic", "://", "signature", "token")
"""Each word of :data:`_CREDENTIAL_WORDS` contains one of these (a unit test holds it)."""

_PATTERN_WORDS = tuple(zip(_CREDENTIAL_PATTERNS, _CREDENTIAL_WORDS, strict=True))


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
        as they appear escaped, and no pattern replaces a quote or a backslash.

        One case the text alone cannot get right: a field named like a credential
        (``"Authorization": 42``) whose value is not a string would be masked bare, which is no
        JSON. Whenever a mask made the text unreadable, the document is scrubbed value by value
        instead (rare: only lines with a credential's key word get this far)."""
        scrubbed = self._scrub(serialised, self._escaped)
        if scrubbed == serialised:
            return scrubbed
        try:
            json.loads(scrubbed)
        except ValueError:
            return _encode(self._document(json.loads(serialised)))
        return scrubbed

    def _document(self, value: Any, key: str = "") -> Any:
        if key.lower() in _CREDENTIAL_FIELDS:
            return MASK
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self._document(item) for item in value]
        if isinstance(value, dict):
            return {self(k): self._document(item, k) for k, item in value.items()}
        return value

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
    if lowered is not None:
        # The usual line has none of the key words: one short pass says so.
        for word in _ANY_CREDENTIAL_WORD:
            if word in lowered:
                break
        else:
            return text
    for pattern, words in _PATTERN_WORDS:
        if lowered is not None:
            for word in words:
                if word in lowered:
                    break
            else:
                continue
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


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Made once: ``json.dumps`` with these options builds an encoder for every line."""


def _one_encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode``, with the C encoder built once rather than per call when the
    interpreter has one (the same text either way: the options are the same)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    iterencode = make(
        None,  # no circularity check: log fields are plain values
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return json.encoder.encode_basestring(value)
        return "".join(iterencode(value, 0))

    return encode


_encode = _one_encoder()
_HEAD_KEYS = frozenset({"ts", "level", "logger", "msg"})
_HEAD_TAILS: dict[tuple[str, str, str], str] = {}
"""``"level":…,"logger":…,"msg":…`` encoded, per (level, logger, message) of hot-path lines."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line; see the module's docstring for the fields."""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__()
        self.scrub = scrubber or Scrubber()

    def format(self, record: logging.LogRecord) -> str:
        line = self._head(record.created, record.levelname, record.name, record.getMessage())
        for key, value in _extras(record).items():
            line.setdefault(key, _jsonable(value))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return self.serialise(line)

    def fields_line(
        self,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any],
        members: str | None = None,
    ) -> str:
        """The line ``format`` makes of a record with these ``extra`` fields, built without one
        (``fields`` must hold JSON values: str, int, float, bool, None, lists and dicts of them).
        ``members``, when given, is ``fields`` already encoded by the caller (the members of
        the JSON object, without braces: what ``_encode(fields)[1:-1]`` gives)."""
        if not fields or _HEAD_KEYS.intersection(fields):
            line = self._head(time.time(), level, logger, message)
            for key, value in fields.items():
                line.setdefault(key, value)
            return self.serialise(line)
        # The usual case, spliced from parts: the head's fixed part is encoded once per
        # (level, logger, message), the fields in one call, and the result is the same text.
        head = _HEAD_TAILS.get((level, logger, message))
        if head is None:
            head = _ENCODER.encode({"level": level, "logger": logger, "msg": message})[1:-1]
            if len(_HEAD_TAILS) < 1024:
                _HEAD_TAILS[(level, logger, message)] = head
        if members is None:
            members = _encode(fields)[1:-1]
        text = f'{{"ts":"{self._timestamp(time.time())}",{head},{members}}}'
        return self.scrub.json_text(text)

    def serialise(self, line: dict[str, Any]) -> str:
        # One pass over the serialised line covers every field, nested values included.
        return self.scrub.json_text(_encode(line))

    _second: tuple[int, str] = (-1, "")

    def _head(self, created: float, level: str, logger: str, message: str) -> dict[str, Any]:
        return {"ts": self._timestamp(created), "level": level, "logger": logger, "msg": message}

    def _timestamp(self, created: float) -> str:
        # The date and time to the second are formatted once a second (datetime's isoformat
        # per line cost more than the rest of a send's line).
        seconds = int(created)
        second, prefix = self._second
        if seconds != second:
            at = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
            prefix = at.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (seconds, prefix)
        micros = min(int((created - seconds) * 1_000_000), 999_999)
        return f"{prefix}.{micros:06d}Z"


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


def log_fields(
    logger: logging.Logger,
    level: int,
    message: str,
    fields: dict[str, Any],
    members: str | None = None,
) -> None:
    """``logger.log(level, message, extra=fields)``, for the lines of the hot path (a send's
    decision): when the line would go only to Stopgate's own JSON handler, it is formatted and
    queued directly, without a ``LogRecord`` (the same line, at a fraction of the cost);
    otherwise, e.g. with another handler or a filter anywhere on the way, it is logged as usual.
    ``fields`` must hold JSON values only; ``members`` as in :meth:`JsonFormatter.fields_line`."""
    if not logger.isEnabledFor(level):
        return
    handler = _direct_handler(logger)
    if handler is None or not isinstance(handler.formatter, JsonFormatter):
        logger.log(level, message, extra=fields)
        return
    if level < handler.level:
        return
    handler.write_line(
        handler.formatter.fields_line(
            logging.getLevelName(level), logger.name, message, fields, members
        )
    )


def _direct_handler(logger: logging.Logger) -> _Handler | None:
    """Stopgate's handler, when it is the only handler and nothing filters on the way."""
    current: logging.Logger | None = logger
    found: _Handler | None = None
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, _Handler) or handler.filters:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


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
