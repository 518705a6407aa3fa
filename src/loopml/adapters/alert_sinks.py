"""Alert sinks: where a fired alert is delivered, and how they are built from settings.

A sink has a ``name`` and one method, ``deliver(alert) -> Delivery``
(:class:`AlertSink`). It reports a failed delivery in the returned
:class:`~loopml.domain.alerts.Delivery` (attempts, status, an error for people) and does
not raise: a target that times out or answers 500 is recorded, and the agent goes on.
Mistakes in the settings (a bad URL, a private address, a missing environment variable)
are raised when the sink is built, so ``loopml agent`` refuses to start instead of
failing at the first alert. :func:`deliver_all` is the agent's entry point: it sends one
alert to the named sinks and turns even an unexpected exception of a sink into a failed
:class:`Delivery`, logged with its traceback.

The sinks: :class:`LogSink` (here: the ``loopml.alerts`` logger, and one JSON line per
alert appended to a file), :class:`~loopml.adapters.alert_webhook.WebhookSink` and
:class:`~loopml.adapters.alert_webhook.SlackSink` (HTTP, guarded against reaching the
agent's own network: :mod:`loopml.adapters.alert_http`), and
:class:`~loopml.adapters.alert_email.EmailSink` (SMTP). :func:`build_sinks` makes them
from the ``[alerts.sinks]`` settings (:mod:`loopml.domain.alert_config`), reading the
secrets from the environment mapping it is given.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from loopml.adapters.alert_email import EmailSink
from loopml.adapters.alert_http import JsonPoster
from loopml.adapters.alert_webhook import SlackSink, WebhookSink
from loopml.domain.alert_config import (
    EmailSinkConfig,
    HttpSinkConfig,
    LogSinkConfig,
    SinkConfig,
    SinkType,
    validate_webhook_url,
)
from loopml.domain.alerts import Alert, Delivery, Severity
from loopml.domain.errors import ConfigError, InvalidInput
from loopml.ports.monitoring import AlertSink

log = logging.getLogger("loopml.alerts")


class LogSink:
    """Logs each alert (logger ``loopml.alerts``: warnings at WARNING, critical alerts at
    ERROR) and appends it as one JSON line (``Alert.to_dict()``) to ``path``, if given."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        self.name = name
        self.path = path

    def __repr__(self) -> str:
        return f"LogSink({self.name!r}, {str(self.path) if self.path else None!r})"

    def deliver(self, alert: Alert) -> Delivery:
        level = logging.ERROR if alert.severity is Severity.CRITICAL else logging.WARNING
        log.log(level, "%s: %s", alert.title, alert.message)
        if self.path is None:
            return Delivery(self.name, True, 1)
        line = json.dumps(alert.to_dict(), sort_keys=True, allow_nan=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _append(self.path, line.encode("utf-8"))
        except OSError as exc:
            return Delivery(
                self.name,
                False,
                1,
                f"logged, but cannot append to {self.path}: {exc}; check the folder exists "
                "and is writable",
            )
        return Delivery(self.name, True, 1)


def _append(path: Path, data: bytes) -> None:
    """One ``write`` on an ``O_APPEND`` descriptor: lines of concurrent writers never
    interleave (for lines this short)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def build_sink(
    config: SinkConfig, *, env: Mapping[str, str], workspace: Path, log_path: Path | None
) -> AlertSink:
    """The sink ``config`` describes.

    Args:
        config: one ``[alerts.sinks.NAME]`` table, parsed.
        env: where ``secret_env``, ``url_env`` and ``password_env`` are read (the
            composition root passes ``os.environ``).
        workspace: the folder a log sink's relative ``path`` is relative to.
        log_path: the JSON-lines file of a log sink without ``path`` (None: log only).

    Raises:
        ConfigError: a named environment variable is unset or empty, or holds a bad URL.
        PermissionDenied: a webhook URL names a non-public address without
            ``allow_private``.
    """
    where = f"sink {config.name!r}"
    if isinstance(config, LogSinkConfig):
        path = log_path if config.path is None else workspace / config.path
        return LogSink(config.name, path)
    if isinstance(config, EmailSinkConfig):
        password = None
        if config.password_env is not None:
            password = _variable(env, config.password_env, "password_env", where)
        return EmailSink(config, password=password)
    return _http_sink(config, env, where)


def _http_sink(config: HttpSinkConfig, env: Mapping[str, str], where: str) -> AlertSink:
    url = config.url
    if config.url_env is not None:
        url = _variable(env, config.url_env, "url_env", where)
        try:
            validate_webhook_url(url, f"{where} (from {config.url_env})")
        except InvalidInput as exc:
            raise ConfigError(str(exc)) from exc
    poster = JsonPoster(
        str(url),
        sink=config.name,
        timeout_s=config.timeout_s,
        retries=config.retries,
        backoff_s=config.backoff_s,
        allow_private=config.allow_private,
    )
    if config.type is SinkType.SLACK:
        return SlackSink(config.name, poster)
    secret = None
    if config.secret_env is not None:
        secret = _variable(env, config.secret_env, "secret_env", where).encode("utf-8")
    return WebhookSink(config.name, poster, secret)


def build_sinks(
    configs: Mapping[str, SinkConfig],
    *,
    env: Mapping[str, str],
    workspace: Path,
    log_path: Path | None,
) -> dict[str, AlertSink]:
    """Every sink of ``configs`` (see :func:`build_sink`), by name."""
    return {
        name: build_sink(config, env=env, workspace=workspace, log_path=log_path)
        for name, config in configs.items()
    }


def deliver_all(
    sinks: Mapping[str, AlertSink], alert: Alert, names: Iterable[str]
) -> list[Delivery]:
    """Send ``alert`` to each named sink, in order; never raises. A name with no sink and
    a sink that raises are failed deliveries (the second logged with its traceback)."""
    results = []
    for name in names:
        sink = sinks.get(name)
        if sink is None:
            results.append(
                Delivery(name, False, 0, f"no sink named {name!r}; defined: {sorted(sinks)}")
            )
            continue
        try:
            results.append(sink.deliver(alert))
        except Exception as exc:  # a sink's bug must not stop the agent: report, go on
            log.exception("alert sink %r raised while delivering alert %s", name, alert.id)
            results.append(
                Delivery(
                    name, False, 1, f"the sink failed unexpectedly: {type(exc).__name__}: {exc}"
                )
            )
    return results


def _variable(env: Mapping[str, str], variable: str, key: str, where: str) -> str:
    value = env.get(variable, "")
    if not value:
        raise ConfigError(
            f"{where}: environment variable {variable} (named by {key}) is not set or empty; "
            "set it in the environment the agent runs in, or remove the key"
        )
    return value
