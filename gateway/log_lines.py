"""The text of a JSON log line: encoding, timestamps and scrubbing (compiled with the send path,
whose decision line is built here; :mod:`gateway.logs` holds the logging classes around it).

Scrubbing is the last step of making a line, so it covers the message, its arguments, the extra
fields and tracebacks alike: the values of the configured secrets (auth tokens, client secret,
JWT, admin and subscriber secrets), ``Bearer``/``Basic`` credentials, ``Authorization`` header
values and passwords in URLs (a store URL ``postgresql://user:password@host/db``) become
``********``.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import time
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import Any, Final

MASK: Final = "********"

CREDENTIAL_WORDS: Final = (
    ("authorization",),
    ("bearer", "basic"),
    ("://",),
    ("x-twilio-signature", "verification-token", "validation-token", "x-stopgate-signature"),
)
"""For each of :data:`CREDENTIAL_PATTERNS`, words one of which any match contains. On ASCII
text (where lower-casing is exactly what the patterns' IGNORECASE does) a pattern none of whose
words occur cannot match, so it is not run: most log lines contain none of them."""

CREDENTIAL_PATTERNS: Final = (
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

CREDENTIAL_FIELDS: Final = frozenset(
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

ANY_CREDENTIAL_WORD: Final = ("authorization", "bearer", "basic", "://", "signature", "token")
"""Each word of :data:`CREDENTIAL_WORDS` contains one of these (a unit test holds it)."""

_PATTERN_WORDS: Final = tuple(zip(CREDENTIAL_PATTERNS, CREDENTIAL_WORDS, strict=True))


class Scrubber:
    """Replaces secret values and credential-looking text with ``********``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole. Very short values
        # (a misconfiguration) would mask half of every line: they are still masked, but only
        # as whole words.
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._exact: list[str] = [v for v in values if len(v) >= 6]
        # As they appear inside a JSON string (quotes, backslashes, control characters).
        self._escaped: list[str] = [e for e in (json.dumps(v)[1:-1] for v in self._exact) if e]
        short = [re.escape(v) for v in values if len(v) < 6]
        self._short: re.Pattern[str] | None = (
            re.compile(r"\b(?:" + "|".join(short) + r")\b") if short else None
        )

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
            return encode(self._document(json.loads(serialised)))
        return scrubbed

    def _document(self, value: Any, key: str = "") -> Any:
        if key.lower() in CREDENTIAL_FIELDS:
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
        return mask_credentials(text)


def mask_credentials(text: str) -> str:
    lowered = text.lower() if text.isascii() else None
    if lowered is not None:
        # The usual line has none of the key words: one short pass says so.
        for word in ANY_CREDENTIAL_WORD:
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
        text = pattern.sub(masked, text)
        if lowered is not None:
            lowered = text.lower()
    return text


def masked(match: re.Match[str]) -> str:
    """The match with its credential part replaced (group 1 before it, group 2 after it)."""
    return match.group(1) + MASK + (match.group(2) if match.lastindex == 2 else "")


_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # the usual case, without isinstance's subclass walk
        return value
    if kind is list and all(type(v) in _PLAIN for v in value):
        return value
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Made once: ``json.dumps`` with these options builds an encoder for every line."""

_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
# The C encoder, built once rather than per call, when the interpreter has one (the same text
# either way: the options are ENCODER's).
_iterencode: Any = (
    None
    if _make_encoder is None
    else _make_encoder(
        None,  # no circularity check: log fields are plain values
        ENCODER.default,
        encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )
)


def encode(value: Any) -> str:
    """``ENCODER.encode(value)``."""
    if isinstance(value, str):
        return encode_basestring(value)
    if _iterencode is None:
        return ENCODER.encode(value)
    return "".join(_iterencode(value, 0))


HEAD_KEYS: Final = frozenset({"ts", "level", "logger", "msg"})
_HEAD_TAILS: dict[tuple[str, str, str], str] = {}
"""``"level":…,"logger":…,"msg":…`` encoded, per (level, logger, message) of hot-path lines."""


class Timestamps:
    """``ts`` of a line: UTC, ISO 8601, microseconds, ``Z``. The date and time to the second
    are formatted once a second (datetime's isoformat per line cost more than the rest of a
    send's line)."""

    def __init__(self) -> None:
        # One tuple, read and replaced whole: a line made on another thread (the store's, the
        # spool's) never pairs one second with another's text.
        self._second: tuple[int, str] = (-1, "")

    def text(self, created: float) -> str:
        seconds = int(created)
        second, prefix = self._second
        if seconds != second:
            at = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
            prefix = at.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (seconds, prefix)
        micros = min(int((created - seconds) * 1_000_000), 999_999)
        # Six digits, zero-padded: the digits of 1,000,000 + micros after the leading 1 (a
        # format spec is parsed on every call; compiled, this is a fraction of its cost).
        return f"{prefix}.{str(1_000_000 + micros)[1:]}Z"


def head(
    stamps: Timestamps, created: float, level: str, logger: str, message: str
) -> dict[str, Any]:
    """The fields every line starts with."""
    return {"ts": stamps.text(created), "level": level, "logger": logger, "msg": message}


def fields_line(
    scrubber: Scrubber,
    stamps: Timestamps,
    level: str,
    logger: str,
    message: str,
    fields: dict[str, Any],
    members: str | None = None,
) -> str:
    """The line of a record with these ``extra`` fields, built without one (``fields`` must
    hold JSON values: str, int, float, bool, None, lists and dicts of them). ``members``, when
    given, is ``fields`` already encoded by the caller (the members of the JSON object, without
    braces: what ``encode(fields)[1:-1]`` gives)."""
    if not fields or not HEAD_KEYS.isdisjoint(fields):
        line = head(stamps, time.time(), level, logger, message)
        for key, value in fields.items():
            line.setdefault(key, value)
        return scrubber.json_text(encode(line))
    # The usual case, spliced from parts: the head's fixed part is encoded once per
    # (level, logger, message), the fields in one call, and the result is the same text.
    fixed = _HEAD_TAILS.get((level, logger, message))
    if fixed is None:
        fixed = encode({"level": level, "logger": logger, "msg": message})[1:-1]
        if len(_HEAD_TAILS) < 1024:
            _HEAD_TAILS[(level, logger, message)] = fixed
    if members is None:
        members = encode(fields)[1:-1]
    return scrubber.json_text(f'{{"ts":"{stamps.text(time.time())}",{fixed},{members}}}')


_direct_handler_type: type | None = None
_direct_formatter_type: type | None = None


def register_direct(handler_type: type, formatter_type: type) -> None:
    """Name Stopgate's handler and JSON formatter (:mod:`gateway.logs`, which imports this
    module), for :func:`log_fields`. The handler has ``write_line(line)``; the formatter
    ``scrub`` and ``stamps``, exactly a :class:`Scrubber` and a :class:`Timestamps` (compiled
    code checks the types: these classes are not for subclassing)."""
    global _direct_handler_type, _direct_formatter_type
    _direct_handler_type, _direct_formatter_type = handler_type, formatter_type


def log_fields(
    logger: logging.Logger,
    level: int,
    message: str,
    fields: dict[str, Any],
    members: str | None = None,
) -> None:
    """``logger.log(level, message, extra=fields)``, for the lines of the hot path (a send's
    decision): when the line would go only to Stopgate's own JSON handler, it is made and
    written directly, without a ``LogRecord`` (the same line, at a fraction of the cost);
    otherwise, e.g. with another handler or a filter anywhere on the way, it is logged as usual.
    ``fields`` must hold JSON values only; ``members`` as in :func:`fields_line`."""
    if not logger.isEnabledFor(level):
        return
    handler = direct_handler(logger)
    formatter_type = _direct_formatter_type
    if (
        handler is None
        or formatter_type is None
        or not isinstance(handler.formatter, formatter_type)
    ):
        logger.log(level, message, extra=fields)
        return
    if level < handler.level:
        return
    formatter: Any = handler.formatter
    line = fields_line(
        formatter.scrub,
        formatter.stamps,
        logging.getLevelName(level),
        logger.name,
        message,
        fields,
        members,
    )
    handler.write_line(line)


def direct_handler(logger: logging.Logger) -> Any:
    """Stopgate's handler, when it is the only handler and nothing filters on the way; else
    None."""
    handler_type = _direct_handler_type
    if handler_type is None:
        return None
    current: logging.Logger | None = logger
    found: Any = None
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, handler_type) or handler.filters:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found
