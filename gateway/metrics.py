"""Prometheus metrics. The registry is injected so tests and several apps never collide.

Label values are bounded: dialects, decisions, reasons, keyword classes, consent sources and
store operations are fixed vocabularies; no phone number or free text ever becomes a label.

Besides the counters and histograms the code updates as it goes, two things are read at scrape
time: the consent cache (hits, misses, entries: :class:`_CacheCollector`) and, through
:class:`ObservedStore`, every store call is timed and its failures counted.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import Info as InfoMetric
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.samples import Sample

from gateway.log_lines import log_fields
from gateway.metric_children import CounterChild, HistogramChild
from policy.categories import RULE_REASONS
from policy.consent import BlockReason

if TYPE_CHECKING:
    from gateway.consent_index import ConsentIndex
    from gateway.store.base import AppliedChange, ConsentStore

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)

consent_log = logging.getLogger("stopgate.consent")

UPSTREAM_ERROR_KINDS = ("upstream-timeout", "upstream-unreachable", "body-cut", "http-5xx")
"""``kind`` of ``stopgate_upstream_errors_total``: no answer in time, no connection (or a
connection lost before the answer), an answer cut mid-body, an answer with a 5xx status."""


def block_reasons() -> tuple[str, ...]:
    """Every ``reason`` a blocked or would-block send can carry: the consent decision's reasons
    (:class:`policy.consent.BlockReason`) and the sending rules' (quiet hours, frequency caps).
    The label set of ``stopgate_sends_total{decision="blocked"}`` and
    ``stopgate_blocked_recipients_total`` is exactly this (prefixed in shadow mode)."""
    return tuple(reason.value for reason in BlockReason) + RULE_REASONS


_Child = TypeVar("_Child")


class _LoopMetric(Generic[_Child]):
    """A labelled metric of the hot paths (sends, webhooks, store calls), updated without locks
    (issue 8): only from the event loop's thread, and read at scrape time on that thread too.
    Subclasses make the children and expose them exactly as prometheus_client's own metric of
    the kind would."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}
        registry.register(self)  # type: ignore[arg-type]  # a collector by its methods

    def labels(self, *values: str) -> _Child:
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name}: expected labels {self._labelnames}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def _new_child(self) -> _Child:
        raise NotImplementedError


class LoopHistogram(_LoopMetric[HistogramChild]):
    """A labelled histogram, exposed exactly like prometheus_client's ``Histogram``
    (``_bucket`` / ``_count`` / ``_sum`` samples) but observed without locks: a bisect and two
    additions, against a locked update per bucket and per sum."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._bounds = tuple(float(b) for b in buckets)
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        created = _created_samples()
        for values, child in list(self._children.items()):
            cumulative, running = [], 0.0
            for bound, count in zip((*self._bounds, math.inf), child.counts, strict=True):
                running += count
                cumulative.append((_le(bound), running))
            family.add_metric(list(values), cumulative, child.total)
            if created:
                # As prometheus_client's Histogram writes it, after each child's _sum.
                labels = dict(zip(self._labelnames, values, strict=True))
                family.samples.append(Sample(f"{self._name}_created", labels, child.created))
        yield family


def _created_samples() -> bool:
    """prometheus_client's switch for ``_created`` samples (its environment variable and
    ``disable_created_metrics()``), honoured as its own metrics honour it."""
    return bool(getattr(prometheus_metrics, "_use_created", True))


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.0001``, ``1.0``, ``+Inf``)."""
    return "+Inf" if bound == math.inf else repr(bound)


