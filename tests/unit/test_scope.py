"""Brands, per-sender defaults and suppression lists in consent resolution.

Tables pin the combinations; hypothesis compares ``applicable_from_keys`` / ``decide`` with
brute-force references, and replays random STOP/START sequences on brand numbers against the
one-consent-per-brand model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.consent import (
    BlockReason,
    ConsentRecord,
    DefaultConsent,
    OptStatus,
    Source,
    Suppression,
    SuppressionKind,
    applicable_from_keys,
    decide,
    default_for,
    explain,
    keyword_scopes,
    supersedes,
)
from policy.numbers import (
    WILDCARD,
    AddressProblem,
    InvalidAddress,
    Role,
    brand_key,
    business_key,
    canonical_key,
    is_brand_key,
)

F = "+16505550100"  # a Twilio number of brand acme
G = "+16505550199"  # a RingCentral number of brand acme
H = "+16505550177"  # a number of no brand
S = "MG0123456789abcdef0123456789abcdef"  # a Messaging Service (of brand acme)
ACME = "brand:acme"
OTHER = "brand:other"
T = "+16505550111"
IN, OUT = OptStatus.OPT_IN, OptStatus.OPT_OUT
ALLOW, REQUIRE = DefaultConsent.ALLOW, DefaultConsent.REQUIRE_OPT_IN
BRANDS = {F: ACME, G: ACME, S: ACME}


def rec(from_key: str, status: OptStatus, at: int) -> ConsentRecord:
    return ConsentRecord(from_key, T, status, Source.RECIPIENT, at)


def listed(kind: SuppressionKind, at: int = 100, name: str = "l") -> Suppression:
    return Suppression(name, kind, at)


# --- brand keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [("brand:acme", ACME), ("Brand:ACME", ACME), (" brand: acme ", ACME), ("brand:a_b-9", None)],
)
def test_brand_keys_are_canonical_where_records_are_written(raw: str, key: str | None) -> None:
    result = business_key(raw, allow_wildcard=True)
    assert result == (key or raw.strip().lower())
    assert is_brand_key(result)
    assert business_key(result, allow_wildcard=True) == result


@pytest.mark.parametrize(
    ("raw", "role", "allow", "problem"),
    [
        ("brand:acme", Role.BUSINESS, False, AddressProblem.WILDCARD_NOT_ALLOWED),
        ("brand:acme", Role.CUSTOMER, False, AddressProblem.NOT_A_CUSTOMER_ADDRESS),
        ("brand:", Role.BUSINESS, True, AddressProblem.BAD_BRAND_NAME),
        ("brand:-x", Role.BUSINESS, True, AddressProblem.BAD_BRAND_NAME),
        ("brand:a b", Role.BUSINESS, True, AddressProblem.BAD_BRAND_NAME),
        ("brand:" + "a" * 33, Role.BUSINESS, True, AddressProblem.BAD_BRAND_NAME),
    ],
)
def test_brand_keys_refused(raw: str, role: Role, allow: bool, problem: AddressProblem) -> None:
    with pytest.raises(InvalidAddress) as caught:
        canonical_key(raw, role, allow_wildcard=allow)
    assert caught.value.problem is problem


def test_brand_key_of_a_configured_name() -> None:
    assert brand_key("Acme") == ACME


# --- applicable from keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("business", "service", "number_service", "brand_of", "keys"),
    [
        (F, None, None, BRANDS, (F, ACME, WILDCARD)),
        (H, None, None, BRANDS, (H, WILDCARD)),
        (G, None, None, BRANDS, (G, ACME, WILDCARD)),
        (None, S, None, BRANDS, (S, ACME, WILDCARD)),
        (H, None, S, BRANDS, (H, S, ACME, WILDCARD)),
        (F, S, None, BRANDS, (F, S, ACME, WILDCARD)),
        (F, None, S, BRANDS, (F, S, ACME, WILDCARD)),
        (H, None, None, {H: OTHER, S: ACME}, (H, OTHER, WILDCARD)),
        (H, S, None, {H: OTHER, S: ACME}, (H, S, OTHER, ACME, WILDCARD)),
        (F, None, None, None, (F, WILDCARD)),
        (F, None, None, {}, (F, WILDCARD)),
    ],
)
def test_applicable_from_keys_with_brands(
    business: str | None,
    service: str | None,
    number_service: str | None,
    brand_of: Mapping[str, str] | None,
    keys: tuple[str, ...],
) -> None:
    got = applicable_from_keys(business, service, number_service=number_service, brand_of=brand_of)
    assert got == keys


SENDERS = st.sampled_from([F, G, H, S, None])
BRAND_MAPS = st.dictionaries(st.sampled_from([F, G, H, S]), st.sampled_from([ACME, OTHER]))


@given(SENDERS, st.sampled_from([S, None]), st.sampled_from([S, None]), BRAND_MAPS)
def test_applicable_from_keys_is_the_set_of_senders_their_brands_and_the_wildcard(
    business: str | None, service: str | None, number_service: str | None, brand_of: dict[str, str]
) -> None:
    keys = applicable_from_keys(business, service, number_service=number_service, brand_of=brand_of)
    senders = {k for k in (business, service, number_service) if k is not None}
    assert set(keys) == senders | {brand_of[k] for k in senders if k in brand_of} | {WILDCARD}
    assert len(keys) == len(set(keys))
    assert keys[-1] == WILDCARD


# --- the default of a sender ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "overrides", "fallback", "expected"),
    [
        ((F, ACME, WILDCARD), {}, ALLOW, ALLOW),
        ((F, ACME, WILDCARD), {}, REQUIRE, REQUIRE),
        ((F, ACME, WILDCARD), {ACME: REQUIRE}, ALLOW, REQUIRE),
        ((F, ACME, WILDCARD), {ACME: ALLOW}, REQUIRE, ALLOW),
        ((F, ACME, WILDCARD), {F: ALLOW, ACME: REQUIRE}, REQUIRE, ALLOW),
        ((F, ACME, WILDCARD), {F: REQUIRE, ACME: ALLOW}, ALLOW, REQUIRE),
        ((F, S, ACME, WILDCARD), {F: ALLOW, S: REQUIRE}, ALLOW, REQUIRE),
        ((F, S, WILDCARD), {S: ALLOW}, REQUIRE, ALLOW),
        ((H, WILDCARD), {F: REQUIRE, ACME: REQUIRE}, ALLOW, ALLOW),
        ((H, OTHER, ACME, WILDCARD), {OTHER: ALLOW, ACME: REQUIRE}, ALLOW, REQUIRE),
        ((H, WILDCARD), {WILDCARD: REQUIRE}, ALLOW, ALLOW),
    ],
)
def test_default_for(
    keys: tuple[str, ...],
    overrides: dict[str, DefaultConsent],
    fallback: DefaultConsent,
    expected: DefaultConsent,
) -> None:
    assert default_for(keys, overrides, fallback) is expected


# --- decide with brands and suppressions ---------------------------------------------------------

DecideRow = tuple[
    list[ConsentRecord | None], list[Suppression], DefaultConsent, bool, BlockReason | None
]
DECIDE: list[DecideRow] = [
    # Brand records resolve like the others: newest wins, a tie goes to OptOut.
    ([None, rec(ACME, OUT, 10), None], [], ALLOW, False, BlockReason.OPT_OUT_BRAND),
    ([rec(F, IN, 20), rec(ACME, OUT, 10), None], [], ALLOW, True, None),
    ([rec(F, IN, 10), rec(ACME, OUT, 20), None], [], ALLOW, False, BlockReason.OPT_OUT_BRAND),
    ([rec(F, OUT, 10), rec(ACME, IN, 20), None], [], ALLOW, True, None),
    ([rec(F, IN, 10), rec(ACME, OUT, 10), None], [], ALLOW, False, BlockReason.OPT_OUT_BRAND),
    ([None, rec(ACME, IN, 10), rec(WILDCARD, OUT, 20)], [], ALLOW, False, BlockReason.OPT_OUT_ALL),
    # Opt-in mode: only an OptIn of the pair, the brand or the wildcard opens it.
    ([None, None, None], [], REQUIRE, False, BlockReason.NO_OPT_IN),
    ([None, rec(ACME, IN, 10), None], [], REQUIRE, True, None),
    ([None, None, rec(WILDCARD, IN, 10)], [], REQUIRE, True, None),
    # Internal lists block whatever consent says.
    ([rec(F, IN, 200)], [listed(SuppressionKind.INTERNAL)], ALLOW, False, BlockReason.SUPPRESSED),
    ([], [listed(SuppressionKind.INTERNAL)], ALLOW, False, BlockReason.SUPPRESSED),
    # A do-not-call extract gives way to the customer's own consent, whenever given.
    ([rec(F, IN, 50)], [listed(SuppressionKind.DNC)], ALLOW, True, None),
    ([rec(ACME, IN, 500)], [listed(SuppressionKind.DNC)], ALLOW, True, None),
    ([], [listed(SuppressionKind.DNC)], ALLOW, False, BlockReason.SUPPRESSED),
    ([rec(F, OUT, 500)], [listed(SuppressionKind.DNC)], ALLOW, False, BlockReason.SUPPRESSED),
    # A reassigned number: only consent newer than the list date is the new subscriber's.
    ([rec(F, IN, 50)], [listed(SuppressionKind.REASSIGNED)], ALLOW, False, BlockReason.SUPPRESSED),
    ([rec(F, IN, 100)], [listed(SuppressionKind.REASSIGNED)], ALLOW, False, BlockReason.SUPPRESSED),
    ([rec(F, IN, 101)], [listed(SuppressionKind.REASSIGNED)], ALLOW, True, None),
    (
        [rec(F, IN, 101)],
        [listed(SuppressionKind.REASSIGNED), listed(SuppressionKind.INTERNAL, name="m")],
        ALLOW,
        False,
        BlockReason.SUPPRESSED,
    ),
    ([rec(F, IN, 101)], [listed(SuppressionKind.REASSIGNED)], REQUIRE, True, None),
]


@pytest.mark.parametrize(("records", "entries", "default", "allowed", "reason"), DECIDE)
def test_decide_with_brands_and_suppressions(
    records: list[ConsentRecord | None],
    entries: list[Suppression],
    default: DefaultConsent,
    allowed: bool,
    reason: BlockReason | None,
) -> None:
    decision = decide(records, default, entries)
    assert (decision.allowed, decision.reason) == (allowed, reason)
    assert (decision.suppression is not None) is (reason is BlockReason.SUPPRESSED)
    assert explain(decision, default)


def test_explain_names_the_list_and_what_overrides_it() -> None:
    decision = decide([], ALLOW, [listed(SuppressionKind.REASSIGNED, name="reassigned-2026")])
    text = explain(decision, ALLOW)
    assert "'reassigned-2026'" in text and "newer than that date" in text


RECORDS = st.lists(
    st.tuples(st.sampled_from([F, ACME, WILDCARD]), st.sampled_from(OptStatus), st.integers(0, 9)),
    max_size=8,
)
ENTRIES = st.lists(
    st.builds(
        Suppression,
        st.sampled_from(["a", "b"]),
        st.sampled_from(SuppressionKind),
        st.integers(0, 9),
    ),
    max_size=3,
)


def reference(
    writes: Sequence[ConsentRecord], entries: Sequence[Suppression], default: DefaultConsent
) -> bool:
    """Allowed? By a scan of everything: the latest time, OptOut on a tie; then every list."""
    latest = max((w.modified_us for w in writes), default=None)
    at_latest = [w for w in writes if w.modified_us == latest]
    opted_in = bool(at_latest) and all(w.status is IN for w in at_latest)
    consent_time = latest if opted_in else None
    for entry in entries:
        if entry.kind is SuppressionKind.INTERNAL or consent_time is None:
            return False
        if entry.kind is SuppressionKind.REASSIGNED and consent_time <= entry.listed_us:
            return False
    if not at_latest:
        return default is ALLOW
    return opted_in


@settings(max_examples=400, deadline=None)
@given(RECORDS, ENTRIES, st.sampled_from(DefaultConsent))
def test_decide_matches_a_scan(
    writes: list[tuple[str, OptStatus, int]],
    entries: list[Suppression],
    default: DefaultConsent,
) -> None:
    history = [rec(key, status, at) for key, status, at in writes]
    current: dict[str, ConsentRecord] = {}
    for write in history:
        if supersedes(write, current.get(write.from_key)):
            current[write.from_key] = write
    decision = decide(current.values(), default, entries)
    assert decision.allowed is reference(history, entries, default)


# --- what a keyword writes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "businesses", "service", "everywhere", "scoped", "keys"),
    [
        (OUT, [F], None, False, {ACME}, (F, ACME)),
        (IN, [F], None, False, {ACME}, (F, ACME)),
        (OUT, [F], None, False, set(), (F,)),
        (OUT, [H], None, False, {ACME}, (H,)),
        (OUT, [F], None, True, {ACME}, (WILDCARD,)),
        (IN, [F], None, True, {ACME}, (F, ACME)),
        (OUT, [H], S, False, {ACME}, (H, S, ACME)),
        (OUT, [F, G], None, False, {ACME}, (F, G, ACME)),
    ],
)
def test_keyword_scopes(
    status: OptStatus,
    businesses: list[str],
    service: str | None,
    everywhere: bool,
    scoped: set[str],
    keys: tuple[str, ...],
) -> None:
    got = keyword_scopes(
        status,
        businesses,
        service,
        everywhere=everywhere,
        service_of={},
        brand_of=BRANDS,
        brand_scoped=scoped,
    )
    assert got == keys


def test_a_number_of_a_service_writes_the_service_and_its_brand() -> None:
    got = keyword_scopes(
        OUT, [H], None, everywhere=False, service_of={H: S}, brand_of=BRANDS, brand_scoped={ACME}
    )
    assert got == (H, S, ACME)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([F, G]), st.sampled_from(OptStatus)), max_size=10))
def test_one_consent_across_a_brand(keywords: list[tuple[str, OptStatus]]) -> None:
    """With a brand-scoped brand, whatever numbers the keywords reached, every number of the
    brand follows the customer's latest keyword (or the default, before any)."""
    current: dict[str, ConsentRecord] = {}
    for at, (number, status) in enumerate(keywords):
        for key in keyword_scopes(
            status,
            [number],
            None,
            everywhere=False,
            service_of={},
            brand_of=BRANDS,
            brand_scoped={ACME},
        ):
            current[key] = ConsentRecord(key, T, status, Source.RECIPIENT, at)
    for sender in (F, G):
        keys = applicable_from_keys(sender, None, brand_of=BRANDS)
        decision = decide((current.get(k) for k in keys), REQUIRE)
        assert decision.allowed is (bool(keywords) and keywords[-1][1] is IN)
