"""The reference webhook deliverer (statusdb.workers.deliverers.webhook) against a real local
HTTPS server (tests/webhook_server.py): signatures, outcomes, timeouts, TLS, channels. The SSRF
and DNS-rebinding attacks are tests/security/test_s33_webhook_delivery.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_server import HOST, KEY, Server, deliver, deliverer, resolver, serve_https

from statusdb.domain.destinations import AllowList
from statusdb.errors import InvalidInput
from statusdb.workers.deliveries import PermanentDeliveryFailure

webhook = pytest.importorskip("statusdb.workers.deliverers.webhook")
pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_https(tmp_path_factory.mktemp("tls")) as running:
        yield running


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