class LoopCounter(_LoopMetric[CounterChild]):
    """A labelled counter, exposed exactly like prometheus_client's ``Counter`` (``_total`` and
    ``_created`` samples) but incremented without a lock: one addition, against a locked one."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        created = _created_samples()
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value, created=child.created if created else None)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sends = LoopCounter(
            "stopgate_sends",
            "Send requests by dialect, decision (allowed, blocked, would-block, refused), reason",
            ("dialect", "decision", "reason"),
            registry=r,
        )
        self.blocked_recipients = Counter(
            "stopgate_blocked_recipients",
            "Recipients refused (a group or batch send can block several)",
            ("dialect", "reason"),
            registry=r,
        )
        self.footer_segments_added = Counter(
            "stopgate_footer_segments_added",
            "Segments the opt-out footer added to sends",
            ("dialect",),
            registry=r,
        )
        self.footer_skipped = Counter(
            "stopgate_footer_skipped",
            "Footers not added, by reason",
            ("dialect", "reason"),
            registry=r,
        )
        self.consent_changes = LoopCounter(
            "stopgate_consent_changes",
            "Consent records written, by source and status",
            ("source", "status"),
            registry=r,
        )
        self.upstream_errors = Counter(
            "stopgate_upstream_errors",
            "Upstream failures by kind",
            ("dialect", "kind"),
            registry=r,
        )
        self.gateway_latency = LoopHistogram(
            "stopgate_send_added_latency_seconds",
            "Time Stopgate spends on a send, upstream time excluded",
            ("dialect",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = LoopHistogram(
            "stopgate_upstream_latency_seconds",
            "Time the carrier took to answer a forwarded send",
            ("dialect",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inbound_keywords = LoopCounter(
            "stopgate_inbound_keywords",
            "Inbound messages by keyword class and language",
            ("klass", "language"),
            registry=r,
        )
        self.inbound_duplicates = Counter(
            "stopgate_inbound_duplicates",
            "Inbound messages delivered again (no second effect)",
            registry=r,
        )
        self.inbound_spooled = Counter(
            "stopgate_inbound_spooled",
            "Inbound events spooled locally while the store was down",
            registry=r,
        )
        self.webhook_rejected = Counter(
            "stopgate_webhook_rejected",
            "Webhooks refused for a bad signature or token",
            ("provider",),
            registry=r,
        )
        self.outbox_delivered = LoopCounter(
            "stopgate_outbox_delivered", "Outbox entries delivered", ("kind",), registry=r
        )
        self.outbox_given_up = Counter(
            "stopgate_outbox_given_up", "Outbox entries given up", ("kind",), registry=r
        )
        self.change_feed_healthy = Gauge(
            "stopgate_change_feed_healthy",
            "1 while the store's change feed is followed (the cache is trusted), else 0",
            registry=r,
        )
        self.change_feed_lag = Gauge(
            "stopgate_change_feed_lag_seconds",
            "Seconds since the change feed was last read",
            registry=r,
        )
        self.build = InfoMetric("stopgate_build", "Stopgate build information", registry=r)
        self.store_latency = LoopHistogram(
            "stopgate_store_latency_seconds",
            "Time a store call took, by operation (the store method called)",
            ("operation",),
            buckets=_STORE_BUCKETS,
            registry=r,
        )
        self.store_errors = LoopCounter(
            "stopgate_store_errors",
            "Store calls that failed, by operation",
            ("operation",),
            registry=r,
        )
        self.store_up = Gauge(
            "stopgate_store_up",
            "1 when the store answered the last periodic check (every few seconds), else 0",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "stopgate_outbox_pending",
            "Outbox entries not yet delivered or given up (the whole store, every kind)",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "stopgate_outbox_oldest_age_seconds",
            "Age of the oldest pending outbox entry (0 when none is pending)",
            registry=r,
        )
        self.inbound_plain_language = Counter(
            "stopgate_inbound_plain_language",
            "Inbound messages with no keyword read by the plain-language classifier, by outcome"
            " (revoke, unclear, none) and language",
            ("outcome", "language"),
            registry=r,
        )
        self.review_resolved = Counter(
            "stopgate_review_resolved",
            "Plain-language review entries closed from the console, by resolution",
            ("resolution",),
            registry=r,
        )
        self.index: ConsentIndex | None = None
        """The consent index whose cache is reported (set once the store is open)."""
        r.register(_CacheCollector(self))

    def count_applied(self, applied: Iterable[AppliedChange]) -> None:
        """Count each change that applied in ``stopgate_consent_changes_total``."""
        for result in applied:
            if result.applied:
                self.consent_changes.labels(
                    result.record.source.value, result.record.status.value
                ).inc()

    def prime(self, dialects: Sequence[str], outbox_kinds: Sequence[str]) -> None:
        """Create the series of every known label value at 0, so they exist from the first
        scrape: ``rate()`` and ``increase()`` then see a failure's first occurrence, and
        dashboards and alerts find a series rather than nothing."""
        from policy.consent import OptStatus, Source

        for source in Source:
            for status in OptStatus:
                self.consent_changes.labels(source.value, status.value)
        reasons = block_reasons()
        for dialect in dialects:
            self.footer_segments_added.labels(dialect)
            for reason in reasons:
                self.sends.labels(dialect, "blocked", reason)
                self.blocked_recipients.labels(dialect, reason)
            for kind in UPSTREAM_ERROR_KINDS:
                self.upstream_errors.labels(dialect, kind)
        for provider in ("ringcentral", "twilio"):
            self.webhook_rejected.labels(provider)
        for kind in outbox_kinds:
            self.outbox_delivered.labels(kind)
            self.outbox_given_up.labels(kind)
        self.inbound_plain_language.labels("none", "")
        for outcome in ("revoke", "unclear"):
            for language in ("en", "es", "fr", "pt"):
                self.inbound_plain_language.labels(outcome, language)
        for resolution in ("opted-out", "dismissed"):
            self.review_resolved.labels(resolution)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _CacheCollector:
    """The consent cache's counters, read when Prometheus scrapes (the lookup path only adds
    to two integers)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Any]:
        return self._families(0, 0, 0, 0)

    def collect(self) -> Iterator[Any]:
        index = self._metrics.index
        if index is None:
            return self._families(0, 0, 0, 0)
        return self._families(index.hits, index.misses, len(index), index.capacity)

    @staticmethod
    def _families(hits: int, misses: int, entries: int, capacity: int) -> Iterator[Any]:
        yield CounterMetricFamily(
            "stopgate_consent_cache_hits",
            "Consent lookups answered from the in-process cache",
            value=hits,
        )
        yield CounterMetricFamily(
            "stopgate_consent_cache_misses",
            "Consent lookups that read the store (not cached, or the cache was untrusted)",
            value=misses,
        )
        yield GaugeMetricFamily(
            "stopgate_consent_cache_entries", "Pairs held in the consent cache", value=entries
        )
        yield GaugeMetricFamily(
            "stopgate_consent_cache_capacity",
            "Most pairs the consent cache holds (cache_size)",
            value=capacity,
        )


