"""The console's part of ``GET /openapi.json``: its paths, schemas and parameters, merged into the
document by :mod:`gateway.openapi` (which owns the shared schemas referenced here: ``Paging``,
``ConsentPage``, ``HistoryPage``, ``ConsentWriteResult``, ``PatchConsentsRequest``,
``RecordsRejected`` and the consents API's parameters)."""

from __future__ import annotations

from typing import Any, Final

from gateway.admin import blocked, reviews
from gateway.admin.routes import (
    BLOCKED,
    CONSENTS,
    DAILY,
    MAX_DAYS,
    PAGE,
    REVIEWS,
    SESSION,
    STATIC,
)
from gateway.admin.sessions import COOKIE, CSRF_HEADER
from gateway.admin.suppression_routes import CSV_TYPES, LIST, MAX_NOTE, SUPPRESSIONS
from gateway.store.base import REVIEW_STATUSES

Json = dict[str, Any]

_JSON: Final = "application/json"
SECURITY: Final[list[Json]] = [{"bearerAuth": []}, {"consoleSession": []}]
_OPEN: Final[list[Json]] = []


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str) -> Json:
    return {"$ref": f"#/components/parameters/{name}"}


def _json(schema: Json) -> Json:
    return {_JSON: {"schema": schema}}


def _error(description: str) -> Json:
    return {"description": description, "content": _json(_ref("ConsoleError"))}


def _errors(*, write: bool = False, bad_input: str | None = None) -> Json:
    responses: Json = {
        "401": _error("No valid bearer token and no live console session (`unauthorized`)."),
        "403": _error(
            "The role cannot do this (`forbidden`: the auditor's writes)"
            + (
                "; or a write by session cookie without the session's CSRF token "
                "(`csrf-token`) or from another origin (`cross-origin`)."
                if write
                else "."
            )
        ),
        "503": _error(
            "The store is unreachable (`store-unavailable`), or RingCentral could not confirm a "
            "RingCentral bearer token right now (`carrier-unreachable`)."
        ),
    }
    if bad_input:
        responses["400"] = _error(bad_input)
    return responses


def schemas() -> Json:
    return {
        **review_schemas(),
        **_suppression_schemas(),
        "ConsoleError": {
            "type": "object",
            "description": "Stopgate's own error shape, as on every console route.",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["reason", "message"],
                    "additionalProperties": False,
                    "properties": {
                        "reason": {"type": "string"},
                        "message": {"type": "string"},
                    },
                }
            },
        },
        "SignInRequest": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": {
                    "type": "string",
                    "minLength": 1,
                    "description": "A bearer token Stopgate accepts (admin or auditor).",
                }
            },
        },
        "ConsoleSession": {
            "type": "object",
            "required": ["name", "role", "canWrite", "reasons", "dialects"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "description": "The principal, as history names it."},
                "role": {"type": "string", "enum": ["admin", "auditor"]},
                "canWrite": {"type": "boolean"},
                "reasons": {"type": "array", "items": {"type": "string"}},
                "dialects": {"type": "array", "items": {"type": "string"}},
                "csrfToken": {
                    "type": "string",
                    "description": f"Send it as `{CSRF_HEADER}` on the session's writes "
                    "(absent when the caller used a bearer token).",
                },
                "expiresAt": {"type": "string", "format": "date-time"},
            },
        },
        "BlockedSend": {
            "type": "object",
            "required": [
                "id",
                "time",
                "dialect",
                "from",
                "to",
                "reason",
                "requestId",
                "textLength",
                "textSha256",
            ],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string"},
                "time": {"type": "string", "format": "date-time"},
                "dialect": {"type": "string"},
                "from": {"type": "string"},
                "to": {"type": "string"},
                "reason": {"type": "string"},
                "requestId": {"type": "string"},
                "textLength": {"type": "integer", "minimum": 0},
                "textSha256": {"type": "string"},
                "text": {
                    "type": "string",
                    "description": "The message, only when `blocked_log_text = true`.",
                },
            },
        },
        "BlockedPage": {
            "type": "object",
            "required": ["records", "paging", "totals"],
            "additionalProperties": False,
            "properties": {
                "records": {"type": "array", "items": _ref("BlockedSend")},
                "paging": _ref("Paging"),
                "totals": {
                    "type": "object",
                    "description": "Every entry matching the filter (not just this page).",
                    "required": ["count", "byReason"],
                    "additionalProperties": False,
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "byReason": {
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 1},
                        },
                    },
                },
            },
        },
        "DailyActivity": {
            "type": "object",
            "required": ["days"],
            "additionalProperties": False,
            "properties": {
                "days": {
                    "type": "array",
                    "maxItems": MAX_DAYS,
                    "items": {
                        "type": "object",
                        "required": ["date", "blocked", "optOuts"],
                        "additionalProperties": False,
                        "properties": {
                            "date": {"type": "string", "format": "date"},
                            "blocked": {"type": "integer", "minimum": 0},
                            "optOuts": {"type": "integer", "minimum": 0},
                        },
                    },
                }
            },
        },
    }


