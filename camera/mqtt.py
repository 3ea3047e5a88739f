"""The MQTT sink (paho-mqtt): frame results on TOPIC, zone events on TOPIC/events, and a retained availability
topic, TOPIC/availability, "online" while connected and "offline" when the run ends or (the broker's last will)
when the device vanishes, as Home Assistant expects.

mqtt://[user[:password]@]host[:port]/topic, or mqtts:// (TLS; --mqtt-ca checks the broker's certificate against a
CA of your own). The user may come from EDGESEG_MQTT_USERNAME and the password from --mqtt-password-file or
EDGESEG_MQTT_PASSWORD, so that it does not show in `ps`.

At start the broker must answer and accept us: else one line and a non-zero exit, never a retry storm. Mid-run,
paho's network thread reconnects with back-off (1 s doubling to 30 s). At QoS 1 a message that was not
acknowledged when the connection dropped is sent again after the reconnect, and those published while the broker
is away are kept (up to MAX_QUEUED, then dropped and counted) and sent when it is back.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgeseg.camera.sink import Sink, SinkOptions, redact
from edgeseg.errors import EdgesegError

USER_ENV, PASSWORD_ENV = "EDGESEG_MQTT_USERNAME", "EDGESEG_MQTT_PASSWORD"
CONNECT_TIMEOUT_S = 5.0
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
MAX_QUEUED = 1000  # QoS 1 messages kept while the broker is away (about 30 s at 30 FPS)
ONLINE, OFFLINE = "online", "offline"


def parse_mqtt_url(url: str) -> dict:
    """mqtt[s]://[user[:password]@]host[:port]/topic -> host, port, topic, tls, username, password."""
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise EdgesegError(f"--publish {redact(url)}: the port is not a number from 1 to 65535") from None
    topic = unquote(parts.path.lstrip("/"))
    if not parts.hostname:
        raise EdgesegError(f"--publish {redact(url)}: no broker host (mqtt://HOST[:PORT]/TOPIC)")
    after_user = url.rpartition("@")[2]  # urlsplit takes a # for a fragment: look for it in the raw text
    if not topic or any(c in topic for c in "+\0") or "#" in after_user or "?" in after_user:
        raise EdgesegError(
            f"--publish {redact(url)}: give a topic without wildcards (+, #) after the host: mqtt://HOST/TOPIC"
        )
    return {
        "host": parts.hostname,
        "port": port,
        "topic": topic.rstrip("/"),
        "tls": tls,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }


def check_url(url: str, ca_file: Path | None) -> dict:
    """parse_mqtt_url's settings, refusing what the URL cannot use: a CA file (--mqtt-ca) on plain MQTT, which
    once turned TLS on against the plain port. `run` checks this before it loads the model."""
    cfg = parse_mqtt_url(url)
    if ca_file is not None and not cfg["tls"]:
        raise EdgesegError(
            f"--mqtt-ca is for TLS: --publish {redact(url)} is plain MQTT; give mqtts://HOST[:8883]/TOPIC to use it"
        )
    return cfg


def credentials(url_user: str | None, url_password: str | None, password_file: Path | None, log) -> tuple:
    """(username, password): the user from the URL or EDGESEG_MQTT_USERNAME; the password from the file, else
    EDGESEG_MQTT_PASSWORD, else the URL (said to show in `ps`).

    Args:
        url_user: the URL's user, or None.
        url_password: the URL's password, or None.
        password_file: --mqtt-password-file, or None.
        log: where the note about a password in the URL goes.
    """
    user = url_user or os.environ.get(USER_ENV) or None
    if password_file is not None:
        from edgeseg.io import read_bounded

        lines = read_bounded(Path(password_file), 4096, "password").splitlines()
        return user, lines[0] if lines else ""
    if os.environ.get(PASSWORD_ENV) is not None:
        return user, os.environ[PASSWORD_ENV]
    if url_password is not None:
        log(
            f"warning: the MQTT password is in --publish's URL, which `ps` shows: use {PASSWORD_ENV} or "
            "--mqtt-password-file"
        )
    return user, url_password


