"""Alert sinks against real servers on 127.0.0.1: the signed webhook (checked the way the
docs tell receivers to), timeouts, retries on 5xx and none on 4xx, the guard against
private and loopback targets, TLS with a pinned address, the Slack payload, email through
a real SMTP server, the log sink, building sinks from settings, and an agent-side
``deliver_all`` that survives a sink that raises."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from loopml.adapters.alert_email import EmailSink
from loopml.adapters.alert_http import JsonPoster, address_problem
from loopml.adapters.alert_sinks import LogSink, build_sinks, deliver_all
from loopml.adapters.alert_webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SlackSink,
    WebhookSink,
    verify_signature,
)
from loopml.domain.alert_config import EmailSinkConfig, alerts_from_config
from loopml.domain.alerts import Alert, AlertRule, Delivery, Observation, evaluate
from loopml.domain.errors import ConfigError, InvalidInput, PermissionDenied
from loopml.ports.monitoring import AlertSink

SECRET = b"s3cret-key"


def make_alert(**changes: Any) -> Alert:
    options: dict[str, Any] = {"severity": "critical", "action": "retrain", **changes}
    rule = AlertRule("drift", "drift_score", "above", 1.0, **options)
    seen = [Observation(1_700_000_000_000, "bike-demand", "drift_score", 1.73, "time:1-2")]
    firing = evaluate(rule, seen, None)
    assert firing is not None
    return firing.alert


ALERT = make_alert()


# --- a scripted HTTP target ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    port: int
    host: str = "127.0.0.1"
    scheme: str = "http"
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/hooks/loopml?team=ml"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is expected; say nothing."""