def parameters() -> Json:
    def query(name: str, schema: Json, description: str, **extra: Any) -> Json:
        return {"name": name, "in": "query", "schema": schema, "description": description, **extra}

    date = {"type": "string", "format": "date-time"}
    return {
        "consoleFromTime": query(
            "from_time", date, "At or after this time (ISO 8601; naive means UTC)."
        ),
        "consoleToTime": query("to_time", date, "Strictly before this time (ISO 8601)."),
    }


def paths() -> Json:
    def asset(operation_id: str, summary: str, content_type: str) -> Json:
        return {
            "get": {
                "operationId": operation_id,
                "tags": ["console"],
                "summary": summary,
                "security": _OPEN,
                "responses": {
                    "200": {
                        "description": "Served from the package (no CDN). The page carries a "
                        "strict `Content-Security-Policy`.",
                        "content": {content_type: {"schema": {"type": "string"}}},
                    }
                },
            }
        }

    time_range = [_param("consoleFromTime"), _param("consoleToTime")]
    blocked_filters = [
        *time_range,
        {
            "name": "business",
            "in": "query",
            "schema": {"type": "string", "format": "sms-address"},
            "description": "A business address in any written form.",
        },
        {
            "name": "customer",
            "in": "query",
            "schema": {"type": "string", "format": "phone"},
            "description": "A customer number in any written form.",
        },
        {
            "name": "reason",
            "in": "query",
            "schema": {
                "type": "array",
                "maxItems": blocked.MAX_REASONS,
                "items": {"type": "string", "pattern": "^[a-z:-]{1,40}$"},
            },
            "style": "form",
            "explode": True,
            "description": "Reasons (repeat or comma list), e.g. "
            + ", ".join(blocked.KNOWN_REASONS),
        },
        {
            "name": "dialect",
            "in": "query",
            "schema": {"type": "string", "enum": list(blocked.DIALECT_NAMES)},
            "description": "The carrier API the send came through.",
        },
    ]
    consent_filters = [_param(n) for n in ("from", "to", "optStatus", "dateFrom", "dateTo")]
    consent_paging = [_param("perPage"), _param("pageToken")]
    return {
        PAGE: asset("consolePage", "The compliance console (a web page)", "text/html"),
        STATIC + "console.js": asset("consoleScript", "The console's script", "text/javascript"),
        STATIC + "console.css": asset("consoleStyles", "The console's styles", "text/css"),
        SESSION: {
            "post": {
                "operationId": "consoleSignIn",
                "tags": ["console"],
                "summary": "Sign in with a bearer token; opens a session (cookie)",
                "description": (
                    f"Sets `{COOKIE}` (HttpOnly, SameSite=Strict, Path=/admin, Secure over "
                    "https): a random id mapped in the store to the principal, with an expiry. "
                    "The token is not kept. A browser request from another origin is refused."
                ),
                "security": _OPEN,
                "requestBody": {"required": True, "content": _json(_ref("SignInRequest"))},
                "responses": {
                    "200": {
                        "description": "Signed in.",
                        "headers": {
                            "Set-Cookie": {
                                "schema": {"type": "string"},
                                "description": "The session cookie.",
                            }
                        },
                        "content": _json(_ref("ConsoleSession")),
                    },
                    "400": _error("Not JSON, or no `token` (`malformed-body`, `missing-token`)."),
                    "401": _error("The token is not valid here (`unauthorized`)."),
                    "403": _error("Sent by a page of another origin (`cross-origin`)."),
                    "413": _error("A body over `max_body_bytes` (`body-too-large`)."),
                    "415": _error("Not `application/json` (`unsupported-content-type`)."),
                    "429": {
                        "description": (
                            "Too many failed sign-ins from this client address "
                            "(`too-many-attempts`; `sign_in_failures_per_minute`)."
                        ),
                        "headers": {
                            "Retry-After": {
                                "schema": {"type": "string", "pattern": "^[0-9]+$"},
                                "required": True,
                                "description": "Seconds until a sign-in is tried again.",
                            }
                        },
                        "content": _json(_ref("ConsoleError")),
                    },
                    "503": _error(
                        "The store is unreachable, or RingCentral could not confirm a "
                        "RingCentral token right now."
                    ),
                },
            },
            "get": {
                "operationId": "consoleWhoAmI",
                "tags": ["console"],
                "summary": "Who is signed in (and the session's CSRF token)",
                "security": SECURITY,
                "responses": {
                    "200": {
                        "description": "The principal.",
                        "content": _json(_ref("ConsoleSession")),
                    },
                    **_errors(),
                },
            },
            "delete": {
                "operationId": "consoleSignOut",
                "tags": ["console"],
                "summary": "Sign out (ends the session, clears the cookie)",
                "description": (
                    f"With a live session it needs `{CSRF_HEADER}` and a same-origin `Origin`; "
                    "without one it just clears the cookie."
                ),
                "security": _OPEN,
                "responses": {
                    "204": {"description": "Signed out."},
                    "403": _error("No valid CSRF token, or another origin."),
                    "503": _error("The store is unreachable (`store-unavailable`)."),
                },
            },
        },
        BLOCKED: {
            "get": {
                "operationId": "blockedSends",
                "tags": ["console"],
                "summary": "The blocked-send log: filtered, keyset-paged, with totals; or CSV",
                "description": (
                    "Newest first. `format=csv` streams every matching entry as "
                    "`TIME,DIALECT,FROM,TO,REASON,REQUEST_ID,TEXT_LENGTH,TEXT_SHA256,TEXT` "
                    "(cells a spreadsheet would run as a formula are neutralised). Roles: admin "
                    "or auditor (bearer token or console session)."
                ),
                "security": SECURITY,
                "parameters": [
                    *blocked_filters,
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": blocked.MAX_PER_PAGE,
                            "default": blocked.DEFAULT_PER_PAGE,
                        },
                        "description": "Entries per page (JSON).",
                    },
                    {
                        "name": "page_token",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "A `nextPageToken` of an earlier page of the same filter.",
                    },
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
                        "description": "JSON pages, or the whole filter as CSV.",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "A page (JSON), or the CSV.",
                        "content": {
                            **_json(_ref("BlockedPage")),
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(),
                    "400": {
                        "description": (
                            "A malformed filter (`malformed-time`, an address problem such as "
                            "`unparseable`, `unknown-dialect`, `malformed-reason`, "
                            "`malformed-per-page`, `invalid-page-token`, `unknown-format`); or, "
                            "in plain text, a request line over 8190 bytes (the HTTP layer)."
                        ),
                        "content": {
                            **_json(_ref("ConsoleError")),
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                },
            }
        },
        DAILY: {
            "get": {
                "operationId": "dailyActivity",
                "tags": ["console"],
                "summary": "Blocked sends and opt-outs per UTC day (the console's chart)",
                "description": (
                    "Every UTC day from `from_time`'s to `to_time`'s (default: the last 30 "
                    f"days), at most {MAX_DAYS}; opt-outs are history entries whose new status "
                    "is OptOut. Roles: admin or auditor."
                ),
                "security": SECURITY,
                "parameters": time_range,
                "responses": {
                    "200": {"description": "The days.", "content": _json(_ref("DailyActivity"))},
                    **_errors(
                        bad_input="A malformed or reversed range, or one over the limit "
                        "(`malformed-time`, `range-too-long`)."
                    ),
                },
            }
        },
        CONSENTS: {
            "get": {
                "operationId": "consoleListConsents",
                "tags": ["console"],
                "summary": "The consents list, behind the console's sign-in",
                "description": "As `GET …/sms/consents` (same parameters and pages).",
                "security": SECURITY,
                "parameters": consent_filters + consent_paging,
                "responses": {
                    "200": {"description": "A page.", "content": _json(_ref("ConsentPage"))},
                    **_errors(bad_input="A malformed filter or page token."),
                },
            },
            "patch": {
                "operationId": "consoleWriteConsents",
                "tags": ["console"],
                "summary": "Opt out / opt in by hand (a note is required)",
                "description": (
                    "As `PATCH …/sms/consents`, but every record needs a non-empty `note`. "
                    f"Role: admin. With the session cookie: `{CSRF_HEADER}` and a same-origin "
                    "`Origin` are required."
                ),
                "security": SECURITY,
                "parameters": [
                    {
                        "name": CSRF_HEADER,
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "The session's CSRF token (cookie sessions).",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": _json(_ref("PatchConsentsRequest")),
                },
                "responses": {
                    "200": {
                        "description": "The records as written, and those that were not.",
                        "content": _json(_ref("ConsentWriteResult")),
                    },
                    "400": {
                        "description": (
                            "A malformed body, a record without a note (`missing-note`), or no "
                            "valid record (`invalid-records`, RingCentral's shape)."
                        ),
                        "content": _json(
                            {"anyOf": [_ref("ConsoleError"), _ref("RecordsRejected")]}
                        ),
                    },
                    "413": {
                        "description": (
                            "More records than `max_records_per_call` (`too-many-records`), or "
                            "a body over `max_body_bytes` (`body-too-large`)."
                        ),
                        "content": _json(_ref("ConsoleError")),
                    },
                    **_errors(write=True),
                },
            },
        },
        CONSENTS + "/history": {
            "get": {
                "operationId": "consoleConsentHistory",
                "tags": ["console"],
                "summary": "A pair's (or every) consent history, behind the console's sign-in",
                "description": "As `GET …/sms/consents/history`.",
                "security": SECURITY,
                "parameters": [_param("historyFrom"), _param("to"), *consent_paging],
                "responses": {
                    "200": {"description": "A page.", "content": _json(_ref("HistoryPage"))},
                    **_errors(bad_input="A malformed address or page token."),
                },
            }
        },
        CONSENTS + "/export": {
            "get": {
                "operationId": "consoleExportConsents",
                "tags": ["console"],
                "summary": "The consents CSV, behind the console's sign-in",
                "description": "As `GET …/sms/consents/export`.",
                "security": SECURITY,
                "parameters": consent_filters,
                "responses": {
                    "200": {
                        "description": "The CSV, header row first.",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_errors(bad_input="A malformed filter."),
                },
            }
        },
        **_review_paths(),
        **_suppression_paths(),
    }


def _review_paths() -> Json:
    """The "Needs review" list of unclear plain-language messages, and its two admin writes."""

    def close(operation_id: str, summary: str, description: str) -> Json:
        return {
            "post": {
                "operationId": operation_id,
                "tags": ["console"],
                "summary": summary,
                "description": description
                + f" Role: admin. With the session cookie: `{CSRF_HEADER}` and a same-origin "
                "`Origin` are required.",
                "security": SECURITY,
                "parameters": [
                    {
                        "name": "review_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The entry's `id`.",
                    },
                    {
                        "name": CSRF_HEADER,
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "The session's CSRF token (cookie sessions).",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The entry, closed.",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["review"],
                                "additionalProperties": False,
                                "properties": {"review": _ref("ReviewEntry")},
                            }
                        ),
                    },
                    "404": _error("No such entry (`unknown-review`)."),
                    "409": _error("The entry is not open (`review-not-open`)."),
                    **_errors(write=True),
                },
            }
        }

    return {
        REVIEWS: {
            "get": {
                "operationId": "reviewEntries",
                "tags": ["console"],
                "summary": "Needs review: inbound messages that may be plain-language revocations",
                "description": (
                    "Messages the plain-language classifier found `unclear`, newest first, with "
                    "the classifier's rule and explanation and whether the one clarifying text "
                    "went out. Roles: admin or auditor."
                ),
                "security": SECURITY,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": [*REVIEW_STATUSES, "all"],
                            "default": "open",
                        },
                        "description": "Which entries.",
                    },
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": reviews.MAX_PER_PAGE,
                            "default": reviews.DEFAULT_PER_PAGE,
                        },
                        "description": "Entries per page.",
                    },
                    {
                        "name": "before_id",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1},
                        "description": "The `nextBeforeId` of an earlier page.",
                    },
                ],
                "responses": {
                    "200": {"description": "A page.", "content": _json(_ref("ReviewPage"))},
                    **_errors(
                        bad_input="A malformed parameter (`unknown-status`, `malformed-parameter`)."
                    ),
                },
            }
        },
        REVIEWS + "/{review_id}/opt-out": close(
            "reviewOptOut",
            "Opt the pair of a review entry out, and close the entry",
            "Writes the pair's OptOut (source `Recipient`, the admin as actor, the "
            "classifier's explanation in the note), as the customer's STOP would.",
        ),
        REVIEWS + "/{review_id}/dismiss": close(
            "reviewDismiss",
            "Close a review entry: not a revocation",
            "Nothing else changes.",
        ),
    }