_UNTIMED = frozenset({"wait_for_changes"})
"""Calls that wait on purpose: timing them would drown the store's latency figures."""


class ObservedStore:
    """The store as the app uses it: every coroutine method is timed
    (``stopgate_store_latency_seconds{operation}``) and its failures counted
    (``stopgate_store_errors_total{operation}``); everything else passes through.

    It is also where consent changes are seen whatever path made them, so each change that
    applied is logged here (one JSON line: from, to, status, previous, source, note), and
    the changes written by ``record_inbound`` - keywords, carrier events, and spooled events
    replayed after an outage - are counted in ``stopgate_consent_changes_total`` here. Changes
    written by ``apply`` (consents API, carrier refusals) are counted by their callers.
    """

    def __init__(self, store: ConsentStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    @property
    def inner(self) -> ConsentStore:
        return self._store

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attribute) or name in _UNTIMED:
            return attribute
        wrapped = self._observe(name, attribute)
        # Cached on the instance: later lookups skip __getattr__ altogether.
        self.__dict__[name] = wrapped
        return wrapped

    def _observe(
        self, name: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        latency = self._metrics.store_latency.labels(name)
        errors = self._metrics.store_errors.labels(name)
        after = _AFTER.get(name)
        metrics = self._metrics

        @functools.wraps(method)
        async def observed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await method(*args, **kwargs)
            except Exception:
                latency.observe(time.perf_counter() - started)
                errors.inc()
                raise
            latency.observe(time.perf_counter() - started)
            if after is not None:
                after(metrics, result)
            return result

        return observed


def observe_store(store: ConsentStore, metrics: Metrics) -> ConsentStore:
    """``store`` wrapped in an :class:`ObservedStore`, typed as the store it stands for."""
    return cast("ConsentStore", ObservedStore(store, metrics))


def _log_applied(applied: Sequence[AppliedChange]) -> None:
    if not consent_log.isEnabledFor(logging.INFO):
        return
    for change in applied:
        if not change.applied:
            continue
        record = change.record
        log_fields(
            consent_log,
            logging.INFO,
            "consent change",
            {
                "event": "consent-change",
                "from": record.from_key,
                "to": record.to_key,
                "status": record.status.value,
                "previous": change.previous.value if change.previous else None,
                "source": record.source.value,
                "modified_us": record.modified_us,
                "note": record.note,
            },
        )


def _after_apply(metrics: Metrics, result: Any) -> None:
    _log_applied(result)


def _after_inbound(metrics: Metrics, result: Any) -> None:
    if result.duplicate:
        return
    metrics.count_applied(result.applied)
    _log_applied(result.applied)


def _after_delete(metrics: Metrics, result: Any) -> None:
    for record in result:
        consent_log.info(
            "consent record deleted",
            extra={
                "event": "consent-change",
                "from": record.from_key,
                "to": record.to_key,
                "status": "Deleted",
                "previous": record.status.value,
                "source": record.source.value,
            },
        )


_AFTER: dict[str, Callable[[Metrics, Any], None]] = {
    "apply": _after_apply,
    "record_inbound": _after_inbound,
    "delete_records": _after_delete,
}
