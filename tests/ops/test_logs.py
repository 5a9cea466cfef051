"""Structured logs of a running gateway (``stopgate serve``, JSON by default): one line per
send decision, per inbound message, per consent change and per error, every line JSON, and no
configured secret, caller credential or ``Authorization`` value anywhere in the output."""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pytest

from gateway.config import Secret, Settings
from gateway.logs import JsonFormatter, Scrubber, TextFormatter, settings_secrets
from tests.ops.conftest import BUSINESS, OpsStack


def lines(stack: OpsStack) -> list[dict[str, Any]]:
    parsed = []
    for raw in stack.gateway.stderr_path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("---- "):  # ServiceProcess's own header line (the command)
            continue
        try:
            parsed.append(json.loads(raw))
        except ValueError:
            pytest.fail(f"a log line is not JSON: {raw!r}")
    return parsed


def test_every_line_is_json_with_the_common_fields(ops_stack: OpsStack) -> None:
    logged = lines(ops_stack)
    assert len(logged) > 10
    for line in logged:
        assert {"ts", "level", "logger", "msg"} <= line.keys(), line
        assert line["ts"].endswith("Z")


def test_one_decision_line_per_send_with_its_fields(ops_stack: OpsStack) -> None:
    sends = [line for line in lines(ops_stack) if line.get("event") == "send"]
    mix = ops_stack.mix
    assert len(sends) == mix.allowed + mix.blocked
    # Each line was in the log file before its send's answer reached the caller.
    assert mix.unlogged_when_answered == []
    fields = {"request_id", "dialect", "from", "to", "decision", "reason", "segments"}
    for line in sends:
        assert fields <= line.keys(), line
        assert line["from"] == BUSINESS
    by_id = {line["request_id"]: line for line in sends}

    allowed = by_id[mix.request_ids["allowed"]]
    assert (allowed["decision"], allowed["reason"], allowed["dialect"]) == ("allowed", "", "twilio")
    assert allowed["to"] == [mix.customers[0]]
    # footer = always: "Your order shipped" + "\nReply STOP to opt out" is still one segment.
    assert (allowed["segments"], allowed["segments_before"], allowed["level"]) == (1, 1, "INFO")

    blocked = by_id[mix.request_ids["blocked"]]
    assert (blocked["decision"], blocked["reason"], blocked["status"]) == (
        "blocked",
        "opt-out",
        400,
    )
    assert blocked["blocked"] == [{"to": mix.customers[3], "reason": "opt-out"}]
    assert sum(line["decision"] == "blocked" for line in sends) == mix.blocked
    assert {line["dialect"] for line in sends if line["decision"] == "blocked"} == {
        "twilio",
        "ringcentral",
    }

    five = by_id[mix.request_ids["upstream-5xx"]]
    assert (five["decision"], five["upstream_status"], five["level"]) == ("allowed", 503, "WARNING")
    timeout = by_id[mix.request_ids["upstream-timeout"]]
    assert (timeout["decision"], timeout["reason"], timeout["level"]) == (
        "refused",
        "upstream-timeout",
        "ERROR",
    )


def test_inbound_messages_and_consent_changes_are_logged(ops_stack: OpsStack) -> None:
    logged = lines(ops_stack)
    keyword_customer = ops_stack.mix.customers[4]
    inbound = [line for line in logged if line.get("event") == "inbound"]
    assert [line["keyword"] for line in inbound] == ["opt_out", "help", "opt_in", "none"]
    assert all(line["from"] == keyword_customer and line["to"] == [BUSINESS] for line in inbound)
    assert all(line["provider"] == "twilio" and line["message_id"] for line in inbound)

    changes = [line for line in logged if line.get("event") == "consent-change"]
    seen = [(c["to"], c["status"], c["source"]) for c in changes]
    assert (ops_stack.mix.customers[3], "OptOut", "Api") in seen
    assert (keyword_customer, "OptOut", "Recipient") in seen
    assert (keyword_customer, "OptIn", "Recipient") in seen
    assert all(c["from"] == BUSINESS for c in changes)


