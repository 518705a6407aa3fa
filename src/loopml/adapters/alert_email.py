"""The email sink: an alert as a plain-text message over SMTP (:mod:`smtplib`).

One connection per alert: ``EHLO``, then ``STARTTLS`` when ``starttls`` is set (the
default; the server's certificate is checked against ``host``) or TLS from the first
byte with ``ssl``, then ``AUTH`` when a username is set, then the message. The password
is handed in by the composition root, read from the environment variable the
configuration names (``password_env``); it is never stored, logged or shown by ``repr``.
Logging in over an unencrypted connection is refused at construction, except to a
loopback host (a local relay), since the password would cross the network in clear.

Failures are returned as a :class:`~loopml.domain.alerts.Delivery`, never raised:
timeouts, dropped connections and temporary (4xx) SMTP replies are retried ``retries``
more times with the same doubling pause as webhooks; a server without STARTTLS, a refused
login, refused recipients and permanent (5xx) replies are not, and the error says what to
change. A message some recipients refused is delivered (``ok``) with their addresses in
``error``.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from loopml.domain.alert_config import EmailSinkConfig
from loopml.domain.alerts import Alert, Delivery
from loopml.domain.errors import ConfigError


class EmailSink:
    """Sends each alert to ``config.to`` through ``config.host``.

    Args:
        config: the sink's settings.
        password: the login password (from ``config.password_env``), if ``username`` is set.
        sleep: how to pause between attempts.
        tls_context: for STARTTLS and SMTPS (default: the system's trusted certificates).

    Raises:
        ConfigError: a username without a password, or a login that would travel in clear.
    """

    def __init__(
        self,
        config: EmailSinkConfig,
        *,
        password: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        where = f"sink {config.name!r}"
        if config.username is not None and not password:
            raise ConfigError(
                f"{where}: username {config.username!r} is set but no password was given "
                f"(environment variable {config.password_env}); set it in the agent's "
                "environment"
            )
        if (
            config.username is not None
            and not (config.starttls or config.ssl)
            and not _is_loopback(config.host)
        ):
            raise ConfigError(
                f"{where}: logging in to {config.host} without encryption would send the "
                "password in clear; set starttls = true (port 587) or ssl = true (port 465)"
            )
        self.name = config.name
        self._config = config
        self._password = password
        self._sleep = sleep
        self._tls = tls_context

    def __repr__(self) -> str:  # never shows the password
        c = self._config
        return f"EmailSink({self.name!r}, {c.host}:{c.port}, to={list(c.to)!r})"

    def deliver(self, alert: Alert) -> Delivery:
        message = email_message(alert, self._config.sender, self._config.to)
        retries = self._config.retries
        for attempt in range(1, retries + 2):
            try:
                refused = self._send(message)
            except _Failure as failure:
                if not failure.retry or attempt > retries:
                    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                    return Delivery(
                        self.name,
                        False,
                        attempt,
                        f"email through {self._config.host}:{self._config.port} failed after "
                        f"{tries}: {failure}",
                        failure.code,
                    )
                self._sleep(self._config.backoff_s * 2 ** (attempt - 1))
            else:
                error = ""
                if refused:
                    error = "some recipients were refused: " + "; ".join(
                        f"{address} ({code} {reason.decode('utf-8', 'replace')})"
                        for address, (code, reason) in sorted(refused.items())
                    )
                return Delivery(self.name, True, attempt, error, 250)
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover

    def _send(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        c = self._config
        port = int(c.port or 0)
        context = self._tls or ssl.create_default_context()
        try:
            client = (
                smtplib.SMTP_SSL(c.host, port, timeout=c.timeout_s, context=context)
                if c.ssl
                else smtplib.SMTP(c.host, port, timeout=c.timeout_s)
            )
            with client:
                client.ehlo()
                if c.starttls:
                    client.starttls(context=context)
                    client.ehlo()
                if c.username is not None and self._password is not None:
                    client.login(c.username, self._password)
                return client.send_message(message)
        except smtplib.SMTPNotSupportedError as exc:
            raise _Failure(
                f"the server does not support {exc} (STARTTLS, or AUTH); for a local relay "
                "without encryption set starttls = false",
                retry=False,
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise _Failure(
                f"login as {c.username!r} refused ({exc.smtp_code} {_text(exc.smtp_error)}); "
                f"check the username and the password in {c.password_env}",
                retry=False,
                code=exc.smtp_code,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            who = ", ".join(sorted(exc.recipients))
            raise _Failure(f"every recipient was refused ({who})", retry=False) from exc
        except smtplib.SMTPResponseException as exc:
            temporary = 400 <= exc.smtp_code < 500
            raise _Failure(
                f"the server answered {exc.smtp_code} {_text(exc.smtp_error)}"
                + ("" if temporary else " (permanent, not retried)"),
                retry=temporary,
                code=exc.smtp_code,
            ) from exc
        except ssl.SSLError as exc:
            raise _Failure(
                f"TLS with {c.host} failed ({exc}); check the host name and its certificate",
                retry=False,
            ) from exc
        except TimeoutError as exc:
            raise _Failure(f"no answer within timeout_s = {c.timeout_s:g} s", retry=True) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise _Failure(f"connection failed: {type(exc).__name__}: {exc}", retry=True) from exc


def email_message(alert: Alert, sender: str, to: tuple[str, ...]) -> EmailMessage:
    """The plain-text message of ``alert``."""
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(datetime.fromtimestamp(alert.time_ms / 1000, tz=UTC))
    message["Message-ID"] = make_msgid("alert", domain=sender.rpartition("@")[2])
    message["X-Loopml-Alert-Id"] = alert.id
    lines = [
        alert.message,
        "",
        f"deployment: {alert.deployment}",
        f"metric:     {alert.metric}",
        f"value:      {alert.value:.6g} ({alert.comparison.value} the threshold "
        f"{alert.threshold:g})",
        f"windows:    {alert.windows} consecutive (newest: {alert.window})",
        f"severity:   {alert.severity.value}",
        f"rule:       {alert.rule}",
    ]
    if alert.action is not None:
        lines.append(f"action:     {alert.action.value}")
    lines += ["", f"alert id {alert.id}, sent by loopml"]
    message.set_content("\n".join(lines) + "\n")
    return message


class _Failure(Exception):
    def __init__(self, message: str, *, retry: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.code = code


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
