"""Where notifications may go: email addresses and https URLs, checked without a database.

An EMAIL destination is an address (RFC 5321/5322 syntax, internationalized addresses allowed).
A SLACK or WEBHOOK destination is an absolute https URL that statusdb's deliverer will POST to,
so it is also checked against server-side request forgery (SSRF): by default it may not point
at this network's own machines.

Refused by default, as a URL's host:

* IP literals in loopback, link-local (cloud metadata: 169.254.169.254), private (RFC 1918),
  shared (CGNAT 100.64/10), IETF protocol (192.0.0/24), benchmarking (198.18/15), "this
  network" (0/8), multicast and reserved ranges; IPv6 literals outside global unicast 2000::/3
  (::1, ::, fe80::/10, fc00::/7, ff00::/8, the IPv4-mapped ::ffff:0:0/96 and IPv4-compatible
  ::/96 forms) and, inside it, 6to4 (2002::/16) and Teredo (2001::/32), which embed IPv4;
* IPv4 spelled any other way than four decimal numbers without leading zeros: a host whose
  last label is a number (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) is an address to a
  browser-style URL parser and to `inet_aton`, so it is refused as ambiguous;
* names that never leave the site: single-label names (`metadata`, `instance-data`,
  `localhost`), `*.localhost`, `*.local`, `*.internal` (`metadata.google.internal`,
  `instance-data.ec2.internal`), `*.localdomain`, `*.home.arpa` and a few more (`BLOCKED_SUFFIXES`),
  and known metadata names (`BLOCKED_NAMES`);
* anything but https, credentials (`https://good@127.0.0.1/`), backslashes and `%` in the host
  (URL parsers decode or re-interpret them), a trailing dot.

Hosts are compared after Unicode NFKC normalization and lower-casing, so full-width spellings
(full-width digits and letters, ideographic full stops) are what a resolver would see.

The allow-list. Deployments that post to internal hosts list them in the owner-only table
`destination_allowlist` (a host name, exactly; or a network, `cidr`); `AllowList` is its Python
form. Only the "internal" refusals above can be allowed; malformed URLs and odd IPv4 spellings
never. The database applies the same rules to every client (migration 0013's trigger on
status_subscriber), and tests check both against one shared corpus.

What this cannot know: where a *name* resolves at delivery time. A public name may resolve to
127.0.0.1, or change after it was checked (DNS rebinding). The deliverer must resolve the host
itself, refuse internal addresses by the same rules, and connect to the address it checked.
"""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

import attrs