def review_schemas() -> Json:
    entry = {
        "type": "object",
        "required": [
            "id",
            "receivedAt",
            "provider",
            "messageId",
            "from",
            "to",
            "text",
            "rule",
            "explanation",
            "language",
            "clarified",
            "status",
            "resolvedAt",
            "resolvedBy",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"},
            "receivedAt": {"type": "string", "format": "date-time"},
            "provider": {"type": "string"},
            "messageId": {"type": "string"},
            "from": {"type": "string", "description": "The customer who wrote."},
            "to": {"type": "string", "description": "The business number written to."},
            "text": {"type": "string"},
            "rule": {"type": "string"},
            "explanation": {"type": "string"},
            "language": {"type": "string"},
            "clarified": {
                "type": "boolean",
                "description": "This message was answered with the one clarifying text.",
            },
            "status": {"type": "string", "enum": list(REVIEW_STATUSES)},
            "resolvedAt": {"type": ["string", "null"], "format": "date-time"},
            "resolvedBy": {"type": ["string", "null"]},
        },
    }
    page = {
        "type": "object",
        "required": ["reviews", "nextBeforeId"],
        "additionalProperties": False,
        "properties": {
            "reviews": {"type": "array", "items": _ref("ReviewEntry")},
            "nextBeforeId": {"type": ["integer", "null"]},
        },
    }
    return {"ReviewEntry": entry, "ReviewPage": page}


