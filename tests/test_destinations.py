"""statusdb.domain.destinations without a database: address and URL syntax, and the SSRF policy.

The corpus in tests/destination_corpus.json is shared with tests/security/test_s08_ssrf.py,
which checks that the database (migration 0013) decides every entry the same way.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, Final

import pytest

from statusdb.domain import destinations
from statusdb.domain.destinations import AllowList
from statusdb.errors import InvalidInput

CORPUS: Final[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "destination_corpus.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("channel", ["SLACK", "WEBHOOK"])
@pytest.mark.parametrize("url", CORPUS["bad"])
def test_corpus_bad_urls_are_refused(channel: Any, url: str) -> None:
    with pytest.raises(InvalidInput, match="destination"):
        destinations.normalize(channel, url)


@pytest.mark.parametrize("url", CORPUS["good"])
def test_corpus_good_urls_are_accepted(url: str) -> None:
    stored = destinations.normalize("WEBHOOK", url)
    assert stored.startswith("https://")
    assert destinations.normalize("WEBHOOK", stored) == stored  # normalizing is idempotent


@pytest.mark.parametrize("case", CORPUS["allowed_with"], ids=lambda c: c["url"])
def test_corpus_allow_listed_urls(case: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="not allowed"):
        destinations.normalize("WEBHOOK", case["url"])
    allow = AllowList.of([case["allow"]])
    assert destinations.normalize("WEBHOOK", case["url"], allow=allow).startswith("https://")


@pytest.mark.parametrize("case", CORPUS["never"], ids=lambda c: c["url"])
def test_corpus_never_allowed_urls(case: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        destinations.normalize("WEBHOOK", case["url"], allow=AllowList.of([case["allow"]]))


def test_refusals_do_not_echo_the_url() -> None:
    """Webhook URLs are secrets: messages get logged, so they never repeat the URL."""
    for url in ("https://10.0.0.5/s3cret", "https://s3cret@127.0.0.1/", "https://0x7f.1/s3cret"):
        with pytest.raises(InvalidInput) as info:
            destinations.normalize("WEBHOOK", url)
        assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("network", destinations.BLOCKED_IPV4, ids=str)
def test_every_blocked_ipv4_network_is_refused_edge_to_edge(
    network: ipaddress.IPv4Network,
) -> None:
    for address in (network.network_address, network.broadcast_address):
        found = destinations.check("WEBHOOK", f"https://{address}/")
        assert found.internal is not None
        assert found.address == address


def test_check_reports_what_is_internal_without_refusing() -> None:
    found = destinations.check("SLACK", "https://Metadata.Google.Internal/x")
    assert found.channel == "SLACK"
    assert found.normalized == "https://metadata.google.internal/x"
    assert found.host == "metadata.google.internal"
    assert found.internal is not None
    assert ".internal" in found.internal
    public = destinations.check("SLACK", "https://hooks.slack.com/x")
    assert public.internal is None


def test_allow_list_matches_hosts_exactly_and_networks_by_family() -> None:
    allow = AllowList.of(["Alerts.Internal", "10.0.0.0/8", "fd00::/8"])
    assert allow.hosts == frozenset({"alerts.internal"})
    assert allow.allows("alerts.internal", None)
    assert not allow.allows("x.alerts.internal", None)
    assert allow.allows("10.1.2.3", ipaddress.ip_address("10.1.2.3"))
    assert not allow.allows("::ffff:a01:203", ipaddress.ip_address("::ffff:10.1.2.3"))
    assert allow.allows("fd00::1", ipaddress.ip_address("fd00::1"))


def test_host_key_is_what_a_resolver_sees() -> None:
    assert destinations.host_key("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54") == (
        "localhost"
    )
    assert destinations.host_key("A\u3002B\uff0eC\uff61D") == "a.b.c.d"
    assert destinations.host_key("B\u00fccher.DE") == "b\u00fccher.de"


GOOD_EMAILS = [
    ("alice@example.com", "alice@example.com"),
    ("  Alice.Smith+tag@Example.COM ", "Alice.Smith+tag@example.com"),
    ("j\u00f6rg@b\u00fccher.de", "j\u00f6rg@b\u00fccher.de"),
]
BAD_EMAILS = [
    ("alice.example.com", "'@' is missing"),
    ("a@b@example.com", "more than one '@'"),
    ("@example.com", "empty"),
    ("alice@", "missing"),
    ("alice@[127.0.0.1]", "address literals"),
    ("alice@localhost", "at least one dot"),
    ("al ice@example.com", "space"),
    ('"al"@example.com', "quoted"),
    ("a..b@example.com", "double dot"),
    ("alice@example.123", "all digits"),
]


@pytest.mark.parametrize(("given", "stored"), GOOD_EMAILS)
def test_good_emails(given: str, stored: str) -> None:
    assert destinations.normalize("EMAIL", given) == stored
    assert destinations.email(given) == stored


@pytest.mark.parametrize(("given", "why"), BAD_EMAILS)
def test_bad_emails(given: str, why: str) -> None:
    with pytest.raises(InvalidInput, match="email") as info:
        destinations.normalize("EMAIL", given)
    assert why in str(info.value)


@pytest.mark.parametrize("value", [None, 5, b"https://example.com/", ["https://example.com/"]])
def test_wrong_types_are_invalid_input(value: Any) -> None:
    with pytest.raises(InvalidInput):
        destinations.normalize("WEBHOOK", value)
    with pytest.raises(InvalidInput):
        destinations.normalize(value, "https://example.com/")


def _full_path(channel: Any, value: str) -> str | None:
    """What the full checks store for `value`, or None when they refuse it."""
    try:
        return destinations.check(channel, value).require_allowed()
    except InvalidInput:
        return None


def _destination_samples() -> list[str]:
    """The corpus, address variants, and random strings over the characters that matter."""
    import random

    samples = [*CORPUS["good"], *CORPUS["bad"]]
    samples += [case["url"] for case in (*CORPUS["allowed_with"], *CORPUS["never"])]
    samples += [
        "Import1.User2@Example.org",
        "a..b@example.org",
        ".a@example.org",
        "a.@example.org",
        '"q"@example.org',
        "a@b@example.org",
        "a@example.123",
        "a@-x.example.org",
        "a@x-.example.org",
        "a@example.org.",
        " a@example.org",
        "a@example.org ",
        "x" * 64 + "@example.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 63 + ".org",
        "a@" + "b" * 64 + ".org",
        "a@" + ".".join(["b" * 60] * 4) + ".org",
        "a@" + ".".join(["b" * 61] * 4) + ".org",
        "https://" + ".".join(["b" * 61] * 4) + ".org/",
        "https://" + ".".join(["b" * 62] * 4) + ".org/",
        "https://example.com:65535/",
        "https://example.com:65536/",
        "https://example.com:0/",
        "https://example.com:00080/",
        "https://example.com:/x",
        "HTTPS://Example.COM/Path",
        "https://Example.COM/Path?Q=1",
        "https://example.com/a\\b",
        "https://example.com/a b",
        "https://example.com/a\u00a0b",
        "https://example.com/\u200b",
        "https://example.com/\ud800",
        "https://example.com/" + "p" * 1990,
        "https://metadata.goog/",
        "https://x.home.arpa/",
        "https://home.arpa.example/",
        "https://x.svc/",
        "https://1.2.3.a/",
        "https://a.0x1f/",
        "https://a.1e/",
        "https://ex\uff0eample.com/",
    ]
    rng = random.Random(20)
    alphabet = "aZ09-.:@/?#%\\ _'\"[]\u00e9\uff0e"
    for _ in range(3000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        samples += [f"https://{body}", f"{body}@example.org", f"user@{body}"]
        # Near the plain form: labels, a port, a path, with an odd character now and then.
        labels = ".".join(
            "".join(rng.choice("abcxyzABZ0189--\u00e9") for _ in range(rng.randint(0, 5)))
            for _ in range(rng.randint(1, 4))
        )
        port = rng.choice(["", ":", ":443", ":0", ":65536", ":08"])
        path = rng.choice(["", "/", "/h", "/x?y#z", "/a b", "?q", "#f", "/\\"])
        samples += [f"https://{labels}{port}{path}", f"u.{labels}@{labels}.org"]
    return samples


@pytest.mark.parametrize("channel", ["EMAIL", "SLACK", "WEBHOOK"])
def test_the_plain_form_shortcut_stores_what_the_full_checks_store(channel: Any) -> None:
    """`normalize`'s fast path (issue 20) only ever takes inputs the full checks accept, and
    stores them exactly as they do; everything else goes through the full checks."""
    taken = 0
    for value in _destination_samples():
        plain = destinations._plain(channel, value)
        if plain is not None:
            taken += 1
            assert plain == _full_path(channel, value), value
            assert destinations.normalize(channel, value) == plain
    assert taken > 50  # the shortcut is exercised
