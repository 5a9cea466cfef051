"""RingCentral REST API v1.0: SMS/MMS sends (JSON or multipart) and A2P batches."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

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
from policy.consent import BlockReason
from policy.footer import RINGCENTRAL_CAP

JSON = "application/json"
MULTIPART = ("multipart/form-data", "multipart/mixed")

_CONSENT_REASONS = frozenset(reason.value for reason in BlockReason)
_STOPGATE_CODES = {
    ErrorKind.UNAUTHORIZED: "AGW-401",
    ErrorKind.FORBIDDEN: "STOPGATE-403",
    ErrorKind.UNAVAILABLE: "STOPGATE-503",
    ErrorKind.TOO_LARGE: "STOPGATE-413",
    ErrorKind.UNSUPPORTED_MEDIA: "STOPGATE-415",
    ErrorKind.CONSENT_UNAVAILABLE: "STOPGATE-503",
    ErrorKind.UPSTREAM_UNREACHABLE: "STOPGATE-502",
    ErrorKind.UPSTREAM_TIMEOUT: "STOPGATE-504",
}
# Sending rules, one code each in RingCentral's SMS code layout (source "STOPGATE"): 451 the
# law forbids it now (quiet hours), 429 too many (frequency cap).
_RESTRICTED_CODES = {"quiet-hours": "SMS-STOPGATE-451", "frequency-cap": "SMS-STOPGATE-429"}


@dataclass(slots=True)
class _Multipart:
    """A multipart body split into (headers, payload) parts: all but the JSON part are
    forwarded byte-exact when Stopgate changes the text."""

    content_type: str
    boundary: bytes
    parts: list[tuple[bytes, bytes]]
    json_index: int
    document: dict[str, Any]


def _rejected_position(entry: object) -> int:
    """Where a batch reply's rejected entry sorts: by its ``index``, or as index 0 when it has
    no whole-number index (or is not an object)."""
    index = entry.get("index") if isinstance(entry, dict) else None
    return index if isinstance(index, int) else 0


class RingCentralDialect:
    name = "ringcentral"
    prefix = "/restapi/"
    length_cap = RINGCENTRAL_CAP
    send_routes = (
        SendRoute(
            re.compile(r"/restapi/v1\.0/account/[^/]+/extension/[^/]+/(?:sms|mms)"),
            SendKind.MESSAGE,
        ),
        SendRoute(re.compile(r"/restapi/v1\.0/account/[^/]+/a2p-sms/batch(?:es)?"), SendKind.BATCH),
    )
    send_markers = ("sms", "mms", "a2p-sms")

    def parse_send(self, kind: SendKind, content_type_header: str, body: bytes) -> ParsedSend:
        refuse_foreign_charset(content_type_header)
        content_type, boundary = media_type(content_type_header)
        if content_type == JSON:
            document = _load_json(body)
            carrier: Any = None
        elif content_type in MULTIPART:
            if kind is SendKind.BATCH:
                raise BadRequest(
                    "unsupported-content-type", "A2P batches are sent as JSON", status=415
                )
            carrier = _split_multipart(content_type, boundary, body)
            document = carrier.document
        else:
            raise BadRequest(
                "unsupported-content-type",
                f"Messages are sent as {JSON} or multipart, not {content_type or 'nothing'}",
                status=415,
            )
        parsed = _parse_batch(document) if kind is SendKind.BATCH else _parse_message(document)
        parsed.document = (document, carrier)
        return parsed

    def set_text(self, parsed: ParsedSend, text: str) -> None:
        document, _ = parsed.document
        document["text"] = text
        parsed.text = text

    def set_batch(self, parsed: ParsedSend, items: Sequence[BatchItem]) -> None:
        document, _ = parsed.document
        messages = document["messages"]
        rebuilt: list[dict[str, Any]] = []
        for item in items:
            message = dict(messages[item.index])
            message["to"] = list(item.recipients)
            if item.text is not None:
                message["text"] = item.text
            rebuilt.append(message)
        document["messages"] = rebuilt
        parsed.items = tuple(items)

    def encode_send(self, parsed: ParsedSend) -> tuple[bytes, str]:
        document, carrier = parsed.document
        encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        if carrier is None:
            return encoded, JSON
        multipart: _Multipart = carrier
        parts = list(multipart.parts)
        parts[multipart.json_index] = (parts[multipart.json_index][0], encoded)
        delimiter = b"--" + multipart.boundary
        body = b"".join(
            delimiter + b"\r\n" + head + b"\r\n\r\n" + payload + b"\r\n" for head, payload in parts
        )
        return body + delimiter + b"--\r\n", multipart.content_type

    def merge_batch_reply(
        self, reply: Any, kept: Sequence[BatchItem], dropped: Sequence[Blocked]
    ) -> Any:
        if not isinstance(reply, dict):
            return reply
        # The carrier's entries are kept whatever they are (typed Any: compiled, a narrower type
        # would be checked at run time and refuse a reply the carrier already acted on).
        rejected: list[Any] = []
        for entry in reply.get("rejected") or []:
            if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                position = entry["index"]
                if 0 <= position < len(kept):
                    entry = {**entry, "index": kept[position].index}
            rejected.append(entry)
        for block in dropped:
            opted_out = block.reason in _CONSENT_REASONS
            code, description = (
                ("SMS-RC-413", f"The destination subscriber opted out ({block.reason})")
                if opted_out
                else ("SMS-RC-410", f"The destination number is invalid ({block.reason})")
            )
            if block.reason in _RESTRICTED_CODES:
                code = _RESTRICTED_CODES[block.reason]
                description = f"Not sent: a sending rule refused it ({block.reason})"
            rejected.append(
                {
                    "index": block.index,
                    "to": [block.recipient],
                    "errorCode": code,
                    "description": description,
                }
            )
        rejected.sort(key=_rejected_position)
        merged = dict(reply)
        merged["rejected"] = rejected
        if isinstance(merged.get("batchSize"), int):
            merged["batchSize"] = merged["batchSize"] + len(dropped)
        return merged

    def refused_as_opted_out(self, status: int, body: bytes) -> bool:
        if not 400 <= status < 500:
            return False
        try:
            code = json.loads(body).get("errorCode")
        except (ValueError, AttributeError, RecursionError):
            return False
        return isinstance(code, str) and _CARRIER_BLOCK.fullmatch(code) is not None

    def error_body(self, error: DialectError) -> dict[str, Any]:
        if error.kind is ErrorKind.BLOCKED:
            names = ", ".join(b.recipient for b in error.blocked)
            message = "The destination subscriber opted out"
            return {
                "errorCode": "SMS-RC-413",
                "message": message,
                "errors": [
                    {
                        "errorCode": "SMS-RC-413",
                        "message": f"{message}: {names}" if names else message,
                        "parameterName": "to",
                    }
                ],
            }
        code = _STOPGATE_CODES.get(error.kind, "CMN-101")
        if error.kind is ErrorKind.RESTRICTED:
            code = _RESTRICTED_CODES.get(error.reason, "SMS-STOPGATE-400")
        detail: dict[str, Any] = {"errorCode": code, "message": error.message}
        if error.parameter:
            detail["parameterName"] = error.parameter
        return {
            "errorCode": code,
            "message": error.message,
            "errors": [detail],
            "reason": error.reason,
        }


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("malformed-body", "The JSON body cannot be decoded") from None
    if not isinstance(document, dict):
        raise BadRequest("malformed-body", "The JSON body must be an object")
    return document


def _phone(value: Any, parameter: str) -> str:
    """A RingCentral caller-info object ``{"phoneNumber": …}`` (or, leniently, a string)."""
    number = value.get("phoneNumber") if isinstance(value, dict) else value
    if not isinstance(number, str) or not number.strip():
        raise BadRequest(
            f"missing-{parameter}",
            f"Parameter [{parameter}] needs a phoneNumber",
            parameter=parameter,
        )
    return number


def _text(document: dict[str, Any], parameter: str = "text") -> str | None:
    text = document.get(parameter)
    if text is None:
        return None
    if not isinstance(text, str):
        raise BadRequest("malformed-text", "Parameter [text] must be a string", parameter="text")
    return text


def _parse_message(document: dict[str, Any]) -> ParsedSend:
    if "from" not in document:
        raise BadRequest("missing-from", "Parameter [from] is required", parameter="from")
    business = _phone(document["from"], "from")
    to = document.get("to")
    if not isinstance(to, list) or not to:
        raise BadRequest("missing-to", "Parameter [to] must list recipients", parameter="to")
    recipients = tuple(_phone(entry, "to") for entry in to)
    return ParsedSend(SendKind.MESSAGE, business, None, recipients, _text(document))


def _parse_batch(document: dict[str, Any]) -> ParsedSend:
    if "from" not in document:
        raise BadRequest("missing-from", "Parameter [from] is required", parameter="from")
    business = _phone(document["from"], "from")
    messages = document.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(
            "missing-messages", "Parameter [messages] must list messages", parameter="messages"
        )
    items: list[BatchItem] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest("malformed-body", f"messages[{index}] must be an object")
        to = message.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to:
            raise BadRequest(
                "missing-to", f"messages[{index}].to must list recipients", parameter="to"
            )
        items.append(BatchItem(index, tuple(_phone(entry, "to") for entry in to), _text(message)))
    recipients = tuple(r for item in items for r in item.recipients)
    return ParsedSend(SendKind.BATCH, business, None, recipients, _text(document), tuple(items))


def _split_multipart(kind: str, declared: str | None, body: bytes) -> _Multipart:
    """Split ``body`` into its parts as RFC 2046 says (a delimiter only at the start of a line)
    and find the one JSON part carrying from/to/text. Anything a less careful parser could read
    differently - a boundary inside a part, text after the close, two parts that could each be
    the request - is refused, so Stopgate never checks one request while the carrier reads
    another."""
    if not declared:
        raise BadRequest("malformed-body", "The multipart Content-Type has no boundary")
    boundary = declared.encode("latin-1")
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        raise BadRequest("malformed-body", "The multipart body does not start with its boundary")
    pieces = (b"\r\n" + body).split(b"\r\n" + delimiter)
    parts: list[tuple[bytes, bytes]] = []
    closed = False
    for piece in pieces[1:]:
        if closed:
            raise BadRequest("malformed-body", "The multipart body goes on after its end")
        if piece.startswith(b"--"):
            closed = True
            if piece[2:].strip():
                raise BadRequest("malformed-body", "The multipart body goes on after its end")
            continue
        line_end = piece.find(b"\r\n")
        if line_end < 0 or piece[:line_end].strip(b" \t"):
            raise BadRequest("malformed-body", "A multipart delimiter line is malformed")
        part = piece[line_end + 2 :]
        if delimiter in part:
            raise BadRequest(
                "ambiguous-parameter", "A multipart part contains its own boundary", status=400
            )
        if part.startswith(b"\r\n"):
            head, payload = b"", part[2:]
        else:
            head, separator, payload = part.partition(b"\r\n\r\n")
            if not separator:
                raise BadRequest("malformed-body", "A multipart part has no header block")
        parts.append((head, payload))
    if not closed:
        raise BadRequest("malformed-body", "The multipart body is not terminated")
    candidates = [index for index, (head, _) in enumerate(parts) if _is_request_part(head)]
    if len(candidates) != 1:
        raise BadRequest(
            "ambiguous-parameter" if candidates else "malformed-body",
            "A multipart send needs exactly one JSON part (application/json or named json)",
        )
    index = candidates[0]
    document = _load_json(parts[index][1])
    full_type = f'{kind}; boundary="{declared}"'
    return _Multipart(full_type, boundary, parts, index, document)


def _is_request_part(head: bytes) -> bool:
    """A part the carrier could read as the request: JSON by type, or named ``json``."""
    message = Message()
    for line in head.decode("latin-1").split("\r\n"):
        header, colon, value = line.partition(":")
        if colon:
            message[header.strip()] = value.strip()
    content_type = (message.get("content-type") or "").split(";", 1)[0].strip().lower()
    part_name = message.get_param("name", header="content-disposition")
    return content_type == JSON or (isinstance(part_name, str) and part_name.lower() == "json")


def parse_notification(document: Any) -> list[InboundMessage]:
    """Inbound SMS of a RingCentral webhook notification; other events yield nothing.

    One message to several of the account's numbers is one :class:`InboundMessage` whose
    ``recipients`` lists them all.
    """
    if not isinstance(document, dict):
        raise BadRequest("malformed-webhook", "a notification must be a JSON object")
    body = document.get("body")
    if not isinstance(body, dict):
        raise BadRequest("malformed-webhook", "a notification needs a body object")
    if "/sms/consents" in str(document.get("event", "")):
        return []
    if body.get("direction") != "Inbound" or body.get("type", "SMS") != "SMS":
        return []
    message_id = body.get("id")
    sender = body.get("from")
    to = body.get("to")
    if message_id in (None, "") or not isinstance(sender, dict) or not isinstance(to, list):
        raise BadRequest("malformed-webhook", "an inbound SMS event needs id, from and to")
    recipients = tuple(_phone(entry, "to") for entry in to if isinstance(entry, dict))
    if not recipients:
        raise BadRequest("malformed-webhook", "an inbound SMS event needs a to number")
    subject = body.get("subject")
    return [
        InboundMessage(
            provider="ringcentral",
            message_id=str(message_id),
            sender=_phone(sender, "from"),
            recipients=recipients,
            text=subject if isinstance(subject, str) else "",
        )
    ]


_CARRIER_BLOCK = re.compile(r"SMS-[A-Z]+-413")


@dataclass(frozen=True, slots=True)
class CarrierConsent:
    """A consent fact RingCentral reports: a pair it blocks, or a consent record of its own."""

    sender: str
    recipient: str
    opted_out: bool
    detail: str


def parse_carrier_consent(document: Any) -> list[CarrierConsent]:
    """Opt-outs (and opt-ins) the carrier knows, from a notification: an outbound message that
    failed with ``SMS-*-413`` (the recipient opted out at the carrier), or a consent event."""
    if not isinstance(document, dict) or not isinstance(document.get("body"), dict):
        return []
    body = document["body"]
    event = str(document.get("event", ""))
    found: list[CarrierConsent] = []
    if "/sms/consents" in event:
        records = body.get("records")
        for record in records if isinstance(records, list) else []:
            if not isinstance(record, dict) or record.get("optStatus") not in ("OptIn", "OptOut"):
                continue
            sender, recipient = record.get("from"), record.get("to")
            if isinstance(sender, str) and isinstance(recipient, str):
                found.append(
                    CarrierConsent(
                        sender,
                        recipient,
                        record["optStatus"] == "OptOut",
                        f"RingCentral consent event ({record.get('source', 'unknown')})",
                    )
                )
        return found
    code = str(body.get("deliveryErrorCode") or "")
    if (
        body.get("direction") == "Outbound"
        and body.get("messageStatus") == "SendingFailed"
        and _CARRIER_BLOCK.fullmatch(code)
        and isinstance(body.get("from"), dict)
    ):
        sender = body["from"].get("phoneNumber")
        recipients = body.get("to")
        for entry in recipients if isinstance(recipients, list) else []:
            recipient = entry.get("phoneNumber") if isinstance(entry, dict) else None
            if isinstance(sender, str) and isinstance(recipient, str):
                found.append(CarrierConsent(sender, recipient, True, f"carrier refused ({code})"))
    return found
