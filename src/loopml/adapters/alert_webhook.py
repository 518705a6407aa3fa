"""Webhook sinks: an alert as a signed JSON POST, or as a Slack-compatible message.

:class:`WebhookSink` posts ``{"event": "loopml.alert", "text": <message>, "alert": {...}}``
(the ``alert`` object is :meth:`~loopml.domain.alerts.Alert.to_dict`; ``text`` lets chat
tools that read only that key show something useful) with these headers:

* ``X-Loopml-Alert-Id``: the alert's id, the same on every retry: receivers de-duplicate
  on it;
* ``X-Loopml-Timestamp``: Unix seconds when this attempt was signed;
* ``X-Loopml-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the secret, of
  the timestamp, a ``.``, and the raw body bytes (when the sink has ``secret_env``).

**Verifying a delivery** (what :func:`verify_signature` does): read the raw body bytes
before parsing them; compute ``hmac.new(secret, timestamp.encode() + b"." + body,
hashlib.sha256).hexdigest()``; compare ``"sha256=" + that`` with the signature header
using a constant-time comparison (``hmac.compare_digest``); refuse timestamps more than
five minutes from your clock, so a captured request cannot be replayed later. The
timestamp is inside the signed bytes, so it cannot be changed without the secret.

:class:`SlackSink` posts ``{"text": ..., "blocks": [...]}`` (header, message, fields,
context), the shape Slack incoming webhooks and compatible chat tools (Mattermost,
Rocket.Chat, Discord's ``/slack`` endpoints) accept. Their URL is the credential, so
it is best given through ``url_env``.

Both deliver through :class:`~loopml.adapters.alert_http.JsonPoster` (the SSRF guard,
pinning, timeout and retries are described there) and return a
:class:`~loopml.domain.alerts.Delivery` instead of raising.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from loopml.adapters.alert_http import JsonPoster
from loopml.domain.alerts import Alert, Delivery, Severity

SIGNATURE_HEADER = "X-Loopml-Signature"
TIMESTAMP_HEADER = "X-Loopml-Timestamp"
ALERT_ID_HEADER = "X-Loopml-Alert-Id"
SIGNATURE_TOLERANCE_S = 300
_USER_AGENT = "loopml-alerts/1"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Loopml-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now_s: float | None = None,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """True if ``signature`` is the secret's signature of ``body`` at ``timestamp`` and the
    timestamp is within ``tolerance_s`` of ``now_s`` (default: the clock)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    now = time.time() if now_s is None else now_s
    if abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSink:
    """Posts each alert as signed JSON to one URL.

    Args:
        name: the sink's name (``[alerts.sinks.NAME]``).
        poster: the guarded transport, built for the sink's URL.
        secret: the HMAC key; None sends no signature header.
        clock: Unix seconds, for the timestamp header.
    """

    def __init__(
        self,
        name: str,
        poster: JsonPoster,
        secret: bytes | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._poster = poster
        self._secret = secret
        self._clock = clock

    def __repr__(self) -> str:  # never shows the secret
        signed = "signed" if self._secret else "unsigned"
        return f"WebhookSink({self.name!r}, {self._poster.origin}, {signed})"

    def deliver(self, alert: Alert) -> Delivery:
        body = webhook_payload(alert)

        def headers() -> dict[str, str]:
            timestamp = str(int(self._clock()))
            found = {
                "User-Agent": _USER_AGENT,
                ALERT_ID_HEADER: alert.id,
                TIMESTAMP_HEADER: timestamp,
            }
            if self._secret:
                found[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
            return found

        return replace(self._poster.post(body, headers), sink=self.name)


class SlackSink:
    """Posts each alert as a Slack-compatible message to one incoming-webhook URL."""

    def __init__(self, name: str, poster: JsonPoster) -> None:
        self.name = name
        self._poster = poster

    def __repr__(self) -> str:  # the URL path is a credential: show the origin only
        return f"SlackSink({self.name!r}, {self._poster.origin})"

    def deliver(self, alert: Alert) -> Delivery:
        body = json.dumps(slack_payload(alert), ensure_ascii=False).encode("utf-8")
        return replace(self._poster.post(body, lambda: {"User-Agent": _USER_AGENT}), sink=self.name)


def webhook_payload(alert: Alert) -> bytes:
    """The body :class:`WebhookSink` sends: compact JSON, keys sorted."""
    data = {"event": "loopml.alert", "text": alert.message, "alert": alert.to_dict()}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def slack_payload(alert: Alert) -> dict[str, Any]:
    """``{"text", "blocks"}`` for Slack's incoming webhooks; ``text`` is the notification
    and the fallback of clients that do not show blocks."""
    icon = ":rotating_light:" if alert.severity is Severity.CRITICAL else ":warning:"
    when = datetime.fromtimestamp(alert.time_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    fields = [
        ("Deployment", alert.deployment),
        ("Metric", alert.metric),
        ("Value", f"{alert.value:.6g}"),
        ("Threshold", f"{alert.comparison.value} {alert.threshold:g}"),
        ("Severity", alert.severity.value),
        ("Windows", f"{alert.windows} (newest: {alert.window})"),
    ]
    if alert.action is not None:
        fields.append(("Action", alert.action.value))
    return {
        "text": _escape(f"{alert.title}: {alert.message}")[:3000],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{icon} {_escape(alert.message)}"[:3000]},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{_escape(value)}"[:2000]}
                    for label, value in fields[:10]
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _escape(f"rule {alert.rule} · alert {alert.id} · {when}"),
                    }
                ],
            },
        ],
    }


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping: ``&``, ``<`` and ``>`` would start entities and links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
