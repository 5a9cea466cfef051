"""Consent stores, chosen by URL scheme (``sqlite:///…``, ``postgresql://…``)."""

from __future__ import annotations

from gateway.errors import ConfigError
from gateway.store.base import ConsentStore


def store_from_url(url: str) -> ConsentStore:
    """Build (not open) the store a URL names."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from gateway.store.sqlite import SQLiteStore

        try:
            return SQLiteStore(url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if scheme in ("postgresql", "postgres"):
        from gateway.store.postgres import PostgresStore

        try:
            return PostgresStore(url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    raise ConfigError(
        f"unknown store URL scheme {scheme!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )
