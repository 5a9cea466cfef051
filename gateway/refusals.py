"""Refusals in the carrier's own error shape, with Stopgate's decision header."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.dialects.base import Dialect, DialectError, ErrorKind
from gateway.errors import BadRequest, UpstreamConnectFailed, UpstreamTimeout, UpstreamUnreachable
from gateway.keys import METRICS
from gateway.send_request import SendRequest

log = logging.getLogger("stopgate.send")

DECISION_HEADER = "X-Stopgate-Decision"


def refuse(
    dialect: Dialect, error: DialectError, request_id: str, decision: str = "refused"
) -> web.Response:
    response = web.json_response(dialect.error_body(error), status=error.status)
    response.headers[DECISION_HEADER] = f"{decision}; reason={error.reason}"
    response.headers["X-Request-Id"] = request_id
    return response


def refuse_bad_request(dialect: Dialect, exc: BadRequest, request_id: str) -> web.Response:
    kind = {
        401: ErrorKind.UNAUTHORIZED,
        403: ErrorKind.FORBIDDEN,
        503: ErrorKind.UNAVAILABLE,
        413: ErrorKind.TOO_LARGE,
        415: ErrorKind.UNSUPPORTED_MEDIA,
    }.get(exc.status, ErrorKind.BAD_REQUEST)
    return refuse(dialect, DialectError(kind, exc.reason, exc.message, exc.parameter), request_id)


def refuse_upstream_failure(
    request: SendRequest,
    dialect: Dialect,
    exc: UpstreamUnreachable | UpstreamTimeout,
    request_id: str,
) -> web.Response:
    timeout = isinstance(exc, UpstreamTimeout)
    kind = ErrorKind.UPSTREAM_TIMEOUT if timeout else ErrorKind.UPSTREAM_UNREACHABLE
    request.app[METRICS].upstream_errors.labels(dialect.name, kind.value).inc()
    request.app[METRICS].sends.labels(dialect.name, "refused", kind.value).inc()
    log.warning("upstream failure on %s: %s", request_id, exc)
    if timeout:
        message = "The carrier did not answer in time; the send may or may not have been accepted"
    elif isinstance(exc, UpstreamConnectFailed):
        message = "The carrier could not be reached; the send was not delivered"
    else:
        # A reset or a body cut short after the request went out: the carrier may have sent
        # the message, and an app retrying on "unreachable" would send it twice.
        message = "The connection to the carrier broke; the send may or may not have been accepted"
    return refuse(dialect, DialectError(kind, kind.value, message), request_id)
