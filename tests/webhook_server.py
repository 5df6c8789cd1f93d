"""A real local HTTPS server for the webhook deliverer's tests (tests/test_webhook_deliverer.py,
tests/security/test_s33_webhook_delivery.py): http.server in a thread, behind a certificate for
HOST and 127.0.0.1 from a throwaway CA made with openssl; and what the tests deliver."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

from statusdb.domain.destinations import AllowList
from statusdb.domain.types import IncidentNotification
from statusdb.workers.outbox import Recipient

HOST = "hooks.example.com"
KEY = b"k" * 32


@attrs.define
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Server:
    port: int
    ca: Path
    received: list[Received]
    #: path -> (status, delay seconds)
    answers: dict[str, tuple[int, float]]

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem")
    )
    ext = folder / "ext.cnf"
    ext.write_text(f"subjectAltName=DNS:{HOST},IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=statusdb test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={HOST}",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, cert, key


@contextmanager
def serve_https(folder: Path) -> Iterator[Server]:
    """Serve on 127.0.0.1 (a free port) until the block ends."""
    ca, cert, key = _certificates(folder)
    state = Server(0, ca, [], {})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            status, delay = state.answers.get(self.path, (200, 0.0))
            time.sleep(delay)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "https://127.0.0.1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(cert), str(key))
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def notification() -> IncidentNotification:
    return IncidentNotification(
        kind="incident_created",
        event_id="ev1",
        status_page_id="p1",
        page_name="Acme",
        page_slug="acme",
        page_time_zone="UTC",
        status_incident_id="si1",
        title="API down",
        severity="MAJOR",
        status="INVESTIGATING",
        message="We are looking.",
        at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        components=(),
    )


def resolver(table: dict[str, Sequence[str]]) -> Any:
    """A resolver answering from `table` (a DNS server under the test's control)."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


def deliverer(server: Server, **kwargs: Any) -> Any:
    """A WebhookDeliverer trusting the test CA, allowed 127.0.0.0/8, resolving HOST there."""
    from statusdb.workers.deliverers import webhook

    kwargs.setdefault("allow", AllowList.of(["127.0.0.0/8"]))
    kwargs.setdefault("resolve", resolver({HOST: ["127.0.0.1"]}))
    return webhook.WebhookDeliverer(KEY, verify=server.context(), **kwargs)


def deliver(hook: Any, url: str, subscriber: str = "sub1", channel: str = "WEBHOOK") -> None:
    async def go() -> None:
        try:
            await hook(notification(), Recipient(subscriber, channel, url), f"ev1/{subscriber}")  # type: ignore[arg-type]
        finally:
            await hook.aclose()

    asyncio.run(go())
