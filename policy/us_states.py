"""US states whose own laws restrict marketing texts more than the federal rules, by area code.

Florida (Telephone Solicitation Act), Oklahoma (Telephone Solicitation Act of 2022) and Maryland
(Stop the Spam Calls Act of 2023) limit marketing texts to 8:00-20:00 recipient local time and
to three per 24 hours on one subject. A number is taken to be in the state of its area code: the
only thing a sender can know from the number itself (a ported or moved number may be elsewhere,
which is why these rules are applied by area code in practice too).

The table is Stopgate's own data, current as of late 2025, overlays announced for that year
included (324, 645 and 728 in Florida); the unit tests check it against the geographic
descriptions bundled with ``phonenumbers`` in both directions.
"""

from __future__ import annotations

from collections.abc import Mapping

AREA_CODES: Mapping[str, frozenset[str]] = {
    "FL": frozenset(
        {
            "239", "305", "321", "324", "352", "386", "407", "448", "561", "645", "656", "689",
            "727", "728", "754", "772", "786", "813", "850", "863", "904", "941", "954",
        }
    ),
    "OK": frozenset({"405", "539", "572", "580", "918"}),
    "MD": frozenset({"227", "240", "301", "410", "443", "667"}),
}  # fmt: skip
"""State (USPS code) -> the area codes of that state."""

STATE_OF_AREA_CODE: Mapping[str, str] = {
    code: state for state, codes in AREA_CODES.items() for code in codes
}

EXTRA_ZONES: Mapping[str, tuple[str, ...]] = {
    "850": ("America/Chicago",),
    "448": ("America/Chicago",),
}
"""Zones ``phonenumbers`` leaves out for an area code: Florida's panhandle west of the
Apalachicola River keeps Central time, yet the metadata gives 850 (and its overlay 448) only
Eastern. Without this, an 8:00 Eastern send would reach a Pensacola phone at 7:00."""


def state_of(number: str) -> str | None:
    """The state of a +1 number's area code when it is one of :data:`AREA_CODES`, else None.
    ``number`` is a canonical key (``+1NXXNXXXXXX``, a channel prefix allowed)."""
    digits = number.rpartition(":")[2]
    if len(digits) != 12 or not digits.startswith("+1"):
        return None
    return STATE_OF_AREA_CODE.get(digits[2:5])
