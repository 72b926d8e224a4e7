"""Which URLs the app may call, and an HTTP client that holds to it at connect time.

One policy class, `Egress`, for every place where a URL someone else chose is called:
Saleor instances (`ALLOWED_SALEOR_URLS`, `SaleorEgress`) and carrier APIs whose base URL
staff may set (`ALLOWED_CARRIER_URLS`, `CarrierEgress`).

`POST /api/register` is unauthenticated and names the URL the app then calls: left open,
it makes the app a probe of its own network (Redis on loopback, a cloud metadata
address). `ALLOWED_SALEOR_URLS` says which Saleor API URLs may install; on top of it, an
address that is not public (loopback, private, link-local, shared, multicast, reserved,
unspecified, also inside IPv4-mapped / NAT64 / 6to4 IPv6) is refused unless a pattern
names its host explicitly (`http://127.0.0.1:*`, `https://*.shop.internal/graphql/`; the
bare `*` names nothing), as Saleor's own `HTTP_IP_FILTER` refuses private addresses.

The check runs on every address a host name resolves to, and the connection then goes to
the address that was checked (the name is resolved once per connection, here), so a DNS
answer that changes between check and connect (rebinding) gains nothing. TLS still
verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
# A name that takes longer to resolve is treated as one that does not resolve.
RESOLVE_TIMEOUT_SECONDS = 5.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class EgressRefused(Exception):
    """The URL or one of its addresses is not one the app may call (detail for the log)."""


class Unresolvable(Exception):
    """The host name has no address (detail for the log)."""


class AddressRefusedError(httpcore.ConnectError):
    """Raised inside the HTTP client: httpx reports it as a ConnectError, no socket opened."""


def public_address(address: IPAddress) -> bool:
    """True only for a globally routed unicast address; IPv6 forms that carry an IPv4
    address (mapped, NAT64, 6to4) are judged by that address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return public_address(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` stands for (an IP literal stands for itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
            RESOLVE_TIMEOUT_SECONDS,
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise Unresolvable(f"{host!r} does not resolve: {exc!r}") from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(f"{host!r} has no address")
    return addresses


def _glob(pattern: str, text: str) -> bool:
    """Shell-style match where only `*` and `?` are special (the `[` of `[::1]` is not)."""
    literal_brackets = re.sub(r"[\[\]]", lambda m: f"[{m.group()}]", pattern)
    return fnmatch.fnmatchcase(text, literal_brackets)


@dataclass(frozen=True)
class UrlPattern:
    """One `ALLOWED_SALEOR_URLS` entry: `scheme://host[:port][/path]` matched part by
    part (a `*` in the host never reaches into the path), or a bare glob such as `*`."""

    text: str
    scheme: str | None = None
    host: str | None = None
    port: str | None = None
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> UrlPattern:
        scheme, separator, rest = text.partition("://")
        if not separator:
            return cls(text)
        netloc, slash, path = rest.partition("/")
        if netloc.startswith("["):
            host, _, after = netloc[1:].partition("]")
            port = after[1:] if after.startswith(":") else None
        elif ":" in netloc:
            host, _, port = netloc.rpartition(":")
        else:
            host, port = netloc, None
        return cls(text, scheme.lower(), host.lower(), port, "/" + path if slash else None)

    @property
    def names_host(self) -> bool:
        """An explicit allow: the host is written out, not only wildcards."""
        return bool(self.host) and any(c not in "*?." for c in self.host or "")

    def matches(self, url: str, parsed: httpx.URL) -> bool:
        if self.scheme is None or self.host is None:
            return _glob(self.text, url)
        path = parsed.raw_path.decode("ascii", "replace")
        return (
            _glob(self.scheme, parsed.scheme)
            and _glob(self.host, parsed.host)
            and self.port_matches(parsed.port or DEFAULT_PORTS.get(parsed.scheme, 0))
            and (self.path is None or _glob(self.path, path))
        )

    def port_matches(self, port: int) -> bool:
        if self.port is None:
            return port in DEFAULT_PORTS.values()
        return _glob(self.port, str(port))


class Egress:
    """The policy for calls to URLs someone else chose, from a setting of URL patterns
    (`setting` names it in the log: which one to change)."""

    def __init__(
        self,
        allowed_urls: str,
        resolver: Resolver = resolve,
        *,
        setting: str,
    ) -> None:
        self.patterns = [UrlPattern.parse(p.strip()) for p in allowed_urls.split(",") if p.strip()]
        self.resolver = resolver
        self.setting = setting

    @staticmethod
    def parse(url: str) -> httpx.URL:
        """An absolute http(s) URL without credentials; ValueError otherwise."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError("not a URL") from exc
        if parsed.scheme not in DEFAULT_PORTS or not parsed.host or parsed.userinfo:
            raise ValueError("not an http(s) URL with a host and no credentials")
        return parsed

    def allows(self, url: str) -> bool:
        """Whether the setting's patterns allow this URL (for Saleor: may install the app)."""
        try:
            parsed = self.parse(url)
        except ValueError:
            return False
        return any(p.matches(url, parsed) for p in self.patterns)

    def names(self, host: str, port: int) -> bool:
        """Whether a pattern names this host explicitly (its addresses are then trusted)."""
        host = host.lower()
        return any(
            p.names_host and p.host is not None and _glob(p.host, host) and p.port_matches(port)
            for p in self.patterns
        )

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses the app may connect to for `host`; EgressRefused when any of them
        is not public (a name with one private address is refused whole)."""
        addresses = await self.resolver(host, port)
        if self.names(host, port):
            return addresses
        refused = [a for a in addresses if not public_address(a)]
        if refused:
            raise EgressRefused(
                f"{host!r} resolves to {', '.join(map(str, refused))}, not a public address"
            )
        return addresses

    async def check(self, url: str) -> None:
        """Refuse before any connection: EgressRefused (pattern or address) or Unresolvable."""
        parsed = self.parse(url)
        if not any(p.matches(url, parsed) for p in self.patterns):
            raise EgressRefused(f"not allowed by {self.setting}")
        await self.addresses(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme])

    def client(
        self, timeout: httpx.Timeout, limits: httpx.Limits | None = None
    ) -> httpx.AsyncClient:
        """An HTTP client whose every connection passes `addresses` first; no proxy from
        the environment (a proxy would make the checked address meaningless)."""
        return httpx.AsyncClient(
            transport=GuardedTransport(self, limits=limits),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "saleor-crm"},
        )


class SaleorEgress(Egress):
    """The policy for calls to Saleor instances, from `ALLOWED_SALEOR_URLS`."""

    def __init__(self, allowed_saleor_urls: str, resolver: Resolver = resolve) -> None:
        super().__init__(allowed_saleor_urls, resolver, setting="ALLOWED_SALEOR_URLS")


class CarrierEgress(Egress):
    """The policy for calls to carrier APIs (staff may set an account's base URL), from
    `ALLOWED_CARRIER_URLS`."""

    def __init__(self, allowed_carrier_urls: str, resolver: Resolver = resolve) -> None:
        super().__init__(allowed_carrier_urls, resolver, setting="ALLOWED_CARRIER_URLS")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the policy applied to each TCP connection."""

    def __init__(self, egress: Egress, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.egress = egress
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self.egress.addresses(host, port), timeout)
        except (EgressRefused, Unresolvable) as exc:
            logger.warning("outgoing connection refused: %s", exc)
            raise AddressRefusedError(str(exc)) from None
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        failure: Exception | None = None
        for address in addresses:  # connect to what was checked, never to the name
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefusedError("unix sockets are never called")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (TLS, pooling, HTTP/1.1) over `GuardedBackend`."""

    def __init__(
        self,
        egress: Egress,
        inner: httpcore.AsyncNetworkBackend | None = None,
        *,
        limits: httpx.Limits | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        # httpx builds the same pool without a way to pass the network backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(egress, inner),
        )
