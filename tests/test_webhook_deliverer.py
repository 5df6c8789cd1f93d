"""The reference webhook deliverer (statusdb.workers.deliverers.webhook) against a real local
HTTPS server (http.server in a thread, a certificate from a throwaway CA made with openssl):
signatures, outcomes, timeouts, and the SSRF / DNS-rebinding checks of resolved addresses."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from statusdb.domain.destinations import AllowList
from statusdb.domain.types import IncidentNotification
from statusdb.errors import InvalidInput
from statusdb.workers.deliveries import PermanentDeliveryFailure
from statusdb.workers.outbox import Recipient

webhook = pytest.importorskip("statusdb.workers.deliverers.webhook")
pytest.importorskip("httpx")

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    ca, cert, key = _certificates(tmp_path_factory.mktemp("tls"))
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


def test_a_signed_post_to_the_checked_address(server: Server) -> None:
    """The name resolves (by the test's resolver) to 127.0.0.1, which the allow-list permits:
    the POST reaches the server there with Host and TLS naming the host; the signature verifies
    with the subscriber's derived secret and with no other subscriber's."""
    server.received.clear()
    deliver(deliverer(server), f"https://{HOST}:{server.port}/hook?x=1", subscriber="sub1")
    [got] = server.received
    assert got.path == "/hook?x=1"
    assert got.headers["Host"] == f"{HOST}:{server.port}"
    assert got.headers["Idempotency-Key"] == "ev1/sub1"
    document = json.loads(got.body)
    assert document["delivery_key"] == "ev1/sub1"
    assert document["kind"] == "incident_created"
    assert document["notification"]["title"] == "API down"
    secret = webhook.subscriber_secret(KEY, "sub1")
    timestamp = got.headers["Statusdb-Timestamp"]
    signature = got.headers["Statusdb-Signature"]
    assert webhook.verify_signature(secret, timestamp, got.body, signature)
    assert not webhook.verify_signature(
        webhook.subscriber_secret(KEY, "sub2"), timestamp, got.body, signature
    )
    assert not webhook.verify_signature(secret, timestamp, got.body + b" ", signature)
    assert not webhook.verify_signature(
        secret, timestamp, got.body, signature, now=int(timestamp) + 301
    )


def test_key_rotation_signs_with_both_keys(server: Server) -> None:
    server.received.clear()
    old = b"o" * 32
    deliver(deliverer(server, previous_keys=[old]), f"https://{HOST}:{server.port}/r")
    [got] = server.received
    ts, sig = got.headers["Statusdb-Timestamp"], got.headers["Statusdb-Signature"]
    assert webhook.verify_signature(webhook.subscriber_secret(KEY, "sub1"), ts, got.body, sig)
    assert webhook.verify_signature(webhook.subscriber_secret(old, "sub1"), ts, got.body, sig)


def test_an_ip_literal_goes_through_the_system_resolver(server: Server) -> None:
    server.received.clear()
    hook = webhook.WebhookDeliverer(
        KEY, verify=server.context(), allow=AllowList.of(["127.0.0.0/8"])
    )
    deliver(hook, f"https://127.0.0.1:{server.port}/literal")
    assert [r.path for r in server.received] == ["/literal"]


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],  # a public name resolving to loopback
        ["93.184.215.14", "127.0.0.1"],  # rebinding: one public, one internal address
        ["93.184.215.14", "169.254.169.254"],  # the metadata service
        ["::ffff:127.0.0.1"],  # IPv4-mapped loopback
        ["10.0.0.7"],
    ],
)
def test_every_resolved_address_is_checked(server: Server, answers: list[str]) -> None:
    """Without an allow-list, a name resolving to any internal address is refused before any
    connection (permanent: it counts towards deactivating the subscriber)."""
    server.received.clear()
    hook = deliverer(server, allow=AllowList(), resolve=resolver({HOST: answers}))
    with pytest.raises(PermanentDeliveryFailure, match="internal address") as caught:
        deliver(hook, f"https://{HOST}:{server.port}/x")
    assert HOST not in str(caught.value)
    assert server.received == []


def test_internal_names_and_literals_are_refused_before_resolving(server: Server) -> None:
    hook = deliverer(server, allow=AllowList(), resolve=resolver({}))
    for url in (
        f"https://localhost:{server.port}/",
        f"https://127.0.0.1:{server.port}/",
        "https://metadata.google.internal/",
        "http://hooks.example.com/",
    ):
        with pytest.raises(PermanentDeliveryFailure):
            deliver(hook, url)
    assert server.received == [] or all(r.path != "/" for r in server.received)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (204, None),
        (410, PermanentDeliveryFailure),
        (404, PermanentDeliveryFailure),
        (302, PermanentDeliveryFailure),
        (500, ConnectionError),
        (429, ConnectionError),
    ],
)
def test_outcomes_by_status(server: Server, status: int, error: type[Exception] | None) -> None:
    path = f"/status{status}"
    server.answers[path] = (status, 0.0)
    hook = deliverer(server)
    url = f"https://{HOST}:{server.port}{path}"
    if error is None:
        deliver(hook, url)
        return
    with pytest.raises(error) as caught:
        deliver(hook, url)
    assert str(status) in str(caught.value)
    assert HOST not in str(caught.value)


def test_a_slow_receiver_times_out(server: Server) -> None:
    server.answers["/slow"] = (200, 3.0)
    hook = deliverer(server, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        deliver(hook, f"https://{HOST}:{server.port}/slow")
    assert time.monotonic() - started < 2.5


def test_the_certificate_is_verified_for_the_host(server: Server) -> None:
    """The address is checked and connected to, but TLS still verifies the certificate for
    the URL's host: a name the certificate does not hold fails."""
    hook = deliverer(server, resolve=resolver({"other.example.com": ["127.0.0.1"]}))
    with pytest.raises(ConnectionError):
        deliver(hook, f"https://other.example.com:{server.port}/x")


def test_slack_gets_text_and_email_is_not_this_deliverers(server: Server) -> None:
    server.received.clear()
    deliver(deliverer(server), f"https://{HOST}:{server.port}/slack", channel="SLACK")
    [got] = server.received
    assert json.loads(got.body) == {"text": "acme: API down [INVESTIGATING]"}
    assert "Statusdb-Signature" not in got.headers
    with pytest.raises(webhook.UnsupportedChannel):
        deliver(deliverer(server), "someone@example.com", channel="EMAIL")


def test_the_service_key_comes_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="STATUSDB_WEBHOOK_KEY"):
        webhook.service_key_from_env({})
    with pytest.raises(InvalidInput, match="32 bytes"):
        webhook.from_env({"STATUSDB_WEBHOOK_KEY": "short"})
    keyfile = tmp_path / "key"
    keyfile.write_text("x" * 64 + "\n")
    assert webhook.service_key_from_env({"STATUSDB_WEBHOOK_KEY_FILE": str(keyfile)}) == b"x" * 64
    hook = webhook.from_env(
        {"STATUSDB_WEBHOOK_KEY": "y" * 32, "STATUSDB_WEBHOOK_ALLOW": "10.0.0.0/8, hooks.internal"}
    )
    assert hook is not None
