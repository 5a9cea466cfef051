"""Property-based fuzzing of every parser, through the real app on a real port.

Each test throws hypothesis-generated input - well-formed, nearly well-formed and arbitrary bytes
- at one parser where it sits behind a route: the send dialects (Twilio form bodies, RingCentral
JSON, multipart MMS and A2P batches), the inbound webhooks (Twilio forms, validly signed so the
parser past the signature is reached; RingCentral JSON events with the verification token), the
consents API (records with arbitrary numbers, page tokens, filters) and the console's blocked log
(page tokens, filters). The property is the same everywhere: no answer is a 5xx, and every 4xx
says why in a machine-readable field (the carrier's ``code`` / ``errorCode`` or Stopgate's
``reason``). The CSV import parser, which sits behind the command line, is fuzzed directly.

Examples per test: ``STOPGATE_FUZZ_EXAMPLES`` (default 150, ~20 s for the module here); the
long run (``scripts/fuzz``) sets it to thousands. The keyword normaliser and the number
canonicaliser have their own properties in tests/unit; here their input arrives through the
webhooks and the consents API.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import hypothesis
import pytest
import requests
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.carriersim.app import create_sim_app
from gateway.config import Secret, Settings
from gateway.consent_csv import RejectedRow, parse_rows
from gateway.dialects.twilio import signature
from gateway.text import storable
from tests.conftest import ADMIN_TOKEN, BUSINESS, CONSENTS, CUSTOMER, RC_BATCH, RC_SEND, SIM
from tests.conftest import TWILIO_SEND as TWILIO_SEND_PATH
from tests.support.servers import ServerThread

EXAMPLES = int(os.environ.get("STOPGATE_FUZZ_EXAMPLES", "150"))
VERIFICATION = "fuzz-verification-token"
FUZZ = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("STOPGATE_FUZZ_RANDOM") != "1",
    suppress_health_check=list(hypothesis.HealthCheck),
)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# --- building blocks ----------------------------------------------------------------------

PHONES = st.sampled_from(
    [
        CUSTOMER,
        BUSINESS,
        "(650) 555-0113",
        "+1 650 555 0114",
        "tel:+1-650-555-0115",
        "１６５０５５５０１１６",
        "+44 20 7946 0018",
        "whatsapp:+16505550117",
        "messenger:12345",
        "rcs:+16505550118",
        "mms:+16505550119",
        "12345",
        "ACME",
        "MG" + "0123456789abcdef" * 2,
        "*",
        "",
        "+",
        "+1",
        "+999999999999999999999",
        "\x00+16505550111",
        "+1650555\ud8000111",
        "+1" + "5" * 400,
    ]
)
ADDRESSES = st.one_of(PHONES, st.text(max_size=40), st.from_regex(r"\+?[0-9 ()\-.]{0,20}"))
TEXTS = st.one_of(
    st.sampled_from(["STOP", "stop all", "Arrêt", "HELP", "START", "ＳＴＯＰ", "stop\u200b", ""]),
    st.text(max_size=200),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
JSON_ANY = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
# A field that is usually of the right shape and sometimes anything at all.
MAYBE = lambda good: st.one_of(good, good, good, JSON_ANY)  # noqa: E731
RAW_BYTES = st.binary(max_size=2000)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=nope",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-16",
        "multipart/form-data; boundary=b",
        "multipart/form-data",
        'multipart/mixed; boundary="a b"',
        "text/plain",
        "",
        "application/json; boundary=x; charset=utf-8; charset=ascii",
        "\u00e9/\u00e9",
    ]
)


def has_reason(response: requests.Response) -> bool:
    """A 4xx says why: the carrier's own error code or Stopgate's ``reason``."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    if isinstance(error, dict):
        return bool(error.get("reason"))
    return bool(body.get("reason") or body.get("code") or body.get("errorCode") or error)