def serve(script: list[Answer], tls: ssl.SSLContext | None = None) -> Iterator[Target]:
    """A server answering requests in the order of ``script`` (its last answer repeats)."""
    stop = threading.Event()
    target = Target(0, scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            target.received.append(Received(self.path, headers, body))
            answer = script[min(len(target.received), len(script)) - 1]
            if answer.delay_s:
                stop.wait(answer.delay_s)
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    target.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield target
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_target() -> Iterator[Callable[..., Target]]:
    """``http_target(Answer(...), ...)`` starts a server; all stop after the test."""
    running: list[Iterator[Target]] = []

    def start(*script: Answer, tls: ssl.SSLContext | None = None) -> Target:
        server = serve(list(script) or [Answer()], tls)
        running.append(server)
        return next(server)

    yield start
    for server in running:
        next(server, None)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def poster(url: str, **changes: Any) -> JsonPoster:
    options: dict[str, Any] = {
        "sink": "ops",
        "timeout_s": 2.0,
        "retries": 2,
        "backoff_s": 0.1,
        "allow_private": True,  # the test servers are on loopback
        "sleep": Sleeps(),
    }
    options.update(changes)
    return JsonPoster(url, **options)


# --- the signed webhook ----------------------------------------------------------------------


def test_webhook_posts_the_alert_signed_as_documented(
    http_target: Callable[..., Target],
) -> None:
    target = http_target(Answer(204, b""))
    sink = WebhookSink("ops", poster(target.url), SECRET, clock=lambda: 1_700_000_123.9)
    result = sink.deliver(ALERT)
    assert result == Delivery("ops", True, 1, "", 204)
    (got,) = target.received
    assert got.path == "/hooks/loopml?team=ml"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == f"127.0.0.1:{target.port}"
    assert got.headers["x-loopml-alert-id"] == ALERT.id
    # The receiver's recipe: HMAC-SHA256 of "<timestamp>.<raw body>", constant-time compare.
    timestamp = got.headers["x-loopml-timestamp"]
    assert timestamp == "1700000123"
    expected = hmac.new(SECRET, timestamp.encode() + b"." + got.body, hashlib.sha256)
    assert hmac.compare_digest(got.headers["x-loopml-signature"], f"sha256={expected.hexdigest()}")
    payload = json.loads(got.body)
    assert payload["event"] == "loopml.alert"
    assert payload["text"] == ALERT.message
    assert Alert.from_dict(payload["alert"]) == ALERT


def test_signature_verification_refuses_tampering_other_keys_and_old_requests() -> None:
    body = b'{"event":"loopml.alert"}'
    good = "sha256=" + hmac.new(SECRET, b"1000." + body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, body, "1000", good, now_s=1000)
    assert verify_signature(SECRET, body, "1000", good, now_s=1299)
    assert not verify_signature(SECRET, body, "1000", good, now_s=1301)  # replayed later
    assert not verify_signature(SECRET, body + b" ", "1000", good, now_s=1000)
    assert not verify_signature(b"other", body, "1000", good, now_s=1000)
    assert not verify_signature(SECRET, body, "1001", good, now_s=1000)  # moved timestamp
    assert not verify_signature(SECRET, body, "soon", good, now_s=1000)


def test_an_unsigned_webhook_sends_no_signature(http_target: Callable[..., Target]) -> None:
    target = http_target()
    assert WebhookSink("ops", poster(target.url)).deliver(ALERT).ok
    assert SIGNATURE_HEADER.lower() not in target.received[0].headers
    assert TIMESTAMP_HEADER.lower() in target.received[0].headers


def test_repr_never_shows_the_secret_or_the_url_path() -> None:
    sink = WebhookSink("ops", poster("https://hooks.example.com/T000/B000/XXXX"), SECRET)
    assert "s3cret" not in repr(sink)
    assert repr(sink) == "WebhookSink('ops', https://hooks.example.com:443, signed)"
    slack = SlackSink("chat", poster("https://hooks.example.com/T000/B000/XXXX"))
    assert "XXXX" not in repr(slack)


# --- timeouts and retries --------------------------------------------------------------------


def test_a_target_slower_than_the_timeout_fails_clearly_after_the_retries(
    http_target: Callable[..., Target],
) -> None:
    target = http_target(Answer(delay_s=2.0))
    sleeps = Sleeps()
    started = time.monotonic()
    result = WebhookSink("ops", poster(target.url, timeout_s=0.2, retries=1, sleep=sleeps)).deliver(
        ALERT
    )
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.attempts == 2
    assert result.status is None
    assert result.error == (
        f"POST to http://127.0.0.1:{target.port} failed after 2 attempts: no answer within "
        "timeout_s = 0.2 s (connect or read)"
    )
    assert sleeps.calls == [0.1]
    assert len(target.received) == 2
    assert elapsed < 1.5


def test_a_500_then_a_200_is_delivered_on_the_retry(http_target: Callable[..., Target]) -> None:
    target = http_target(Answer(500, b"database down"), Answer(200))
    sleeps = Sleeps()
    result = WebhookSink("ops", poster(target.url, sleep=sleeps), SECRET).deliver(ALERT)
    assert result == Delivery("ops", True, 2, "", 200)
    assert sleeps.calls == [0.1]
    first, second = target.received
    assert first.body == second.body
    assert first.headers["x-loopml-alert-id"] == second.headers["x-loopml-alert-id"]


def test_a_target_that_keeps_failing_is_retried_with_doubling_pauses(
    http_target: Callable[..., Target],
) -> None:
    target = http_target(Answer(503, b"<html>\n  overloaded\x00</html>"))
    sleeps = Sleeps()
    result = WebhookSink("ops", poster(target.url, retries=3, sleep=sleeps)).deliver(ALERT)
    assert not result.ok
    assert (result.attempts, result.status) == (4, 503)
    assert sleeps.calls == [0.1, 0.2, 0.4]
    assert result.error.endswith(
        "failed after 4 attempts: answered 503: <html>   overloaded </html>"
    )
    assert len(target.received) == 4


def test_a_429_is_retried(http_target: Callable[..., Target]) -> None:
    target = http_target(Answer(429), Answer(200))
    assert WebhookSink("ops", poster(target.url)).deliver(ALERT).attempts == 2


def test_a_400_is_not_retried(http_target: Callable[..., Target]) -> None:
    target = http_target(Answer(400, b'{"error": "bad signature"}'))
    sleeps = Sleeps()
    result = WebhookSink("ops", poster(target.url, sleep=sleeps)).deliver(ALERT)
    assert not result.ok
    assert (result.attempts, result.status) == (1, 400)
    assert 'answered 400: {"error": "bad signature"}; the target refused' in result.error
    assert "not retried" in result.error
    assert sleeps.calls == []
    assert len(target.received) == 1


def test_redirects_are_not_followed(http_target: Callable[..., Target]) -> None:
    target = http_target(Answer(302, b"", headers=(("Location", "http://10.0.0.1/admin"),)))
    result = WebhookSink("ops", poster(target.url)).deliver(ALERT)
    assert (result.ok, result.attempts, result.status) == (False, 1, 302)
    assert "redirecting to http://10.0.0.1/admin; redirects are not followed" in result.error


def test_a_closed_port_is_a_connection_error_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    result = WebhookSink("ops", poster(f"http://127.0.0.1:{port}/", sleep=sleeps)).deliver(ALERT)
    assert (result.ok, result.attempts) == (False, 3)
    assert "connection failed: ConnectionRefusedError" in result.error
    assert sleeps.calls == [0.1, 0.2]


# --- the guard against private targets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1/x", "loopback"),
        ("http://127.8.9.10:8080/x", "loopback"),
        ("http://10.1.2.3/x", "private"),
        ("http://192.168.0.10/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:9000/x", "loopback"),
        ("http://[::ffff:127.0.0.1]/x", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("http://[::ffff:169.254.169.254]/x", "link-local"),
        ("http://[fd00::1]/x", "private"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://0.0.0.0/x", "unspecified"),
        ("http://224.0.0.251/x", "multicast"),
        ("http://100.64.1.1/x", "not globally routable"),
    ],
)
def test_literal_private_addresses_are_refused_at_construction(url: str, problem: str) -> None:
    with pytest.raises(PermissionDenied, match=r"set allow_private = true") as info:
        poster(url, allow_private=False)
    assert f"a {problem}" in str(info.value)
    assert poster(url, allow_private=True).sink == "ops"  # allowed on purpose


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "loopback"),
        ("::", "unspecified"),
        ("2002:7f00:1::", "loopback (IPv4 127.0.0.1 inside IPv6)"),  # 6to4
        ("64:ff9b::a00:1", "private (IPv4 10.0.0.1 inside IPv6)"),  # NAT64
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "private"),  # documentation range
        ("fe80::1%eth0", "link-local (where cloud metadata services answer)"),
    ],
)
def test_address_problems(address: str, problem: str | None) -> None:
    assert address_problem(address) == problem


