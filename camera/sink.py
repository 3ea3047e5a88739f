"""The interface every sink implements (MQTT, JSON lines, webhooks: one module each, edgeseg.camera.sinks finds
them by scheme and runs each on a thread of its own), what they are opened with, and the URL shown without its
password."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

KINDS = ("frame", "event")


class Sink:
    """One place results go. send() runs on the sink's own thread (SinkThread) and may take its time."""

    kinds: tuple[str, ...] = KINDS
    name = "sink"

    def __init__(self):
        self.sent = 0  # messages handed on (written, published, posted)
        self.dropped = 0  # messages that could not be kept

    def send(self, kind: str, message: dict) -> None:
        """Deliver one message ("frame" or "event"); count it in sent or dropped."""
        raise NotImplementedError

    def status(self) -> dict:
        """The sink's state as JSON values (the loop's --stats and /stats.json)."""
        return {"sink": self.name, "sent": self.sent, "dropped": self.dropped}

    def close(self) -> None:
        """Flush and release what the sink holds."""


@dataclass
class SinkOptions:
    """What the sinks are opened with besides their URL.

    Args:
        qos: MQTT quality of service, 0 or 1.
        ca_file: the CA certificate (PEM) an mqtts:// broker's certificate is checked against.
        password_file: a file whose first line is the MQTT password (else EDGESEG_MQTT_PASSWORD, else the URL's).
        log: where a sink's notes go (a broker lost and found again, a webhook that failed).
    """

    qos: int = 1
    ca_file: Path | None = None
    password_file: Path | None = None
    log: Callable[[str], None] = print


def redact(url: str) -> str:
    """The URL without its password (for messages and stats), also when the password has characters that should
    have been %-encoded (#, /, ?), which urlsplit then reads as the path or fragment: whatever stands between
    "user:" and the last "@" is masked (a topic with ":" and "@" in it may be masked too: better than a password
    shown)."""
    parts = urlsplit(url) if "://" in url else None
    if parts is None:
        return url
    if parts.password is None:
        scheme, rest = url.split("://", 1)
        userinfo, at, host = rest.rpartition("@")
        if at and ":" in userinfo:
            return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if _port(parts) else "")
    return parts._replace(netloc=netloc).geturl()


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None
