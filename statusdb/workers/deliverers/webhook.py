"""The reference webhook deliverer (extra `webhook`: httpx): `statusdb worker --deliver
statusdb.workers.deliverers.webhook:deliver`.

Each delivery is one HTTPS POST of a JSON document to the subscriber's URL:

    {"delivery_key": "<event or change key>/<subscriber id>",
     "kind": "incident_created" | ... | "component_status",
     "notification": {...}}          # statusdb.workers.deliveries.notification_payload

with the headers `Idempotency-Key` (the delivery key: delivery is at least once, so receivers
drop a key they have seen), `Statusdb-Timestamp` (Unix seconds) and `Statusdb-Signature:
v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. A SLACK subscriber's URL (a Slack
incoming webhook) gets `{"text": "<one-line summary>"}`, unsigned: Slack checks nothing. EMAIL is
not this deliverer's: such a delivery fails as temporary (retried, never deactivating) until a
deliverer that sends mail handles the channel (see docs/worker.md, "Several channels").

**The per-subscriber secret** is derived, never stored: `subscriber_secret(service_key,
subscriber_id)` = HMAC-SHA256(service key, "statusdb-webhook-v1" NUL subscriber id), hex. The
service key (at least 32 bytes) lives only with the workers and the application that shows a
subscriber its secret once, when it subscribes (`$STATUSDB_WEBHOOK_KEY` or
`$STATUSDB_WEBHOOK_KEY_FILE`); the database holds no usable secret at all, so no database role
(the app, the reader, a stolen backup) can forge a signature. A per-subscriber column would have
to be readable by the login the workers use, i.e. by the app role, and by every backup. The cost
of deriving: rotating the service key changes every subscriber's secret at once (publish the new
secrets, then switch: `previous_keys` signs with the old and the new key meanwhile, one
`Statusdb-Signature` value each, comma-separated).

**Server-side request forgery.** The URL is checked again (`statusdb.domain.destinations`: the
subscriber table's trigger checked it when it was written, but the allow-list may have changed
since). Then the host is resolved here, EVERY address it resolves to is checked against the same
rules (`destinations.address_problem`, unless `allow` lists the host or a network holding the
address), and the connection goes to a checked address: the request's URL names the address,
the `Host` header and TLS (SNI and certificate verification) name the host. A name that
resolves to 127.0.0.1, or to a public and a private address (DNS rebinding), is refused as a
permanent failure, before any connection; there is no second resolution for an attacker's DNS to
answer differently. Redirects are not followed (a `Location` could point inside the network).

Outcomes (what raising means to the worker's bookkeeping): 2xx delivered; 404, 410, a 3xx (not
followed), a refused or malformed destination: `PermanentDeliveryFailure`; anything else
(timeouts, connection errors, 5xx, 429, other 4xx): a temporary failure, retried with back-off.
Error texts never hold the URL (they are recorded and logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from statusdb.domain import destinations
from statusdb.domain.destinations import NOTHING_ALLOWED, AllowList, IPAddress
from statusdb.domain.types import IncidentNotification, MaintenanceNotification, Notification
from statusdb.errors import InvalidInput
from statusdb.workers.deliverers import console
from statusdb.workers.deliveries import PermanentDeliveryFailure, notification_payload
from statusdb.workers.outbox import Recipient

KEY_MIN_BYTES: Final = 32
DEFAULT_TIMEOUT: Final = 10.0
SIGNATURE_HEADER: Final = "Statusdb-Signature"
TIMESTAMP_HEADER: Final = "Statusdb-Timestamp"
#: Receivers refuse a signature older (or newer) than this many seconds (replays).
DEFAULT_TOLERANCE: Final = 300
#: Connection pools kept (one per host and checked address).
MAX_CLIENTS: Final = 64
_DERIVE: Final = b"statusdb-webhook-v1\x00"

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class UnsupportedChannel(Exception):
    """An EMAIL delivery handed to the webhook deliverer (a temporary failure: retried)."""


def subscriber_secret(service_key: bytes, subscriber_id: str) -> str:
    """The signing secret of one subscriber (hex), derived from the service key."""
    if len(service_key) < KEY_MIN_BYTES:
        raise InvalidInput(f"the webhook service key must be at least {KEY_MIN_BYTES} bytes")
    return hmac.new(service_key, _DERIVE + subscriber_id.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=<hex>`: HMAC-SHA256 under `secret` of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """What a receiver does: the timestamp is recent and one of the header's values matches."""
    try:
        at = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - at) > tolerance:
        return False
    expected = sign(secret, at, body)
    return any(hmac.compare_digest(expected, v.strip()) for v in header.split(","))


