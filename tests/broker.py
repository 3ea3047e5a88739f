"""A real MQTT broker for the tests: Debian's mosquitto, started on a free localhost port with a config written to
a temporary folder (anonymous, with a password file, or with TLS from a CA made on the spot with openssl), and a
paho subscriber that records what arrives. The tests that need it skip with the reason when mosquitto is absent
(.ci/run installs it)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
)
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None or shutil.which("mosquitto_passwd") is None,
    reason="needs Debian's mosquitto broker (apt-get install mosquitto; .ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for localhost and 127.0.0.1 signed by it (EC keys: fast to make)."""
    folder.mkdir(parents=True, exist_ok=True)
    f = {k: folder / k for k in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "san.cnf")}
    f["san.cnf"].write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", f["ca.key"], "-out", f["ca.crt"], "-days", "2", "-subj", "/CN=edgeseg test CA")
    run("req", *ec, "-keyout", f["server.key"], "-out", f["server.csr"], "-subj", "/CN=localhost")
    run(
        "x509", "-req", "-in", f["server.csr"], "-CA", f["ca.crt"], "-CAkey", f["ca.key"], "-CAcreateserial",
        "-out", f["server.crt"], "-days", "2", "-extfile", f["san.cnf"],
    )  # fmt: skip
    return f


class Broker:
    """One mosquitto on 127.0.0.1:port; stop() and start() again keep the port, the config and (persistence) the
    sessions and subscriptions of clients that asked for them.

    Args:
        folder: where the config, the log, the password file and the persistence file go.
        users: user -> password (then anonymous clients are refused).
        tls: serve TLS with a certificate from a CA made here (self.ca is the CA certificate).
    """

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: bool = False):
        self.folder, self.port, self.proc = folder, free_port(), None
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {folder}/",
            f"log_dest file {self.log}",
            "log_type all",
            "user root",  # started as root (CI), mosquitto would drop to a user that cannot read tmp_path
        ]
        if users:
            pw = folder / "passwd"
            for i, (u, p) in enumerate(users.items()):
                subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), pw, u, p], check=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        self.ca = None
        if tls:
            files = make_ca(folder / "tls")
            self.ca = files["ca.crt"]
            lines += [f"cafile {files['ca.crt']}", f"certfile {files['server.crt']}", f"keyfile {files['server.key']}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def url(self, topic: str = "edgeseg", user: str | None = None) -> str:
        scheme = "mqtts" if self.ca else "mqtt"
        return f"{scheme}://{f'{user}@' if user else ''}127.0.0.1:{self.port}/{topic}"

    def start(self, timeout: float = 10.0) -> Broker:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: it saves its persistence file and exits at once)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def connections(self) -> int:
        """Connections the broker has logged since it was made."""
        return self.log.read_text(errors="replace").count("New connection from") if self.log.exists() else 0


class Subscriber:
    """A paho client that records every message on `topics` (QoS 1, a persistent session: what the broker holds
    for it while it reconnects is delivered, across a broker restart too)."""

    def __init__(self, broker: Broker, topics=("edgeseg", "edgeseg/#"), auth: tuple[str, str] | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{broker.port}", clean_session=False)
        if auth:
            c.username_pw_set(*auth)
        if broker.ca:
            c.tls_set(ca_certs=str(broker.ca))
        c.reconnect_delay_set(0.2, 1)  # the test's own client comes back quickly after a broker restart

        def on_connect(client, userdata, flags, reason, properties):
            if not reason.is_failure:
                client.subscribe([(t, 1) for t in topics])

        c.on_connect = on_connect
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        self.client = c
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        assert self.subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def frames(self, topic: str = "edgeseg") -> list[dict]:
        return [json.loads(p) for p in self.on(topic)]

    def wait_for(self, topic: str, n: int, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.on(topic)) < n:
            time.sleep(0.05)
        return self.on(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
