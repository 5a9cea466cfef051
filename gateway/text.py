"""Text every store can keep as given: no NUL (PostgreSQL text cannot hold it) and no lone
surrogate (not valid UTF-8, so neither SQLite nor PostgreSQL can encode it)."""

from __future__ import annotations


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def make_storable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced (for logs of what a caller sent)."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
