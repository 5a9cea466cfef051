"""Settings: loaded once, at start-up, into a frozen dataclass.

Sources, strongest first: command-line options, ``STOPGATE_<NAME>`` environment variables, the
TOML file (``--config`` / ``STOPGATE_CONFIG``; top-level keys are the lower-case ``<name>``), then
the defaults of DESIGN §4.1. Secrets are held in :class:`Secret`, whose ``repr`` and ``str`` never
show the value, so a logged or printed ``Settings`` leaks nothing.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from policy.categories import Category, parse_category
from policy.consent import DefaultConsent, OptOutScope
from policy.footer import DEFAULT_FOOTER, FooterMode
from policy.frequency_caps import FrequencyCaps, frequency_caps_from_config
from policy.numbers import InvalidAddress, Role, brand_key, canonical_key
from policy.quiet_hours import QuietHours, quiet_hours_from_config


def mask_url(url: str) -> str:
    """``scheme://user:password@host/…`` -> ``scheme://user:********@host/…``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}{slash}{tail}"


def matches_any(presented: str, expected: tuple[str, ...]) -> bool:
    """Constant-time: is ``presented`` one of ``expected``? Every candidate is compared, so the
    time taken does not tell which one matched."""
    found = False
    for candidate in expected:
        found = same_secret(presented, candidate) | found
    return found


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality of two strings, whatever characters a caller put in them (header
    values can hold undecodable bytes)."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


class Secret:
    """A configured secret. ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


MODES = ("enforce", "shadow")
DEFAULT_MAX_RECORDS_PER_CALL = 1000
ROLES = ("admin", "auditor")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_FORMATS = ("auto", "json", "text")


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    """Where consent change events go, and the secret their signature is made with."""

    name: str
    url: str
    secret: Secret
    previous_secret: Secret | None = None
    """While the secret is rotated: events carry a signature with each (``v1=…,v1=…``), so the
    subscriber verifies with whichever it holds."""


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """A bearer token of Stopgate's own API, configured by its SHA-256 digest (hex)."""

    name: str
    sha256: str
    role: str