def test_a_host_name_resolving_to_loopback_is_refused_before_any_request(
    http_target: Callable[..., Target],
) -> None:
    target = http_target()
    sleeps = Sleeps()
    sink = WebhookSink(
        "ops", poster(f"http://localhost:{target.port}/", allow_private=False, sleep=sleeps)
    )
    result = sink.deliver(ALERT)
    assert (result.ok, result.attempts) == (False, 1)
    assert "refused: localhost resolves to" in result.error
    assert "a loopback address" in result.error
    assert "set allow_private = true" in result.error
    assert target.received == []
    assert sleeps.calls == []
    # Allowed on purpose, the same URL delivers.
    assert WebhookSink("ops", poster(f"http://localhost:{target.port}/")).deliver(ALERT).ok


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    result = WebhookSink(
        "ops", poster("https://hooks.example.com/", allow_private=False, resolver=resolver)
    ).deliver(ALERT)
    assert not result.ok
    assert "hooks.example.com resolves to 10.0.0.7, a private address" in result.error


def test_the_connection_goes_to_the_checked_address_not_a_new_lookup(
    http_target: Callable[..., Target],
) -> None:
    """The host name is never looked up again by the connection: here it cannot be
    resolved at all, and the request still reaches the address the resolver gave."""
    target = http_target()
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    url = f"http://hooks.invalid:{target.port}/x"
    assert WebhookSink("ops", poster(url, resolver=resolver)).deliver(ALERT).ok
    assert lookups == ["hooks.invalid"]
    assert target.received[0].headers["host"] == f"hooks.invalid:{target.port}"


