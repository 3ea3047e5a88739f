"""The webhook sink: each zone event POSTed as JSON to a URL (Node-RED's http in node, Home Assistant's webhook
trigger, any small server), with retries and back-off. Frame results are not sent (a request per frame is what
MQTT or JSON lines are for). EDGESEG_WEBHOOK_TOKEN, when set, goes as "Authorization: Bearer TOKEN"."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from edgeseg.camera.sink import Sink, SinkOptions, redact
from edgeseg.errors import EdgesegError

TOKEN_ENV = "EDGESEG_WEBHOOK_TOKEN"
TIMEOUT_S = 5.0
RETRIES = 3  # after the first try: 4 tries in all
BACKOFF_START_S = 0.5  # doubling: 0.5, 1, 2 s


class WebhookSink(Sink):
    """POSTs events to `url`; a failed POST (no answer, a 5xx, a 429) is tried again with back-off, then dropped
    and counted.

    Args:
        url: an http:// or https:// URL.
        opts: the log (failures are said once until a POST gets through again).
    """

    kinds = ("event",)
    name = "webhook"

    def __init__(self, url: str, opts: SinkOptions | None = None, backoff_s: float = BACKOFF_START_S):
        super().__init__()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EdgesegError(f"--webhook {redact(url)}: expected http://HOST[:PORT]/PATH or https://...")
        self.url, self.shown = url, redact(url)
        self.log = (opts or SinkOptions()).log
        self.backoff_s = backoff_s
        self.retries = 0
        self.failing = False
        self.token = os.environ.get(TOKEN_ENV)

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            r.read(65536)

    def send(self, kind: str, message: dict) -> None:
        """POST the event; retry what may pass later, with back-off."""
        body = json.dumps(message, separators=(",", ":")).encode()
        delay = self.backoff_s
        for attempt in range(RETRIES + 1):
            try:
                self._post(body)
                self.sent += 1
                if self.failing:
                    self.log(f"webhook: {self.shown} answers again")
                    self.failing = False
                return
            except urllib.error.HTTPError as e:
                why, again = f"HTTP {e.code}", e.code >= 500 or e.code == 429
            except (urllib.error.URLError, OSError) as e:
                why, again = str(getattr(e, "reason", e)), True
            if not again or attempt == RETRIES:
                break
            self.retries += 1
            time.sleep(delay)
            delay *= 2
        self.dropped += 1
        if not self.failing:
            self.failing = True
            self.log(f"warning: webhook {self.shown}: {why}; an event was dropped after {attempt + 1} tries")

    def status(self) -> dict:
        """The URL (without a password), sent, dropped, retries."""
        return {**super().status(), "url": self.shown, "retries": self.retries}
