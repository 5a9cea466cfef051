"""The "Needs review" list: inbound messages the plain-language classifier found unclear.

``GET /admin/reviews`` (admin or auditor) query parameters, all optional:

``status``     ``open`` (default), ``opted-out``, ``dismissed`` or ``all``
``per_page``   1..200 (default 50)
``before_id``  the ``nextBeforeId`` of an earlier page (entries are newest first)

Each entry carries the message text, the classifier's rule and explanation, the pair, whether
the one clarifying text went out, and how it was closed. Admin writes (CSRF and origin checked
for a cookie session, like every console write):

``POST /admin/reviews/{id}/opt-out``  record the pair's OptOut (source ``Recipient``: the customer
                                      asked, in words the classifier could not be sure of; actor:
                                      the admin) and close the entry
``POST /admin/reviews/{id}/dismiss``  close the entry, nothing else changes

Closing an entry that is not open answers 409 ``review-not-open``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.admin import sessions
from gateway.errors import BadRequest
from gateway.events import follow_up_for
from gateway.keys import INDEX, METRICS, SETTINGS, STORE
from gateway.store.base import REVIEW_STATUSES, ConsentChange, ReviewEntry
from policy.consent import OptStatus, Source, format_time
from policy.numbers import display_key

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200


def review_json(entry: ReviewEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "receivedAt": format_time(entry.created_us),
        "provider": entry.provider,
        "messageId": entry.message_id,
        "from": display_key(entry.to_key),
        "to": display_key(entry.from_key),
        "text": entry.text,
        "rule": entry.rule,
        "explanation": entry.explanation,
        "language": entry.language,
        "clarified": entry.clarified,
        "status": entry.status,
        "resolvedAt": format_time(entry.resolved_us) if entry.resolved_us is not None else None,
        "resolvedBy": entry.resolved_by,
    }


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    text = request.query.get(name, "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest("malformed-parameter", f"{name} must be {low}..{high}", parameter=name)
    return int(text)


async def list_reviews(request: web.Request, caller: sessions.Caller) -> web.Response:
    status = request.query.get("status", "open").strip() or "open"
    if status not in (*REVIEW_STATUSES, "all"):
        raise BadRequest(
            "unknown-status",
            "status must be one of " + ", ".join((*REVIEW_STATUSES, "all")),
            parameter="status",
        )
    per_page = _int_param(request, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    before_id = _int_param(request, "before_id", None, 1, 2**63 - 1)
    entries = await request.app[STORE].reviews(
        status=None if status == "all" else status, before_id=before_id, limit=per_page + 1
    )
    page = entries[:per_page]
    return web.json_response(
        {
            "reviews": [review_json(e) for e in page],
            "nextBeforeId": page[-1].id if len(entries) > per_page else None,
        }
    )


async def _open_entry(request: web.Request) -> ReviewEntry:
    review_id = request.match_info["review_id"]
    if not review_id.isascii() or not review_id.isdigit() or len(review_id) > 18:
        raise BadRequest("unknown-review", "no such review entry", status=404)
    wanted = int(review_id)
    found = await request.app[STORE].reviews(status="open", before_id=wanted + 1, limit=1)
    if not found or found[0].id != wanted:
        raise BadRequest("review-not-open", f"review {wanted} is not open", status=409)
    return found[0]


async def _close(request: web.Request, entry: ReviewEntry, status: str, actor: str) -> web.Response:
    closed = await request.app[STORE].resolve_review(
        entry.id, status, actor, time.time_ns() // 1000
    )
    if closed is None:
        raise BadRequest("review-not-open", f"review {entry.id} is not open", status=409)
    request.app[METRICS].review_resolved.labels(status).inc()
    return web.json_response({"review": review_json(closed)})


async def opt_out(request: web.Request, caller: sessions.Caller) -> web.Response:
    entry = await _open_entry(request)
    app = request.app
    index = app[INDEX]
    scopes = index.keyword_scopes(
        OptStatus.OPT_OUT, [entry.from_key], None, everywhere=app[SETTINGS].opt_out_scope == "all"
    )
    note = f"plain-language review #{entry.id}: {entry.explanation}"
    changes = [
        ConsentChange(
            scope, entry.to_key, OptStatus.OPT_OUT, Source.RECIPIENT, caller.principal.name, note
        )
        for scope in scopes
    ]
    applied = await index.apply(changes, follow_up_for(app[SETTINGS]))
    app[METRICS].count_applied(applied)
    return await _close(request, entry, "opted-out", caller.principal.name)


async def dismiss(request: web.Request, caller: sessions.Caller) -> web.Response:
    entry = await _open_entry(request)
    return await _close(request, entry, "dismissed", caller.principal.name)
