"""Response shapes of the two carriers: errors, request-id headers, time stamps, numbers.

The simulator keeps its own copy of these facts on purpose: it must not share parsing or
formatting code with ``gateway.dialects``, so that a misreading of a carrier's wire format
cannot hide in both.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from gateway.carriersim.state import Provider, utcnow

TWILIO_ERROR_DOCS = "https://www.twilio.com/docs/errors/"

# Anything a carrier would take as a telephone number or a short code: digits with the usual
# separators, 3 to 15 digits, an optional leading "+". Deliberately loose: the simulator is
# not the place that canonicalises numbers.
_NUMBER_SHAPE = re.compile(r"^\+?[0-9 ().\-]+$")


def provider_of(path: str) -> Provider | None:
    """Which carrier's API a path belongs to (by its first segment)."""
    if path == "/restapi" or path.startswith("/restapi/"):
        return "ringcentral"
    if path == "/2010-04-01" or path.startswith("/2010-04-01/"):
        return "twilio"
    return None


def plausible_number(value: str) -> bool:
    if not _NUMBER_SHAPE.match(value):
        return False
    digits = sum(ch.isdigit() for ch in value)
    return 3 <= digits <= 15


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` of an ``Authorization: Basic …`` header, or None if it is not one.

    Our own decoder: aiohttp's ``BasicAuth`` is deprecated (3.14) and goes away in 4.0.
    """
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def rfc2822_now() -> str:
    """Twilio's date form, e.g. ``Thu, 02 May 2024 12:00:00 +0000``."""
    return format_datetime(utcnow())


def request_id_headers(provider: Provider | None) -> dict[str, str]:
    if provider == "ringcentral":
        return {"RCRequestId": str(uuid.uuid4())}
    if provider == "twilio":
        return {"Twilio-Request-Id": "RQ" + uuid.uuid4().hex}
    return {}


def json_reply(
    body: Any,
    *,
    status: int = 200,
    provider: Provider | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    all_headers = request_id_headers(provider)
    if headers:
        all_headers.update(headers)
    return web.json_response(body, status=status, headers=all_headers)


def sim_error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    """An error of the simulator's own ``/sim`` routes: ``{"error", "message", …}``."""
    return web.json_response({"error": error, "message": message, **extra}, status=status)


# ---- RingCentral -------------------------------------------------------------------------


def rc_error(
    status: int,
    code: str,
    message: str,
    *,
    parameter: str | None = None,
    inner_code: str | None = None,
    inner_message: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The RingCentral REST error body: ``{errorCode, message, errors: [{…}]}``."""
    detail: dict[str, Any] = {
        "errorCode": inner_code or code,
        "message": inner_message or message,
    }
    if parameter is not None:
        detail["parameterName"] = parameter
    body = {"errorCode": code, "message": message, "errors": [detail]}
    return json_reply(body, status=status, provider="ringcentral", headers=headers)


def rc_invalid_parameter(parameter: str, message: str | None = None) -> web.Response:
    text = message or f"Parameter [{parameter}] value is invalid"
    return rc_error(400, "CMN-101", text, parameter=parameter)


def rc_missing_parameter(parameter: str) -> web.Response:
    return rc_error(
        400, "CMN-101", f"Required parameter [{parameter}] is missing", parameter=parameter
    )


def rc_oauth_error(
    status: int,
    error: str,
    code: str,
    description: str,
    *,
    parameters: list[dict[str, str]] | None = None,
) -> web.Response:
    """The OAuth error body of ``/restapi/oauth/*``: RFC 6749 fields plus RingCentral's list."""
    detail: dict[str, Any] = {"errorCode": code, "message": description}
    if parameters:
        detail["parameters"] = parameters
    body = {"error": error, "errors": [detail], "error_description": description}
    # RFC 6749 §5.1: token endpoint answers must not be cached.
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    return json_reply(body, status=status, provider="ringcentral", headers=headers)


# ---- Twilio ------------------------------------------------------------------------------


def twilio_error(status: int, code: int, message: str) -> web.Response:
    """Twilio's legacy error body: exactly ``code``, ``message``, ``more_info``, ``status``.

    Never with ``type``/``title``: the SDK would then raise ``TwilioServiceException``.
    """
    body = {
        "code": code,
        "message": message,
        "more_info": f"{TWILIO_ERROR_DOCS}{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return json_reply(body, status=status, provider="twilio", headers=headers)


# ---- both --------------------------------------------------------------------------------


def server_error(provider: Provider | None, status: int) -> web.Response:
    """A 5xx in the shape of whichever carrier owns the path."""
    if provider == "ringcentral":
        if status == 500:
            return rc_error(500, "CMN-500", "Internal Server Error")
        return rc_error(status, "CMN-201", "Service Temporary Unavailable")
    if provider == "twilio":
        if status == 503:
            return twilio_error(503, 20503, "Service unavailable")
        return twilio_error(status, 20500, "An internal server error has occurred")
    return json_reply({"error": "server_error", "message": "Simulated server error"}, status=status)


def route_error(provider: Provider | None, status: int, method: str, path: str) -> web.Response:
    """404/405 for paths no simulated route serves, in the owning carrier's shape."""
    if provider == "ringcentral":
        if status == 405:
            return rc_error(405, "CMN-405", f"Method {method} is not allowed for [{path}]")
        return rc_error(status, "CMN-102", f"Resource for parameter [path] is not found: {path}")
    if provider == "twilio":
        return twilio_error(status, 20404, f"The requested resource {path} was not found")
    error = "method_not_allowed" if status == 405 else "not_found"
    message = f"No simulated route for {method} {path}"
    return json_reply({"error": error, "message": message, "path": path}, status=status)
