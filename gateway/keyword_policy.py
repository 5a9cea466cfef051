"""Which keyword lists and matching mode apply to an inbound message.

Settings ``keywords`` holds tables by scope - ``default``, a carrier (``twilio``,
``ringcentral``) or a business number - each in the form
:meth:`policy.keywords.KeywordLists.from_config` reads (``opt_out = [...]``, ``remove = [...]``,
``replace_defaults = true``, language tables, ...). A scope builds on the scope below it:
business number over carrier over ``default`` over the built-in lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import ConfigError
from policy.keywords import DEFAULT_LISTS, Classification, KeywordLists, MatchMode, classify
from policy.numbers import InvalidAddress, business_key


class KeywordPolicy:
    def __init__(self, tables: Mapping[str, Mapping[str, Any]], mode: str, region: str) -> None:
        self.mode = MatchMode(mode)
        self._default = self._layer(DEFAULT_LISTS, tables.get("default"))
        self._carriers = {
            name: self._layer(self._default, tables[name])
            for name in ("twilio", "ringcentral")
            if name in tables
        }
        self._numbers: dict[str, Mapping[str, Any]] = {}
        for scope, table in tables.items():
            if scope in ("default", "twilio", "ringcentral"):
                continue
            try:
                self._numbers[business_key(scope, region)] = table
            except InvalidAddress as exc:
                raise ConfigError(f"keywords: unknown scope {scope!r} ({exc})") from None
        self._cache: dict[tuple[str, str], KeywordLists] = {}

    @staticmethod
    def _layer(base: KeywordLists, table: Mapping[str, Any] | None) -> KeywordLists:
        if not table:
            return base
        try:
            return KeywordLists.from_config(table, base=base)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"keywords: {exc}") from None

    def for_scope(self, provider: str, business: str | None) -> KeywordLists:
        carrier = self._carriers.get(provider, self._default)
        if business is None or business not in self._numbers:
            return carrier
        key = (provider, business)
        if key not in self._cache:
            self._cache[key] = self._layer(carrier, self._numbers[business])
        return self._cache[key]

    def classify(self, text: str, lists: KeywordLists) -> Classification:
        return classify(text, lists, self.mode)
