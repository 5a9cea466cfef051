"""Canonical consent keys for the addresses that appear in sends, webhooks and consent records.

The same canonicaliser runs on every write and every lookup, so no way of writing a number can
slip past a block. The contract:

* A customer (``to``) address becomes E.164 (``+16505550111``). ``tel:``, ``sms:``, ``rcs:`` and
  ``mms:`` prefixes share the SMS key of their number; ``whatsapp:`` and ``messenger:`` keep their
  channel prefix (consent there is separate), e.g. ``whatsapp:+16505550111``.
* A business (``from``) address may also be a short code (``sc:12345`` - a short code is not a +1
  number), an alphanumeric sender ID (``alpha:ACME``; case-insensitive) or a Twilio Messaging
  Service SID (``MG`` + 32 lower-case hex). ``*`` is the wildcard "every business number", and
  ``brand:<name>`` (lower case) every number of one configured brand; both are valid only where
  a consent record is written or read.
* Numbers that are *possible* are accepted even when the metadata calls them invalid (metadata
  lags new ranges); impossible ones raise :class:`InvalidAddress` with a machine-readable reason.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

WILDCARD = "*"
BRAND_PREFIX = "brand:"
"""A brand (a configured group of business numbers) is keyed ``brand:<name>``."""

_CHANNEL_SHARING_SMS_KEY = ("tel:", "sms:", "smsto:", "rcs:", "mms:")
_CHANNEL_WITH_OWN_KEY = ("whatsapp:", "messenger:")
_UNKEYABLE_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_SHORT_CODE = re.compile(r"[0-9]{3,6}")
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 .&_-]{1,11}")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_PHONE_CONTEXT = re.compile(r";\s*phone-context\s*=", re.IGNORECASE)
_BRAND_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class Role(enum.Enum):
    """Which side of a message an address stands on."""

    BUSINESS = "from"
    CUSTOMER = "to"

    # Members are singletons compared by identity, so identity hashing is exact; Enum's own
    # __hash__ runs Python code, and a Role is part of every canonical_key cache lookup.
    __hash__ = object.__hash__


class AddressProblem(enum.StrEnum):
    """Machine-readable reasons an address is refused."""

    EMPTY = "empty"
    UNPARSEABLE = "unparseable"
    INVALID_COUNTRY_CODE = "invalid-country-code"
    TOO_SHORT = "too-short"
    TOO_LONG = "too-long"
    IMPOSSIBLE = "impossible-number"
    NOT_A_CUSTOMER_ADDRESS = "not-a-customer-address"
    WILDCARD_NOT_ALLOWED = "wildcard-not-allowed"
    BAD_BRAND_NAME = "bad-brand-name"


@dataclass(eq=False)
class InvalidAddress(ValueError):
    """An address that cannot be turned into a consent key.

    Deliberately neither frozen nor slotted: Python itself assigns attributes on exceptions in
    flight (``__traceback__`` in ``contextlib``, ``__notes__`` in ``add_note``), which a frozen
    dataclass refuses - and a slotted one breaks zero-argument ``super()`` in the generated
    ``__setattr__`` - so the refusal would surface as a ``TypeError`` instead.
    """

    problem: AddressProblem
    raw: str
    role: Role

    def __post_init__(self) -> None:
        super().__init__(self.problem, self.raw, self.role)

    def __str__(self) -> str:
        return f"{self.role.value} address {self.raw!r} refused: {self.problem.value}"


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: AddressProblem.INVALID_COUNTRY_CODE,
    phonenumbers.NumberParseException.NOT_A_NUMBER: AddressProblem.UNPARSEABLE,
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: AddressProblem.TOO_SHORT,
    phonenumbers.NumberParseException.TOO_SHORT_NSN: AddressProblem.TOO_SHORT,
    phonenumbers.NumberParseException.TOO_LONG: AddressProblem.TOO_LONG,
}
_POSSIBILITY_ERRORS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: AddressProblem.INVALID_COUNTRY_CODE,
    phonenumbers.ValidationResult.TOO_SHORT: AddressProblem.TOO_SHORT,
    phonenumbers.ValidationResult.TOO_LONG: AddressProblem.TOO_LONG,
    phonenumbers.ValidationResult.INVALID_LENGTH: AddressProblem.IMPOSSIBLE,
}


def _phone_key(text: str, raw: str, role: Role, region: str) -> str:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(
            _PARSE_ERRORS.get(exc.error_type, AddressProblem.UNPARSEABLE), raw, role
        ) from None
    possibility = phonenumbers.is_possible_number_with_reason(parsed)
    if possibility not in (
        phonenumbers.ValidationResult.IS_POSSIBLE,
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ):
        raise InvalidAddress(
            _POSSIBILITY_ERRORS.get(possibility, AddressProblem.IMPOSSIBLE), raw, role
        )
    if possibility == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        # A local-only number (no area code) cannot be addressed from outside its area.
        raise InvalidAddress(AddressProblem.TOO_SHORT, raw, role)
    key = str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    if _reformat(key) != key:
        # A key must canonicalise to itself, or a record written under it (and shown, exported,
        # re-imported as such) would not govern the number it came from. phonenumbers loses a
        # zero when re-reading all-zero national numbers ("000000" in DE -> +4900000 -> +490000).
        raise InvalidAddress(AddressProblem.IMPOSSIBLE, raw, role)
    return key


def _reformat(e164: str) -> str | None:
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


_STRICT_E164 = re.compile(r"\+[1-9][0-9]{2,15}")


@dataclass(frozen=True, slots=True)
class _CallingCode:
    """What decides, for numbers under one calling code, whether ``+<code><rest>`` is its own
    key: the national significant number lengths that are possible (not local-only), and the
    national prefixes the parser would try to strip from their start."""

    lengths: frozenset[int]
    national_prefixes: tuple[str, ...]


def _calling_codes() -> dict[str, _CallingCode]:
    codes: dict[str, _CallingCode] = {}
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        region = phonenumbers.region_code_for_country_code(code)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None or metadata.general_desc is None:
            continue
        lengths = frozenset(metadata.general_desc.possible_length or ()) - frozenset(
            metadata.general_desc.possible_length_local_only or ()
        )
        prefixes = tuple((metadata.national_prefix_for_parsing or "").split("|"))
        if not all(p.isdigit() for p in prefixes if p):
            # A pattern (Argentina's "0?(?:(11|…)?15)?"): leave such numbers to the parser.
            lengths = frozenset()
        codes[str(code)] = _CallingCode(
            frozenset(n for n in lengths if n > 1), tuple(p for p in prefixes if p)
        )
    return codes


_CALLING_CODES = _calling_codes()


def strict_e164_key(raw: str) -> str | None:
    """The key of ``raw`` when it is already a strict, possible E.164 number (``+`` and ASCII
    digits only, no leading zero after the calling code, a possible length, nothing the parser
    would strip): then the key is ``raw`` itself. ``None`` means "ask the full canonicaliser",
    never "invalid". The property tests show it agrees with :func:`phonenumbers` wherever it
    answers; it exists because a bulk import of E.164 numbers should not pay for a full parse
    (tens of microseconds) per number."""
    if _STRICT_E164.fullmatch(raw) is None:
        return None
    for size in (1, 2, 3):
        code = _CALLING_CODES.get(raw[1 : 1 + size])
        if code is not None:
            national = raw[1 + size :]
            if (
                len(national) in code.lengths
                and national[0] != "0"
                and not national.startswith(code.national_prefixes)
            ):
                return raw
            return None
    return None


@lru_cache(maxsize=65536)
def canonical_key(raw: str, role: Role, region: str = "US", *, allow_wildcard: bool = False) -> str:
    """Return the consent key of ``raw`` or raise :class:`InvalidAddress`.

    Memoised: parsing costs tens of microseconds and the same numbers recur on every send.
    """
    return strict_e164_key(raw) or full_canonical_key(
        raw, role, region, allow_wildcard=allow_wildcard
    )


def full_canonical_key(
    raw: str, role: Role, region: str = "US", *, allow_wildcard: bool = False
) -> str:
    """:func:`canonical_key` without its strict-E.164 fast path (and without memoising)."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise InvalidAddress(AddressProblem.EMPTY, raw, role)
    if any(unicodedata.category(c) in _UNKEYABLE_CATEGORIES for c in text):
        # Control characters, NUL or lone surrogates are nobody's address, and no store can
        # keep them as a key.
        raise InvalidAddress(AddressProblem.UNPARSEABLE, raw, role)
    if text == WILDCARD:
        if role is Role.BUSINESS and allow_wildcard:
            return WILDCARD
        raise InvalidAddress(AddressProblem.WILDCARD_NOT_ALLOWED, raw, role)
    lowered = text.lower()
    if lowered.startswith(BRAND_PREFIX):
        if role is not Role.BUSINESS:
            raise InvalidAddress(AddressProblem.NOT_A_CUSTOMER_ADDRESS, raw, role)
        if not allow_wildcard:
            # Like ``*``: a scope of consent records, never an address a message is sent from.
            raise InvalidAddress(AddressProblem.WILDCARD_NOT_ALLOWED, raw, role)
        name = lowered[len(BRAND_PREFIX) :].strip()
        if _BRAND_NAME.fullmatch(name) is None:
            raise InvalidAddress(AddressProblem.BAD_BRAND_NAME, raw, role)
        return BRAND_PREFIX + name
    for prefix in _CHANNEL_WITH_OWN_KEY:
        if lowered.startswith(prefix):
            rest = text[len(prefix) :].strip()
            if prefix == "messenger:":
                if not rest:
                    raise InvalidAddress(AddressProblem.EMPTY, raw, role)
                return prefix + rest
            return prefix + _phone_key(rest, raw, role, region)
    phone_text: str | None = None
    for prefix in _CHANNEL_SHARING_SMS_KEY:
        if lowered.startswith(prefix):
            uri = text[len(prefix) :].strip()
            # tel: URIs may carry parameters (";phone-context=…"); the number is before them.
            text = uri.split(";", 1)[0].strip()
            if (
                prefix == "tel:"
                and not text.startswith("+")
                and _PHONE_CONTEXT.search(uri) is not None
            ):
                # RFC 3966: a local number is dialled within its phone-context
                # ("tel:2079460018;phone-context=+44" is a London number, not a US one);
                # phonenumbers resolves that from the full URI.
                phone_text = "tel:" + _PHONE_CONTEXT.sub(";phone-context=", uri)
            break
    business_only = _business_only_key(text)
    if role is Role.BUSINESS and business_only is not None:
        return business_only
    try:
        return _phone_key(text if phone_text is None else phone_text, raw, role, region)
    except InvalidAddress:
        if business_only is not None:
            # A short code, sender ID or service SID can send but never receive.
            raise InvalidAddress(AddressProblem.NOT_A_CUSTOMER_ADDRESS, raw, role) from None
        raise


