"""Small adapters for pointing the official, unmodified carrier SDKs at a local server."""

from __future__ import annotations

import re
from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

_TWILIO_HOST = re.compile(r"^https://[a-z0-9.-]+\.twilio\.com")


class RebasingHttpClient(TwilioHttpClient):
    """Sends every Twilio domain (api, messaging, …) to one base URL.

    The way an app points the Twilio SDK at Stopgate without touching each domain's
    ``base_url``: a custom ``http_client`` is a documented extension point of the SDK.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        return super().request(method, _TWILIO_HOST.sub(self.base_url, url), *args, **kwargs)


def close_twilio(client: Client) -> None:
    """Close the ``requests`` session a sync Twilio client opened (unclosed, it warns)."""
    http = client.http_client
    if isinstance(http, TwilioHttpClient) and http.session is not None:
        http.session.close()