def test_an_unknown_host_fails_at_once_and_a_flaky_resolver_is_retried() -> None:
    def unknown(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    sleeps = Sleeps()
    result = WebhookSink(
        "ops", poster("http://no-such-host.example/", resolver=unknown, sleep=sleeps)
    ).deliver(ALERT)
    assert (result.ok, result.attempts, sleeps.calls) == (False, 1, [])
    assert "cannot resolve host 'no-such-host.example'" in result.error
    assert "Name or service not known" in result.error

    def flaky(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    result = WebhookSink("ops", poster("http://hooks.example/", resolver=flaky)).deliver(ALERT)
    assert (result.ok, result.attempts) == (False, 3)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "other schemes (file) are refused"),
        ("gopher://hooks.example.com/", "other schemes (gopher) are refused"),
        ("https://user:pw@hooks.example.com/", "carries credentials"),
    ],
)
def test_other_schemes_and_credentials_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        poster(url)


# --- TLS with a pinned address ---------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``alerts.test`` (made by the openssl tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=alerts.test", "-addext",
         "subjectAltName=DNS:alerts.test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_checks_the_certificate_against_the_host_name_while_pinned(
    http_target: Callable[..., Target], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    target = http_target(Answer(200), tls=server_tls)

    def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    trusting = ssl.create_default_context(cafile=str(cert))
    url = f"https://alerts.test:{target.port}/hook"
    ok = WebhookSink("ops", poster(url, resolver=resolver, tls_context=trusting)).deliver(ALERT)
    assert ok == Delivery("ops", True, 1, "", 200)
    assert target.received[0].headers["host"] == f"alerts.test:{target.port}"
    # The same server under another name: the certificate does not match, not retried.
    wrong = f"https://other.test:{target.port}/hook"
    sleeps = Sleeps()
    result = WebhookSink(
        "ops", poster(wrong, resolver=resolver, tls_context=trusting, sleep=sleeps)
    ).deliver(ALERT)
    assert (result.ok, result.attempts) == (False, 1)
    assert "the TLS certificate of other.test is not trusted" in result.error
    # An untrusted (self-signed) certificate under the default context.
    result = WebhookSink("ops", poster(url, resolver=resolver, retries=0)).deliver(ALERT)
    assert "the TLS certificate of alerts.test is not trusted" in result.error
    assert len(target.received) == 1


# --- Slack ---------------------------------------------------------------------------------


def test_slack_payload_has_text_and_blocks_with_escaped_text(
    http_target: Callable[..., Target],
) -> None:
    target = http_target()
    alert = make_alert(deployment="*")
    alert = Alert.from_dict({**alert.to_dict(), "message": "a <b> & c"})
    assert SlackSink("chat", poster(target.url)).deliver(alert).ok
    payload = json.loads(target.received[0].body)
    assert payload["text"] == f"{alert.title}: a &lt;b&gt; &amp; c"
    header, message, facts, context = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": alert.title}}
    assert message["text"] == {"type": "mrkdwn", "text": ":rotating_light: a &lt;b&gt; &amp; c"}
    texts = [f["text"] for f in facts["fields"]]
    assert "*Deployment*\nbike-demand" in texts
    assert "*Value*\n1.73" in texts
    assert "*Threshold*\nabove 1" in texts
    assert "*Action*\nretrain" in texts
    assert alert.id in context["elements"][0]["text"]
    assert SIGNATURE_HEADER.lower() not in target.received[0].headers


