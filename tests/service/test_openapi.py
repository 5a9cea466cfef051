"""``GET /openapi.json`` describes every route Stopgate serves itself, and stays true.

The document is read from a live gateway (a real port, in a thread of its own, in front of the
carrier simulator) and schemathesis throws generated requests - valid and invalid - at every
operation it lists: no answer may be a 5xx, and every answer's status code, content type, headers
and body must be the ones the document gives. Requests carry real credentials often enough to
get past authentication (the admin and auditor tokens, a RingCentral token of the configured
account, valid Twilio signatures, the RingCentral verification token), and the webhooks get the
keywords often enough to change consent. Answers generation rarely reaches - a store that is down,
webhooks without their secrets, bodies over the limits, inputs found by hand - are checked
against the same document with requests written out below.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import hypothesis
import jsonschema_rs
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from gateway.carriersim.app import create_sim_app
from gateway.config import Secret, Settings, TokenSpec
from gateway.consents_api import BASE
from gateway.dialects.twilio import signature
from gateway.keys import STORE
from gateway.openapi import DOCUMENT
from tests.conftest import ADMIN_TOKEN, BUSINESS, CONSENTS, CUSTOMER, SIM
from tests.support.servers import ServerThread, free_port

AUDITOR_TOKEN = "test-auditor-token"
VERIFICATION_TOKEN = "test-verification-token"
MAX_BODY = 256 * 1024
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Examples per operation and generation mode: the whole module runs in about 20 s. The long run
# (scripts/fuzz) raises it, with a random seed (STOPGATE_FUZZ_RANDOM=1).
MAX_EXAMPLES = int(os.environ.get("STOPGATE_SCHEMATHESIS_EXAMPLES", "100"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# Addresses as callers write them, and text that is no address at all, for the document's own
# formats ("phone": a customer; "sms-address": a business).
_PHONES = st.sampled_from(
    [
        CUSTOMER,
        "+16505550112",
        "(650) 555-0113",
        "650.555.0114",
        "tel:+1-650-555-0115",
        "+44 20 7946 0018",
        "+4915112345678",
        "whatsapp:+16505550116",
    ]
)
_BUSINESSES = st.sampled_from(
    [BUSINESS, "(650) 555-0199", "*", "12345", "ACME", "MG" + "0123456789abcdef" * 2, "brand:acme"]
)
_JUNK = st.text(max_size=20)
schemathesis.openapi.format("phone", st.one_of(_PHONES, _PHONES, _JUNK))
schemathesis.openapi.format("sms-address", st.one_of(_BUSINESSES, _PHONES, _JUNK))

# Message texts for the webhooks (None: keep what schemathesis generated).
_TEXTS = st.sampled_from(["STOP", "stop all", "START", "HELP", "Arrêt", "Thanks!", None, None])
# Credentials of a generated request (None: whatever schemathesis generated).
_CREDENTIALS = st.sampled_from(["admin", "admin", "auditor", "ringcentral", "wrong", None])


@dataclasses.dataclass(frozen=True)
class Live:
    url: str
    rc_token: str


def _settings(tmp: Path, **overrides: Any) -> Settings:
    return Settings(
        store=f"sqlite:///{tmp / 'stopgate.db'}",
        admin_token=Secret(ADMIN_TOKEN),
        tokens=(
            TokenSpec("auditor", hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest(), "auditor"),
        ),
        spool_path=str(tmp / "spool.jsonl"),
        max_body_bytes=MAX_BODY,
        **overrides,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A fully configured gateway in front of the carrier simulator."""
    tmp = tmp_path_factory.mktemp("openapi")
    with ServerThread(create_sim_app) as sim:
        settings = _settings(
            tmp,
            ringcentral_upstream=sim.url,
            twilio_upstream=sim.url,
            twilio_auth_token=Secret(SIM.twilio_auth_token),
            ringcentral_verification_token=Secret(VERIFICATION_TOKEN),
            ringcentral_account_id=SIM.rc_account_id,
        )
        with ServerThread(lambda: create_app(settings)) as gateway:
            token = requests.post(
                f"{gateway.url}/restapi/oauth/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": SIM.rc_jwt,
                },
                auth=(SIM.rc_client_id, SIM.rc_client_secret),
                timeout=10,
            )
            assert token.status_code == 200, token.text
            _seed(gateway.url)
            yield Live(gateway.url, token.json()["access_token"])