from statusdb.domain import validate
from statusdb.domain.types import SUBSCRIBER_CHANNELS, SubscriberChannel
from statusdb.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 5321/5322 limits, in octets.
_MAX_EMAIL: Final = 254
_MAX_LOCAL_PART: Final = 64
_MAX_DOMAIN: Final = 253
_MAX_LABEL: Final = 63
MAX_URL: Final = 2000  # status_subscriber_destination_check
# RFC 5322 atext; non-ASCII characters are allowed too (RFC 6531, internationalized email).
_ATEXT: Final = frozenset(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-")
_HOST_ASCII: Final = frozenset(string.ascii_lowercase + string.digits + "-")

#: IPv4 networks a destination may not point at (unless allow-listed). Keep in step with
#: statusdb_destination_host_problem in migrations/0013_destination_policy.sql.
BLOCKED_IPV4: Final[tuple[ipaddress.IPv4Network, ...]] = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space, CGNAT (RFC 6598); Alibaba's metadata
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local: cloud metadata services (169.254.169.254)
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments; Oracle Cloud's metadata (192.0.0.192)
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking, used inside data centres
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
#: Global unicast IPv6: the only IPv6 literals allowed by default...
IPV6_GLOBAL: Final = ipaddress.IPv6Network("2000::/3")
#: ... except these, which carry an IPv4 address inside.
BLOCKED_IPV6: Final[tuple[ipaddress.IPv6Network, ...]] = (
    ipaddress.IPv6Network("2002::/16"),  # 6to4
    ipaddress.IPv6Network("2001::/32"),  # Teredo
)
#: Host name suffixes (and the names themselves) that resolve only inside a site.
BLOCKED_SUFFIXES: Final = (
    "localhost",
    "local",
    "localdomain",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "home.arpa",
    "svc",
)
#: Cloud metadata services' names outside those suffixes.
BLOCKED_NAMES: Final = frozenset({"metadata.goog", "metadata.tencentyun.com"})

# A host whose last label is a number is an IPv4 address to URL parsers (WHATWG "ends in a
# number") and to inet_aton.
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _frozenset(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _networks(values: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(values)


@attrs.frozen
class AllowList:
    """Internal hosts a deployment posts to on purpose: exact host names, or networks."""

    hosts: frozenset[str] = attrs.field(default=frozenset(), converter=_frozenset)
    networks: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_networks)

    @classmethod
    def of(cls, entries: Iterable[str]) -> AllowList:
        """From strings: an IP address or network (`10.1.2.0/24`), else a host name."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError:
                hosts.add(host_key(entry))
        return cls(hosts, networks)

    def allows(self, host: str, address: IPAddress | None) -> bool:
        if address is None:
            return host in self.hosts
        return any(address.version == n.version and address in n for n in self.networks)


#: No internal host allowed (the default).
NOTHING_ALLOWED: Final = AllowList()


def host_key(host: str) -> str:
    """A host as a resolver sees it: NFKC-normalized, lower case, ideographic dots as dots."""
    return unicodedata.normalize("NFKC", host).translate(_DOTS).lower()


@attrs.frozen
class Destination:
    """A checked destination: its stored form, and why it is internal (None: it is not)."""

    channel: SubscriberChannel
    normalized: str
    host: str | None = None
    address: IPAddress | None = None
    internal: str | None = None

    def require_allowed(self, allow: AllowList = NOTHING_ALLOWED) -> str:
        """The stored form, or InvalidInput when it is internal and not allow-listed."""
        if self.internal is not None and not (
            self.host is not None and allow.allows(self.host, self.address)
        ):
            raise InvalidInput(
                f"destination is not allowed: {self.internal}; statusdb refuses internal "
                "addresses (server-side request forgery). A deployment that posts to internal "
                "hosts lists them in the destination_allowlist table (as the database owner)"
            )
        return self.normalized


def _host_problem(host: str) -> str | None:
    """Why `host` (lower-cased) is not a usable DNS name, or None when it is."""
    if len(host.encode()) > _MAX_DOMAIN:
        return f"the domain is longer than {_MAX_DOMAIN} octets"
    labels = host.split(".")
    if len(labels) < 2:
        return "the domain needs at least one dot (like example.com)"
    for label in labels:
        if not label:
            return "the domain has an empty label (a leading, trailing or double dot)"
        if len(label) > _MAX_LABEL:
            return f"a label of the domain is longer than {_MAX_LABEL} characters"
        if label[0] == "-" or label[-1] == "-":
            return f"the domain label {label!r} starts or ends with a hyphen"
        for ch in label:
            # ASCII letters, digits and hyphens; letters, marks and digits of other scripts
            # (internationalized domain names, kept in their Unicode form).
            if ch not in _HOST_ASCII and not (
                ord(ch) > 127 and unicodedata.category(ch)[0] in "LMN"
            ):
                return f"the character {ch!r} is not allowed in a domain"
    if labels[-1].isdigit():
        return "the top-level domain cannot be all digits"
    return None


def email(value: str) -> str:
    """A syntactically valid address: local part kept as given, domain lower-cased."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"destination is not a valid email address: {why}")

    address = value.strip()
    if any(ch.isspace() for ch in address):
        raise bad("it contains a space")
    if not address.isprintable():
        raise bad("it contains a control or invisible character")
    if "@" not in address:
        raise bad("the '@' is missing")
    local, _, domain = address.rpartition("@")
    if "@" in local:
        raise bad("it contains more than one '@'")
    if not local:
        raise bad("the part before the '@' is empty")
    if not domain:
        raise bad("the domain after the '@' is missing")
    if len(local.encode()) > _MAX_LOCAL_PART:
        raise bad(f"the part before the '@' is longer than {_MAX_LOCAL_PART} octets")
    if local.startswith('"'):
        raise bad("quoted local parts are not supported")
    for atom in local.split("."):
        if not atom:
            raise bad("the part before the '@' has a leading, trailing or double dot")
        for ch in atom:
            if ch not in _ATEXT and ord(ch) <= 127:
                raise bad(f"the character {ch!r} is not allowed before the '@'")
    domain = domain.lower()
    if domain.startswith("["):
        raise bad("address literals ([1.2.3.4]) are not supported; use a domain")
    problem = _host_problem(domain)
    if problem:
        raise bad(problem)
    normalized = f"{local}@{domain}"
    if len(normalized.encode()) > _MAX_EMAIL:
        raise bad(f"it is longer than {_MAX_EMAIL} octets")
    return normalized


def address_problem(address: IPAddress) -> str | None:
    """Why an IP address is internal (loopback, private, ...), or None when it is not."""
    if isinstance(address, ipaddress.IPv4Address):
        for network in BLOCKED_IPV4:
            if address in network:
                return f"{address} is in {network} (loopback, private, link-local or reserved)"
        return None
    if address not in IPV6_GLOBAL:
        return f"{address} is not a global unicast IPv6 address (2000::/3)"
    for network6 in BLOCKED_IPV6:
        if address in network6:
            return f"{address} is in {network6}, which embeds an IPv4 address"
    return None


def name_problem(key: str) -> str | None:
    """Why a host name (a `host_key`) stays inside a site, or None when it does not."""
    if "." not in key:
        return f"{key!r} is a single-label name (resolved through the local search domains)"
    if key in BLOCKED_NAMES:
        return f"{key!r} is a cloud metadata service"
    for suffix in BLOCKED_SUFFIXES:
        if key == suffix or key.endswith("." + suffix):
            return f"{key!r} is under .{suffix}, which resolves only inside a site"
    return None


def https_url(value: str) -> Destination:
    """Check an https URL; its stored form (scheme and host lower-cased) and whether it is
    internal. Raises InvalidInput when it is malformed."""

    def bad(why: str) -> InvalidInput:
        # The URL itself is not repeated: webhook URLs are secrets, and messages get logged.
        return InvalidInput(f"destination is not a valid https URL: {why}")

    url = value.strip()
    if any(ch.isspace() for ch in url):
        raise bad("it contains a space")
    if not url.isprintable():
        raise bad("it contains a control or invisible character")
    if "\\" in url:
        raise bad("it contains a backslash")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise bad(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme != "https" or url[len(scheme) : len(scheme) + 3] != "://":
        raise bad("it must start with https:// (http and other schemes are refused)")
    netloc = parts.netloc
    if "@" in netloc:
        raise bad("it must not contain credentials (user:password@)")
    if "%" in netloc:
        # URL parsers percent-decode host names, and %25 starts an IPv6 zone (fe80::1%25eth0).
        raise bad("the host or port contains a '%'")
    host = parts.hostname
    if not host:
        raise bad("the host is missing")
    try:
        port = parts.port
    except ValueError:
        raise bad("the port is not a number from 1 to 65535") from None
    if port == 0:
        raise bad("the port is not a number from 1 to 65535")
    key = host_key(host)
    address: IPAddress | None = None
    if netloc.startswith("["):
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise bad("the host is not a valid IPv6 address") from None
    else:
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            problem = _host_problem(host)
            if problem:
                raise bad(problem.replace("domain", "host")) from None
        if address is None and _NUMERIC_LABEL.fullmatch(key.rsplit(".", 1)[-1]):
            try:
                address = ipaddress.IPv4Address(key)
            except ValueError:
                address = None
            if address is None or str(address) != key:
                raise bad(
                    "a host ending in a number is an IPv4 address: write it as four decimal "
                    "numbers without leading zeros (like 192.0.2.1)"
                )
    internal = address_problem(address) if address is not None else name_problem(key)
    rest = url[len(scheme) + 3 + len(netloc) :]
    return Destination("WEBHOOK", f"https://{netloc.lower()}{rest}", key, address, internal)


def check(channel: SubscriberChannel, destination: str) -> Destination:
    """Check a destination for its channel (InvalidInput naming the field when malformed).

    The result says whether it is internal; `Destination.require_allowed` decides.
    """
    channel = validate.one_of("channel", channel, SUBSCRIBER_CHANNELS)
    validate.text("destination", destination, max_length=MAX_URL)
    if channel == "EMAIL":
        return Destination(channel, email(destination))
    return attrs.evolve(https_url(destination), channel=channel)


# Fast paths for `normalize` (issue 20: an import checks every row, 20,000 at a time). Most
# destinations come in a plain form: an ASCII address, or an https URL with a plain DNS host.
# One regular expression recognises each; what it matches, the full checks above would accept
# unchanged but for lower-casing, and `normalize` returns the same string either way
# (tests/test_destinations.py compares the two paths over the shared corpus and more). Anything
# else, and any plain host that `name_problem` questions, takes the full checks.
_PLAIN_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The last label starts with a letter: never all digits, never a number to URL parsers.
_PLAIN_HOST: Final = rf"(?:{_PLAIN_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?"
_PLAIN_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_EMAIL: Final = re.compile(rf"({_PLAIN_ATOM}(?:\.{_PLAIN_ATOM})*)@({_PLAIN_HOST})")
# Scheme in lower case; port without a leading zero; the rest without spaces or backslashes
# (and printable: checked apart).
_PLAIN_URL: Final = re.compile(rf"https://(({_PLAIN_HOST})(?::[1-9][0-9]{{0,4}})?)([/?#][^\s\\]*)?")


def _plain(channel: str, destination: str) -> str | None:
    """The stored form of a destination in the plain form, when it is in it and not internal;
    None: take the full checks."""
    if type(destination) is not str:
        return None
    if channel == "EMAIL":
        found = _PLAIN_EMAIL.fullmatch(destination)
        if (
            found is None
            or len(destination) > _MAX_EMAIL
            or len(found[1]) > _MAX_LOCAL_PART
            or len(found[2]) > _MAX_DOMAIN
        ):
            return None
        return f"{found[1]}@{found[2].lower()}"
    if channel != "SLACK" and channel != "WEBHOOK":
        return None
    found = _PLAIN_URL.fullmatch(destination)
    if found is None or len(destination) > MAX_URL or not destination.isprintable():
        return None
    netloc = found[1].lower()
    host = found[2].lower()
    if len(host) > _MAX_DOMAIN or (len(netloc) - len(host) == 6 and int(netloc[-5:]) > 65535):
        return None
    if name_problem(host) is not None:
        return None
    return f"https://{netloc}{destination[8 + len(netloc) :]}"


def normalize(
    channel: SubscriberChannel, destination: str, *, allow: AllowList = NOTHING_ALLOWED
) -> str:
    """Check a destination for its channel and return it as it is stored.

    EMAIL: an address, surrounding spaces removed, domain lower-cased (local part kept: it may be
    case-sensitive). SLACK, WEBHOOK: an absolute https URL with a host and without credentials,
    scheme and host lower-cased, not internal unless `allow` lists it. Raises InvalidInput.
    """
    plain = _plain(channel, destination)
    if plain is not None:
        return plain
    return check(channel, destination).require_allowed(allow)


__all__ = [
    "BLOCKED_IPV4",
    "BLOCKED_IPV6",
    "BLOCKED_NAMES",
    "BLOCKED_SUFFIXES",
    "IPV6_GLOBAL",
    "MAX_URL",
    "NOTHING_ALLOWED",
    "AllowList",
    "Destination",
    "address_problem",
    "check",
    "email",
    "host_key",
    "https_url",
    "name_problem",
    "normalize",
]