def check(response: requests.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert has_reason(response), (response.status_code, response.text[:500])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(gateway URL, a RingCentral access token) for a gateway in front of the simulator."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with ServerThread(create_sim_app) as sim:
        settings = Settings(
            store=f"sqlite:///{tmp / 'stopgate.db'}",
            spool_path=str(tmp / "spool.jsonl"),
            ringcentral_upstream=sim.url,
            twilio_upstream=sim.url,
            twilio_auth_token=Secret(SIM.twilio_auth_token),
            ringcentral_verification_token=Secret(VERIFICATION),
            admin_token=Secret(ADMIN_TOKEN),
            max_body_bytes=64 * 1024,
            # Generated requests come fast from one address; guessing is tested elsewhere.
            sign_in_failures_per_minute=1_000_000,
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
            requests.patch(
                gateway.url + CONSENTS,
                json={"records": [{"from": BUSINESS, "to": CUSTOMER, "optStatus": "OptOut"}]},
                headers=ADMIN,
                timeout=10,
            ).raise_for_status()
            yield gateway.url, token.json()["access_token"]


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


# --- send dialects ----------------------------------------------------------------------

TWILIO_FIELDS = st.sampled_from(
    ["To", "From", "Body", "MessagingServiceSid", "MediaUrl", "StatusCallback", "to", "x"]
)
TWILIO_FORMS = st.lists(
    st.tuples(TWILIO_FIELDS, st.one_of(ADDRESSES, TEXTS)), min_size=0, max_size=6
)


def test_twilio_send_forms(live: tuple[str, str], http: requests.Session) -> None:
    url, _ = live
    auth = (SIM.twilio_account_sid, SIM.twilio_auth_token)

    @FUZZ
    @hypothesis.given(form=TWILIO_FORMS, raw=st.one_of(st.none(), RAW_BYTES), ct=CONTENT_TYPES)
    def run(form: list[tuple[str, str]], raw: bytes | None, ct: str) -> None:
        if raw is None:
            data: Any = urlencode(form, encoding="utf-8", errors="surrogatepass").encode()
            ct = "application/x-www-form-urlencoded"
        else:
            data = raw
        check(
            http.post(
                url + TWILIO_SEND_PATH,
                data=data,
                headers={"Content-Type": ct},
                auth=auth,
                timeout=30,
            )
        )

    run()


def _rc_message() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "from": MAYBE(st.fixed_dictionaries({"phoneNumber": MAYBE(ADDRESSES)})),
            "to": MAYBE(
                st.lists(st.fixed_dictionaries({"phoneNumber": MAYBE(ADDRESSES)}), max_size=4)
            ),
            "text": MAYBE(TEXTS),
        },
        optional={"country": JSON_ANY, "attachments": JSON_ANY},
    )


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def test_ringcentral_json_sends(live: tuple[str, str], http: requests.Session) -> None:
    url, token = live

    @FUZZ
    @hypothesis.given(
        document=st.one_of(_rc_message(), JSON_ANY),
        raw=st.one_of(st.none(), RAW_BYTES),
        ct=CONTENT_TYPES,
        path=st.sampled_from([RC_SEND, RC_SEND.replace("/sms", "/mms"), RC_SEND.upper()]),
    )
    def run(document: Any, raw: bytes | None, ct: str, path: str) -> None:
        body, content_type = (
            (_json_bytes(document), "application/json") if raw is None else (raw, ct)
        )
        headers = {"Authorization": f"bearer {token}", "Content-Type": content_type}
        check(http.post(url + path, data=body, headers=headers, timeout=30))

    run()


BOUNDARIES = st.sampled_from(["b", "----x", "a b", "é", "", "--", "b\t", "x" * 80, "b;c=d"])
PART_HEADS = st.sampled_from(
    [
        b'Content-Disposition: form-data; name="json"\r\nContent-Type: application/json',
        b"Content-Type: application/json",
        b'Content-Disposition: form-data; name="attachment"; filename="a.png"\r\n'
        b"Content-Type: image/png",
        b"",
        b"Content-Type: text/plain",
        b"no colon here",
    ]
)


def test_ringcentral_multipart_mms(live: tuple[str, str], http: requests.Session) -> None:
    url, token = live

    @FUZZ
    @hypothesis.given(
        boundary=BOUNDARIES,
        parts=st.lists(
            st.tuples(PART_HEADS, st.one_of(_rc_message().map(_json_bytes), RAW_BYTES)),
            max_size=4,
        ),
        tail=st.sampled_from([b"--\r\n", b"--", b"", b"--\r\nepilogue", b"\r\n"]),
        kind=st.sampled_from(["multipart/form-data", "multipart/mixed"]),
    )
    def run(boundary: str, parts: list[tuple[bytes, bytes]], tail: bytes, kind: str) -> None:
        delimiter = b"--" + boundary.encode()
        body = b"".join(
            delimiter + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" for head, data in parts
        )
        body += delimiter + tail
        headers = {
            "Authorization": f"bearer {token}",
            "Content-Type": f'{kind}; boundary="{boundary}"'.encode().decode("latin-1"),
        }
        check(http.post(url + RC_SEND, data=body, headers=headers, timeout=30))

    run()


def test_ringcentral_a2p_batches(live: tuple[str, str], http: requests.Session) -> None:
    url, token = live
    items = st.fixed_dictionaries(
        {"to": MAYBE(st.lists(MAYBE(ADDRESSES), max_size=3))}, optional={"text": MAYBE(TEXTS)}
    )
    batches = st.fixed_dictionaries(
        {"from": MAYBE(ADDRESSES), "messages": MAYBE(st.lists(MAYBE(items), max_size=6))},
        optional={"text": MAYBE(TEXTS)},
    )

    @FUZZ
    @hypothesis.given(document=st.one_of(batches, JSON_ANY))
    def run(document: Any) -> None:
        headers = {"Authorization": f"bearer {token}", "Content-Type": "application/json"}
        check(http.post(url + RC_BATCH, data=_json_bytes(document), headers=headers, timeout=30))

    run()


