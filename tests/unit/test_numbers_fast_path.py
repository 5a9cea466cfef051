"""The strict-E.164 fast path agrees with the full canonicaliser wherever it answers."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from policy.numbers import (
    InvalidAddress,
    Role,
    canonical_key,
    full_canonical_key,
    strict_e164_key,
)

CALLING_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
REGIONS = ("US", "GB", "DE", "IN", "BR")


def full(raw: str, role: Role = Role.CUSTOMER, region: str = "US") -> str | None:
    try:
        return full_canonical_key(raw, role, region)
    except InvalidAddress:
        return None


def agrees(raw: str) -> None:
    fast = strict_e164_key(raw)
    if fast is None:
        return
    assert fast == raw
    for role in Role:
        for region in REGIONS:
            assert full(raw, role, region) == fast, (raw, role, region)


@settings(max_examples=3000)
@given(st.text(alphabet="+0123456789", min_size=1, max_size=18))
@example("+16505550111")
@example("+11234567890")
@example("+4400000000")
def test_any_digit_string_fast_key_is_the_full_key(raw: str) -> None:
    agrees(raw)


@settings(max_examples=3000)
@given(
    st.sampled_from(CALLING_CODES),
    st.text(alphabet="0123456789", min_size=1, max_size=15),
)
def test_numbers_under_real_calling_codes_agree(code: str, national: str) -> None:
    agrees(f"+{code}{national}")


@pytest.mark.parametrize("code", CALLING_CODES)
def test_every_calling_code_length_and_leading_digit_agrees(code: str) -> None:
    for length in range(2, 16 - len(code) + 1):
        for lead in "0123456789":
            for filler in ("0", "5", "9"):
                agrees(f"+{code}{lead}{filler * (length - 1)}")


def example_numbers() -> list[str]:
    found = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        ):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


@pytest.mark.parametrize("raw", example_numbers())
def test_example_numbers_of_every_region_agree(raw: str) -> None:
    agrees(raw)


def test_the_fast_path_answers_for_common_numbers() -> None:
    """It is only worth having if it decides the usual case itself."""
    numbers = ["+16505550111", "+12015550123", "+442079460018", "+4915112345678", "+33612345678"]
    assert [strict_e164_key(n) for n in numbers] == numbers
    examples = example_numbers()
    answered = sum(strict_e164_key(n) is not None for n in examples)
    assert answered > len(examples) * 0.6


@pytest.mark.parametrize(
    "raw",
    [
        "16505550111",  # no plus
        "+1 650 555 0111",  # punctuation
        "+1650555011",  # too short
        "+165055501111",  # too long
        "+11234567890",  # begins with the national prefix: the parser's business
        "+0165055501",  # no calling code 0
        "+１6505550111",  # full-width digit
        " +16505550111",
        "tel:+16505550111",
    ],
)
def test_anything_not_strict_is_left_to_the_full_canonicaliser(raw: str) -> None:
    assert strict_e164_key(raw) is None


@settings(max_examples=1000)
@given(st.text(max_size=20), st.sampled_from(list(Role)))
def test_canonical_key_is_the_full_canonicaliser(raw: str, role: Role) -> None:
    try:
        expected: str | None = full_canonical_key(raw, role)
    except InvalidAddress:
        expected = None
    try:
        got: str | None = canonical_key(raw, role)
    except InvalidAddress:
        got = None
    assert got == expected
