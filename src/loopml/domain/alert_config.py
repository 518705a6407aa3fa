"""The ``[alerts]`` table of ``loopml.toml``: alert rules and the sinks they notify.

Rules are ``[[alerts.rules]]`` tables (read into :class:`~loopml.domain.alerts.AlertRule`);
sinks are ``[alerts.sinks.NAME]`` tables, each with a ``type``::

    [[alerts.rules]]
    name = "drift"
    deployment = "bike-demand"     # or "*" (the default): every deployment
    metric = "drift_score"         # drift_score, feature_drift:<column>, performance:<metric>,
                                   # error_rate, latency_p99_ms, log_dropped, review_queue_age_s
    comparison = "above"           # or "below"
    threshold = 1.0
    for_windows = 3                # consecutive windows (default 1)
    cooldown_s = 3600              # quiet time after an alert (default 3600)
    severity = "critical"          # or "warning" (the default)
    sinks = ["log", "ops"]         # default ["log"]
    action = "retrain"             # optional

    [alerts.sinks.ops]
    type = "webhook"               # JSON POST, HMAC-signed when secret_env is set
    url = "https://hooks.example.com/loopml"   # or url_env = "NAME OF A VARIABLE"
    secret_env = "LOOPML_WEBHOOK_SECRET"
    timeout_s = 5                  # per attempt (connect, and each read)
    retries = 2                    # more attempts on timeouts, connection errors and 5xx
    backoff_s = 1.0                # pause before retry k: backoff_s * 2**(k-1)
    allow_private = false          # true lets it reach loopback and private addresses

    [alerts.sinks.chat]
    type = "slack"                 # a Slack-compatible {"text", "blocks"} payload
    url_env = "SLACK_WEBHOOK_URL"  # such URLs are secrets: keep them out of the file

    [alerts.sinks.mail]
    type = "email"
    host = "smtp.example.com"
    port = 587                     # default 587 (465 with ssl = true)
    from = "loopml@example.com"
    to = ["oncall@example.com"]
    starttls = true                # the default; ssl = true for SMTPS instead
    username = "loopml"
    password_env = "SMTP_PASSWORD"

A sink named ``log`` (the log and a JSON-lines file) exists without being declared, so
``sinks`` defaults to it. Secrets are never written here: ``secret_env``, ``url_env`` and
``password_env`` name environment variables the composition root reads. Every mistake is
refused with the source name and the key path (``alerts.rules[2].threshold``).

Standard library only, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from loopml.domain.alerts import DEFAULT_SINKS, AlertRule
from loopml.domain.errors import InvalidInput
from loopml.domain.metric_directions import closest
from loopml.domain.names import validate_identifier
from loopml.domain.toml_reader import TomlReader

RULE_KEYS = (
    "name",
    "deployment",
    "metric",
    "comparison",
    "threshold",
    "for_windows",
    "cooldown_s",
    "severity",
    "sinks",
    "action",
)
_REQUIRED = {
    "name": 'a rule name, e.g. name = "drift"',
    "metric": 'the figure watched, e.g. metric = "drift_score"',
    "comparison": 'which side is bad: comparison = "above" or "below"',
    "threshold": "the limit, e.g. threshold = 1.0",
}
ALERTS_KEYS = ("rules", "sinks")
MAX_TIMEOUT_S = 60.0
MAX_RETRIES = 10
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^[^\s@,<>;:\"]+@[^\s@,<>;:\"]+$")
_DOCS = "docs/alerts.md"


class SinkType(StrEnum):
    LOG = "log"
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class LogSinkConfig:
    """The log (logger ``loopml.alerts``) and one JSON line per alert in a file."""

    name: str
    path: str | None = None  # relative to the workspace; None: the composition root's default
    type: SinkType = field(default=SinkType.LOG, init=False)


@dataclass(frozen=True, slots=True)
class HttpSinkConfig:
    """A webhook (``type = "webhook"``) or a Slack-compatible one (``"slack"``)."""

    name: str
    type: SinkType
    url: str | None = None
    url_env: str | None = None  # the variable holding the URL, for URLs that are secrets
    secret_env: str | None = None  # webhook only: the variable holding the HMAC key
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 1.0
    allow_private: bool = False

    def __post_init__(self) -> None:
        where = f"sink {self.name!r}"
        if self.type not in (SinkType.WEBHOOK, SinkType.SLACK):
            raise InvalidInput(f"{where}: an HTTP sink is a webhook or slack, not {self.type!r}")
        if (self.url is None) == (self.url_env is None):
            raise InvalidInput(
                f"{where}: set exactly one of url (the address) or url_env (the environment "
                f"variable holding it), got url={self.url!r}, url_env={self.url_env!r}"
            )
        if self.url is not None:
            validate_webhook_url(self.url, where)
        for key in ("url_env", "secret_env"):
            _check_env_name(where, key, getattr(self, key))
        if self.type is SinkType.SLACK and self.secret_env is not None:
            raise InvalidInput(
                f"{where}: a slack sink sends no signature, so secret_env does nothing; "
                "remove it (Slack's webhook URL is the secret: put it in url_env)"
            )
        _check_transport(where, self.timeout_s, self.retries, self.backoff_s)
        if not isinstance(self.allow_private, bool):
            raise InvalidInput(f"{where}: allow_private must be true or false")


@dataclass(frozen=True, slots=True)
class EmailSinkConfig:
    """Email over SMTP; the password comes from ``password_env``, never from the file."""

    name: str
    host: str
    sender: str  # ``from`` in the file
    to: tuple[str, ...]
    port: int | None = None  # None: 465 with ssl, else 587
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout_s: float = 10.0
    retries: int = 1
    backoff_s: float = 1.0
    type: SinkType = field(default=SinkType.EMAIL, init=False)

    def __post_init__(self) -> None:
        where = f"sink {self.name!r}"
        if not isinstance(self.host, str) or not self.host or _has_space(self.host):
            raise InvalidInput(f"{where}: host must be an SMTP server name, got {self.host!r}")
        given: object = self.to  # any sequence of addresses, stored as a tuple
        if isinstance(given, str) or not isinstance(given, Sequence) or not given:
            raise InvalidInput(
                f"{where}: to must be a list of addresses, got {given!r}; "
                'e.g. to = ["oncall@example.com"]'
            )
        object.__setattr__(self, "to", tuple(given))
        for address in (self.sender, *self.to):
            if not isinstance(address, str) or not _ADDRESS.match(address):
                raise InvalidInput(
                    f"{where}: {address!r} is not an email address such as 'ops@example.com'"
                )
        for key in ("starttls", "ssl"):
            if not isinstance(getattr(self, key), bool):
                raise InvalidInput(f"{where}: {key} must be true or false")
        if self.starttls and self.ssl:
            raise InvalidInput(
                f"{where}: starttls and ssl are two ways to encrypt (upgrade on port 587, or "
                "TLS from the start on port 465); keep one: set starttls = false with ssl"
            )
        if self.port is None:
            object.__setattr__(self, "port", 465 if self.ssl else 587)
        elif isinstance(self.port, bool) or not isinstance(self.port, int):
            raise InvalidInput(f"{where}: port must be a whole number, got {self.port!r}")
        elif not 0 < self.port < 65536:
            raise InvalidInput(f"{where}: port must be between 1 and 65535, got {self.port}")
        if self.username is not None and (not isinstance(self.username, str) or not self.username):
            raise InvalidInput(f"{where}: username must be a non-empty string")
        _check_env_name(where, "password_env", self.password_env)
        if (self.username is None) != (self.password_env is None):
            raise InvalidInput(
                f"{where}: set both username and password_env to log in, or neither, got "
                f"username={self.username!r}, password_env={self.password_env!r}"
            )
        _check_transport(where, self.timeout_s, self.retries, self.backoff_s)


SinkConfig = LogSinkConfig | HttpSinkConfig | EmailSinkConfig


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The rules and the sinks of a workspace; every sink a rule names exists."""

    rules: tuple[AlertRule, ...] = ()
    sinks: Mapping[str, SinkConfig] = field(default_factory=lambda: dict(_DEFAULT_SINKS))

    def __post_init__(self) -> None:
        for rule in self.rules:
            for sink in rule.sinks:
                if sink not in self.sinks:
                    guess = closest(sink, list(self.sinks))
                    hint = f" (did you mean {guess!r}?)" if guess else ""
                    raise InvalidInput(
                        f"alert rule {rule.name!r} sends to sink {sink!r}{hint}, which is not "
                        f"defined; defined: {', '.join(sorted(self.sinks))}. Add an "
                        f"[alerts.sinks.{sink}] table or fix the name"
                    )

    def rules_for(self, deployment: str) -> tuple[AlertRule, ...]:
        return tuple(r for r in self.rules if r.applies_to(deployment))


