"""The compliance console in a real headless Chromium (Debian's ``chromium``, driven by Playwright
for Python through ``executable_path``; Playwright's own browser downloads are never used).

The gateway and the carrier simulator run in this process on real ports (``ServerThread``); the
browser talks to the gateway as a person's would, and the sends that prove a change took effect
go through the gateway's Twilio route with ``requests``, as an app's would. Screenshots land in
``artifacts/console/`` (git-ignored) for a person to look at.

Chromium missing: skipped with the reason locally, a failure in CI (``CI=true``).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.app import create_app
from gateway.carriersim.app import create_sim_app
from gateway.carriersim.state import SimCredentials
from gateway.config import Secret, Settings, TokenSpec
from tests.support.ci import in_ci
from tests.support.servers import ServerThread

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # reported by the ``browser`` fixture (skip locally, fail in CI)
    sync_playwright = None

pytestmark = pytest.mark.e2e

SIM = SimCredentials()
ADMIN_TOKEN = "console-admin-token"
AUDITOR_TOKEN = "console-auditor-token"
BUSINESS = "+16505550100"
OTHER_BUSINESS = "+16505550199"
TWILIO_SEND = f"/2010-04-01/Accounts/{SIM.twilio_account_sid}/Messages.json"
CONSENTS = "/restapi/v2/accounts/~/sms/consents"
XSS = "<script>alert(1)</script>"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "console"
CHROMIUM = Path(os.environ.get("STOPGATE_CHROMIUM", "/usr/bin/chromium"))
# As root Chromium needs these (DESIGN §5); Playwright adds a fresh, empty --user-data-dir.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
TIMEOUT_MS = 10_000
HTTP_TIMEOUT = 10.0

_numbers = itertools.count(10)


def new_customer() -> str:
    """A fictional number (+1 650 555-02xx) no other test of this module uses."""
    return f"+1650555{200 + next(_numbers):04d}"


def chromium_missing() -> str | None:
    if sync_playwright is None:
        return "Playwright for Python is not installed (pip install playwright)"
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set STOPGATE_CHROMIUM)"
    return None


# --- fixtures -----------------------------------------------------------------------------


class Live:
    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, to: str, body: str = "hello", from_: str = BUSINESS) -> requests.Response:
        """A send through the gateway's Twilio route, as an app makes it."""
        return requests.post(
            self.url + TWILIO_SEND,
            data={"To": to, "From": from_, "Body": body},
            auth=(SIM.twilio_account_sid, SIM.twilio_auth_token),
            timeout=HTTP_TIMEOUT,
        )

    def consent(self, *records: dict[str, Any], token: str = ADMIN_TOKEN) -> requests.Response:
        return requests.patch(
            self.url + CONSENTS,
            json={"records": list(records)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT,
        )

    def blocked(self, to: str, body: str = "hello", from_: str = BUSINESS) -> None:
        """Make the gateway refuse (and log) one send."""
        refused = self.send(to, body, from_)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == 21610


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("console")
    with ServerThread(create_sim_app) as sim:
        settings = Settings(
            store=f"sqlite:///{tmp / 'stopgate.db'}",
            ringcentral_upstream=sim.url,
            twilio_upstream=sim.url,
            twilio_auth_token=Secret(SIM.twilio_auth_token),
            admin_token=Secret(ADMIN_TOKEN),
            tokens=(
                TokenSpec(
                    "compliance", hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest(), "auditor"
                ),
            ),
            spool_path=str(tmp / "spool.jsonl"),
            blocked_log_text=True,
        )
        with ServerThread(lambda: create_app(settings)) as gateway:
            yield Live(gateway.url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = chromium_missing()
    if missing is not None:
        if in_ci():
            pytest.fail(f"the console's browser tests need Chromium in CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


class Watched:
    """A page whose dialogs, script errors and policy violations are recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        text = message.text
        # HTTP error statuses are the tests' own business (they check them); anything else
        # logged as an error - a policy violation, a Trusted Types refusal - is a failure.
        if message.type == "error" and not text.startswith("Failed to load resource"):
            self.errors.append(f"console: {text}")

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.errors == [], self.errors


@pytest.fixture
def watched(browser: Browser, live: Live) -> Iterator[Watched]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        base_url=live.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = Watched(context.new_page())
    try:
        yield page
    finally:
        context.close()


def sign_in(watched: Watched, token: str = ADMIN_TOKEN, *, shot: str | None = None) -> Page:
    page = watched.page
    page.goto("/admin/")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    if shot is not None:
        screenshot(page, shot)
    page.fill("#signin-token", token)
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#console")).to_be_visible()
    return page


def screenshot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def blocked_rows(page: Page) -> Any:
    return page.locator("#blocked-table tbody tr.blocked-row")


# --- tests --------------------------------------------------------------------------------


def test_sign_in_and_filter_the_blocked_log(watched: Watched, live: Live) -> None:
    first, second = new_customer(), new_customer()
    assert live.consent(
        {"from": BUSINESS, "to": first, "optStatus": "OptOut"},
        {"from": "*", "to": second, "optStatus": "OptOut"},
    ).ok
    live.blocked(first, "spring sale")
    live.blocked(first, "last chance")
    live.blocked(second, "reminder", from_=OTHER_BUSINESS)

    # A wrong token first: refused, still signed out.
    page = watched.page
    page.goto("/admin/")
    page.fill("#signin-token", "not-a-token")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#status")).to_have_text("That token is not valid here.")
    expect(page.locator("#console")).to_be_hidden()

    page = sign_in(watched, shot="00-sign-in")
    expect(page.locator("#who-name")).to_have_text("admin-token")
    expect(page.locator("#who-role")).to_have_text("admin")
    # The session cookie is HttpOnly (invisible to scripts) and SameSite=Strict; no token kept.
    [cookie] = [c for c in page.context.cookies() if c["name"] == "stopgate_console"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/admin")
    assert ADMIN_TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""
    expect(page.locator("#chart svg rect.bar.blocked").first).to_be_attached()

    # The customer written as people write it.
    first_written = f"({first[2:5]}) {first[5:8]}-{first[8:]}"
    page.fill("#blocked-filter input[name=customer]", first_written)
    page.click("#blocked-filter button[type=submit]")
    expect(blocked_rows(page)).to_have_count(2)
    expect(page.locator("#blocked-totals")).to_contain_text("2 blocked sends match")
    texts = blocked_rows(page).locator("td.message").all_text_contents()
    assert texts == ["last chance", "spring sale"]
    assert set(blocked_rows(page).locator("td:nth-child(4)").all_text_contents()) == {first}
    screenshot(page, "01-blocked-log-filtered")

    # Reason and dialect narrow it further; a time range in the future empties it.
    page.fill("#blocked-filter input[name=customer]", "")
    page.select_option("#blocked-filter select[name=reason]", "opt-out-all")
    page.select_option("#blocked-filter select[name=dialect]", "twilio")
    page.click("#blocked-filter button[type=submit]")
    expect(blocked_rows(page)).to_have_count(1)
    expect(blocked_rows(page).first).to_contain_text(second)
    expect(page.locator("#blocked-totals")).to_contain_text("opt-out-all 1")
    page.fill("#blocked-filter input[name=from_time]", "2999-01-01T00:00:00")
    page.click("#blocked-filter button[type=submit]")
    expect(page.locator("#blocked-table tbody")).to_contain_text("No blocked sends match")
    expect(page.locator("#blocked-totals")).to_contain_text("0 blocked sends match")
    page.click("#blocked-filter button[type=reset]")
    expect(blocked_rows(page).first).to_be_visible()

    # Paging, 25 to a page: newest first, older pages after, and back.
    many = new_customer()
    assert live.consent({"from": BUSINESS, "to": many, "optStatus": "OptOut"}).ok
    for n in range(27):
        live.blocked(many, f"message {n}")
    page.fill("#blocked-filter input[name=customer]", many)
    page.click("#blocked-filter button[type=submit]")
    expect(blocked_rows(page)).to_have_count(25)
    expect(page.locator("#blocked-totals")).to_contain_text("27 blocked sends match")
    expect(blocked_rows(page).first.locator("td.message")).to_have_text("message 26")
    expect(page.locator("#blocked-newer")).to_be_disabled()
    page.click("#blocked-older")
    expect(blocked_rows(page)).to_have_count(2)
    expect(page.locator("#blocked-page")).to_have_text("page 2")
    expect(blocked_rows(page).last.locator("td.message")).to_have_text("message 0")
    expect(page.locator("#blocked-older")).to_be_disabled()
    page.click("#blocked-newer")
    expect(blocked_rows(page)).to_have_count(25)
    expect(page.locator("#blocked-page")).to_have_text("page 1")

    # Sign out: the console is gone and the cookie no longer reads anything.
    page.click("#sign-out")
    expect(page.locator("#signin")).to_be_visible()
    status = page.evaluate("fetch('/admin/blocked').then(r => r.status)")
    assert status == 401
    watched.assert_clean()


def test_export_the_current_filter_as_csv(watched: Watched, live: Live) -> None:
    customer = new_customer()
    assert live.consent({"from": "*", "to": customer, "optStatus": "OptOut"}).ok
    live.blocked(customer, '=HYPERLINK("http://x")')
    live.blocked(customer, "plain text")
    live.blocked(customer, "@SUM(1)")

    page = sign_in(watched)
    page.fill("#blocked-filter input[name=customer]", customer.replace("+1", "1-"))
    page.click("#blocked-filter button[type=submit]")
    expect(blocked_rows(page)).to_have_count(3)
    with page.expect_download() as download_info:
        page.click("#blocked-export")
    download = download_info.value
    assert download.suggested_filename == "blocked-sends.csv"
    saved = ARTIFACTS / "blocked-sends.csv"
    download.save_as(str(saved))
    rows = list(csv.reader(saved.read_text(encoding="utf-8").splitlines()))
    assert rows[0][:5] == ["TIME", "DIALECT", "FROM", "TO", "REASON"]
    assert [row[3] for row in rows[1:]] == [customer] * 3
    assert [row[4] for row in rows[1:]] == ["opt-out-all"] * 3
    # Newest first; formula-like cells neutralised, plain text untouched.
    assert [row[8] for row in rows[1:]] == ["'@SUM(1)", "plain text", '\'=HYPERLINK("http://x")']
    watched.assert_clean()


def test_opt_out_by_hand_then_the_next_send_is_refused(watched: Watched, live: Live) -> None:
    customer = new_customer()
    assert live.send(customer).status_code == 201  # allowed before

    page = sign_in(watched)
    form = page.locator("#change-form")
    expect(form).to_be_visible()
    form.locator("input[name=to]").fill(f"tel:+1-{customer[2:5]}-{customer[5:8]}-{customer[8:]}")
    form.locator("input[name=from]").fill("*")
    form.locator("select[name=optStatus]").select_option("OptOut")
    # The note is required: the browser will not submit without one...
    form.locator("button[type=submit]").click()
    expect(page.locator("#status")).not_to_contain_text("Recorded")
    # ...and neither will the gateway take a write without one.
    csrf = page.evaluate("fetch('/admin/session').then(r => r.json()).then(b => b.csrfToken)")
    no_note = page.evaluate(
        """async ([csrf, to]) => {
            const r = await fetch('/admin/consents', {method: 'PATCH',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
              body: JSON.stringify({records: [{from: '*', to, optStatus: 'OptOut'}]})});
            return [r.status, (await r.json()).error.reason];
        }""",
        [csrf, customer],
    )
    assert no_note == [400, "missing-note"]
    assert live.send(customer).status_code == 201  # still allowed

    form.locator("input[name=note]").fill("Customer called the support line and asked to stop")
    form.locator("button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text(f"Recorded: {customer} opted out")
    row = page.locator("#consents-table tbody tr.consent-row").first
    expect(row).to_contain_text(customer)
    expect(row).to_contain_text("OptOut")
    expect(row).to_contain_text("Customer called the support line")
    history = page.locator("#history-table tbody tr.history-row")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("admin-token")
    expect(history.first).to_contain_text("asked to stop")
    screenshot(page, "02-opted-out-by-hand")

    refused = live.send(customer)
    assert refused.status_code == 400
    assert refused.json()["code"] == 21610
    assert refused.headers["X-Stopgate-Decision"] == "blocked; reason=opt-out-all"

    # And back: an opt-in by hand (from the row's button) lets sends through again.
    row.get_by_role("button", name="Opt in…").click()
    expect(form.locator("select[name=optStatus]")).to_have_value("OptIn")
    form.locator("input[name=note]").fill("Re-subscribed in writing")
    form.locator("button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text(f"Recorded: {customer} opted in")
    expect(history).to_have_count(2)
    assert live.send(customer).status_code == 201
    watched.assert_clean()


def test_the_opt_out_list_searches_any_written_form_and_exports(
    watched: Watched, live: Live
) -> None:
    customer = new_customer()
    assert live.consent(
        {"from": BUSINESS, "to": customer, "optStatus": "OptOut", "note": "STOP by SMS"},
        {"from": OTHER_BUSINESS, "to": customer, "optStatus": "OptIn"},
    ).ok
    page = sign_in(watched)
    search = page.locator("#consent-search")
    search.locator("input[name=to]").fill(f"{customer[2:5]}.{customer[5:8]}.{customer[8:]}")
    search.locator("select[name=optStatus]").select_option("")
    search.locator("button[type=submit]").click()
    rows = page.locator("#consents-table tbody tr.consent-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(BUSINESS)
    expect(rows.nth(0)).to_contain_text("OptOut")
    expect(rows.nth(1)).to_contain_text("OptIn")
    rows.nth(0).get_by_role("button", name="History").click()
    expect(page.locator("#history-pair")).to_contain_text(customer)
    expect(page.locator("#history-table tbody tr.history-row")).to_have_count(1)
    with page.expect_download() as download_info:
        page.click("#consents-export")
    saved = ARTIFACTS / "consents.csv"
    download_info.value.save_as(str(saved))
    lines = list(csv.reader(saved.read_text(encoding="utf-8").splitlines()))
    assert lines[0][:4] == ["FROM", "TO", "STATUS", "SOURCE"]
    assert sorted((r[0], r[1], r[2]) for r in lines[1:]) == [
        (BUSINESS, customer, "OptOut"),
        (OTHER_BUSINESS, customer, "OptIn"),
    ]
    watched.assert_clean()


def test_the_auditor_sees_no_write_controls_and_cannot_write(watched: Watched, live: Live) -> None:
    customer = new_customer()
    assert live.consent({"from": BUSINESS, "to": customer, "optStatus": "OptOut"}).ok
    page = sign_in(watched, AUDITOR_TOKEN)
    expect(page.locator("#who-role")).to_have_text("auditor")
    expect(page.locator("#who-name")).to_have_text("token:compliance")
    # Reading works: the opt-out list, the blocked log, history.
    page.locator("#consent-search input[name=to]").fill(customer)
    page.locator("#consent-search button[type=submit]").click()
    row = page.locator("#consents-table tbody tr.consent-row")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="History").click()
    expect(page.locator("#history-table tbody tr.history-row")).to_have_count(1)
    # No write controls at all: no form, no opt-in/out buttons.
    expect(page.locator("#change-card")).to_have_count(0)
    expect(page.locator("#change-form")).to_have_count(0)
    expect(row.get_by_role("button", name="Opt in…")).to_have_count(0)
    expect(row.get_by_role("button", name="Opt out…")).to_have_count(0)
    screenshot(page, "03-auditor-read-only")

    # A forged write from the page, with the session's own CSRF token, is refused...
    forged = page.evaluate(
        """async (to) => {
            const me = await (await fetch('/admin/session')).json();
            const r = await fetch('/admin/consents', {method: 'PATCH',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrfToken},
              body: JSON.stringify({records: [{from: '*', to, optStatus: 'OptIn',
                                               note: 'forged'}]})});
            return [r.status, (await r.json()).error.reason];
        }""",
        customer,
    )
    assert forged == [403, "forbidden"]
    # ...and so is the auditor's token at the consents API.
    api = live.consent({"from": "*", "to": customer, "optStatus": "OptIn"}, token=AUDITOR_TOKEN)
    assert api.status_code == 403
    assert live.send(customer).status_code == 400  # still blocked
    watched.assert_clean()


def test_script_in_a_blocked_body_and_in_a_note_shows_as_text(watched: Watched, live: Live) -> None:
    customer = new_customer()
    note = '<img src=x onerror="alert(2)">' + XSS
    assert live.consent({"from": BUSINESS, "to": customer, "optStatus": "OptOut", "note": note}).ok
    live.blocked(customer, XSS)

    page = sign_in(watched)
    page.fill("#blocked-filter input[name=customer]", customer)
    page.click("#blocked-filter button[type=submit]")
    expect(blocked_rows(page)).to_have_count(1)
    assert blocked_rows(page).locator("td.message").text_content() == XSS
    page.locator("#consent-search input[name=to]").fill(customer)
    page.locator("#consent-search button[type=submit]").click()
    row = page.locator("#consents-table tbody tr.consent-row")
    expect(row).to_have_count(1)
    assert row.locator("td.note").text_content() == note
    row.get_by_role("button", name="History").click()
    expect(page.locator("#history-table td.note")).to_have_text(note)
    # Nothing was parsed as markup, and nothing ran.
    assert page.locator("main script, main img").count() == 0
    page.wait_for_timeout(300)  # room for an onerror handler to fire, if one had been created
    screenshot(page, "04-xss-shown-as-text")
    watched.assert_clean()


def unclear_text(live: Live, customer: str, text: str, to: str = BUSINESS) -> str:
    """The carrier's side: a signed Twilio webhook carrying ``text``; the TwiML answer."""
    from twilio.request_validator import RequestValidator

    url = live.url + "/webhooks/twilio"
    form = {
        "MessageSid": "SM" + hashlib.sha256(f"{customer}{text}{to}".encode()).hexdigest()[:32],
        "AccountSid": SIM.twilio_account_sid,
        "From": customer,
        "To": to,
        "Body": text,
    }
    signature = RequestValidator(SIM.twilio_auth_token).compute_signature(url, form)
    answer = requests.post(
        url, data=form, headers={"X-Twilio-Signature": signature}, timeout=HTTP_TIMEOUT
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Stopgate-Revocation"] == "unclear"
    return answer.text


def review_rows(page: Page) -> Any:
    return page.locator("#review-table tbody tr.review-row")


def test_needs_review_lists_unclear_messages_and_opts_out_or_dismisses(
    watched: Watched, live: Live
) -> None:
    first, second = new_customer(), new_customer()
    assert "Do you want to stop receiving messages" in unclear_text(live, first, "Stop this")
    unclear_text(live, second, f"who is this? {XSS}")

    page = sign_in(watched)
    rows = review_rows(page)
    mine = rows.filter(has_text=first)
    expect(mine).to_have_count(1)
    expect(mine.locator("td.review-text")).to_have_text("Stop this")
    expect(mine.locator("td.review-why")).to_have_text(
        'unclear: rule en.stop-mention matched "stop this"'
    )
    other = rows.filter(has_text=second)
    # The customer's text is shown as text, never run as markup.
    expect(other.locator("td.review-text")).to_have_text(f"who is this? {XSS}")
    screenshot(page, "20-needs-review")

    assert live.send(first).status_code == 201, "unclear blocks nothing by itself"
    mine.locator("button.review-opt-out").click()
    expect(page.locator("#status")).to_have_text(f"Opted out {first}.")
    expect(review_rows(page).filter(has_text=first)).to_have_count(0)
    refused = live.send(first)
    assert refused.status_code == 400 and refused.json()["code"] == 21610

    review_rows(page).filter(has_text=second).locator("button.review-dismiss").click()
    expect(review_rows(page).filter(has_text=second)).to_have_count(0)
    assert live.send(second).status_code == 201

    page.select_option("#review-filter select[name=status]", "all")
    closed = review_rows(page).filter(has_text=first)
    expect(closed).to_contain_text("opted-out")
    expect(closed).to_contain_text("by admin-token")
    watched.assert_clean()


def test_the_auditor_sees_the_review_list_without_write_buttons(
    watched: Watched, live: Live
) -> None:
    customer = new_customer()
    unclear_text(live, customer, "not interested")
    page = sign_in(watched, AUDITOR_TOKEN)
    row = review_rows(page).filter(has_text=customer)
    expect(row).to_have_count(1)
    expect(row.locator("button")).to_have_count(0)
    status = page.evaluate(
        "rows => fetch('/admin/reviews/1/dismiss', {method: 'POST'}).then(r => r.status)",
        None,
    )
    assert status in (401, 403)
    watched.assert_clean()
