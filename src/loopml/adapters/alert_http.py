"""Outbound HTTP for alert sinks: one JSON POST, guarded, pinned and retried.

An alert sink sends requests to an address someone typed into ``loopml.toml``; the agent
runs inside a network. Without care a webhook becomes a way to make that machine call
its neighbours or the cloud metadata service (server-side request forgery). So
:class:`JsonPoster`:

* **refuses schemes other than http and https** and URLs with credentials
  (:func:`~loopml.domain.alert_config.validate_webhook_url`), at construction;
* **refuses non-public addresses** unless built with ``allow_private=True``: loopback,
  private (RFC 1918, unique-local), link-local (``169.254.169.254`` is where clouds serve
  credentials), multicast, reserved, unspecified, shared (CGNAT) and every other range
  that is not globally routable, IPv4 and IPv6 alike, with IPv4 addresses embedded in
  IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64) judged as the IPv4 address they carry.
  A literal address is refused at construction (:class:`PermissionDenied`); a host name
  is resolved at each delivery and refused if *any* of its addresses is;
* **pins the address it checked**: it connects to that address itself (TLS still checks
  the certificate against the host name, sent as SNI and ``Host``) and verifies the
  socket's peer is that address, so a DNS answer that changes between the check and the
  connection (DNS rebinding) cannot redirect it. Proxies from the environment are not
  used, and redirects are not followed (a redirect could lead inside the network);
* **bounds its time**: ``timeout_s`` for the connection and for each read, at most 64 KiB
  of any answer read; and **retries** timeouts, connection errors, 429 and 5xx answers
  ``retries`` more times, pausing ``backoff_s * 2**(k-1)`` before retry ``k``. Other 4xx
  answers, refusals and certificate errors are not retried: repeating cannot fix them.

:meth:`JsonPoster.post` never raises on a failed delivery: it returns the
:class:`~loopml.domain.alerts.Delivery` (attempts, last status, an error naming the cause).
Errors name the target by origin only (``https://hooks.example.com:443``), since the path
of some webhook URLs is itself the secret.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from loopml.domain.alert_config import validate_webhook_url
from loopml.domain.alerts import Delivery
from loopml.domain.errors import PermissionDenied

MAX_ANSWER_BYTES = 65_536
_SNIPPET = 200
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def address_problem(address: str | IPAddress) -> str | None:
    """Why an alert may not be sent to ``address`` ("loopback", "private"...), or None if it
    is a globally routable unicast address."""
    ip = _ip(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            problem = address_problem(embedded)
            return None if problem is None else f"{problem} (IPv4 {embedded} inside IPv6)"
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local (where cloud metadata services answer)"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "not globally routable"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class _Failure(Exception):
    """One attempt failed; ``retry`` says whether another attempt could succeed."""

    def __init__(self, message: str, *, retry: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    location: str | None


class JsonPoster:
    """POSTs bytes to one URL under the guard described in the module docstring.

    Args:
        url: an absolute http(s) URL.
        sink: the sink name, reported in each :class:`Delivery`.
        timeout_s: seconds allowed for connecting and for each read.
        retries: attempts after the first, for failures worth repeating.
        backoff_s: the pause before the first retry; it doubles each retry.
        allow_private: reach loopback and private addresses too (a webhook inside the
            network on purpose, or a test server).
        resolver: host name to addresses (default: the system resolver).
        sleep: how to pause between attempts (tests pass a recorder).
        tls_context: for https (default: the system's trusted certificates).

    Raises:
        InvalidInput: the URL is not an http(s) URL with a host.
        PermissionDenied: the URL's host is a literal non-public address and
            ``allow_private`` is False.
    """

    def __init__(
        self,
        url: str,
        *,
        sink: str,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        allow_private: bool = False,
        resolver: Resolver = resolve,
        sleep: Callable[[float], None] = time.sleep,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        validate_webhook_url(url, f"sink {sink!r}")
        parts = urlsplit(url)
        self.sink = sink
        self._https = parts.scheme == "https"
        self._host = str(parts.hostname)
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        shown = f"[{self._host}]" if ":" in self._host else self._host
        self.origin = f"{parts.scheme}://{shown}:{self._port}"
        self._timeout = timeout_s
        self._retries = retries
        self._backoff = backoff_s
        self._allow_private = allow_private
        self._resolver = resolver
        self._sleep = sleep
        self._tls = tls_context
        literal = _literal(self._host)
        if literal is not None and not allow_private:
            problem = address_problem(literal)
            if problem is not None:
                raise PermissionDenied(
                    f"sink {sink!r}: {self.origin} is a {problem} address; alerts go to "
                    "public addresses only, so a webhook cannot reach into the network the "
                    "agent runs in. If this target is meant to be inside it, set "
                    "allow_private = true on the sink"
                )

    def post(self, body: bytes, headers: Callable[[], Mapping[str, str]]) -> Delivery:
        """Send ``body``; ``headers`` is called before each attempt (signatures carry a
        timestamp). Returns the outcome, never raising on a failed delivery."""
        status: int | None = None
        for attempt in range(1, self._retries + 2):
            try:
                answer = self._attempt(body, headers())
            except _Failure as failure:
                status = failure.status
                if not failure.retry or attempt > self._retries:
                    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                    return Delivery(
                        self.sink,
                        False,
                        attempt,
                        f"POST to {self.origin} failed after {tries}: {failure}",
                        status,
                    )
                self._sleep(self._backoff * 2 ** (attempt - 1))
            else:
                return Delivery(self.sink, True, attempt, "", answer.status)
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover

    def _attempt(self, body: bytes, headers: Mapping[str, str]) -> _Answer:
        address = self._address()
        connection = self._connection(address)
        try:
            connection.request(
                "POST",
                self._path,
                body=body,
                headers={"Content-Type": "application/json", **headers},
            )
            response = connection.getresponse()
            answer = _Answer(
                response.status, response.read(MAX_ANSWER_BYTES), response.getheader("Location")
            )
        except ssl.SSLCertVerificationError as exc:
            raise _Failure(
                f"the TLS certificate of {self._host} is not trusted ({exc.verify_message}); "
                "fix the target's certificate or the URL",
                retry=False,
            ) from exc
        except TimeoutError as exc:
            raise _Failure(
                f"no answer within timeout_s = {self._timeout:g} s (connect or read)", retry=True
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _Failure(f"connection failed: {_describe(exc)}", retry=True) from exc
        finally:
            connection.close()
        return _judge(answer)

    def _address(self) -> str:
        """The address to connect to, checked against the guard."""
        try:
            addresses = self._resolver(self._host, self._port)
        except OSError as exc:
            again = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
            raise _Failure(
                f"cannot resolve host {self._host!r} ({_describe(exc)}); check the URL",
                retry=again,
            ) from exc
        if not addresses:
            raise _Failure(f"host {self._host!r} has no address; check the URL", retry=False)
        if not self._allow_private:
            for address in addresses:
                problem = address_problem(address)
                if problem is not None:
                    raise _Failure(
                        f"refused: {self._host} resolves to {address}, a {problem} address; "
                        "alerts go to public addresses only. If this target is meant to be "
                        "inside the network, set allow_private = true on the sink",
                        retry=False,
                    )
        return addresses[0]

    def _connection(self, address: str) -> http.client.HTTPConnection:
        if self._https:
            context = self._tls or ssl.create_default_context()
            return _PinnedHTTPSConnection(self._host, self._port, address, self._timeout, context)
        return _PinnedHTTPConnection(self._host, self._port, address, self._timeout)


def _judge(answer: _Answer) -> _Answer:
    status = answer.status
    if 200 <= status < 300:
        return answer
    snippet = _snippet(answer.body)
    said = f": {snippet}" if snippet else ""
    if 300 <= status < 400:
        raise _Failure(
            f"answered {status} redirecting to {answer.location or '(no Location)'}; "
            "redirects are not followed (one could lead inside the network): put the final "
            "URL in the sink",
            retry=False,
            status=status,
        )
    if status == 429 or status >= 500:
        raise _Failure(f"answered {status}{said}", retry=True, status=status)
    raise _Failure(
        f"answered {status}{said}; the target refused the request: check the URL, the "
        "secret and what the receiver expects (not retried)",
        retry=False,
        status=status,
    )


def _connect(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to exactly ``address``, verified after connecting."""
    sock = socket.create_connection((address, port), timeout)
    try:
        peer = str(sock.getpeername()[0])
        if _ip(peer) != _ip(address):
            raise _Failure(
                f"connected to {peer}, not to the checked address {address}", retry=False
            )
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a fixed address; the host name is only the ``Host`` header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = _connect(self._address, self.port, self.timeout)  # type: ignore[arg-type]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address; the certificate is checked against the host name."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = _connect(self._address, self.port, self.timeout)  # type: ignore[arg-type]
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _ip(text: str) -> IPAddress:
    """The address in ``text``, without an IPv6 zone (``fe80::1%eth0``)."""
    return ipaddress.ip_address(text.partition("%")[0])


def _literal(host: str) -> IPAddress | None:
    try:
        return _ip(host)
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


def _snippet(body: bytes) -> str:
    text = body[: _SNIPPET * 4].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."