_DEFAULT_SINKS: Mapping[str, SinkConfig] = {"log": LogSinkConfig("log")}


def alerts_from_config(table: Mapping[str, Any], source_name: str = "loopml.toml") -> AlertsConfig:
    """Read the ``[alerts]`` table: ``rules`` (an array of tables) and ``sinks``."""
    reader = _Reader(source_name)
    if not isinstance(table, Mapping):
        reader.fail("alerts", "a table, written [alerts] or [[alerts.rules]]", table)
    reader.check_keys(table, ALERTS_KEYS, "alerts")
    rules = rules_from_config(table.get("rules", []), source_name)
    sinks = sinks_from_config(table.get("sinks", {}), source_name)
    return reader.wrap("alerts", lambda: AlertsConfig(rules, sinks))  # type: ignore[no-any-return]


def rules_from_config(
    data: Sequence[Any], source_name: str = "loopml.toml"
) -> tuple[AlertRule, ...]:
    """Read the ``[[alerts.rules]]`` tables; rule names must be unique."""
    reader = _Reader(source_name)
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Sequence):
        reader.fail("alerts.rules", "an array of tables, each written [[alerts.rules]]", data)
    rules: list[AlertRule] = []
    for number, raw in enumerate(data, start=1):
        path = f"alerts.rules[{number}]"
        table = reader.table(raw, path)
        reader.check_keys(table, RULE_KEYS, path)
        for key, hint in _REQUIRED.items():
            if key not in table:
                reader.error(path, f"missing key {key!r}: {hint}")
        sinks = table.get("sinks", list(DEFAULT_SINKS))
        if not isinstance(sinks, list):
            reader.fail(f"{path}.sinks", 'a list of sink names, e.g. ["log"]', sinks)
        rule = reader.wrap(path, lambda t=table, s=sinks: AlertRule(**{**t, "sinks": tuple(s)}))
        if any(r.name == rule.name for r in rules):
            reader.error(path, f"a rule named {rule.name!r} is defined twice; rename one")
        rules.append(rule)
    return tuple(rules)


