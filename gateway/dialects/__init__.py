"""Carrier dialects. Register a new carrier by adding its dialect to :data:`DIALECTS`."""

from __future__ import annotations

from gateway.dialects.base import Dialect
from gateway.dialects.ringcentral import RingCentralDialect
from gateway.dialects.twilio import TwilioDialect

RINGCENTRAL = RingCentralDialect()
TWILIO = TwilioDialect()
DIALECTS: tuple[Dialect, ...] = (RINGCENTRAL, TWILIO)
