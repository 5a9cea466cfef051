"""Twilio Programmable Messaging (API version 2010-04-01), form-encoded sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import (
    SplitResult,
    parse_qsl,
    unquote,
    urlsplit,
    urlunsplit,
)
from xml.sax.saxutils import escape as xml_escape

from gateway.config import same_secret
from gateway.dialects.base import (
    BatchItem,
    Blocked,
    DialectError,
    ErrorKind,
    InboundMessage,
    ParsedSend,
    SendKind,
    SendRoute,
    media_type,
    refuse_foreign_charset,
)
from gateway.errors import BadRequest
from policy.footer import TWILIO_CAP

FORM = "application/x-www-form-urlencoded"

_ERROR_CODES = {
    ErrorKind.BAD_REQUEST: 21600,
    ErrorKind.UNAUTHORIZED: 20003,
    ErrorKind.FORBIDDEN: 20403,
    ErrorKind.UNAVAILABLE: 20503,
    ErrorKind.TOO_LARGE: 21617,
    ErrorKind.UNSUPPORTED_MEDIA: 21600,
    ErrorKind.CONSENT_UNAVAILABLE: 20503,
    ErrorKind.UPSTREAM_UNREACHABLE: 20500,
    ErrorKind.UPSTREAM_TIMEOUT: 20500,
    # "Message filtered": what Twilio reports for a message it would not deliver.
    ErrorKind.RESTRICTED: 30007,
}
# Twilio's own codes for the parameter problems its API reports, so SDK users see familiar ones.
_PARAMETER_CODES = {"to": 21211, "from": 21212, "messagingservicesid": 21701}
_MISSING_CODES = {"to": 21604, "from": 21603}


def parse_form(text: str) -> list[tuple[str, str]]:
    """The fields of a form body: exactly ``parse_qsl(text, keep_blank_values=True,
    strict_parsing=bool(text))`` (the same pairs, ValueError for a field without ``=``), at a
    fraction of the cost when names and values hold no escapes (the usual send)."""
    if not text:
        return []
    pairs: list[tuple[str, str]] = []
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if not equals:
            raise ValueError(f"bad query field: {field!r}")
        if "%" in name or "+" in name:
            name = _unquote(name.replace("+", " "))
        if "%" in value or "+" in value:
            value = _unquote(value.replace("+", " "))
        pairs.append((name, value))
    return pairs


def _unquote(text: str) -> str:
    # For ASCII text (any form a client encoded) unquote's result is its bytes decoded whole.
    # Those bytes are taken here as unquote_to_bytes takes them - each "%" and the two hex
    # digits after it are a byte, any other "%" stays - in compiled code: urllib's loop, run
    # by the interpreter, cost more than the rest of the form's parse.
    if not text.isascii():
        return unquote(text)
    pieces = text.split("%")
    if len(pieces) == 1:
        return text
    decoded = [pieces[0].encode("ascii")]
    for piece in pieces[1:]:
        byte = _HEX_BYTES.get(piece[:2])
        if byte is None:
            decoded.append(b"%" + piece.encode("ascii"))
        else:
            decoded.append(byte + piece[2:].encode("ascii"))
    return b"".join(decoded).decode("utf-8", "replace")


_HEX_BYTES: Final = {
    high + low: bytes.fromhex(high + low)
    for high in "0123456789abcdefABCDEF"
    for low in "0123456789abcdefABCDEF"
}
"""Two hex digits, in either case, to the byte they write."""


def encode_form(pairs: Sequence[tuple[str, str]]) -> bytes:
    """``urlencode(pairs).encode()`` (the same bytes, a test holds it), without urllib's
    character-by-character quoting: one pass per name and value."""
    return b"&".join([_quote_plus(name) + b"=" + _quote_plus(value) for name, value in pairs])


_FORM_ESCAPED = re.compile(rb"[^A-Za-z0-9_.~ -]")


def _quote_plus(text: str) -> bytes:
    return _FORM_ESCAPED.sub(_percent, text.encode("utf-8")).replace(b" ", b"+")


def _percent(match: re.Match[bytes]) -> bytes:
    return b"%%%02X" % match[0][0]


class TwilioDialect:
    name = "twilio"
    prefix = "/2010-04-01/"
    length_cap = TWILIO_CAP
    # Messages.json is the documented form; Twilio also answers the extension-less and .xml
    # forms and the legacy SMS/Messages resource, so every one of them is a checked send.
    send_routes = (
        SendRoute(
            re.compile(r"/2010-04-01/accounts/[^/]+/(?:sms/)?messages(?:\.json|\.xml)?"),
            SendKind.MESSAGE,
        ),
    )
    send_markers = ("messages", "messages.json", "messages.xml")

    def parse_send(self, kind: SendKind, content_type_header: str, body: bytes) -> ParsedSend:
        refuse_foreign_charset(content_type_header)
        content_type, _ = media_type(content_type_header)
        if content_type != FORM:
            raise BadRequest(
                "unsupported-content-type",
                f"Messages are sent as {FORM}, not {content_type or 'no content type'}",
                status=415,
            )
        try:
            pairs = parse_form(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("malformed-body", "The form body cannot be decoded") from None
        fields: dict[str, list[str]] = {}
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        for name in ("To", "From", "MessagingServiceSid", "Body"):
            if len(fields.get(name, ())) > 1:
                # The carrier would pick one of them; Stopgate cannot know which, so neither.
                raise BadRequest(
                    "ambiguous-parameter", f"{name} is given more than once", parameter=name
                )
        to = _single(fields, "To")
        business = _single(fields, "From")
        service = _single(fields, "MessagingServiceSid")
        if not to:
            raise BadRequest("missing-to", "A 'To' phone number is required.", parameter="To")
        if not business and not service:
            raise BadRequest(
                "missing-from",
                "A 'From' phone number or a 'MessagingServiceSid' is required.",
                parameter="From",
            )
        return ParsedSend(
            kind=SendKind.MESSAGE,
            business=business,
            service=service,
            recipients=(to,),
            text=_single(fields, "Body"),
            document=pairs,
        )

    def set_text(self, parsed: ParsedSend, text: str) -> None:
        pairs: list[tuple[str, str]] = parsed.document
        parsed.document = [(k, text if k == "Body" else v) for k, v in pairs]
        parsed.text = text

    def set_batch(self, parsed: ParsedSend, items: Sequence[BatchItem]) -> None:
        raise NotImplementedError("Twilio has no batch send")

    def encode_send(self, parsed: ParsedSend) -> tuple[bytes, str]:
        return encode_form(parsed.document), FORM

    def merge_batch_reply(
        self, reply: Any, kept: Sequence[BatchItem], dropped: Sequence[Blocked]
    ) -> Any:
        raise NotImplementedError("Twilio has no batch send")

    def refused_as_opted_out(self, status: int, body: bytes) -> bool:
        if status != 400:
            return False
        try:
            return bool(json.loads(body).get("code") == 21610)
        except (ValueError, AttributeError, RecursionError):
            return False

    def error_body(self, error: DialectError) -> dict[str, Any]:
        if error.kind is ErrorKind.BLOCKED:
            return {
                "code": 21610,
                "message": "Attempt to send to unsubscribed recipient",
                "more_info": "https://www.twilio.com/docs/errors/21610",
                "status": 400,
            }
        code = _ERROR_CODES[error.kind]
        if error.kind is ErrorKind.BAD_REQUEST and error.parameter:
            parameter = error.parameter.lower()
            if error.reason.startswith("missing"):
                code = _MISSING_CODES.get(parameter, code)
            else:
                code = _PARAMETER_CODES.get(parameter, code)
        return {
            "code": code,
            "message": error.message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": error.status,
            "reason": error.reason,
        }


def _single(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    if not values:
        return None
    return values[0] or None


def signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1 keyed by the auth token over the URL followed
    by every parameter sorted by name (values of a repeated name sorted too), name then value."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    signed = url + "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> tuple[str, ...]:
    """The URL as given, without its default port, and with it - as Twilio's validator tries."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    variants = [url]
    if default is not None:
        bare = urlunsplit(parts._replace(netloc=_netloc(parts, host, None)))
        ported = urlunsplit(parts._replace(netloc=_netloc(parts, host, default)))
        if parts.port in (None, default):
            variants += [bare, ported]
    return tuple(dict.fromkeys(variants))