def sinks_from_config(
    table: Mapping[str, Any], source_name: str = "loopml.toml"
) -> dict[str, SinkConfig]:
    """Read the ``[alerts.sinks.NAME]`` tables; a ``log`` sink is added if none is named so."""
    reader = _Reader(source_name)
    sinks: dict[str, SinkConfig] = dict(_DEFAULT_SINKS)
    for name, raw in reader.table(table, "alerts.sinks").items():
        path = f"alerts.sinks.{name}"
        reader.wrap(path, validate_identifier, "sink name", name)
        spec = dict(reader.table(raw, path))
        kind = spec.pop("type", None)
        if kind not in [t.value for t in SinkType]:
            reader.fail(f"{path}.type", '"webhook", "slack", "email" or "log"', kind)
        sinks[name] = reader.sink(path, name, SinkType(kind), spec)
    return sinks


def validate_webhook_url(url: object, where: str = "webhook") -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"{where}: url must be a non-empty string, got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port, raising ValueError when malformed
    except ValueError as exc:
        raise InvalidInput(f"{where}: url {url!r} is malformed ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(
            f"{where}: url {url!r} must start with https:// (or http://); other schemes "
            f"({parts.scheme or 'none'}) are refused"
        )
    if not parts.hostname:
        raise InvalidInput(f"{where}: url {url!r} has no host; e.g. https://hooks.example.com/x")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            f"{where}: url {url!r} carries credentials before the host; remove them (use "
            "secret_env to sign requests, or url_env to keep a secret URL out of the file)"
        )
    if _has_space(url):
        raise InvalidInput(f"{where}: url {url!r} holds spaces or control characters")
    return url


class _Reader(TomlReader):
    """Type checks of the parsed TOML, with messages naming the file and the key path."""

    def __init__(self, source_name: str) -> None:
        super().__init__(source_name, _DOCS)

    def sink(self, path: str, name: str, kind: SinkType, spec: dict[str, Any]) -> SinkConfig:
        if kind is SinkType.LOG:
            self.check_keys(spec, ("path",), path)
            path_value = spec.get("path")
            if path_value is not None and (not isinstance(path_value, str) or not path_value):
                self.fail(f"{path}.path", "a file path relative to the workspace", path_value)
            return LogSinkConfig(name, path_value)
        if kind is SinkType.EMAIL:
            keys = [f for f in EmailSinkConfig.__dataclass_fields__ if f not in ("name", "type")]
            allowed = ["from" if k == "sender" else k for k in keys]
            self.check_keys(spec, allowed, path)
            for key in ("host", "from", "to"):
                if key not in spec:
                    self.error(path, f"missing key {key!r}; an email sink needs host, from, to")
            to = spec["to"]
            spec["to"] = (to,) if isinstance(to, str) else to
            spec["sender"] = spec.pop("from")
            return self.wrap(path, lambda: EmailSinkConfig(name, **spec))  # type: ignore[no-any-return]
        allowed = [f for f in HttpSinkConfig.__dataclass_fields__ if f not in ("name", "type")]
        self.check_keys(spec, allowed, path)
        return self.wrap(path, lambda: HttpSinkConfig(name, kind, **spec))  # type: ignore[no-any-return]


def _check_env_name(where: str, key: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not _ENV_NAME.match(value)):
        raise InvalidInput(
            f"{where}: {key} must name an environment variable (letters, digits, '_'), "
            f'got {value!r}; e.g. {key} = "LOOPML_ALERT_SECRET"'
        )


def _check_transport(where: str, timeout_s: object, retries: object, backoff_s: object) -> None:
    if not _is_number(timeout_s) or not 0 < timeout_s <= MAX_TIMEOUT_S:  # type: ignore[operator]
        raise InvalidInput(
            f"{where}: timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got "
            f"{timeout_s!r}; a slow target must not hold the agent up"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise InvalidInput(
            f"{where}: retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}"
        )
    if not _is_number(backoff_s) or not 0 <= backoff_s <= MAX_TIMEOUT_S:  # type: ignore[operator]
        raise InvalidInput(
            f"{where}: backoff_s must be a number of seconds in [0, {MAX_TIMEOUT_S:g}], got "
            f"{backoff_s!r}"
        )


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _has_space(text: str) -> bool:
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text)
