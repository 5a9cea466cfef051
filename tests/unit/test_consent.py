"""Consent resolution: newest record wins, an exact tie goes to OptOut, otherwise the default.

Tables pin the pair / service / wildcard combinations; hypothesis compares the store-and-decide
path with a brute-force scan of the whole write history.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.consent import (
    BlockReason,
    ConsentRecord,
    Decision,
    DefaultConsent,
    OptStatus,
    Source,
    applicable_from_keys,
    decide,
    explain,
    format_time,
    newest,
    parse_time,
    supersedes,
)
from policy.numbers import WILDCARD

F = "+16505550100"  # a business number
G = "+16505550199"  # another business number
S = "MG0123456789abcdef0123456789abcdef"  # a Messaging Service
T = "+16505550111"  # the customer
IN = OptStatus.OPT_IN
OUT = OptStatus.OPT_OUT
ALLOW = DefaultConsent.ALLOW
REQUIRE = DefaultConsent.REQUIRE_OPT_IN


def rec(
    from_key: str,
    status: OptStatus,
    at: int,
    source: Source = Source.RECIPIENT,
    note: str | None = None,
) -> ConsentRecord:
    return ConsentRecord(from_key, T, status, source, at, note)


# --- Vocabulary ----------------------------------------------------------------------------------


def test_enum_values_are_the_wire_vocabulary() -> None:
    assert [s.value for s in OptStatus] == ["OptIn", "OptOut"]
    assert [s.value for s in Source] == ["Recipient", "Api", "Upstream", "Carrier"]
    assert [d.value for d in DefaultConsent] == ["allow", "require-opt-in"]
    assert {r.name: r.value for r in BlockReason} == {
        "OPT_OUT": "opt-out",
        "OPT_OUT_ALL": "opt-out-all",
        "OPT_OUT_SERVICE": "opt-out-service",
        "NO_OPT_IN": "no-opt-in",
        "OPT_OUT_BRAND": "opt-out-brand",
        "SUPPRESSED": "suppressed",
    }
    # X-Stopgate-Decision carries str(reason).
    assert str(BlockReason.OPT_OUT_ALL) == "opt-out-all"


# --- decide over record combinations -------------------------------------------------------------

# (records, default, allowed, reason, index of the deciding record or None)
DecideRow = tuple[list[ConsentRecord | None], DefaultConsent, bool, BlockReason | None, int | None]

DECIDE: list[DecideRow] = [
    # No record: the default decides.
    ([], ALLOW, True, None, None),
    ([], REQUIRE, False, BlockReason.NO_OPT_IN, None),
    ([None, None, None], ALLOW, True, None, None),
    ([None, None, None], REQUIRE, False, BlockReason.NO_OPT_IN, None),
    # One record, whatever the default.
    ([rec(F, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT, 0),
    ([rec(F, OUT, 10)], REQUIRE, False, BlockReason.OPT_OUT, 0),
    ([rec(F, IN, 10)], ALLOW, True, None, 0),
    ([rec(F, IN, 10)], REQUIRE, True, None, 0),
    ([rec(WILDCARD, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT_ALL, 0),
    ([rec(WILDCARD, IN, 10)], REQUIRE, True, None, 0),
    ([rec(S, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT_SERVICE, 0),
    ([rec(S, IN, 10)], REQUIRE, True, None, 0),
    ([None, rec(F, OUT, 10), None], ALLOW, False, BlockReason.OPT_OUT, 1),
    # Other business keys block as a plain opt-out.
    ([rec("sc:12345", OUT, 10)], ALLOW, False, BlockReason.OPT_OUT, 0),
    ([rec("alpha:ACME", OUT, 10)], ALLOW, False, BlockReason.OPT_OUT, 0),
    ([rec("whatsapp:" + F, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT, 0),
    # Pair against wildcard: START after STOPALL reopens the pair; STOPALL after START closes it.
    ([rec(F, IN, 20), rec(WILDCARD, OUT, 10)], ALLOW, True, None, 0),
    ([rec(F, IN, 10), rec(WILDCARD, OUT, 20)], ALLOW, False, BlockReason.OPT_OUT_ALL, 1),
    ([rec(F, OUT, 10), rec(WILDCARD, IN, 20)], REQUIRE, True, None, 1),
    ([rec(F, OUT, 20), rec(WILDCARD, IN, 10)], REQUIRE, False, BlockReason.OPT_OUT, 0),
    ([rec(F, OUT, 20), rec(WILDCARD, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT, 0),
    ([rec(F, OUT, 10), rec(WILDCARD, OUT, 20)], ALLOW, False, BlockReason.OPT_OUT_ALL, 1),
    ([rec(F, IN, 10), rec(WILDCARD, IN, 20)], REQUIRE, True, None, 1),
    # Pair against service.
    ([rec(F, IN, 20), rec(S, OUT, 10)], ALLOW, True, None, 0),
    ([rec(F, IN, 10), rec(S, OUT, 20)], ALLOW, False, BlockReason.OPT_OUT_SERVICE, 1),
    ([rec(S, OUT, 10), rec(F, IN, 20)], ALLOW, True, None, 1),
    ([rec(F, OUT, 10), rec(S, IN, 20)], ALLOW, True, None, 1),
    # All three.
    ([rec(F, IN, 30), rec(S, OUT, 20), rec(WILDCARD, OUT, 10)], ALLOW, True, None, 0),
    ([rec(F, IN, 10), rec(S, OUT, 30), rec(WILDCARD, OUT, 20)], ALLOW, False,
     BlockReason.OPT_OUT_SERVICE, 1),
    ([rec(F, IN, 10), rec(S, IN, 20), rec(WILDCARD, OUT, 30)], ALLOW, False,
     BlockReason.OPT_OUT_ALL, 2),
    ([rec(F, OUT, 10), rec(S, OUT, 20), rec(WILDCARD, IN, 30)], REQUIRE, True, None, 2),
    ([rec(F, OUT, 30), None, rec(WILDCARD, IN, 20)], ALLOW, False, BlockReason.OPT_OUT, 0),
    # Exact ties go to OptOut, in either order.
    ([rec(F, IN, 10), rec(WILDCARD, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT_ALL, 1),
    ([rec(WILDCARD, OUT, 10), rec(F, IN, 10)], ALLOW, False, BlockReason.OPT_OUT_ALL, 0),
    ([rec(F, OUT, 10), rec(WILDCARD, IN, 10)], REQUIRE, False, BlockReason.OPT_OUT, 0),
    ([rec(WILDCARD, IN, 10), rec(F, OUT, 10)], REQUIRE, False, BlockReason.OPT_OUT, 1),
    ([rec(F, IN, 10), rec(S, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT_SERVICE, 1),
    ([rec(S, OUT, 10), rec(F, IN, 10)], ALLOW, False, BlockReason.OPT_OUT_SERVICE, 0),
    ([rec(F, IN, 10), rec(S, IN, 10), rec(WILDCARD, OUT, 10)], ALLOW, False,
     BlockReason.OPT_OUT_ALL, 2),
    ([rec(F, IN, 10), rec(S, OUT, 10), rec(WILDCARD, IN, 10)], ALLOW, False,
     BlockReason.OPT_OUT_SERVICE, 1),
    # A tie only matters at the top: an older OptOut never beats a newer OptIn.
    ([rec(F, OUT, 10), rec(S, OUT, 10), rec(WILDCARD, IN, 11)], ALLOW, True, None, 2),
    # Among equal time and equal status the first given decides.
    ([rec(F, OUT, 10), rec(WILDCARD, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT, 0),
    ([rec(WILDCARD, OUT, 10), rec(F, OUT, 10)], ALLOW, False, BlockReason.OPT_OUT_ALL, 0),
    ([rec(F, IN, 10), rec(WILDCARD, IN, 10)], REQUIRE, True, None, 0),
    # One microsecond is enough; the epoch and earlier are ordinary times.
    ([rec(F, OUT, 1_700_000_000_000_000), rec(F, IN, 1_700_000_000_000_001)], ALLOW, True, None,
     1),
    ([rec(WILDCARD, OUT, -1), rec(F, IN, 0)], ALLOW, True, None, 1),
    ([rec(WILDCARD, OUT, 0), rec(F, IN, -1)], ALLOW, False, BlockReason.OPT_OUT_ALL, 0),
]  # fmt: skip


@pytest.mark.parametrize(("records", "default", "allowed", "reason", "deciding"), DECIDE)
def test_decide(
    records: list[ConsentRecord | None],
    default: DefaultConsent,
    allowed: bool,
    reason: BlockReason | None,
    deciding: int | None,
) -> None:
    decision = decide(records, default)
    expected = None if deciding is None else records[deciding]
    assert decision == Decision(allowed, reason, expected)
    assert decision.deciding is expected
    assert newest(records) is expected
    # decide consumes any iterable once.
    assert decide(iter(records), default) == decision


@pytest.mark.parametrize("default", list(DefaultConsent))
def test_a_decision_is_consistent(default: DefaultConsent) -> None:
    for records, _, _, _, _ in DECIDE:
        decision = decide(records, default)
        assert decision.allowed is (decision.reason is None)
        if decision.deciding is not None:
            assert decision.allowed is (decision.deciding.status is IN)


@pytest.mark.parametrize(
    ("business", "service", "keys"),
    [
        (F, None, (F, WILDCARD)),
        (None, S, (S, WILDCARD)),
        (F, S, (F, S, WILDCARD)),
        (None, None, (WILDCARD,)),
        (F, F, (F, WILDCARD)),
        (WILDCARD, None, (WILDCARD,)),
        (None, WILDCARD, (WILDCARD,)),
        ("sc:12345", S, ("sc:12345", S, WILDCARD)),
    ],
)
def test_applicable_from_keys(
    business: str | None, service: str | None, keys: tuple[str, ...]
) -> None:
    assert applicable_from_keys(business, service) == keys


# --- newest and supersedes -----------------------------------------------------------------------


def test_newest_of_nothing() -> None:
    assert newest([]) is None
    assert newest([None]) is None
    assert newest(iter([None, None])) is None


@pytest.mark.parametrize(
    ("incoming", "current", "expected"),
    [
        (rec(F, IN, 10), None, True),
        (rec(F, OUT, 10), None, True),
        (rec(F, IN, 11), rec(F, OUT, 10), True),
        (rec(F, OUT, 11), rec(F, IN, 10), True),
        (rec(F, IN, 11), rec(F, IN, 10), True),
        (rec(F, IN, 10), rec(F, OUT, 11), False),
        (rec(F, OUT, 10), rec(F, IN, 11), False),
        (rec(F, OUT, 10), rec(F, IN, 10), True),  # the tie goes to OptOut
        (rec(F, IN, 10), rec(F, OUT, 10), False),
        (rec(F, OUT, 10), rec(F, OUT, 10), False),  # an equal record changes nothing
        (rec(F, IN, 10), rec(F, IN, 10), False),
        (rec(F, OUT, 10, Source.API), rec(F, OUT, 10, Source.CARRIER), False),
        (rec(F, IN, 10, note="again"), rec(F, IN, 10), False),
    ],
)
def test_supersedes(incoming: ConsentRecord, current: ConsentRecord | None, expected: bool) -> None:
    assert supersedes(incoming, current) is expected


def test_a_record_never_supersedes_itself() -> None:
    # Regression: supersedes(r, r) was True because it compared identity of newest((r, r)).
    for record in (rec(F, IN, 10), rec(F, OUT, 10)):
        assert not supersedes(record, record)


RECORDS = st.builds(
    ConsentRecord,
    from_key=st.sampled_from([F, S, WILDCARD]),
    to_key=st.just(T),
    status=st.sampled_from(OptStatus),
    source=st.sampled_from(Source),
    modified_us=st.integers(0, 4),
    note=st.none() | st.sampled_from(["a", "b"]),
)
PROPERTY = settings(max_examples=300, deadline=None)


@PROPERTY
@given(RECORDS, RECORDS, RECORDS)
def test_supersedes_is_a_strict_weak_order(
    a: ConsentRecord, b: ConsentRecord, c: ConsentRecord
) -> None:
    assert not supersedes(a, a)  # irreflexive
    assert not (supersedes(a, b) and supersedes(b, a))  # asymmetric
    if supersedes(a, b) and supersedes(b, c):
        assert supersedes(a, c)  # transitive
    # Records are incomparable exactly when time and status agree, and that is an equivalence.
    rank = {IN: 0, OUT: 1}
    assert (supersedes(a, b) or supersedes(b, a)) is (
        (a.modified_us, a.status) != (b.modified_us, b.status)
    )
    assert supersedes(a, b) is ((a.modified_us, rank[a.status]) > (b.modified_us, rank[b.status]))
    assert supersedes(a, None)


@PROPERTY
@given(st.lists(RECORDS | st.none(), max_size=6))
def test_newest_is_the_maximum_under_supersedes(records: list[ConsentRecord | None]) -> None:
    present = [r for r in records if r is not None]
    best = newest(records)
    if not present:
        assert best is None
        return
    assert best is not None
    assert any(best is r for r in present)
    assert not any(supersedes(r, best) for r in present)
    # Among the maximal records, the first one given.
    assert best is next(r for r in present if not any(supersedes(o, r) for o in present))
    # For a pair, newest and supersedes agree.
    for x, y in itertools.permutations(present, 2):
        assert (newest([y, x]) is x) is supersedes(x, y)


@PROPERTY
@given(st.lists(RECORDS | st.none(), max_size=6), st.randoms(use_true_random=False))
def test_the_verdict_does_not_depend_on_order(
    records: list[ConsentRecord | None], rnd: object
) -> None:
    shuffled = list(records)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for default in DefaultConsent:
        one, other = decide(records, default), decide(shuffled, default)
        assert one.allowed is other.allowed
        if one.deciding is None:
            assert other.deciding is None
        else:
            assert other.deciding is not None
            assert (one.deciding.modified_us, one.deciding.status) == (
                other.deciding.modified_us,
                other.deciding.status,
            )


# --- The store-and-decide path against a brute-force scan of the history -------------------------

WRITES = st.lists(
    st.tuples(
        st.sampled_from([F, G, S, WILDCARD]),
        st.sampled_from(OptStatus),
        st.integers(0, 6),  # few distinct times: collisions are common
        st.sampled_from(Source),
    ),
    max_size=25,
)
SENDS = st.sampled_from([(F, None), (F, S), (None, S), (G, None), (G, S)])


def apply(history: Sequence[ConsentRecord]) -> dict[str, ConsentRecord]:
    """A store: one current record per key, replaced only by a record that supersedes it."""
    store: dict[str, ConsentRecord] = {}
    for write in history:
        if supersedes(write, store.get(write.from_key)):
            store[write.from_key] = write
    return store


def reference(
    history: Sequence[ConsentRecord], from_keys: Sequence[str], default: DefaultConsent
) -> tuple[bool, list[ConsentRecord]]:
    """The verdict and every write that could be the governing one, by scanning everything."""
    relevant = [w for w in history if w.from_key in from_keys]
    if not relevant:
        return default is DefaultConsent.ALLOW, []
    latest = max(w.modified_us for w in relevant)
    at_latest = [w for w in relevant if w.modified_us == latest]
    if any(w.status is OUT for w in at_latest):
        return False, [w for w in at_latest if w.status is OUT]
    return True, at_latest


def expected_reason(record: ConsentRecord) -> BlockReason:
    if record.from_key == WILDCARD:
        return BlockReason.OPT_OUT_ALL
    if record.from_key == S:
        return BlockReason.OPT_OUT_SERVICE
    return BlockReason.OPT_OUT


@settings(max_examples=400, deadline=None)
@given(WRITES, SENDS, st.sampled_from(DefaultConsent))
def test_store_then_decide_matches_a_scan_of_the_history(
    writes: list[tuple[str, OptStatus, int, Source]],
    send: tuple[str | None, str | None],
    default: DefaultConsent,
) -> None:
    history = [rec(key, status, at, source) for key, status, at, source in writes]
    store = apply(history)
    from_keys = applicable_from_keys(*send)
    decision = decide((store.get(key) for key in from_keys), default)

    allowed, candidates = reference(history, from_keys, default)
    assert decision.allowed is allowed
    if not candidates:
        assert decision.deciding is None
        assert decision.reason is (None if allowed else BlockReason.NO_OPT_IN)
        return
    assert any(decision.deciding is c for c in candidates)
    if allowed:
        assert decision.reason is None
    else:
        assert decision.deciding is not None
        assert decision.reason is expected_reason(decision.deciding)
        assert decision.reason in {expected_reason(c) for c in candidates}


@settings(max_examples=200, deadline=None)
@given(WRITES, st.randoms(use_true_random=False))
def test_the_store_converges_whatever_the_order_of_writes(
    writes: list[tuple[str, OptStatus, int, Source]], rnd: object
) -> None:
    history = [rec(key, status, at, source) for key, status, at, source in writes]
    shuffled = list(history)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    one, other = apply(history), apply(shuffled)
    assert one.keys() == other.keys()
    for key in one:
        assert (one[key].modified_us, one[key].status) == (
            other[key].modified_us,
            other[key].status,
        )


# --- Time ----------------------------------------------------------------------------------------

MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.mark.parametrize(
    ("modified_us", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1, "1970-01-01T00:00:00.000001Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (1_747_169_826_473_705, "2025-05-13T20:57:06.473705Z"),
        (951_782_400_000_000, "2000-02-29T00:00:00.000000Z"),
        (MIN_US, "0001-01-01T00:00:00.000000Z"),
        (-30_610_224_000_000_001, "0999-12-31T23:59:59.999999Z"),
        (MAX_US, "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_format_time(modified_us: int, text: str) -> None:
    assert format_time(modified_us) == text
    assert parse_time(text) == modified_us


def test_format_time_pads_early_years() -> None:
    # Regression: strftime("%Y") on glibc wrote year 1 as "1", which parse_time then refused.
    assert format_time(MIN_US).startswith("0001-")
    assert parse_time(format_time(MIN_US)) == MIN_US


@pytest.mark.parametrize("modified_us", [MIN_US - 1, MAX_US + 1, 10**30, -(10**30)])
def test_format_time_refuses_times_it_cannot_show(modified_us: int) -> None:
    with pytest.raises(ValueError):
        format_time(modified_us)


@settings(max_examples=500, deadline=None)
@given(st.integers(MIN_US, MAX_US))
def test_time_round_trip(modified_us: int) -> None:
    text = format_time(modified_us)
    assert STAMP.fullmatch(text)
    assert parse_time(text) == modified_us


@PROPERTY
@given(st.integers(MIN_US, MAX_US), st.integers(MIN_US, MAX_US))
def test_formatted_times_sort_like_times(a: int, b: int) -> None:
    assert (format_time(a) < format_time(b)) is (a < b)


@PROPERTY
@given(
    st.datetimes(
        min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.none()
    ),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
)
def test_offsets_name_the_same_instant(moment: dt.datetime, offset_minutes: int) -> None:
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    utc = parse_time(moment.isoformat() + "Z")
    shifted = moment.replace(tzinfo=dt.UTC).astimezone(zone)
    assert parse_time(shifted.isoformat()) == utc
    assert parse_time(moment.isoformat()) == utc  # naive means UTC


@pytest.mark.parametrize(
    ("text", "modified_us"),
    [
        ("2025-05-13T20:57:06.473705Z", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06.473705z", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06.473705+00:00", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06.473705-00:00", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06.473705", 1_747_169_826_473_705),  # naive is UTC
        ("2025-05-13 20:57:06.473705", 1_747_169_826_473_705),
        ("  2025-05-13T20:57:06.473705Z\n", 1_747_169_826_473_705),
        # RingCentral's nanoseconds: truncated to the microsecond, never rounded.
        ("2025-05-13T20:57:06.473705035Z", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06.473705999Z", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06.4737059Z", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06.473705035+00:00", 1_747_169_826_473_705),
        ("2025-05-13T20:57:06Z", 1_747_169_826_000_000),
        ("2025-05-13T20:57:06.5Z", 1_747_169_826_500_000),
        ("2025-05-13T20:57:06.05Z", 1_747_169_826_050_000),
        ("2025-05-13T22:57:06.473705+02:00", 1_747_169_826_473_705),
        ("2025-05-13T15:27:06.473705-05:30", 1_747_169_826_473_705),
        ("2025-05-14T05:57:06.473705+09:00", 1_747_169_826_473_705),  # across midnight
        ("2025-05-13T20:57:06.473705+0000", 1_747_169_826_473_705),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("1970-01-01T01:00:00+01:00", 0),
    ],
)
def test_parse_time(text: str, modified_us: int) -> None:
    assert parse_time(text) == modified_us


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "garbage",
        "now",
        "1747169826473705",
        "2025-13-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-05-13T24:00:01Z",
        "2025-05-13T20:61:00Z",
        "2025-05-13T20:57:06ZZ",
        "2025-05-13T20:57:06+25:00",
        "2025-05-13T20:57:06 UTC",
        "13/05/2025 20:57:06",
        "2025-05-13T20:57:06.473705035Q",
        # Instants outside the years 1-9999 in UTC: format_time could never show them.
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


@PROPERTY
@given(st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=12))
def test_parse_time_raises_only_value_error(text: str) -> None:
    try:
        value = parse_time(text)
    except ValueError:
        return
    assert MIN_US <= value <= MAX_US
    assert parse_time(format_time(value)) == value


# --- explain -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "default", "fragments"),
    [
        (
            rec(F, OUT, 1_747_169_826_473_705, Source.RECIPIENT),
            ALLOW,
            ["blocked (opt-out)", "OptOut", f"for {F} -> {T}", "source Recipient",
             "2025-05-13T20:57:06.473705Z"],
        ),
        (
            rec(WILDCARD, OUT, 0, Source.CARRIER),
            ALLOW,
            ["blocked (opt-out-all)", "OptOut", "every business number (*)", "source Carrier",
             "1970-01-01T00:00:00.000000Z"],
        ),
        (
            rec(S, OUT, 5, Source.UPSTREAM),
            REQUIRE,
            ["blocked (opt-out-service)", f"for {S} -> {T}", "source Upstream"],
        ),
        (
            rec(F, IN, 5, Source.API),
            REQUIRE,
            ["allowed", "OptIn", f"for {F} -> {T}", "source Api"],
        ),
        (
            rec(WILDCARD, IN, 5, Source.API),
            REQUIRE,
            ["allowed", "OptIn", "every business number (*)", "source Api"],
        ),
    ],
)  # fmt: skip
def test_explain_names_the_deciding_record(
    record: ConsentRecord, default: DefaultConsent, fragments: list[str]
) -> None:
    decision = decide([record], default)
    text = explain(decision, default)
    for fragment in fragments:
        assert fragment in text
    assert "default" not in text
    assert text.startswith("allowed" if decision.allowed else "blocked")


@pytest.mark.parametrize(
    ("default", "text"),
    [
        (ALLOW, "allowed: no consent record applies; the default is 'allow'"),
        (
            REQUIRE,
            "blocked (no-opt-in): no consent record applies; the default is 'require-opt-in'",
        ),
    ],
)
def test_explain_the_default(default: DefaultConsent, text: str) -> None:
    assert explain(decide([None, None], default), default) == text


@PROPERTY
@given(st.lists(RECORDS | st.none(), max_size=4), st.sampled_from(DefaultConsent))
def test_explain_always_states_the_verdict(
    records: list[ConsentRecord | None], default: DefaultConsent
) -> None:
    decision = decide(records, default)
    text = explain(decision, default)
    if decision.allowed:
        assert text.startswith("allowed: ")
    else:
        assert text.startswith(f"blocked ({decision.reason}): ")
    if decision.deciding is None:
        assert repr(default.value) in text
    else:
        assert decision.deciding.status.value in text
        assert decision.deciding.source.value in text
        assert format_time(decision.deciding.modified_us) in text