# --- email ---------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (b"loopml", b"pw!")
    return AuthResult(success=good, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=check_login,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def email_config(port: int, **changes: Any) -> EmailSinkConfig:
    values: dict[str, Any] = {
        "name": "mail",
        "host": "127.0.0.1",
        "port": port,
        "sender": "loopml@example.com",
        "to": ("oncall@example.com", "ml@example.com"),
        "starttls": False,
        "timeout_s": 2.0,
        "retries": 1,
        "backoff_s": 0.0,
    }
    values.update(changes)
    return EmailSinkConfig(**values)


def test_email_is_received_by_a_real_smtp_server(smtp_server: tuple[int, Inbox]) -> None:
    port, inbox = smtp_server
    result = EmailSink(email_config(port)).deliver(ALERT)
    assert result == Delivery("mail", True, 1, "", 250)
    ((sender, recipients, message),) = inbox.messages
    assert sender == "loopml@example.com"
    assert recipients == ["oncall@example.com", "ml@example.com"]
    assert message["Subject"] == ALERT.title
    assert message["X-Loopml-Alert-Id"] == ALERT.id
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert ALERT.message in text
    assert "value:      1.73 (above the threshold 1)" in text
    assert "action:     retrain" in text


def test_email_logs_in_with_the_password_it_was_given(smtp_server: tuple[int, Inbox]) -> None:
    port, inbox = smtp_server
    config = email_config(port, username="loopml", password_env="SMTP_PW")
    assert EmailSink(config, password="pw!").deliver(ALERT).ok
    refused = EmailSink(config, password="wrong").deliver(ALERT)
    assert (refused.ok, refused.attempts, refused.status) == (False, 1, 535)
    assert "login as 'loopml' refused (535" in refused.error
    assert "check the username and the password in SMTP_PW" in refused.error
    assert len(inbox.messages) == 1
    assert "pw!" not in repr(EmailSink(config, password="pw!"))


def test_starttls_to_a_server_without_it_is_a_clear_failure(
    smtp_server: tuple[int, Inbox],
) -> None:
    port, inbox = smtp_server
    result = EmailSink(email_config(port, starttls=True)).deliver(ALERT)
    assert (result.ok, result.attempts) == (False, 1)
    assert "does not support" in result.error
    assert "set starttls = false" in result.error
    assert inbox.messages == []


def test_an_smtp_server_that_is_down_is_retried_and_reported() -> None:
    sleeps = Sleeps()
    sink = EmailSink(email_config(free_port(), retries=2, backoff_s=0.05), sleep=sleeps)
    result = sink.deliver(ALERT)
    assert (result.ok, result.attempts) == (False, 3)
    assert result.error.startswith("email through 127.0.0.1:")
    assert "connection failed: ConnectionRefusedError" in result.error
    assert sleeps.calls == [0.05, 0.1]


def test_email_settings_that_cannot_work_are_refused_at_construction() -> None:
    with pytest.raises(ConfigError, match="no password was given"):
        EmailSink(email_config(25, username="me", password_env="PW"))
    with pytest.raises(ConfigError, match="would send the password in clear"):
        EmailSink(
            email_config(25, host="smtp.example.com", username="me", password_env="PW"),
            password="x",
        )


# --- the log sink --------------------------------------------------------------------------


def test_log_sink_logs_and_appends_json_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "alerts.jsonl"
    sink = LogSink("log", path)
    warning = make_alert(deployment="*", severity="warning")
    with caplog.at_level(logging.WARNING, logger="loopml.alerts"):
        assert sink.deliver(ALERT) == Delivery("log", True, 1)
        assert sink.deliver(warning).ok
    lines = path.read_text().splitlines()
    assert [Alert.from_dict(json.loads(line)) for line in lines] == [ALERT, warning]
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING]
    assert ALERT.message in caplog.records[0].getMessage()


def test_log_sink_reports_a_file_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = LogSink("log", blocker / "alerts.jsonl").deliver(ALERT)
    assert (result.ok, result.attempts) == (False, 1)
    assert "logged, but cannot append to" in result.error


# --- building from settings and delivering to many -------------------------------------------