# --- webhooks -------------------------------------------------------------------------------

WEBHOOK_FIELDS = st.sampled_from(
    ["MessageSid", "SmsSid", "From", "To", "Body", "MessagingServiceSid", "OptOutType", "x"]
)


def test_twilio_webhooks_signed_and_not(live: tuple[str, str], http: requests.Session) -> None:
    url, _ = live
    target = url + "/webhooks/twilio"
    base = st.fixed_dictionaries(
        {
            "MessageSid": MAYBE(st.text(string.ascii_letters + string.digits, max_size=34)),
            "From": ADDRESSES,
            "To": ADDRESSES,
            "Body": TEXTS,
        }
    ).map(lambda d: [(k, str(v)) for k, v in d.items()])
    extra = st.lists(st.tuples(WEBHOOK_FIELDS, st.one_of(ADDRESSES, TEXTS)), max_size=4)

    @FUZZ
    @hypothesis.given(
        form=st.builds(lambda a, b: a + b, base, extra),
        signed=st.booleans(),
        as_json=st.booleans(),
        raw=st.one_of(st.none(), st.none(), RAW_BYTES),
    )
    def run(form: list[tuple[str, str]], signed: bool, as_json: bool, raw: bytes | None) -> None:
        clean = [(k, v.encode("utf-8", "replace").decode()) for k, v in form]
        if as_json:
            body = raw if raw is not None else _json_bytes(dict(clean))
            query = "?bodySHA256=" + hashlib.sha256(body).hexdigest()
            headers = {"Content-Type": "application/json"}
            params: list[tuple[str, str]] = []
        else:
            body = raw if raw is not None else urlencode(clean).encode()
            query = ""
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            params = clean
        if signed:
            headers["X-Twilio-Signature"] = signature(SIM.twilio_auth_token, target + query, params)
        response = http.post(target + query, data=body, headers=headers, timeout=30)
        check(response)
        if not signed:
            assert response.status_code in (400, 403, 413, 415), response.text

    run()


def test_ringcentral_webhook_events(live: tuple[str, str], http: requests.Session) -> None:
    url, _ = live
    message = st.fixed_dictionaries(
        {
            "id": MAYBE(st.text(max_size=12)),
            "from": MAYBE(st.fixed_dictionaries({"phoneNumber": MAYBE(ADDRESSES)})),
            "to": MAYBE(
                st.lists(st.fixed_dictionaries({"phoneNumber": MAYBE(ADDRESSES)}), max_size=3)
            ),
            "subject": MAYBE(TEXTS),
            "type": MAYBE(st.sampled_from(["SMS", "MMS", "Pager"])),
            "direction": MAYBE(st.sampled_from(["Inbound", "Outbound"])),
        }
    )
    events = st.fixed_dictionaries(
        {"uuid": MAYBE(st.uuids().map(str)), "body": MAYBE(message)},
        optional={
            "event": st.sampled_from(
                [
                    "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS",
                    "/restapi/v1.0/account/~/a2p-sms/opt-outs",
                    "/restapi/v2/accounts/~/sms/consents",
                ]
            ),
            "subscriptionId": JSON_ANY,
        },
    )

    @FUZZ
    @hypothesis.given(
        document=st.one_of(events, JSON_ANY),
        raw=st.one_of(st.none(), st.none(), RAW_BYTES),
        token=st.sampled_from([VERIFICATION, VERIFICATION, "wrong", None]),
    )
    def run(document: Any, raw: bytes | None, token: str | None) -> None:
        body = raw if raw is not None else _json_bytes(document)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Verification-Token"] = token
        response = http.post(url + "/webhooks/ringcentral", data=body, headers=headers, timeout=30)
        check(response)
        if token != VERIFICATION and body.strip():
            assert response.status_code == 403, response.text

    run()


# --- consents API and console -----------------------------------------------------------

TOKENS = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.hex()),
    st.from_regex(r"[A-Za-z0-9_\-]{10,200}={0,3}", fullmatch=True),
    st.sampled_from(["", "=", "e30", "eyJ9", "AAAA.BBBB", "%00", "null"]),
)