class MqttSink(Sink):
    """Publishes to an MQTT broker through paho-mqtt's own network thread (which reconnects by itself).

    Args:
        url: mqtt[s]://[user[:password]@]host[:port]/topic.
        opts: QoS, CA file, password file, log.
        client_id: the MQTT client id (default: edgeseg-HOSTNAME-PID).
    """

    name = "mqtt"

    def __init__(self, url: str, opts: SinkOptions | None = None, client_id: str | None = None):
        super().__init__()
        import paho.mqtt.client as mqtt  # imported here: only a run that publishes needs it

        opts = opts or SinkOptions()
        if opts.qos not in (0, 1):
            raise EdgesegError(f"--mqtt-qos {opts.qos}: 0 or 1")
        self.url, self.qos, self.log = redact(url), opts.qos, opts.log
        cfg = check_url(url, opts.ca_file)
        self.tls = cfg["tls"]
        self.topic, self.events_topic = cfg["topic"], cfg["topic"] + "/events"
        self.availability_topic = cfg["topic"] + "/availability"
        self.state, self.connects, self.delivered = "connecting", 0, 0
        self.refused: str | None = None
        self.lost_at: float | None = None
        self.first = threading.Event()
        self.closing = False
        self.availability_mids: set[int] = set()  # the online/offline messages, not counted as results
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"edgeseg-{socket.gethostname()}-{os.getpid()}",
        )
        self.client = c
        user, password = credentials(cfg["username"], cfg["password"], opts.password_file, self.log)
        if user is not None or password is not None:
            c.username_pw_set(user, password)
        if cfg["tls"]:
            self._tls(opts.ca_file)
        c.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        c.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        c.max_queued_messages_set(MAX_QUEUED)
        c.connect_timeout = CONNECT_TIMEOUT_S
        c.on_connect, c.on_disconnect, c.on_publish = self._on_connect, self._on_disconnect, self._on_publish
        self._connect(cfg["host"], cfg["port"])

    def _tls(self, ca_file: Path | None) -> None:
        if ca_file is not None and not Path(ca_file).is_file():
            raise EdgesegError(f"--mqtt-ca {ca_file}: no such file")
        try:
            self.client.tls_set(ca_certs=str(ca_file) if ca_file else None)
        except (ssl.SSLError, OSError, ValueError) as e:
            raise EdgesegError(f"--mqtt-ca {ca_file}: not a PEM CA certificate ({_reason(e)})") from None

    def _connect(self, host: str, port: int) -> None:
        """Connect and wait for the broker's answer: one line, and no retries, when it cannot be had."""
        where = f"--publish {self.url}"
        try:
            self.client.connect(host, port, keepalive=KEEPALIVE_S)
        except ssl.SSLCertVerificationError as e:
            raise EdgesegError(f"{where}: the broker's TLS certificate is not trusted ({e.verify_message})") from None
        except (OSError, ssl.SSLError) as e:
            if self.tls and getattr(e, "reason", None) == "WRONG_VERSION_NUMBER":  # it answered, not in TLS
                raise EdgesegError(
                    f"{where}: port {port} does not speak TLS: mqtts:// needs the broker's TLS listener (usually "
                    "8883); a plain one (1883) is mqtt://"
                ) from None
            if self.tls and isinstance(e, ConnectionResetError | BrokenPipeError):  # what mosquitto's plain port does
                raise EdgesegError(
                    f"{where}: the broker hung up on the TLS handshake ({_reason(e)}); if port {port} is a plain "
                    "MQTT listener, use mqtt:// (mqtts:// is usually 8883)"
                ) from None
            if self.tls and isinstance(e, ssl.SSLError):
                raise EdgesegError(f"{where}: the TLS handshake with the broker failed ({_reason(e)})") from None
            raise EdgesegError(f"{where}: cannot reach the broker ({_reason(e)})") from None
        self.client.loop_start()
        if not self.first.wait(CONNECT_TIMEOUT_S) or self.refused:
            why = f"the broker refused the connection: {self.refused}" if self.refused else "no answer from the broker"
            self._stop()
            hint = f" (user and password: the URL, {USER_ENV}, {PASSWORD_ENV} or --mqtt-password-file)"
            raise EdgesegError(f"{where}: {why}" + (hint if self.refused else f" in {CONNECT_TIMEOUT_S:g} s"))

    # paho's callbacks run on its network thread
    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self.refused, self.state = str(reason), "refused"
            if self.first.is_set():
                self.log(f"mqtt: {self.url}: the broker refused the connection ({reason}); retrying with back-off")
            self.first.set()
            return
        self.connects += 1
        self.state, self.refused = "connected", None
        self.availability_mids.add(client.publish(self.availability_topic, ONLINE, qos=1, retain=True).mid)
        if self.lost_at is not None:
            self.log(f"mqtt: reconnected to {self.url} after {time.monotonic() - self.lost_at:.1f} s")
            self.lost_at = None
        self.first.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        # only a connection that was up is "lost": a refusal says its own line (at start, the one error line,
        # which this thread must not race with a "lost the broker" of its own)
        if self.closing or self.state != "connected":
            return
        if self.lost_at is None:
            self.lost_at = time.monotonic()
            self.state = "reconnecting"
            self.log(f"mqtt: lost the broker at {self.url} ({reason}); reconnecting with back-off")

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        if mid in self.availability_mids:
            self.availability_mids.discard(mid)
        else:
            self.delivered += 1

    def send(self, kind: str, message: dict) -> None:
        """Publish a frame result on TOPIC or an event on TOPIC/events."""
        import paho.mqtt.client as mqtt

        topic = self.events_topic if kind == "event" else self.topic
        info = self.client.publish(topic, json.dumps(message, separators=(",", ":")), qos=self.qos)
        # At QoS 1, NO_CONN means kept by paho and sent after the reconnect; at QoS 0 it is lost.
        kept = info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and self.qos > 0)
        if kept:
            self.sent += 1
        else:
            self.dropped += 1

    def status(self) -> dict:
        """State (connecting, connected, reconnecting, refused, closed), URL, QoS, counts."""
        return {
            "sink": self.name,
            "url": self.url,
            "state": self.state,
            "qos": self.qos,
            "sent": self.sent,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "reconnects": max(0, self.connects - 1),
        }

    def _stop(self) -> None:
        self.closing = True
        self.client.disconnect()
        self.client.loop_stop()

    def close(self, timeout: float = 3.0) -> None:
        """Wait (up to `timeout` s) for QoS 1 messages to be acknowledged, say "offline", disconnect."""
        deadline = time.monotonic() + timeout
        while self.qos and self.state == "connected" and self.sent > self.delivered:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if self.state == "connected":
            info = self.client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            self.availability_mids.add(info.mid)
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self._stop()
        if self.qos:  # kept for a broker that did not come back before the end: lost, and counted
            self.dropped += max(0, self.sent - self.delivered)
        self.state = "closed"


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e) or type(e).__name__