def _netloc(parts: SplitResult, host: str, port: int | None) -> str:
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{host}:{port}" if port is not None else host
    return f"{auth}@{netloc}" if auth else netloc


def verify_signature(
    auth_token: str, url: str, params: Sequence[tuple[str, str]], presented: str, body: bytes
) -> bool:
    """Check ``X-Twilio-Signature`` for a form body (``params``) or a JSON body signed through
    the ``bodySHA256`` query parameter (then the URL alone is signed). Constant-time compare."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    body_hash = query.get("bodySHA256")
    if body_hash is not None:
        if not hmac.compare_digest(
            hashlib.sha256(body).hexdigest().encode(), body_hash.lower().encode()
        ):
            return False
        params = ()
    ok = False
    for candidate in url_variants(url):
        expected = signature(auth_token, candidate, params)
        # No early exit: every variant is compared, so timing says nothing about which matched.
        ok |= same_secret(presented, expected)
    return ok


def parse_inbound(params: Sequence[tuple[str, str]]) -> InboundMessage:
    """An inbound SMS webhook (form fields) as plain values."""
    fields = dict(params)
    message_id = fields.get("MessageSid") or fields.get("SmsSid") or ""
    sender = fields.get("From", "")
    to = fields.get("To", "")
    if not message_id or not sender or not to:
        raise BadRequest(
            "malformed-webhook", "an inbound Twilio webhook needs MessageSid, From and To"
        )
    return InboundMessage(
        provider="twilio",
        message_id=message_id,
        sender=sender,
        recipients=(to,),
        text=fields.get("Body", ""),
        service=fields.get("MessagingServiceSid") or None,
        carrier_handled=fields.get("OptOutType") or None,
    )


def twiml(messages: Sequence[str]) -> str:
    """A TwiML answer with one ``<Message>`` per text (none: an empty answer)."""
    body = "".join(f"<Message>{xml_escape(text)}</Message>" for text in messages)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
