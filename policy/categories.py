"""Message categories: what kind of text a send is, which decides the rules it is subject to.

``marketing`` texts are subject to quiet hours and frequency caps; ``transactional`` ones
(one-time codes, receipts, appointment reminders the customer asked for) are exempt. The
category comes from the ``X-Stopgate-Category`` header when the caller sets it, else from the
configuration of the business number, else of its Messaging Service, else the configured
default (``marketing`` unless configured otherwise: an unclassified send gets the stricter
rules).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

QUIET_HOURS = "quiet-hours"
FREQUENCY_CAP = "frequency-cap"
RULE_REASONS = (QUIET_HOURS, FREQUENCY_CAP)
"""Block reasons of the sending rules marketing texts are subject to."""


class Category(enum.StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class UnknownCategory(ValueError):
    def __init__(self, raw: str) -> None:
        super().__init__(
            f"unknown message category {raw!r}: one of {', '.join(c.value for c in Category)}"
        )


def parse_category(raw: str) -> Category:
    """A category as written (case and surrounding spaces ignored); raises
    :class:`UnknownCategory`."""
    try:
        return Category(raw.strip().lower())
    except ValueError:
        raise UnknownCategory(raw) from None


def category_of(
    header: str | None,
    sender_keys: Sequence[str],
    configured: Mapping[str, Category],
    default: Category,
) -> Category:
    """The category of a send: the header, else the first sender key configured (number before
    service), else ``default``."""
    if header is not None:
        return parse_category(header)
    for key in sender_keys:
        category = configured.get(key)
        if category is not None:
            return category
    return default
