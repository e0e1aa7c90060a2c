"""The webhooks' signature: ``X-RSA-Signature: sha256=<hex HMAC-SHA256>`` of
``"<timestamp>.<body>"`` with ``WEBHOOK_SECRET``, ``X-RSA-Timestamp: <timestamp>`` (Unix
seconds, at each attempt). A receiver recomputes it over the raw body, compares in
constant time and refuses a timestamp outside its replay window (``REPLAY_WINDOW``)."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-RSA-Signature"
TIMESTAMP_HEADER = "X-RSA-Timestamp"
#: What docs/circuit.md advises a receiver to accept: 5 minutes either side.
REPLAY_WINDOW = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    ts = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(secret: str, body: bytes, timestamp: str, sent: str, *,
           window: int = REPLAY_WINDOW, now: float | None = None) -> bool:
    """What a receiver does (Python): the timestamp within the window, the HMAC equal."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - ts) > window:
        return False
    return hmac.compare_digest(signature(secret, ts, body), sent or "")


__all__ = ["signature", "headers", "verify", "SIGNATURE_HEADER", "TIMESTAMP_HEADER",
           "REPLAY_WINDOW"]
