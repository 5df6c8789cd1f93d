"""Attack class: the webhook deliverer as a way into the network (server-side request forgery at
delivery time, DNS rebinding, redirects).

The subscriber table's trigger (0013) checks a URL's host when it is written, but a name is
only checked for its spelling there: where it resolves is decided later, by whoever runs its
DNS, and may change between a check and a connection. The reference deliverer
(statusdb.workers.deliverers.webhook) must resolve the name itself, refuse it when ANY address
is internal, connect to an address it checked (never resolve again), and not follow a redirect.
Each test fails without the corresponding check (verified by disabling it: see the report of
issue 23).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webhook_server import HOST, Server, deliver, deliverer, resolver, serve_https

from statusdb.domain.destinations import AllowList
from statusdb.workers.deliveries import PermanentDeliveryFailure

pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_https(tmp_path_factory.mktemp("tls")) as running:
        yield running


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


def test_a_redirect_into_the_network_is_not_followed(server: Server) -> None:
    """The receiver answers 302 to https://127.0.0.1/elsewhere: one request, no second one,
    and a permanent failure (even with 127.0.0.0/8 allowed for the first hop)."""
    server.received.clear()
    server.answers["/redirect"] = (302, 0.0)
    with pytest.raises(PermanentDeliveryFailure, match="redirect"):
        deliver(deliverer(server), f"https://{HOST}:{server.port}/redirect")
    assert [r.path for r in server.received] == ["/redirect"]


def test_the_connection_goes_to_the_checked_address(server: Server) -> None:
    """The deliverer's resolver is asked once, and the connection goes to the address it gave
    (127.0.0.1, allowed here): HOST resolves to 127.0.0.1 for nobody else (not in the system's
    resolver), so a deliverer that let its HTTP client resolve the name again would not reach
    the server; a rebinding DNS gets no second question."""
    server.received.clear()
    asked: list[str] = []

    async def once(host: str, port: int) -> list[str]:
        asked.append(host)
        if len(asked) > 1:
            return ["169.254.169.254"]  # what a rebinding DNS would answer the second time
        return ["127.0.0.1"]

    deliver(deliverer(server, resolve=once), f"https://{HOST}:{server.port}/checked")
    assert asked == [HOST]
    assert [(r.path, r.headers["Host"]) for r in server.received] == [
        ("/checked", f"{HOST}:{server.port}")
    ]
