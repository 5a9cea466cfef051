"""Prometheus metrics. The registry is injected so tests and several apps never collide.

Label values are bounded: dialects, decisions and reasons are fixed vocabularies; no phone number
or free text ever becomes a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import Info as InfoMetric

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sends = Counter(
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
        self.consent_changes = Counter(
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
        self.gateway_latency = Histogram(
            "stopgate_send_added_latency_seconds",
            "Time Stopgate spends on a send, upstream time excluded",
            ("dialect",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "stopgate_upstream_latency_seconds",
            "Time the carrier took to answer a forwarded send",
            ("dialect",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inbound_keywords = Counter(
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
        self.outbox_delivered = Counter(
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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