def _business_only_key(text: str) -> str | None:
    """The key of a short code, alphanumeric sender ID or service SID, or ``None``."""
    compact = _PHONE_PUNCTUATION.sub("", text)
    if _SERVICE_SID.fullmatch(compact):
        return "MG" + compact[2:].lower()
    if _SHORT_CODE.fullmatch(compact):
        return "sc:" + compact
    if (
        _ALPHANUMERIC_SENDER.fullmatch(text)
        and any(c.isalpha() for c in text)
        and not text.lower().startswith(("+", "00"))
        and sum(c.isdigit() for c in text) < 7
    ):
        return "alpha:" + text.upper()
    return None


def customer_key(raw: str, region: str = "US") -> str:
    """Canonical key of a customer (recipient) address."""
    return canonical_key(raw, Role.CUSTOMER, region)


def business_key(raw: str, region: str = "US", *, allow_wildcard: bool = False) -> str:
    """Canonical key of a business (sender) address; ``*`` only when ``allow_wildcard``."""
    return canonical_key(raw, Role.BUSINESS, region, allow_wildcard=allow_wildcard)


def is_service_sid(key: str) -> bool:
    """Whether a canonical business key names a Twilio Messaging Service."""
    return key.startswith("MG") and len(key) == 34


def brand_key(name: str) -> str:
    """The key of a brand name as configured (``Acme`` -> ``brand:acme``); raises
    :class:`InvalidAddress` for a name that cannot be one (``[a-z0-9][a-z0-9_-]{0,31}``)."""
    return canonical_key(BRAND_PREFIX + name, Role.BUSINESS, allow_wildcard=True)


def is_scope_name(name: str) -> bool:
    """Whether ``name`` can name a brand or a suppression list: ``[a-z0-9][a-z0-9_-]{0,31}``."""
    return _BRAND_NAME.fullmatch(name) is not None


def is_brand_key(key: str) -> bool:
    """Whether a canonical business key names a brand."""
    return key.startswith(BRAND_PREFIX)


def display_key(key: str) -> str:
    """A key as people and the consent API write it (``sc:12345`` -> ``12345``)."""
    for prefix in ("sc:", "alpha:"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key