def _seed(url: str) -> None:
    """Records of every kind (notes, evidence, wildcard, short code) and a deletion in the
    history, so lists and history answer with more than empty pages."""
    evidence = {"method": "web-form", "url": "https://example.com/join", "ip": "192.0.2.1"}
    records = [
        {"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut", "note": "asked by phone"},
        {"from": "*", "to": "+16505550112", "optStatus": "OptOut", "source": "Recipient"},
        {"from": "12345", "to": "+16505550113", "optStatus": "OptIn", "evidence": evidence},
        {"from": "(650) 555-0199", "to": "+16505550114", "optStatus": "OptIn"},
        {"from": BUSINESS, "to": "+4915112345678", "optStatus": "OptOut"},
    ]
    for method, body in [
        ("PATCH", {"records": records}),
        ("DELETE", {"records": [records[-1]]}),
    ]:
        answer = requests.request(method, url + CONSENTS, json=body, headers=ADMIN, timeout=10)
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway whose store is closed, with no webhook secrets, whose carrier is unreachable."""
    tmp = tmp_path_factory.mktemp("openapi-down")
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = _settings(
        tmp,
        ringcentral_upstream=nowhere,
        twilio_upstream=nowhere,
        ringcentral_account_id=SIM.rc_account_id,
        upstream_connect_timeout=1.0,
    )
    with ServerThread(lambda: create_app(settings)) as gateway:
        gateway.call(gateway.app[STORE].close())
        yield gateway.url


@pytest.fixture(scope="module")
def api_schema(live: Live) -> Any:
    """The document as the gateway serves it, loaded by schemathesis."""
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


# --- the document -------------------------------------------------------------------------

OPERATIONS = [
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method != "parameters"
]


def test_the_document_is_valid_openapi(live: Live) -> None:
    served = requests.get(f"{live.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("application/json")
    document = served.json()
    assert document == DOCUMENT
    assert document["openapi"].startswith("3.1.")
    loaded = schemathesis.openapi.from_dict(document)
    loaded.validate()  # against the OpenAPI 3.1 meta-schema
    for name, component in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(component), name  # JSON Schema 2020-12
    operations = [result.ok() for result in loaded.get_all_operations()]  # every $ref resolves
    assert sorted((o.method.upper(), o.path) for o in operations) == sorted(OPERATIONS)
    for operation in operations:
        responses = operation.definition.raw["responses"]
        for code, response in responses.items():
            assert code.isdigit() and 200 <= int(code) < 600, (operation.label, code)
            assert response["description"], (operation.label, code)
        assert any(code.startswith("2") for code in responses), operation.label


def test_every_route_of_the_app_is_documented() -> None:
    app = create_app(Settings())
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method not in ("HEAD", "*")  # HEAD: aiohttp's twin of each GET
    }
    assert served == set(OPERATIONS)
    # Everything else falls to the carrier catch-all, registered last (after /openapi.json).
    last = list(app.router.routes())[-1]
    assert (last.method, last.resource and last.resource.canonical) == ("*", "/{tail}")


# --- schemathesis -------------------------------------------------------------------------


def _has_input(method: str, path: str) -> bool:
    item = DOCUMENT["paths"][path]
    operation = item[method.lower()]
    return bool(item.get("parameters") or operation.get("parameters") or "requestBody" in operation)


POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
# Negative cases need something to get wrong: operations without input get positive ones only.
# (One test per operation and mode, named from the document. schemathesis' own pytest
# integration, ``from_fixture(...).parametrize()``, fails on pytest 9: no ``Function._nodeid``.)
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in (POSITIVE, NEGATIVE)
    if mode is POSITIVE or _has_input(method, path)
]


def _sign_twilio(case: Any, base_url: str) -> None:
    """Give a Twilio webhook case a valid signature for exactly the request it will send."""
    prepared = requests.Request(**case.as_transport_kwargs(base_url=base_url)).prepare()
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    if "json" in prepared.headers.get("Content-Type", ""):
        case.query = {**(case.query or {}), "bodySHA256": hashlib.sha256(body).hexdigest()}
        prepared = requests.Request(**case.as_transport_kwargs(base_url=base_url)).prepare()
        params: list[tuple[str, str]] = []
    else:
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    case.headers = {
        **(case.headers or {}),
        "X-Twilio-Signature": signature(SIM.twilio_auth_token, str(prepared.url), params),
    }


def _use_text(case: Any, text: str | None) -> None:
    body = case.body
    if text is None or not isinstance(body, dict):
        return
    if case.operation.path == "/webhooks/twilio":
        case.body = {**body, "Body": text}
    elif isinstance(body.get("body"), dict):
        case.body = {**body, "body": {**body["body"], "subject": text}}


def _call_and_validate(case: Any, credentials: str | None, text: str | None, live: Live) -> None:
    headers: dict[str, str] = {}
    path = case.operation.path
    consents = path.startswith(("/restapi/v2/", "/admin/"))
    authentic = credentials in ("admin", "auditor", "ringcentral")
    if consents and credentials is not None:
        token = {
            "admin": ADMIN_TOKEN,
            "auditor": AUDITOR_TOKEN,
            "ringcentral": live.rc_token,
            "wrong": "not-a-token",
        }[credentials]
        headers["Authorization"] = f"Bearer {token}"
    elif path == "/webhooks/twilio":
        _use_text(case, text)
        if authentic:
            _sign_twilio(case, live.url)
    elif path == "/webhooks/ringcentral":
        _use_text(case, text)
        if authentic:
            headers["Verification-Token"] = VERIFICATION_TOKEN
    checks = CHECKS + ([ignored_auth] if consents else [])
    case.call_and_validate(base_url=live.url, headers=headers, checks=checks, timeout=30)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_is_documented(
    api_schema: Any, live: Live, method: str, path: str, mode: Any
) -> None:
    operation = api_schema[path][method]

    @hypothesis.given(
        case=operation.as_strategy(generation_mode=mode), credentials=_CREDENTIALS, text=_TEXTS
    )
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=os.environ.get("STOPGATE_FUZZ_RANDOM") != "1",
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def run(case: Any, credentials: str | None, text: str | None) -> None:
        _call_and_validate(case, credentials, text, live)

    run()


# --- answers generation rarely reaches ----------------------------------------------------

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TWILIO = "/webhooks/twilio"
RINGCENTRAL = "/webhooks/ringcentral"
EXPORT = BASE + "/export"
HISTORY = BASE + "/history"
ERASE = BASE + "/erase"
_RECORD = {"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"}
_CONSENT_EVENT = "/restapi/v2/accounts/~/sms/consents"


@dataclasses.dataclass(frozen=True)
class Known:
    """A request written out, the status it must get (None: any documented one but a 5xx),
    and where to send it."""

    method: str
    operation: str
    status: int | None
    gateway: str = "live"
    path: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    params: dict[str, str] | None = None
    data: bytes | None = None
    json: Any = None


KNOWN = {
    # Limits and refusals.
    "patch 1001 records": Known(
        "PATCH", BASE, 413, path=CONSENTS, headers=ADMIN, json={"records": [_RECORD] * 1001}
    ),
    "patch over max_body_bytes": Known(
        "PATCH", BASE, 413, path=CONSENTS, headers={**ADMIN, **JSON}, data=b" " * (MAX_BODY + 1)
    ),
    "delete over max_body_bytes": Known(
        "DELETE", BASE, 413, path=CONSENTS, headers={**ADMIN, **JSON}, data=b" " * (MAX_BODY + 1)
    ),
    "patch not JSON": Known("PATCH", BASE, 400, path=CONSENTS, headers=ADMIN, data=b"{"),
    "patch no valid record": Known(
        "PATCH", BASE, 400, path=CONSENTS, headers=ADMIN, json={"records": [{"from": 1}]}
    ),
    "auditor cannot delete": Known(
        "DELETE",
        BASE,
        403,
        path=CONSENTS,
        headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
        json={"records": [_RECORD]},
    ),
    "basic auth": Known("GET", BASE, 401, path=CONSENTS, headers={"Authorization": "Basic eDp5"}),
    "tampered page token": Known(
        "GET", BASE, 400, path=CONSENTS, headers=ADMIN, params={"pageToken": "AAAA"}
    ),
    "perPage 0": Known(
        "GET", HISTORY, 400, path=CONSENTS + "/history", headers=ADMIN, params={"perPage": "0"}
    ),
    "export": Known("GET", EXPORT, 200, path=CONSENTS + "/export", headers=ADMIN),
    "erase over max_body_bytes": Known(
        "POST",
        ERASE,
        413,
        path=CONSENTS + "/erase",
        headers={**ADMIN, **JSON},
        data=b" " * (MAX_BODY + 1),
    ),
    "twilio text/plain": Known(
        "POST",
        TWILIO,
        415,
        headers={"Content-Type": "text/plain", "X-Twilio-Signature": "x"},
        data=b"Body=STOP",
    ),
    "twilio over max_body_bytes": Known(
        "POST",
        TWILIO,
        413,
        headers={**FORM, "X-Twilio-Signature": "x"},
        data=b"Body=" + b"x" * MAX_BODY,
    ),
    "twilio unsigned": Known(
        "POST",
        TWILIO,
        403,
        headers={**FORM, "X-Twilio-Signature": "x"},
        data=b"MessageSid=SM1&From=%2B16505550111&To=%2B16505550100&Body=STOP",
    ),
    "ringcentral over max_body_bytes": Known(
        "POST",
        RINGCENTRAL,
        413,
        headers={**JSON, "Verification-Token": VERIFICATION_TOKEN},
        data=b" " * (MAX_BODY + 1),
    ),
    "ringcentral handshake": Known(
        "POST", RINGCENTRAL, 200, headers={"Validation-Token": "a-token"}, data=b""
    ),
    "ringcentral wrong token": Known(
        "POST", RINGCENTRAL, 403, headers={"Verification-Token": "nope"}, json={"body": {}}
    ),
    "ringcentral not JSON": Known(
        "POST", RINGCENTRAL, 400, headers={"Verification-Token": VERIFICATION_TOKEN}, data=b"{"
    ),
    # Found by hand: unauthenticated or authenticated inputs that crash the gateway (500).
    "twilio bodySHA256 not ASCII": Known(
        "POST",
        TWILIO,
        403,
        headers={**JSON, "X-Twilio-Signature": "x"},
        params={"bodySHA256": "é"},
        json={"MessageSid": "SM1"},
    ),
    "twilio signature not UTF-8": Known(
        "POST",
        TWILIO,
        403,
        headers={**FORM, "X-Twilio-Signature": "é"},
        data=b"MessageSid=SM1&From=%2B16505550111&To=%2B16505550100",
    ),
    "ringcentral verification token not UTF-8": Known(
        "POST", RINGCENTRAL, 403, headers={"Verification-Token": "é"}, json={"body": {}}
    ),
    "ringcentral handshake token not UTF-8": Known(
        "POST", RINGCENTRAL, 200, headers={"Validation-Token": "é"}, data=b""
    ),
    "ringcentral consent event, records not a list": Known(
        "POST",
        RINGCENTRAL,
        None,
        headers={"Verification-Token": VERIFICATION_TOKEN},
        json={"event": _CONSENT_EVENT, "body": {"records": 1}},
    ),
    "ringcentral failed status, to not a list": Known(
        "POST",
        RINGCENTRAL,
        None,
        headers={"Verification-Token": VERIFICATION_TOKEN},
        json={
            "event": "/restapi/v1.0/account/~/extension/~/message-store",
            "body": {
                "id": "1",
                "direction": "Outbound",
                "messageStatus": "SendingFailed",
                "deliveryErrorCode": "SMS-CAR-413",
                "from": {"phoneNumber": BUSINESS},
                "to": 1,
            },
        },
    ),
    "patch unknown charset": Known(
        "PATCH",
        BASE,
        None,
        path=CONSENTS,
        headers={**ADMIN, "Content-Type": "application/json; charset=no-such-codec"},
        data=b'{"records": []}',
    ),
    "erase unknown charset": Known(
        "POST",
        ERASE,
        None,
        path=CONSENTS + "/erase",
        headers={**ADMIN, "Content-Type": "application/json; charset=no-such-codec"},
        data=b'{"to": "+16505550111"}',
    ),
    # The compliance console.
    "console blocked CSV": Known(
        "GET", "/admin/blocked", 200, headers=ADMIN, params={"format": "csv"}
    ),
    "console write without a note": Known(
        "PATCH", "/admin/consents", 400, headers=ADMIN, json={"records": [_RECORD]}
    ),
    "console write, auditor": Known(
        "PATCH",
        "/admin/consents",
        403,
        headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
        json={"records": [{**_RECORD, "note": "by hand"}]},
    ),
    "console sign-in from another origin": Known(
        "POST",
        "/admin/session",
        403,
        headers={"Origin": "https://elsewhere.example"},
        json={"token": ADMIN_TOKEN},
    ),
    "console blocked, store down": Known(
        "GET", "/admin/blocked", 503, gateway="down", headers=ADMIN
    ),
    "console sign-in, store down": Known(
        "POST", "/admin/session", 503, gateway="down", json={"token": ADMIN_TOKEN}
    ),
    # Store down, secrets missing, carrier unreachable.
    "readyz, store down": Known("GET", "/readyz", 503, gateway="down"),
    "healthz, store down": Known("GET", "/healthz", 200, gateway="down"),
    "list, store down": Known("GET", BASE, 503, gateway="down", path=CONSENTS, headers=ADMIN),
    "patch, store down": Known(
        "PATCH",
        BASE,
        503,
        gateway="down",
        path=CONSENTS,
        headers=ADMIN,
        json={"records": [_RECORD]},
    ),
    "delete, store down": Known(
        "DELETE",
        BASE,
        503,
        gateway="down",
        path=CONSENTS,
        headers=ADMIN,
        json={"records": [_RECORD]},
    ),
    "export, store down": Known(
        "GET", EXPORT, 503, gateway="down", path=CONSENTS + "/export", headers=ADMIN
    ),
    "erase, store down": Known(
        "POST",
        ERASE,
        503,
        gateway="down",
        path=CONSENTS + "/erase",
        headers=ADMIN,
        json={"to": CUSTOMER},
    ),
    "history, store down": Known(
        "GET", HISTORY, 503, gateway="down", path=CONSENTS + "/history", headers=ADMIN
    ),
    "ringcentral token, carrier unreachable": Known(
        "GET",
        BASE,
        503,
        gateway="down",
        path=CONSENTS,
        headers={"Authorization": "Bearer some-ringcentral-token"},
    ),
    "twilio webhook without auth token": Known(
        "POST",
        TWILIO,
        503,
        gateway="down",
        headers={**FORM, "X-Twilio-Signature": "x"},
        data=b"MessageSid=SM1&From=%2B16505550111&To=%2B16505550100&Body=STOP",
    ),
    "ringcentral webhook without verification token": Known(
        "POST",
        RINGCENTRAL,
        503,
        gateway="down",
        headers={"Verification-Token": "x"},
        json={"body": {}},
    ),
}


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_inputs_get_documented_answers(
    name: str, api_schema: Any, live: Live, down: str
) -> None:
    known = KNOWN[name]
    base = live.url if known.gateway == "live" else down
    response = requests.request(
        known.method,
        base + (known.path or known.operation),
        headers=known.headers,
        params=known.params,
        data=known.data,
        json=known.json,
        timeout=30,
    )
    account = {"account": "~"} if "{account}" in known.operation else None
    case = api_schema[known.operation][known.method].Case(path_parameters=account)
    # A documented 503 is what some of these requests are for; any other 5xx still fails below.
    checks = CHECKS if known.status is None or known.status < 500 else CHECKS[1:]
    case.validate_response(response, checks=checks)
    if known.status is not None:
        assert response.status_code == known.status, response.text[:500]