@dataclass(frozen=True, slots=True)
class BrandSpec:
    """A brand: business numbers (of any carrier) that share one consent scope, ``[brands.NAME]``.

    ``opt_out_scope``: ``brand`` (default) - a STOP or START on any of its numbers is written
    for the whole brand too - or ``pair``. ``consent_default``: the brand's own default
    (``require-opt-in`` for marketing brands); ``None`` leaves the global one."""

    key: str
    numbers: tuple[str, ...]
    opt_out_scope: OptOutScope = OptOutScope.BRAND
    consent_default: DefaultConsent | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    listen: str = "127.0.0.1:8080"
    store: str = "sqlite:///./stopgate.db"
    workers: int = 1
    mode: str = "enforce"
    """``enforce`` refuses blocked sends; ``shadow`` forwards everything and marks what it would
    have blocked (``X-Stopgate-Decision: would-block; …``)."""
    default_region: str = "US"
    consent_default: DefaultConsent = DefaultConsent.ALLOW
    footer: FooterMode = FooterMode.OFF
    footer_text: str = DEFAULT_FOOTER
    ringcentral_upstream: str = "https://platform.ringcentral.com"
    twilio_upstream: str = "https://api.twilio.com"
    twilio_auth_token: Secret | None = None
    ringcentral_verification_token: Secret | None = None
    ringcentral_client_id: str | None = None
    ringcentral_client_secret: Secret | None = None
    ringcentral_jwt: Secret | None = None
    ringcentral_app_webhook: str | None = None
    twilio_app_webhook: str | None = None
    public_url: str | None = None
    admin_token: Secret | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    """Default admits RingCentral's largest MMS (1.5 MB of attachments) with encoding overhead."""
    upstream_connect_timeout: float = 5.0
    upstream_timeout: float = 30.0
    upstream_connections: int = 100
    cache_size: int = 100_000
    credential_cache_seconds: float = 300.0
    blocked_log_text: bool = False
    """Keep the full text of blocked sends in the log (off: length and SHA-256 only)."""
    messaging_services: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Twilio Messaging Service SID -> its numbers (canonical keys)."""
    replies: str = "stopgate"
    """``stopgate`` sends keyword confirmations; ``carrier`` when the carrier account confirms."""
    brand_name: str = "Our team"
    support_contact: str = "our support team"
    reply_templates: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Overrides of the confirmation texts: class -> language -> template."""
    opt_out_scope: str = "pair"
    """``pair``: a STOP blocks the number it was sent to; ``all``: every business number."""
    keyword_mode: str = "whole"
    """``whole`` (the message is the keyword, as the carriers match) or ``first-word``."""
    keywords: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Keyword lists by scope (``default``, a carrier name, or a business number)."""
    spool_path: str = "./stopgate-spool.jsonl"
    app_reply_deadline: float = 5.0
    """How long a Twilio webhook waits for the app's TwiML answer before answering empty."""
    confirmation_window: float = 300.0
    """Confirmations not delivered within this many seconds of the keyword are given up."""
    forward_window: float = 86_400.0
    ringcentral_webhook_expires_in: int = 604_800
    ringcentral_account_id: str | None = None
    """RingCentral bearer tokens of this account may call the consents API."""
    tokens: tuple[TokenSpec, ...] = ()
    """``[[tokens]]`` name, sha256, role (admin | auditor); several at once for rotation."""
    subscribers: tuple[SubscriberSpec, ...] = ()
    """``[[subscribers]]`` name, url, secret: receivers of consent change events."""
    ringcentral_consent_push: bool = False
    """Push Stopgate's own consent changes to RingCentral's consent API (lifts its block)."""
    change_feed_interval: float = 0.02
    """How often the store's change feed is read (bounds how stale another process's write
    can be here)."""
    max_records_per_call: int = DEFAULT_MAX_RECORDS_PER_CALL
    """The most records one PATCH or DELETE of the consents API may carry (more: 413)."""
    blocked_log_retention_days: int = 0
    """Blocked-send log entries older than this are removed (0: kept forever)."""
    history_retention_days: int = 0
    """History entries older than this are removed (0: kept forever)."""
    event_window: float = 7 * 86_400.0
    """Change events undelivered this long are given up (and counted)."""
    log_level: str = "INFO"
    """``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL`` (``STOPGATE_LOG_LEVEL``)."""
    log_format: str = "auto"
    """``json`` (one object per line), ``text``, or ``auto``: JSON for ``serve``, text for the
    other commands (``STOPGATE_LOG_FORMAT``)."""
    category_default: Category = Category.MARKETING
    """The category of a send whose business number and service have none configured."""
    categories: Mapping[str, Category] = field(default_factory=dict)
    """``[categories]`` business number or ``MG…`` service -> ``marketing`` | ``transactional``."""
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    """``[quiet_hours]``: marketing sends only inside the recipient's local window (off)."""
    frequency_caps: FrequencyCaps = field(default_factory=FrequencyCaps)
    """``[frequency_caps]``: at most N marketing sends per recipient per window (off)."""

    brands: tuple[BrandSpec, ...] = ()
    """Groups of business numbers sharing one consent scope (``[brands.NAME]`` tables)."""
    consent_defaults: Mapping[str, DefaultConsent] = field(default_factory=dict)
    """Per business number or Messaging Service: its own ``consent_default`` (``[consent_defaults]``
    table of number = "allow" | "require-opt-in"); it wins over its brand's and the global one."""
    header_timeout: float = 20.0
    """Seconds a connection has to deliver a request's headers (from opening, or from the end
    of its previous answer); also how long an idle keep-alive connection is kept."""
    body_timeout: float = 60.0
    """Seconds a request's body has to arrive in full once its headers are in."""
    max_headers: int = 100
    """Most header lines in one request (more: 400, connection closed)."""
    max_header_bytes: int = 8190
    """Longest request line or header field, in bytes (longer: 400, connection closed)."""
    twilio_auth_token_secondary: Secret | None = None
    """Twilio's secondary auth token, valid beside the primary while a token is rotated."""
    ringcentral_verification_token_secondary: Secret | None = None
    """A second valid RingCentral verification token, while a subscription's token is rotated."""
    sign_in_failures_per_minute: int = 10
    """Failed console sign-ins one client address may make per minute (more: 429)."""
    plain_language: bool = True
    """Read inbound messages that are no keyword for plain-language revocations ("please stop
    texting me"): ``revoke`` opts the pair out as STOP does, ``unclear`` sends one clarifying
    text and flags the message for compliance review (``STOPGATE_PLAIN_LANGUAGE=false``: off)."""
    clarification_window: float = 30 * 86_400.0
    """At most one clarifying text per pair (business number, customer) in this many seconds."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.max_body_bytes < 1024:
            raise ConfigError("max_body_bytes must be at least 1024")
        if self.replies not in ("stopgate", "carrier"):
            raise ConfigError(f"replies must be 'stopgate' or 'carrier', not {self.replies!r}")
        if self.opt_out_scope not in ("pair", "all"):
            raise ConfigError(f"opt_out_scope must be 'pair' or 'all', not {self.opt_out_scope!r}")
        if self.keyword_mode not in ("whole", "first-word"):
            raise ConfigError(f"keyword_mode must be whole or first-word: {self.keyword_mode!r}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {LOG_LEVELS}, not {self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {LOG_FORMATS}, not {self.log_format!r}")
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise ConfigError("header_timeout and body_timeout must be positive")
        if self.max_headers < 16 or self.max_header_bytes < 1024:
            raise ConfigError("max_headers must be at least 16 and max_header_bytes 1024")
        if self.sign_in_failures_per_minute < 1:
            raise ConfigError("sign_in_failures_per_minute must be at least 1")
        for name in ("ringcentral_upstream", "twilio_upstream"):
            value = getattr(self, name)
            if not value.startswith(("http://", "https://")):
                raise ConfigError(f"{name} must be an http(s) URL, not {value!r}")

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        try:
            return host.strip("[]") or "127.0.0.1", int(port)
        except ValueError:
            raise ConfigError(f"listen must be HOST:PORT, not {self.listen!r}") from None

    def twilio_auth_tokens(self) -> tuple[str, ...]:
        """Every Twilio auth token valid now, the primary first (rotation: both at once)."""
        return _revealed(self.twilio_auth_token, self.twilio_auth_token_secondary)

    def ringcentral_verification_tokens(self) -> tuple[str, ...]:
        """Every RingCentral verification token valid now, the primary first."""
        return _revealed(
            self.ringcentral_verification_token, self.ringcentral_verification_token_secondary
        )

    def __repr__(self) -> str:
        return f"Settings({self.redacted()!r})"

    def redacted(self) -> dict[str, Any]:
        """Settings as plain values for logs, with every secret masked (a password in the
        store URL included)."""
        values = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        values["store"] = mask_url(self.store)
        return values


def _revealed(*secrets: Secret | None) -> tuple[str, ...]:
    return tuple(s.reveal() for s in secrets if s is not None)


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return "********"
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    kind = _FIELDS[name].type
    try:
        parser = _PARSERS.get(name)
        if parser is not None:
            return parser(raw)
        if kind.startswith("Mapping"):
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{name} must be a table")
            return dict(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if kind == "Secret | None":
            return Secret(str(raw)) if str(raw) else None
        if kind == "DefaultConsent":
            return DefaultConsent(str(raw))
        if kind == "FooterMode":
            return FooterMode(str(raw))
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"bad value for {name}: {raw!r} ({exc})") from None


def _subscribers(raw: Any) -> tuple[SubscriberSpec, ...]:
    if not isinstance(raw, list):
        raise ConfigError(
            "subscribers must be an array of tables: [[subscribers]] name, url, secret"
        )
    specs: list[SubscriberSpec] = []
    names: set[str] = set()
    for position, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"subscribers[{position}] must be a table")
        url = str(entry.get("url", ""))
        secret = str(entry.get("secret", ""))
        name = str(entry.get("name", f"subscriber-{position}"))
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"subscribers[{position}].url must be an http(s) URL")
        if len(secret) < 16:
            raise ConfigError(f"subscribers[{position}].secret must be at least 16 characters")
        if name in names:
            raise ConfigError(f"subscribers[{position}].name {name!r} is used twice")
        names.add(name)
        previous = str(entry.get("previous_secret", ""))
        if previous and len(previous) < 16:
            raise ConfigError(
                f"subscribers[{position}].previous_secret must be at least 16 characters"
            )
        specs.append(
            SubscriberSpec(name, url, Secret(secret), Secret(previous) if previous else None)
        )
    return tuple(specs)


def _tokens(raw: Any) -> tuple[TokenSpec, ...]:
    if not isinstance(raw, list):
        raise ConfigError("tokens must be an array of tables: [[tokens]] name, sha256, role")
    specs: list[TokenSpec] = []
    for position, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"tokens[{position}] must be a table")
        digest = str(entry.get("sha256", "")).lower()
        role = str(entry.get("role", ""))
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"tokens[{position}].sha256 must be 64 hex digits")
        if role not in ROLES:
            raise ConfigError(f"tokens[{position}].role must be one of {ROLES}")
        specs.append(TokenSpec(str(entry.get("name", f"token-{position}")), digest, role))
    return tuple(specs)


def _services(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise ConfigError("messaging_services must be a table of SID = [numbers]")
    services: dict[str, tuple[str, ...]] = {}
    for sid, numbers in raw.items():
        try:
            service_key = canonical_key(str(sid), Role.BUSINESS)
            keys = tuple(canonical_key(str(n), Role.BUSINESS) for n in numbers)
        except InvalidAddress as exc:
            raise ConfigError(f"messaging_services: {exc}") from None
        services[service_key] = keys
    return services


def _categories(raw: Any) -> dict[str, Category]:
    if not isinstance(raw, Mapping):
        raise ConfigError("categories must be a table of business number or MG SID = category")
    categories: dict[str, Category] = {}
    for sender, category in raw.items():
        try:
            categories[canonical_key(str(sender), Role.BUSINESS)] = parse_category(str(category))
        except InvalidAddress as exc:
            raise ConfigError(f"categories: {exc}") from None
    return categories


def _quiet_hours(raw: Any) -> QuietHours:
    if isinstance(raw, Mapping) and isinstance(raw.get("numbers"), Mapping):
        numbers = {}
        for sender, table in raw["numbers"].items():
            try:
                numbers[canonical_key(str(sender), Role.BUSINESS)] = table
            except InvalidAddress as exc:
                raise ConfigError(f"quiet_hours.numbers: {exc}") from None
        raw = {**raw, "numbers": numbers}
    return quiet_hours_from_config(raw)


def _brands(raw: Any) -> tuple[BrandSpec, ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError("brands must be tables: [brands.NAME] numbers = [...]")
    specs: list[BrandSpec] = []
    owner: dict[str, str] = {}
    allowed = set(BrandSpec.__dataclass_fields__) - {"key"}
    for name, table in raw.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"brands.{name} must be a table")
        unknown = set(table) - allowed
        if unknown:
            raise ConfigError(f"brands.{name}: unknown setting {sorted(unknown)[0]!r}")
        try:
            key = brand_key(str(name))
            numbers = tuple(
                dict.fromkeys(canonical_key(str(n), Role.BUSINESS) for n in table["numbers"])
            )
        except InvalidAddress as exc:
            raise ConfigError(f"brands.{name}: {exc}") from None
        except (KeyError, TypeError):
            raise ConfigError(f"brands.{name}.numbers must be an array of numbers") from None
        for number in numbers:
            if number in owner:
                raise ConfigError(f"{number} is in two brands: {owner[number]} and {key}")
            owner[number] = key
        scope = OptOutScope(str(table.get("opt_out_scope", OptOutScope.BRAND.value)))
        default = table.get("consent_default")
        specs.append(
            BrandSpec(
                key,
                numbers,
                scope,
                None if default is None else DefaultConsent(str(default)),
            )
        )
    return tuple(specs)


def _consent_defaults(raw: Any) -> dict[str, DefaultConsent]:
    if not isinstance(raw, Mapping):
        raise ConfigError('consent_defaults must be a table of number = "require-opt-in"')
    try:
        return {
            canonical_key(str(number), Role.BUSINESS): DefaultConsent(str(value))
            for number, value in raw.items()
        }
    except InvalidAddress as exc:
        raise ConfigError(f"consent_defaults: {exc}") from None


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "messaging_services": _services,
    "tokens": _tokens,
    "subscribers": _subscribers,
    "brands": _brands,
    "consent_defaults": _consent_defaults,
    "category_default": lambda raw: parse_category(str(raw)),
    "categories": _categories,
    "quiet_hours": _quiet_hours,
    "frequency_caps": frequency_caps_from_config,
}


def load_settings(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from file, environment and command-line ``overrides`` (non-None)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get("STOPGATE_CONFIG")
    if path:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        for key, raw in document.items():
            if key not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r} in {path}")
            values[key] = _coerce(key, raw)
    for name in _FIELDS:
        env_name = f"STOPGATE_{name.upper()}"
        if env_name in env and not str(_FIELDS[name].type).startswith(("Mapping", "tuple")):
            values[name] = _coerce(name, env[env_name])
    for name, raw in (overrides or {}).items():
        if raw is not None:
            values[name] = _coerce(name, raw)
    return dataclasses.replace(Settings(), **values)
