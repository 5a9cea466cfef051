"""The OpenAPI 3.1 document of every route Stopgate serves itself, at ``GET /openapi.json``.

Built once, at import, as plain Python data: the consents API (``/restapi/v2/accounts/{account}/
sms/consents`` and its ``/export``, ``/history`` and ``/erase``), the inbound webhooks, the
operational routes (``/healthz``, ``/readyz``, ``/metrics``) and this document itself. The carrier
paths Stopgate proxies (``/restapi/v1.0/…``, ``/2010-04-01/…``) are the carriers' own APIs and are
not described here. ``tests/service/test_openapi.py`` runs schemathesis against a live gateway
with this document, so a route that answers something the document does not say fails the suite.

Formats beyond JSON Schema's own: ``sms-address`` (a business address: a phone number in any common
notation, a short code, an alphanumeric sender ID, a Twilio Messaging Service SID, or ``*``) and
``phone`` (a customer's phone number in any common notation).
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from gateway.admin import openapi as console
from gateway.config import DEFAULT_MAX_RECORDS_PER_CALL
from gateway.consents_api import (
    BASE,
    DEFAULT_PER_PAGE,
    EVIDENCE_METHODS,
    MAX_PER_PAGE,
)
from policy.consent import OptStatus, Source
from policy.keywords import KeywordClass

Json = dict[str, Any]

PATH: Final = "/openapi.json"
OPENAPI_VERSION: Final = "3.1.0"
API_VERSION: Final = "0.1.0"

_JSON: Final = "application/json"
_OPT_STATUSES: Final = [s.value for s in OptStatus]
_SOURCES: Final = [s.value for s in Source]
_KEYWORDS: Final = [k.value for k in KeywordClass]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: Json) -> Json:
    return {_JSON: {"schema": schema}}


# --- schemas ------------------------------------------------------------------------------


def _schemas() -> Json:
    business = {
        "type": "string",
        "format": "sms-address",
        "minLength": 1,
        "description": (
            "The business side: a phone number in any common notation (canonicalised to E.164 "
            "with the configured default region), a short code, an alphanumeric sender ID, a "
            "Twilio Messaging Service SID (`MG…`), `brand:NAME` for every number of a configured "
            "brand, or `*` for every business number."
        ),
        "examples": ["+16505550100", "(650) 555-0100", "*", "12345"],
    }
    customer = {
        "type": "string",
        "format": "phone",
        "minLength": 1,
        "description": (
            "The customer: a phone number in any common notation (canonicalised to E.164 with "
            "the configured default region). Short codes and sender IDs cannot be customers."
        ),
        "examples": ["+16505550111", "650-555-0111", "tel:+1-650-555-0111"],
    }
    evidence = {
        "type": "object",
        "description": "How an opt-in was collected (TCPA proof); every value is a string.",
        "required": ["method"],
        "additionalProperties": False,
        "properties": {
            "method": {"type": "string", "enum": list(EVIDENCE_METHODS)},
            "url": {"type": "string"},
            "ip": {"type": "string"},
            "consentText": {"type": "string"},
            "messageId": {"type": "string"},
            "collectedAt": {"type": "string"},
            "details": {"type": "string"},
        },
    }
    record_in = {
        "type": "object",
        "description": (
            "One consent record to write. Validated on its own: an invalid record is reported in "
            "`errors` and the others still apply. Unknown fields (e.g. `lastModifiedTime` of a "
            "record read back) are ignored."
        ),
        "required": ["from", "to", "optStatus"],
        "properties": {
            "from": business,
            "to": customer,
            "optStatus": {"type": "string", "enum": _OPT_STATUSES},
            "source": {"type": "string", "enum": _SOURCES, "default": Source.API.value},
            "note": {"type": ["string", "null"]},
            "evidence": {"anyOf": [_ref("Evidence"), {"type": "null"}]},
        },
    }
    pair_in = {
        "type": "object",
        "description": "A pair whose record is removed; other fields are ignored.",
        "required": ["from", "to"],
        "properties": {"from": business, "to": customer},
    }

    def records_body(item: Json, description: str) -> Json:
        return {
            "type": "object",
            "description": description,
            "required": ["records"],
            "properties": {
                "records": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": DEFAULT_MAX_RECORDS_PER_CALL,
                    "items": item,
                }
            },
        }

    record_out = {
        "type": "object",
        "required": ["from", "to", "optStatus", "source", "lastModifiedTime"],
        "additionalProperties": False,
        "properties": {
            "from": {
                "type": "string",
                "description": (
                    "E.164, a short code, a sender ID, an `MG…` SID, `brand:NAME`, or `*`."
                ),
            },
            "to": {"type": "string", "description": "E.164 (or a channel-prefixed address)."},
            "optStatus": {"type": "string", "enum": _OPT_STATUSES},
            "source": {"type": "string", "enum": _SOURCES},
            "lastModifiedTime": {"type": "string", "format": "date-time"},
            "note": {"type": "string"},
            "evidence": _ref("Evidence"),
        },
    }
    record_error = {
        "type": "object",
        "description": "Why the record at `index` of the request was not applied.",
        "required": ["index", "errorCode", "reason", "message", "parameterName"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "errorCode": {"type": "string", "const": "CMN-101"},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "parameterName": {
                "type": ["string", "null"],
                "description": "The field at fault; null when the record itself is malformed.",
            },
        },
    }
    write_result = {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {"type": "array", "items": _ref("ConsentRecord")},
            "errors": {"type": "array", "items": _ref("RecordError"), "minItems": 1},
        },
    }
    paging = {
        "type": "object",
        "required": ["perPage"],
        "additionalProperties": False,
        "properties": {
            "perPage": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "pageToken": {"type": "string", "description": "The token this page was asked with."},
            "nextPageToken": {"type": "string"},
            "previousPageToken": {"type": "string"},
        },
    }
    history_entry = {
        "type": "object",
        "required": ["id", "from", "to", "oldStatus", "newStatus", "source", "actor", "time"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "from": {"type": "string"},
            "to": {"type": "string"},
            "oldStatus": {
                "type": ["string", "null"],
                "enum": [*_OPT_STATUSES, None],
                "description": "null: there was no record before.",
            },
            "newStatus": {
                "type": "string",
                "enum": [*_OPT_STATUSES, "Deleted"],
                "description": "`Deleted`: the record was removed (the default applies again).",
            },
            "source": {"type": "string", "enum": _SOURCES},
            "actor": {
                "type": "string",
                "description": "Who made the change (a token's name, `recipient:<carrier>`, …).",
            },
            "time": {"type": "string", "format": "date-time"},
            "note": {"type": "string"},
            "evidence": _ref("Evidence"),
        },
    }
    error_detail = {
        "type": "object",
        "required": ["errorCode", "message"],
        "properties": {
            "errorCode": {"type": "string"},
            "message": {"type": "string"},
            "parameterName": {"type": ["string", "null"]},
            "index": {"type": "integer", "minimum": 0},
            "reason": {"type": "string"},
        },
    }
    error = {
        "type": "object",
        "description": (
            "RingCentral's error shape, plus Stopgate's machine-readable `reason`. `errorCode`: "
            "`CMN-101` bad input, `AGW-401` unauthenticated, `STOPGATE-403` role too weak, "
            "`STOPGATE-413` too many records, `STOPGATE-503` store or carrier unavailable."
        ),
        "required": ["errorCode", "message", "errors", "reason"],
        "properties": {
            "errorCode": {"type": "string"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": _ref("ErrorDetail")},
            "reason": {"type": "string"},
        },
    }
    records_rejected = {
        "type": "object",
        "description": "No record of a PATCH or DELETE was valid; nothing was applied.",
        "required": ["errorCode", "message", "errors", "reason"],
        "properties": {
            "errorCode": {"type": "string", "const": "CMN-101"},
            "message": {"type": "string"},
            "reason": {"type": "string", "const": "invalid-records"},
            "errors": {"type": "array", "minItems": 1, "items": _ref("RecordError")},
        },
    }
    webhook_error = {
        "type": "object",
        "description": "Stopgate's own error shape (webhooks are not a carrier API).",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["reason", "message"],
                "additionalProperties": False,
                "properties": {"reason": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    }
    twilio_inbound = {
        "type": "object",
        "description": (
            "Twilio's inbound message parameters (all strings; Twilio sends more, e.g. NumMedia, "
            "MediaUrl0, FromCity, which are forwarded untouched). `SmsSid` is accepted in place "
            "of `MessageSid`."
        ),
        "required": ["MessageSid", "From", "To"],
        "additionalProperties": {"type": "string"},
        "properties": {
            "MessageSid": {"type": "string"},
            "SmsSid": {"type": "string"},
            "AccountSid": {"type": "string"},
            "MessagingServiceSid": {"type": "string"},
            "From": {"type": "string", "format": "phone"},
            "To": {"type": "string", "format": "sms-address"},
            "Body": {"type": "string"},
            "OptOutType": {
                "type": "string",
                "description": "Set when Twilio's own keyword handling already answered.",
            },
        },
    }
    caller = {
        "type": "object",
        "required": ["phoneNumber"],
        "properties": {"phoneNumber": {"type": "string", "format": "phone"}},
    }
    envelope = {
        "uuid": {"type": "string"},
        "timestamp": {"type": "string"},
        "subscriptionId": {"type": "string"},
        "ownerId": {"type": "string"},
    }
    inbound_sms = {
        "type": "object",
        "description": (
            "An inbound SMS (`message-store/instant?type=SMS`): its keyword is acted on. "
            "`direction` and `type` default to `Inbound` and `SMS`."
        ),
        "required": ["body"],
        "properties": {
            **envelope,
            "event": {"type": "string"},
            "body": {
                "type": "object",
                "required": ["id", "from", "to"],
                "properties": {
                    "id": {"type": ["string", "integer"]},
                    "direction": {"type": "string", "const": "Inbound"},
                    "type": {"type": "string", "const": "SMS"},
                    "from": _ref("RingCentralCaller"),
                    "to": {"type": "array", "minItems": 1, "items": _ref("RingCentralCaller")},
                    "subject": {"type": "string"},
                },
            },
        },
    }
    message_status = {
        "type": "object",
        "description": (
            "An outbound message's status (`message-store`): a `SendingFailed` with "
            "`deliveryErrorCode` `SMS-…-413` records the carrier's opt-out (source `Carrier`)."
        ),
        "required": ["body"],
        "properties": {
            **envelope,
            "event": {"type": "string"},
            "body": {
                "type": "object",
                "required": ["direction"],
                "properties": {
                    "id": {"type": ["string", "integer"]},
                    "direction": {"type": "string", "const": "Outbound"},
                    "type": {"type": "string"},
                    "messageStatus": {"type": "string"},
                    "deliveryErrorCode": {"type": "string"},
                    "from": _ref("RingCentralCaller"),
                    "to": {"type": "array", "items": _ref("RingCentralCaller")},
                },
            },
        },
    }
    consent_event = {
        "type": "object",
        "description": (
            "A consent event of RingCentral's own consent API (an `event` path containing "
            "`/sms/consents`): each record is kept as a change with source `Carrier`."
        ),
        "required": ["event", "body"],
        "properties": {
            **envelope,
            "event": {"type": "string", "pattern": "/sms/consents"},
            "body": {
                "type": "object",
                "required": ["records"],
                "properties": {
                    "records": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["from", "to", "optStatus"],
                            "properties": {
                                "from": {"type": "string", "format": "sms-address"},
                                "to": {"type": "string", "format": "phone"},
                                "optStatus": {"type": "string", "enum": _OPT_STATUSES},
                                "source": {"type": "string"},
                            },
                        },
                    }
                },
            },
        },
    }
    ringcentral_notification = {
        "description": (
            "A RingCentral webhook notification. Events of other kinds are acknowledged and "
            "forwarded to the app as they came."
        ),
        "anyOf": [
            _ref("RingCentralInboundSms"),
            _ref("RingCentralMessageStatus"),
            _ref("RingCentralConsentEvent"),
        ],
    }
    return {
        "Evidence": evidence,
        "ConsentRecordInput": record_in,
        "ConsentPair": pair_in,
        "PatchConsentsRequest": records_body(
            _ref("ConsentRecordInput"),
            f"1 to {DEFAULT_MAX_RECORDS_PER_CALL} records (the default of `max_records_per_call`); "
            "each applies only if all of it is valid.",
        ),
        "DeleteConsentsRequest": records_body(
            _ref("ConsentPair"), f"1 to {DEFAULT_MAX_RECORDS_PER_CALL} pairs to remove."
        ),
        "ConsentRecord": record_out,
        "RecordError": record_error,
        "ConsentWriteResult": write_result,
        "Paging": paging,
        "ConsentPage": {
            "type": "object",
            "required": ["records", "paging"],
            "properties": {
                "records": {"type": "array", "items": _ref("ConsentRecord")},
                "paging": _ref("Paging"),
            },
        },
        "EraseRequest": {
            "type": "object",
            "required": ["to"],
            "properties": {"to": customer},
        },
        "EraseResult": {
            "type": "object",
            "required": ["erased", "stillBlocked"],
            "additionalProperties": False,
            "properties": {
                "erased": {"type": "integer", "minimum": 0, "description": "Rows removed."},
                "stillBlocked": {
                    "type": "boolean",
                    "description": "Whether a suppression was kept (the customer had opted out).",
                },
            },
        },
        "HistoryEntry": history_entry,
        "HistoryPage": {
            "type": "object",
            "required": ["records", "paging"],
            "properties": {
                "records": {"type": "array", "items": _ref("HistoryEntry")},
                "paging": _ref("Paging"),
            },
        },
        "ErrorDetail": error_detail,
        "Error": error,
        "RecordsRejected": records_rejected,
        "WebhookError": webhook_error,
        "TwilioInbound": twilio_inbound,
        "RingCentralCaller": caller,
        "RingCentralInboundSms": inbound_sms,
        "RingCentralMessageStatus": message_status,
        "RingCentralConsentEvent": consent_event,
        "RingCentralNotification": ringcentral_notification,
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "store"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "unready"]},
                "store": {"type": "string", "enum": ["ok", "unreachable"]},
                "detail": {"type": "string"},
            },
        },
    }


# --- responses ----------------------------------------------------------------------------

_DECISION_HEADER: Final = {
    "X-Stopgate-Decision": {
        "description": "`refused; reason=<reason>` on refusals rendered in RingCentral's shape.",
        "schema": {"type": "string"},
    }
}


def _error(code: str, description: str) -> Json:
    """A RingCentral-shaped error response whose ``errorCode`` is ``code``."""
    return {
        "description": description,
        "headers": _DECISION_HEADER,
        "content": _json_content(
            {"allOf": [_ref("Error"), {"properties": {"errorCode": {"const": code}}}]}
        ),
    }


def _consents_errors(*, write: bool = False, records: bool = False) -> Json:
    """The errors of a consents route: ``write`` needs the admin role and reads a JSON body;
    ``records`` reads a ``records`` list (PATCH, DELETE)."""
    bad_input = {"allOf": [_ref("Error"), {"properties": {"errorCode": {"const": "CMN-101"}}}]}
    responses: Json = {
        "400": {
            "description": (
                "Bad input (`CMN-101`): a malformed JSON body or `records` list, a malformed "
                "filter or address (`reason` names the problem: `unparseable`, `too-short`, "
                "`invalid-country-code`, `unknown-opt-status`, `malformed-time`, "
                "`malformed-per-page`, `invalid-page-token`, …)"
                + ("; or no record of the list was valid (`invalid-records`)." if records else ".")
            ),
            "headers": _DECISION_HEADER,
            "content": _json_content(
                {"anyOf": [_ref("RecordsRejected"), bad_input]} if records else bad_input
            ),
        },
        "401": _error(
            "AGW-401",
            "No bearer token, or one that is neither configured nor a RingCentral token of the "
            "configured account.",
        ),
        "503": _error(
            "STOPGATE-503",
            "The consent store is unreachable (`store-unavailable`), or RingCentral could not "
            "confirm a RingCentral bearer token right now (`carrier-unreachable`).",
        ),
    }
    if not write:
        return responses
    responses["403"] = _error("STOPGATE-403", "The token's role (`auditor`) cannot write.")
    too_large = _json_content(
        {"allOf": [_ref("Error"), {"properties": {"errorCode": {"const": "STOPGATE-413"}}}]}
    )
    description = "A body over `max_body_bytes` (`STOPGATE-413`, `body-too-large`)."
    if records:
        description = (
            f"More than {DEFAULT_MAX_RECORDS_PER_CALL} records (`max_records_per_call`;"
            " `STOPGATE-413`, `too-many-records`), in RingCentral's shape; or "
            + description[0].lower()
            + description[1:]
        )
    responses["413"] = {
        "description": description,
        "headers": _DECISION_HEADER,
        "content": too_large,
    }
    return responses


def _webhook_error(description: str) -> Json:
    return {"description": description, "content": _json_content(_ref("WebhookError"))}


# --- parameters ---------------------------------------------------------------------------


def _parameters() -> Json:
    def query(name: str, schema: Json, description: str, **extra: Any) -> Json:
        return {"name": name, "in": "query", "schema": schema, "description": description, **extra}

    date = {"type": "string", "format": "date-time"}
    return {
        "account": {
            "name": "account",
            "in": "path",
            "required": True,
            "description": (
                "`~` (the account of the credentials) or an account id; Stopgate serves one "
                "account and does not check this segment."
            ),
            "schema": {"type": "string", "pattern": "^(~|[0-9]+)$", "default": "~"},
        },
        "from": query(
            "from",
            {"type": "array", "items": {"type": "string", "format": "sms-address"}},
            "Business addresses (`*` included); repeat the parameter or give a comma list.",
            style="form",
            explode=True,
        ),
        "to": query("to", {"type": "string", "format": "phone"}, "One customer number."),
        "optStatus": query(
            "optStatus",
            {"type": "array", "items": {"type": "string", "enum": _OPT_STATUSES}},
            "Statuses to list; repeat the parameter or give a comma list.",
            style="form",
            explode=True,
        ),
        "dateFrom": query("dateFrom", date, "Records modified at or after this time (ISO 8601)."),
        "dateTo": query("dateTo", date, "Records modified at or before this time (ISO 8601)."),
        "perPage": query(
            "perPage",
            {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE},
            "Records per page.",
        ),
        "pageToken": query(
            "pageToken",
            {"type": "string"},
            "A `nextPageToken` or `previousPageToken` from an earlier page of the same query "
            "(tokens are signed and tied to the filters they were issued for).",
        ),
        "historyFrom": query(
            "from",
            {"type": "string", "format": "sms-address"},
            "One business address (or `brand:NAME`, or `*`).",
        ),
    }


def _param(name: str) -> Json:
    return {"$ref": f"#/components/parameters/{name}"}


# --- operations ---------------------------------------------------------------------------

_BEARER: Final[list[Json]] = [{"bearerAuth": []}]
_OPEN: Final[list[Json]] = []


def _consents_paths() -> Json:
    filters = [_param(n) for n in ("from", "to", "optStatus", "dateFrom", "dateTo")]
    paging = [_param("perPage"), _param("pageToken")]
    write_ok = {
        "description": "The records as written (or removed), and the records that were not.",
        "content": _json_content(_ref("ConsentWriteResult")),
    }
    return {
        BASE: {
            "parameters": [_param("account")],
            "get": {
                "operationId": "listConsents",
                "tags": ["consents"],
                "summary": "List consent records (filtered, keyset-paged)",
                "description": "Ordered by customer, then business. Roles: admin or auditor.",
                "security": _BEARER,
                "parameters": filters + paging,
                "responses": {
                    "200": {
                        "description": "One page of records.",
                        "content": _json_content(_ref("ConsentPage")),
                    },
                    **_consents_errors(),
                },
            },
            "patch": {
                "operationId": "writeConsents",
                "tags": ["consents"],
                "summary": "Write consent records",
                "description": (
                    "Each record is validated on its own; the valid ones apply (the newest "
                    "record of a pair wins) and the invalid ones are listed in `errors` with "
                    "their index. Role: admin."
                ),
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": _json_content(_ref("PatchConsentsRequest")),
                },
                "responses": {"200": write_ok, **_consents_errors(write=True, records=True)},
            },
            "delete": {
                "operationId": "deleteConsents",
                "tags": ["consents"],
                "summary": "Remove consent records (the default applies again)",
                "description": (
                    "Answers the records that existed; each removal is kept in the history "
                    "(`newStatus` `Deleted`). Role: admin."
                ),
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": _json_content(_ref("DeleteConsentsRequest")),
                },
                "responses": {"200": write_ok, **_consents_errors(write=True, records=True)},
            },
        },
        BASE + "/export": {
            "parameters": [_param("account")],
            "get": {
                "operationId": "exportConsents",
                "tags": ["consents"],
                "summary": "Export consent records as CSV (streamed)",
                "description": (
                    "Columns `FROM,TO,STATUS,SOURCE,LAST_MODIFIED_TIME,NOTE` (RingCentral's "
                    "export columns first; `stopgate consents import` reads it back). The same "
                    "filters as the list, without paging. A store failure before the first rows "
                    "is a 503; one after them ends the stream early. Roles: admin or auditor."
                ),
                "security": _BEARER,
                "parameters": filters,
                "responses": {
                    "200": {
                        "description": "The CSV, header row first.",
                        "headers": {
                            "Content-Disposition": {
                                "schema": {"type": "string"},
                                "description": '`attachment; filename="consents.csv"`',
                            }
                        },
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_consents_errors(),
                },
            },
        },
        BASE + "/erase": {
            "parameters": [_param("account")],
            "post": {
                "operationId": "eraseCustomer",
                "tags": ["consents"],
                "summary": "Erase a customer's data, keeping them blocked",
                "description": (
                    "Removes every record, history entry, blocked send and footer mark of one "
                    "customer. If any record was an opt-out, a suppression stays: a wildcard "
                    "OptOut filed under a keyed hash of the number (listed with `to` "
                    "`erased:<hex>`), so sends to the number are still refused. Role: admin."
                ),
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": _json_content(_ref("EraseRequest")),
                },
                "responses": {
                    "200": {
                        "description": "What was erased.",
                        "content": _json_content(_ref("EraseResult")),
                    },
                    **_consents_errors(write=True),
                },
            },
        },
        BASE + "/history": {
            "parameters": [_param("account")],
            "get": {
                "operationId": "consentHistory",
                "tags": ["consents"],
                "summary": "Every consent change, oldest first (paged)",
                "description": "Roles: admin or auditor.",
                "security": _BEARER,
                "parameters": [_param("historyFrom"), _param("to"), *paging],
                "responses": {
                    "200": {
                        "description": "One page of history entries.",
                        "content": _json_content(_ref("HistoryPage")),
                    },
                    **_consents_errors(),
                },
            },
        },
    }


def _webhook_paths() -> Json:
    keyword_header = {
        "X-Stopgate-Keyword": {
            "description": "What the message was recognised as.",
            "schema": {"type": "string", "enum": _KEYWORDS},
        },
        "X-Stopgate-Revocation": {
            "description": "For a message that is no keyword, the plain-language reading: "
            "`revoke` (recorded as an opt-out), `unclear` (clarified once, flagged for review) "
            "or `none`. Absent for keywords and when `plain_language = false`.",
            "schema": {"type": "string", "enum": ["revoke", "unclear", "none"]},
        },
    }
    return {
        "/webhooks/twilio": {
            "post": {
                "operationId": "twilioInbound",
                "tags": ["webhooks"],
                "summary": 'Twilio\'s "a message comes in" webhook',
                "description": (
                    "Checks `X-Twilio-Signature` (HMAC-SHA1 over the URL - `STOPGATE_PUBLIC_URL` "
                    "behind a load balancer - and the sorted form parameters; JSON bodies are "
                    "signed through the `bodySHA256` query parameter), records the keyword's "
                    "consent change durably (store, else the local spool), then answers TwiML "
                    "with the confirmation - or the app's own TwiML answer for ordinary messages "
                    "when `STOPGATE_TWILIO_APP_WEBHOOK` answers within the deadline. A message "
                    "delivered again (same `MessageSid`) has no second effect."
                ),
                "security": _OPEN,
                "parameters": [
                    {
                        "name": "X-Twilio-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "Base64 HMAC-SHA1 keyed by the account's auth token.",
                    },
                    {
                        "name": "bodySHA256",
                        "in": "query",
                        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                        "description": "SHA-256 (hex) of a JSON body; the URL alone is signed.",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": _ref("TwilioInbound")},
                        _JSON: {"schema": _ref("TwilioInbound")},
                    },
                },
                "responses": {
                    "200": {
                        "description": "TwiML: the confirmation `<Message>`, or none.",
                        "headers": keyword_header,
                        "content": {"text/xml": {"schema": {"type": "string"}}},
                    },
                    "400": _webhook_error(
                        "The body cannot be decoded, or lacks MessageSid, From or To "
                        "(`malformed-webhook`)."
                    ),
                    "403": _webhook_error("The signature does not match (`bad-signature`)."),
                    "413": _webhook_error("The body is over `max_body_bytes` (`body-too-large`)."),
                    "415": _webhook_error(
                        "Neither form-encoded nor JSON (`unsupported-content-type`)."
                    ),
                    "503": _webhook_error(
                        "No auth token is configured (`twilio-webhook-disabled`), or neither the "
                        "store nor the spool could record the change "
                        "(`store-and-spool-unavailable`)."
                    ),
                },
            }
        },
        "/webhooks/ringcentral": {
            "post": {
                "operationId": "ringcentralInbound",
                "tags": ["webhooks"],
                "summary": "RingCentral's SMS event webhook (and its validation handshake)",
                "description": (
                    "The handshake: a request with `Validation-Token` and an empty body is "
                    "answered 200 at once with the same `Validation-Token` header and no body. "
                    "A notification must carry the configured verification token "
                    "(`Verification-Token`, or `Validation-Token`); an inbound SMS's keyword is "
                    "recorded durably before the 200. The same message id delivered again has "
                    "no second effect."
                ),
                "security": _OPEN,
                "parameters": [
                    {
                        "name": "Validation-Token",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "The handshake's token (echoed back).",
                    },
                    {
                        "name": "Verification-Token",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "The subscription's verification token.",
                    },
                ],
                "requestBody": {
                    "required": False,
                    "description": "Empty for the handshake.",
                    "content": _json_content(_ref("RingCentralNotification")),
                },
                "responses": {
                    "200": {
                        "description": (
                            "Handshake answered (`Validation-Token` echoed), or the notification "
                            "recorded (`X-Stopgate-Keyword`). No body."
                        ),
                        "headers": {
                            "Validation-Token": {
                                "description": "The handshake's token, echoed.",
                                "schema": {"type": "string"},
                            },
                            **keyword_header,
                        },
                    },
                    "400": _webhook_error(
                        "Not JSON, or not a notification Stopgate can read (`malformed-webhook`)."
                    ),
                    "403": _webhook_error(
                        "The verification token does not match (`bad-verification-token`)."
                    ),
                    "413": _webhook_error("The body is over `max_body_bytes` (`body-too-large`)."),
                    "503": _webhook_error(
                        "No verification token is configured (`ringcentral-webhook-disabled`), "
                        "or the event could not be recorded (`store-unavailable`, "
                        "`store-and-spool-unavailable`)."
                    ),
                },
            }
        },
    }


def _operational_paths() -> Json:
    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["operations"],
                "summary": "Liveness",
                "security": _OPEN,
                "responses": {
                    "200": {
                        "description": "The process serves requests.",
                        "content": _json_content(_ref("Health")),
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "Readiness: the store answers",
                "description": "A lost change feed is degraded, not unready.",
                "security": _OPEN,
                "responses": {
                    "200": {"description": "Ready.", "content": _json_content(_ref("Readiness"))},
                    "503": {
                        "description": "The store is unreachable.",
                        "content": _json_content(_ref("Readiness")),
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus text exposition",
                "security": _OPEN,
                "responses": {
                    "200": {
                        "description": "Counters and histograms (`stopgate_…`).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        PATH: {
            "get": {
                "operationId": "openapi",
                "tags": ["operations"],
                "summary": "This document",
                "security": _OPEN,
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": _json_content({"type": "object", "required": ["openapi"]}),
                    }
                },
            }
        },
    }


def build_document() -> Json:
    """The whole document, fresh (callers other than tests use :data:`DOCUMENT`)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Stopgate",
            "version": API_VERSION,
            "summary": "SMS consent gateway: the routes Stopgate serves itself.",
            "description": (
                "Stopgate sits in front of RingCentral and Twilio: apps change only their SDK's "
                "base URL, and sends to customers who opted out are refused in the carrier's "
                "own error format. The carrier paths it proxies - `/restapi/v1.0/…` and "
                "`/restapi/oauth/…` (RingCentral), `/2010-04-01/…` (Twilio) - are the carriers' "
                "APIs, consent-checked or forwarded unchanged, and are not described here; a path "
                "outside those prefixes and not listed here is a 404.\n\n"
                "Described here: the RingCentral-compatible consents API (bearer tokens with the "
                "`admin` or `auditor` role, or a RingCentral token of the configured account; "
                "errors in RingCentral's shape), the inbound webhooks, the operational "
                "routes, and the compliance console (`/admin/…`: a bearer token or the "
                "console's session cookie; errors in Stopgate's own shape)."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "consents", "description": "RingCentral-compatible consent API."},
            {"name": "webhooks", "description": "Inbound carrier webhooks (STOP/START/HELP)."},
            {"name": "operations", "description": "Health, readiness, metrics, this document."},
            {"name": "console", "description": "The compliance console and its data routes."},
        ],
        "paths": {
            **_consents_paths(),
            **console.paths(),
            **_webhook_paths(),
            **_operational_paths(),
        },
        "components": {
            "schemas": {**_schemas(), **console.schemas()},
            "parameters": {**_parameters(), **console.parameters()},
            "securitySchemes": {
                "consoleSession": console.SECURITY_SCHEME,
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "`STOPGATE_ADMIN_TOKEN` (admin), a `[[tokens]]` entry of the config "
                        "(admin or auditor), or a RingCentral access token of the configured "
                        "account (admin)."
                    ),
                },
            },
        },
    }


DOCUMENT: Final = build_document()
_BODY: Final = json.dumps(DOCUMENT, separators=(",", ":")).encode()


async def openapi_route(request: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type=_JSON, charset="utf-8")


def add_routes(app: web.Application) -> None:
    """``GET /openapi.json``; register before the carrier catch-all."""
    app.router.add_get(PATH, openapi_route)