def test_consents_api_records_queries_and_page_tokens(
    live: tuple[str, str], http: requests.Session
) -> None:
    url, _ = live
    records = st.lists(
        st.fixed_dictionaries(
            {
                "from": MAYBE(ADDRESSES),
                "to": MAYBE(ADDRESSES),
                "optStatus": MAYBE(st.sampled_from(["OptIn", "OptOut", "optout", ""])),
            },
            optional={
                "source": MAYBE(st.text(max_size=10)),
                "note": MAYBE(TEXTS),
                "evidence": JSON_ANY,
            },
        ),
        max_size=5,
    )

    @FUZZ
    @hypothesis.given(
        document=st.one_of(st.fixed_dictionaries({"records": records}), JSON_ANY),
        method=st.sampled_from(["PATCH", "DELETE", "GET", "GET"]),
        page_token=TOKENS,
        params=st.dictionaries(
            st.sampled_from(["from", "to", "optStatus", "perPage", "page", "x"]),
            st.one_of(ADDRESSES, st.integers().map(str)),
            max_size=3,
        ),
        path=st.sampled_from(["", "/history", "/export"]),
    )
    def run(document: Any, method: str, page_token: str, params: dict[str, str], path: str) -> None:
        if method == "GET":
            query = {
                k: v.encode("utf-8", "surrogatepass")
                for k, v in {**params, "pageToken": page_token}.items()
            }
            response = http.get(url + CONSENTS + path, params=query, headers=ADMIN, timeout=30)
        else:
            response = http.request(
                method,
                url + CONSENTS,
                data=_json_bytes(document),
                headers={**ADMIN, "Content-Type": "application/json"},
                timeout=30,
            )
        check(response)

    run()


def test_console_blocked_log_filters_and_page_tokens(
    live: tuple[str, str], http: requests.Session
) -> None:
    url, _ = live

    @FUZZ
    @hypothesis.given(
        params=st.dictionaries(
            st.sampled_from(
                [
                    "from_time",
                    "to_time",
                    "business",
                    "customer",
                    "reason",
                    "dialect",
                    "per_page",
                    "page_token",
                    "format",
                ]
            ),
            st.one_of(ADDRESSES, TOKENS, st.integers().map(str)),
            max_size=4,
        ),
        path=st.sampled_from(["/admin/blocked", "/admin/stats/daily", "/admin/consents"]),
    )
    def run(params: dict[str, str], path: str) -> None:
        query = {k: v.encode("utf-8", "surrogatepass") for k, v in params.items()}
        check(http.get(url + path, params=query, headers=ADMIN, timeout=30))

    run()


def test_console_sign_in_bodies(live: tuple[str, str], http: requests.Session) -> None:
    url, _ = live

    @FUZZ
    @hypothesis.given(
        document=st.one_of(st.fixed_dictionaries({"token": MAYBE(TOKENS)}), JSON_ANY),
        raw=st.one_of(st.none(), RAW_BYTES),
    )
    def run(document: Any, raw: bytes | None) -> None:
        body = raw if raw is not None else _json_bytes(document)
        response = http.post(
            url + "/admin/session",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        check(response)

    run()


# --- the CSV import parser (command line) ---------------------------------------------------

CSV_CELLS = st.one_of(
    PHONES,
    st.sampled_from(["OptOut", "opt-out", "OptIn", "Opted In", "", "Recipient", "company"]),
    st.sampled_from(["2026-01-02T03:04:05Z", "2999-01-01T00:00:00Z", "yesterday", "0"]),
    st.text(max_size=20),
)
CSV_HEADERS = st.sampled_from(
    [
        "from,to,status",
        "FROM,TO,STATUS,SOURCE,TIME,NOTE",
        "Phone Number,Opt Status,Coverage,From",
        "to,status",
        "",
        '"from","to","status"',
    ]
)


@FUZZ
@hypothesis.given(
    header=CSV_HEADERS,
    rows=st.lists(st.lists(CSV_CELLS, max_size=7), max_size=8),
    junk=st.one_of(st.none(), st.text(max_size=300)),
)
def test_csv_import_rows_are_each_a_change_or_a_numbered_rejection(
    header: str, rows: list[list[str]], junk: str | None
) -> None:
    lines = [header + "\r\n"]
    for row in rows:
        lines.append(
            ",".join('"' + c.replace('"', '""') + '"' if i % 2 else c for i, c in enumerate(row))
            + "\r\n"
        )
    if junk is not None:
        lines.append(junk)
    results = list(parse_rows(lines, region="US", actor="import", now_us=1_800_000_000_000_000))
    for result in results:
        if isinstance(result, RejectedRow):
            assert result.line >= 1 and result.reason
        else:
            # Every change can be stored as is: canonical keys, storable text.
            assert result.to_key.startswith(("+", "whatsapp:+", "messenger:"))
            assert storable(result.from_key) and storable(result.to_key)
            assert result.note is None or storable(result.note)
            assert (
                result.modified_us is None
                or result.modified_us <= 1_800_000_000_000_000 + 86_400_000_000
            )