SECURITY_SCHEME: Final[Json] = {
    "type": "apiKey",
    "in": "cookie",
    "name": COOKIE,
    "description": "The compliance console's session (opened by `POST /admin/session`).",
}


def _suppression_schemas() -> Json:
    time_ = {"type": "string", "format": "date-time"}
    listed: Json = {
        "type": "object",
        "description": "A published suppression list.",
        "required": ["name", "kind", "members", "asOf", "importedTime", "reason"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["internal", "dnc", "reassigned"]},
            "members": {"type": "integer", "minimum": 0},
            "asOf": time_,
            "importedTime": time_,
            "reason": {"type": ["string", "null"]},
        },
    }
    return {
        "SuppressionList": listed,
        "SuppressionLists": {
            "type": "object",
            "required": ["records"],
            "additionalProperties": False,
            "properties": {"records": {"type": "array", "items": _ref("SuppressionList")}},
        },
        "SuppressionImport": {
            "type": "object",
            "description": "What an import published. Rejected rows are not listed (the first "
            "100 are reported); the rest of the list is published all the same.",
            "required": ["list", "added", "released", "rows", "rejected", "rejections"],
            "additionalProperties": False,
            "properties": {
                "list": _ref("SuppressionList"),
                "added": {"type": "integer", "minimum": 0},
                "released": {"type": "integer", "minimum": 0},
                "rows": {"type": "integer", "minimum": 0},
                "rejected": {"type": "integer", "minimum": 0},
                "rejections": {
                    "type": "array",
                    "maxItems": 100,
                    "items": {
                        "type": "object",
                        "required": ["line", "reason"],
                        "additionalProperties": False,
                        "properties": {
                            "line": {"type": "integer", "minimum": 1},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
        "SuppressionDropped": {
            "type": "object",
            "required": ["name", "released"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "released": {"type": "integer", "minimum": 0},
            },
        },
    }


def _suppression_paths() -> Json:
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The list's name: 1-32 of a-z 0-9 _ - (folded to lower case).",
    }
    bad_name = "A malformed list name (`bad-list-name`)"
    return {
        SUPPRESSIONS: {
            "get": {
                "operationId": "suppressionLists",
                "tags": ["console"],
                "summary": "Every published suppression list, its kind and size",
                "security": SECURITY,
                "responses": {
                    "200": {
                        "description": "The lists, by name.",
                        "content": _json(_ref("SuppressionLists")),
                    },
                    **_errors(),
                },
            }
        },
        LIST: {
            "parameters": [name],
            "put": {
                "operationId": "importSuppressionList",
                "tags": ["console"],
                "summary": "Import or refresh a suppression list from CSV (admin)",
                "description": (
                    "The body is one number a line (extra columns ignored), or CSV whose header "
                    "names the number column (`TO`, `Number`, `Phone`, ...). It is streamed "
                    "(no size limit, flat memory) and canonicalised off the event loop; the new "
                    "members replace the old ones in one transaction when the body ends, and "
                    "every gateway's cache is flushed. Same effect as `stopgate suppressions "
                    "import`."
                ),
                "security": SECURITY,
                "parameters": [
                    {
                        "name": "kind",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["internal", "dnc", "reassigned"]},
                        "description": "internal (default): always blocks; dnc: a customer's "
                        "OptIn overrides it; reassigned: only an OptIn newer than `asOf` does.",
                    },
                    {
                        "name": "asOf",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "The list's date (ISO 8601; default: now).",
                    },
                    {
                        "name": "reason",
                        "in": "query",
                        "schema": {"type": "string", "maxLength": MAX_NOTE},
                        "description": "Why these numbers are suppressed (kept, shown).",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {t: {"schema": {"type": "string"}} for t in CSV_TYPES},
                },
                "responses": {
                    "200": {
                        "description": "Published.",
                        "content": _json(_ref("SuppressionImport")),
                    },
                    "415": _error("Not CSV text (`unsupported-content-type`)."),
                    **_errors(
                        write=True,
                        bad_input=bad_name + ", kind, time or reason; or a body that is not "
                        "UTF-8 (`malformed-body`).",
                    ),
                },
            },
            "delete": {
                "operationId": "dropSuppressionList",
                "tags": ["console"],
                "summary": "Drop a suppression list, releasing its numbers (admin)",
                "security": SECURITY,
                "responses": {
                    "200": {
                        "description": "Dropped (`released` is 0 for an unknown list).",
                        "content": _json(_ref("SuppressionDropped")),
                    },
                    **_errors(write=True, bad_input=bad_name + "."),
                },
            },
        },
    }