def test_errors_are_logged_as_json_lines(ops_stack: OpsStack) -> None:
    logged = lines(ops_stack)
    # The change-event subscriber is unreachable: retries are warnings with the reason.
    retries = [line for line in logged if line.get("event") == "outbox-retry"]
    assert retries and retries[0]["kind"] == "consent-event" and retries[0]["level"] == "WARNING"
    assert "unreachable" in retries[0]["error"]
    assert any(line["level"] == "ERROR" for line in logged)


def test_no_secret_or_credential_appears_in_the_output(ops_stack: OpsStack) -> None:
    text = ops_stack.log_text()
    cred = ops_stack.credentials
    forbidden = dict(ops_stack.secrets)
    # What callers sent in Authorization headers, as sent.
    forbidden["twilio basic"] = base64.b64encode(
        f"{cred.twilio_account_sid}:{cred.twilio_auth_token}".encode()
    ).decode()
    forbidden["rc client basic"] = base64.b64encode(
        f"{cred.rc_client_id}:{cred.rc_client_secret}".encode()
    ).decode()
    assert "caller_rc_access_token" in forbidden
    for name, secret in forbidden.items():
        assert secret not in text, f"{name} appears in the gateway's log output"
    assert "authorization" not in text.lower()
    # The settings line at start-up names the secrets, masked.
    assert '"twilio_auth_token": "********"' in text or "'twilio_auth_token': '********'" in text


# --- the formatter and the scrubber on their own -------------------------------------------


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("stopgate.test", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_scrubber_masks_secrets_credentials_and_url_passwords() -> None:
    scrub = Scrubber(["s3cr3t-value-123", "abc"])
    assert scrub("token s3cr3t-value-123 here") == "token ******** here"
    assert scrub("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y") == "Authorization: ********"
    assert (
        scrub("{'Authorization': 'bearer U0lNLTEyMzQ1Njc4OQ'}") == "{'Authorization': '********'}"
    )
    assert scrub("sent Basic QUM6dG9rZW4xMjM0NTY=") == "sent Basic ********"
    assert (
        scrub("store postgresql://stopgate:hunter2@db:5432/stopgate")
        == "store postgresql://stopgate:********@db:5432/stopgate"
    )
    assert scrub("X-Twilio-Signature: abcdEFGH1234=") == "X-Twilio-Signature: ********"
    # A short secret only as a whole word: "abc" masked, "abcdef" left alone.
    assert scrub("abc abcdef") == "******** abcdef"
    assert scrub("+16505550111 opted out") == "+16505550111 opted out"


def test_json_formatter_scrubs_message_arguments_extras_and_tracebacks() -> None:
    formatter = JsonFormatter(Scrubber(["topsecret-token"]))
    record = _record(
        "call failed: %s", "topsecret-token", request_id="r1", headers={"x": "topsecret-token"}
    )
    try:
        raise RuntimeError("Authorization: Bearer topsecret-token")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(formatter.format(record))
    assert line["msg"] == "call failed: ********"
    assert line["request_id"] == "r1" and line["headers"] == {"x": "********"}
    assert "topsecret-token" not in json.dumps(line)
    assert "RuntimeError" in line["exc"]


def test_text_formatter_appends_fields_and_scrubs() -> None:
    formatter = TextFormatter(Scrubber(["topsecret-token"]))
    text = formatter.format(_record("hello topsecret-token", decision="blocked", to=["+1650"]))
    assert text.endswith('hello ******** decision="blocked" to=["+1650"]')


def test_every_secret_setting_is_scrubbed() -> None:
    from gateway.config import SubscriberSpec

    settings = Settings(
        twilio_auth_token=Secret("t" * 32),
        admin_token=Secret("admin-secret"),
        subscribers=(SubscriberSpec("crm", "http://x", Secret("subscriber-secret-1")),),
    )
    assert sorted(settings_secrets(settings)) == sorted(
        ["t" * 32, "admin-secret", "subscriber-secret-1"]
    )
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(Scrubber(settings_secrets(settings))))
    logger = logging.getLogger("stopgate.test-scrub")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("settings %s %s", settings, "admin-secret subscriber-secret-1 " + "t" * 32)
    finally:
        logger.removeHandler(handler)
    assert "admin-secret" not in out.getvalue() and "t" * 32 not in out.getvalue()