def settings(**sinks: dict[str, Any]) -> dict[str, Any]:
    return alerts_from_config({"sinks": sinks}).sinks  # type: ignore[return-value]


def test_build_sinks_reads_secrets_from_the_environment_it_is_given(tmp_path: Path) -> None:
    configs = settings(
        ops={"type": "webhook", "url": "https://hooks.example.com/x", "secret_env": "HOOK_KEY"},
        chat={"type": "slack", "url_env": "SLACK_URL"},
        mail={
            "type": "email",
            "host": "smtp.example.com",
            "from": "a@example.com",
            "to": "b@example.com",
            "username": "a",
            "password_env": "SMTP_PW",
        },
        audit={"type": "log", "path": "logs/alerts.jsonl"},
    )
    env = {"HOOK_KEY": "k", "SLACK_URL": "https://hooks.slack.com/services/T/B/C", "SMTP_PW": "p"}
    sinks = build_sinks(configs, env=env, workspace=tmp_path, log_path=tmp_path / "default.jsonl")
    assert sorted(sinks) == ["audit", "chat", "log", "mail", "ops"]
    assert isinstance(sinks["ops"], WebhookSink)
    assert "signed" in repr(sinks["ops"])
    assert isinstance(sinks["chat"], SlackSink)
    assert isinstance(sinks["mail"], EmailSink)
    assert isinstance(sinks["audit"], LogSink)
    assert sinks["audit"].path == tmp_path / "logs" / "alerts.jsonl"
    assert isinstance(sinks["log"], LogSink)
    assert sinks["log"].path == tmp_path / "default.jsonl"
    sink: AlertSink = sinks["ops"]
    assert sink.name == "ops"


@pytest.mark.parametrize(
    ("spec", "env", "error", "message"),
    [
        (
            {"type": "webhook", "url": "https://h.example.com/", "secret_env": "KEY"},
            {},
            ConfigError,
            "environment variable KEY (named by secret_env) is not set or empty",
        ),
        (
            {"type": "slack", "url_env": "URL"},
            {"URL": ""},
            ConfigError,
            "environment variable URL (named by url_env) is not set",
        ),
        (
            {"type": "slack", "url_env": "URL"},
            {"URL": "ftp://x"},
            ConfigError,
            "sink 'x' (from URL): url 'ftp://x' must start with https://",
        ),
        (
            {"type": "webhook", "url": "http://169.254.169.254/latest"},
            {},
            PermissionDenied,
            "link-local",
        ),
        (
            {"type": "slack", "url_env": "URL"},
            {"URL": "http://[::1]/"},
            PermissionDenied,
            "loopback",
        ),
    ],
)
def test_build_sinks_refuses_settings_that_cannot_work(
    tmp_path: Path, spec: dict[str, Any], env: dict[str, str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build_sinks(settings(x=spec), env=env, workspace=tmp_path, log_path=None)


class Exploding:
    name = "boom"

    def deliver(self, alert: Alert) -> Delivery:
        raise RuntimeError("a bug in a sink")


def test_deliver_all_survives_a_sink_that_raises_and_names_a_missing_one(
    http_target: Callable[..., Target], caplog: pytest.LogCaptureFixture
) -> None:
    down = http_target(Answer(500))
    sinks: dict[str, AlertSink] = {
        "boom": Exploding(),
        "down": WebhookSink("down", poster(down.url, retries=1)),
        "log": LogSink("log"),
    }
    with caplog.at_level(logging.ERROR, logger="loopml.alerts"):
        results = deliver_all(sinks, ALERT, ["boom", "down", "nowhere", "log"])
    assert [(r.sink, r.ok) for r in results] == [
        ("boom", False),
        ("down", False),
        ("nowhere", False),
        ("log", True),
    ]
    assert results[0].error == "the sink failed unexpectedly: RuntimeError: a bug in a sink"
    assert results[1].attempts == 2
    assert results[1].status == 500
    assert results[2].error.startswith("no sink named 'nowhere'")
    assert any("raised while delivering" in r.getMessage() for r in caplog.records)