async def _system_resolve(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def _kind(notification: Notification) -> str:
    if isinstance(notification, IncidentNotification | MaintenanceNotification):
        return str(notification.kind)
    return "component_status"


class WebhookDeliverer:
    """An async deliverer (see the module docstring); one per worker process."""

    def __init__(
        self,
        service_key: bytes,
        *,
        allow: AllowList = NOTHING_ALLOWED,
        timeout: float = DEFAULT_TIMEOUT,
        previous_keys: Iterable[bytes] = (),
        resolve: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        user_agent: str = "statusdb-webhook/1",
    ) -> None:
        import httpx  # the extra: pip install 'statusdb[webhook]'

        subscriber_secret(service_key, "")  # checks the key's length
        self._httpx = httpx
        self._keys = [service_key, *previous_keys]
        self._allow = allow
        self._timeout = float(timeout)
        self._resolve = resolve if resolve is not None else _system_resolve
        self._verify = verify
        self._user_agent = user_agent
        self._clients: OrderedDict[tuple[str, str, int], Any] = OrderedDict()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()

    def _client(self, host: str, address: str, port: int) -> Any:
        # One pool per (host, address): a kept-alive TLS connection verified for one host is
        # never reused for another host on the same address.
        key = (host, address, port)
        client = self._clients.pop(key, None)
        if client is None:
            client = self._httpx.AsyncClient(
                verify=self._verify,
                follow_redirects=False,
                trust_env=False,  # no proxy from the environment: it would resolve the name
                timeout=self._httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
                limits=self._httpx.Limits(max_connections=20, max_keepalive_connections=5),
            )
        self._clients[key] = client
        while len(self._clients) > MAX_CLIENTS:
            _, old = self._clients.popitem(last=False)
            asyncio.get_running_loop().create_task(old.aclose())
        return client

    def _allowed(self, host: str, address: IPAddress) -> bool:
        if self._allow.allows(host, None):  # an allow-listed host: its addresses with it
            return True
        return destinations.address_problem(address) is None or self._allow.allows(host, address)

    async def addresses(self, url: str) -> tuple[str, int, list[str]]:
        """Check `url` and resolve its host: (host, port, every address, all checked).
        PermanentDeliveryFailure when any is refused; OSError when resolution fails."""
        try:
            checked = destinations.https_url(url)
            checked.require_allowed(self._allow)
        except InvalidInput as exc:
            raise PermanentDeliveryFailure(str(exc)) from None
        parts = urlsplit(checked.normalized)
        host = checked.host or ""
        port = parts.port or 443
        if checked.address is not None:
            return host, port, [str(checked.address)]
        try:
            found = list(await self._resolve(host, port))
        except (OSError, UnicodeError) as exc:
            raise ConnectionError(
                f"the webhook host did not resolve ({type(exc).__name__})"
            ) from None
        if not found:
            raise ConnectionError("the webhook host resolved to no address")
        addresses: list[str] = []
        for raw in found:
            try:
                address = ipaddress.ip_address(raw)
            except ValueError:
                raise PermanentDeliveryFailure(
                    "the webhook host resolved to an unreadable address"
                ) from None
            if not self._allowed(host, address):
                raise PermanentDeliveryFailure(
                    "the webhook host resolves to an internal address "
                    f"({destinations.address_problem(address)}); statusdb refuses it "
                    "(server-side request forgery, DNS rebinding)"
                )
            if str(address) not in addresses:
                addresses.append(str(address))
        return host, port, addresses

    def body(self, notification: Notification, recipient: Recipient, key: str) -> bytes:
        if recipient.channel == "SLACK":
            return json.dumps({"text": console.summary(notification)}).encode()
        document = {
            "delivery_key": key,
            "kind": _kind(notification),
            "notification": notification_payload(notification),
        }
        return json.dumps(document, separators=(",", ":"), default=str).encode()

    def headers(self, recipient: Recipient, key: str, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
            "Idempotency-Key": key,
        }
        if recipient.channel == "WEBHOOK":
            timestamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = ",".join(
                sign(subscriber_secret(k, recipient.subscriber_id), timestamp, body)
                for k in self._keys
            )
        return headers

    async def __call__(self, notification: Notification, recipient: Recipient, key: str) -> None:
        if recipient.channel == "EMAIL":
            raise UnsupportedChannel("the webhook deliverer does not send email")
        try:
            async with asyncio.timeout(self._timeout * 2):
                await self._post(notification, recipient, key)
        except TimeoutError:
            raise TimeoutError("the webhook did not answer in time") from None

    async def _post(self, notification: Notification, recipient: Recipient, key: str) -> None:
        httpx = self._httpx
        host, port, addresses = await self.addresses(recipient.destination)
        parts = urlsplit(recipient.destination)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        netloc = host if port == 443 else f"{host}:{port}"
        body = self.body(notification, recipient, key)
        headers = {**self.headers(recipient, key, body), "Host": netloc}
        last: Exception | None = None
        for address in addresses:
            literal = f"[{address}]" if ":" in address else address
            url = f"https://{literal}:{port}{target}"
            try:
                response = await self._client(host, address, port).post(
                    url, content=body, headers=headers, extensions={"sni_hostname": host}
                )
            except httpx.TimeoutException:
                raise TimeoutError("the webhook did not answer in time") from None
            except httpx.ConnectError as exc:
                last = exc
                continue  # the next checked address
            except httpx.HTTPError as exc:
                raise ConnectionError(
                    f"the webhook request failed ({type(exc).__name__})"
                ) from None
            _judge(response.status_code)
            return
        raise ConnectionError(
            f"could not connect to the webhook ({type(last).__name__ if last else 'no address'})"
        )


def _judge(status: int) -> None:
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise PermanentDeliveryFailure(f"the webhook answered HTTP {status}")
    if 300 <= status < 400:
        raise PermanentDeliveryFailure(
            f"the webhook answered HTTP {status}, a redirect (not followed: it could point "
            "inside the network)"
        )
    raise ConnectionError(f"the webhook answered HTTP {status}")


def service_key_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    """The service key: $STATUSDB_WEBHOOK_KEY (text), else the file $STATUSDB_WEBHOOK_KEY_FILE."""
    env = os.environ if environ is None else environ
    raw = env.get("STATUSDB_WEBHOOK_KEY")
    if raw:
        return raw.encode()
    path = env.get("STATUSDB_WEBHOOK_KEY_FILE")
    if path:
        with open(path, "rb") as handle:
            return handle.read().strip()
    raise InvalidInput(
        "the webhook deliverer needs a service key: set STATUSDB_WEBHOOK_KEY or "
        "STATUSDB_WEBHOOK_KEY_FILE (at least 32 bytes; e.g. openssl rand -hex 32)"
    )


def from_env(environ: Mapping[str, str] | None = None) -> WebhookDeliverer:
    """A deliverer configured by the environment: the key (`service_key_from_env`),
    $STATUSDB_WEBHOOK_PREVIOUS_KEY (rotation), $STATUSDB_WEBHOOK_ALLOW (comma-separated hosts
    and networks, as the destination_allowlist table), $STATUSDB_WEBHOOK_TIMEOUT (seconds),
    $STATUSDB_WEBHOOK_CA_FILE (certificates to trust instead of the system's: internal CAs)."""
    env = os.environ if environ is None else environ
    allow = [e.strip() for e in env.get("STATUSDB_WEBHOOK_ALLOW", "").split(",") if e.strip()]
    previous = env.get("STATUSDB_WEBHOOK_PREVIOUS_KEY")
    ca_file = env.get("STATUSDB_WEBHOOK_CA_FILE")
    try:
        timeout = float(env.get("STATUSDB_WEBHOOK_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        raise InvalidInput("STATUSDB_WEBHOOK_TIMEOUT must be a number of seconds") from None
    return WebhookDeliverer(
        service_key_from_env(env),
        allow=AllowList.of(allow),
        timeout=timeout,
        previous_keys=[previous.encode()] if previous else [],
        verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
    )


class _FromEnvironment:
    """The deliverer `--deliver statusdb.workers.deliverers.webhook:deliver` names: a
    `WebhookDeliverer` built from the environment (`from_env`) when the worker starts
    (`prepare`: a missing key stops the worker with a usage error, not every delivery)."""

    def __init__(self) -> None:
        self._deliverer: WebhookDeliverer | None = None

    def prepare(self) -> None:
        if self._deliverer is None:
            self._deliverer = from_env()

    async def __call__(self, notification: Notification, recipient: Recipient, key: str) -> None:
        self.prepare()
        assert self._deliverer is not None
        await self._deliverer(notification, recipient, key)


deliver: Final = _FromEnvironment()
