"""RingCentral batch replies: Stopgate's refusals are merged into whatever the carrier answered,
however odd its ``rejected`` entries (the carrier has acted on the batch by then: a failure here
would answer 500 for messages that were sent)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.dialects.base import BatchItem, Blocked
from gateway.dialects.ringcentral import RingCentralDialect


@pytest.mark.parametrize(
    "carrier_rejected",
    [
        [],
        ["not an object"],
        [{"index": "0"}, 7, None],
        [{"index": 0, "errorCode": "SMS-RC-410"}, {"no": "index"}],
    ],
)
def test_a_batch_reply_merges_whatever_the_carrier_rejected(carrier_rejected: list[Any]) -> None:
    dialect = RingCentralDialect()
    kept = [BatchItem(index=1, recipients=("+16505550101",), text=None)]
    dropped = [Blocked(index=0, recipient="+16505550100", reason="opt-out")]
    reply = {"batchSize": 1, "rejected": list(carrier_rejected)}
    merged = dialect.merge_batch_reply(reply, kept, dropped)
    ours = [
        e
        for e in merged["rejected"]
        if isinstance(e, dict) and e.get("to") == [dropped[0].recipient]
    ]
    assert ours and ours[0]["errorCode"] == "SMS-RC-413"
    assert len(merged["rejected"]) == len(carrier_rejected) + 1
    assert merged["batchSize"] == 2
