"""Settings: one frozen object, loaded once, remembering where each value came from.

Precedence, lowest to highest: built-in defaults < ``loopml.toml`` of the workspace <
``LOOPML_*`` environment variables < command-line flags (or SDK arguments). This is the
only module that reads environment variables or configuration files. ``loopml config
show`` prints every value with its source.

A workspace is a folder holding ``loopml.toml``; commands find it by walking up from the
current folder, like git. ``LOOPML_WORKSPACE`` or ``--workspace`` point at one directly.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.domain.errors import ConfigError

CONFIG_FILE = "loopml.toml"
STATE_DIR = ".loopml"


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is named in each source, its type and its default."""

    name: str
    section: str
    type: type
    default: Callable[[Path], Any]
    help: str

    @property
    def env(self) -> str:
        return f"LOOPML_{self.name.upper()}"


def _default_actor(_root: Path) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


OPTIONS: tuple[Option, ...] = (
    Option(
        "metadata_url",
        "store",
        str,
        lambda root: f"sqlite:///{root / STATE_DIR / 'loopml.db'}",
        "SQLAlchemy URL of the metadata database (sqlite:///PATH or postgresql://...)",
    ),
    Option(
        "artifact_url",
        "store",
        str,
        lambda root: str(root / STATE_DIR / "artifacts"),
        "where artifact bytes live: a folder, or an fsspec URL such as s3://bucket/prefix",
    ),
    Option(
        "busy_timeout_seconds",
        "store",
        float,
        lambda _: 30.0,
        "how long a SQLite writer waits for the write lock before failing",
    ),
    Option("actor", "user", str, _default_actor, "the name recorded as 'who' in the audit trail"),
    Option(
        "metric_flush_points",
        "tracking",
        int,
        lambda _: 10_000,
        "buffered metric points that trigger a write",
    ),
    Option(
        "metric_flush_seconds",
        "tracking",
        float,
        lambda _: 1.0,
        "longest time a logged metric point waits in memory before it is written",
    ),
    Option(
        "capture_code",
        "tracking",
        bool,
        lambda _: True,
        "record the git commit, branch and uncommitted diff hash of each run",
    ),
    Option("host", "serve", str, lambda _: "127.0.0.1", "the address `loopml serve` listens on"),
    Option("port", "serve", int, lambda _: 8000, "the port `loopml serve` listens on"),
    Option("workers", "serve", int, lambda _: 1, "server worker processes"),
    Option(
        "poll_seconds",
        "serve",
        float,
        lambda _: 0.5,
        "how often a running server checks for deployment changes",
    ),
    Option(
        "max_body_mb", "serve", float, lambda _: 10.0, "the largest request body the server takes"
    ),
    Option(
        "model_cache",
        "serve",
        bool,
        lambda _: True,
        "keep an authenticated local copy of each model loaded through skops, so the next "
        "start loads it without skops",
    ),
)
_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True, slots=True)
class Settings:
    root: Path
    metadata_url: str
    artifact_url: str
    busy_timeout_seconds: float
    actor: str
    metric_flush_points: int
    metric_flush_seconds: float
    capture_code: bool
    host: str
    port: int
    workers: int
    poll_seconds: float
    max_body_mb: float
    model_cache: bool
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # The raw [gates] table of loopml.toml; the gate policy parser names its keys.
    gates: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # The raw [pipeline] table: `source` ("file.py:name") and `params` for `loopml run`.
    pipeline: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # The raw [check] table: defaults of `loopml check` (model, data, label, schema...).
    check: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # The raw [monitor] table: one sub-table per monitored deployment (docs/monitoring.md).
    monitor: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # The raw [alerts] table: `rules` and `sinks` (docs/alerts.md).
    alerts: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def items(self) -> list[tuple[str, object, str]]:
        """(name, value, source) for every setting, for display."""
        rows: list[tuple[str, object, str]] = [("root", self.root, self.sources.get("root", ""))]
        rows += [
            (o.name, getattr(self, o.name), self.sources.get(o.name, "default")) for o in OPTIONS
        ]
        return rows


def find_workspace(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``loopml.toml``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def load_settings(
    workspace: Path | str | None = None,
    *,
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    require: bool = True,
) -> Settings:
    """Build Settings from every source. ``workspace`` wins over LOOPML_WORKSPACE and the
    upward search. With ``require=False`` a missing workspace means "use ``cwd``"."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    root, root_source = _locate(workspace, env, cwd)
    if root is None:
        if require:
            raise ConfigError(
                f"no loopml workspace in {cwd} or any folder above it (looked for "
                f"{CONFIG_FILE}); run `loopml init` here, or pass --workspace PATH"
            )
        root, root_source = cwd.resolve(), "current folder"
    file_values, tables = _read_file(root / CONFIG_FILE)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {"root": root_source}
    for option in OPTIONS:
        value, source = option.default(root), "default"
        if option.name in file_values:
            value, source = _coerce(option, file_values[option.name], CONFIG_FILE), CONFIG_FILE
            if option.name.endswith("_url"):
                value = _resolve_local(root, value)
        if option.env in env:
            value, source = _coerce(option, env[option.env], option.env), f"env {option.env}"
        if flags and flags.get(option.name) is not None:
            value, source = _coerce(option, flags[option.name], "flag"), "flag"
        values[option.name] = value
        sources[option.name] = source
    return Settings(root=root, sources=sources, **tables, **values)


def _locate(
    workspace: Path | str | None, env: Mapping[str, str], cwd: Path
) -> tuple[Path | None, str]:
    if workspace is not None:
        return _existing(Path(workspace), "flag"), "flag"
    if env.get("LOOPML_WORKSPACE"):
        return _existing(Path(env["LOOPML_WORKSPACE"]), "LOOPML_WORKSPACE"), "env LOOPML_WORKSPACE"
    found = find_workspace(cwd)
    return found, f"found {CONFIG_FILE} above {cwd}" if found else ""


def _existing(path: Path, source: str) -> Path:
    path = path.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"workspace {str(path)!r} (from {source}) is a file, not a folder")
    return path


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options set in ``path`` (flat, by name), and its raw ``[gates]`` and
    ``[pipeline]`` tables (by name)."""
    if not path.is_file():
        return {}, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}. Fix the file or restore it from git"
        ) from exc
    flat: dict[str, Any] = {}
    for option in OPTIONS:
        section = data.get(option.section, {})
        if isinstance(section, dict) and option.name in section:
            flat[option.name] = section[option.name]
    known = {o.section for o in OPTIONS} | {"pipeline", "gates", "check", "monitor", "alerts"}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {', '.join(map(repr, unknown))}; "
            f"known sections are {', '.join(sorted(known))}"
        )
    for name, section in data.items():
        if name in {o.section for o in OPTIONS} and isinstance(section, dict):
            extra = [k for k in section if k not in _BY_NAME or _BY_NAME[k].section != name]
            if extra:
                raise ConfigError(
                    f"{path}: unknown setting(s) {', '.join(map(repr, extra))} in [{name}]; "
                    f"known: {', '.join(o.name for o in OPTIONS if o.section == name)}"
                )
    tables: dict[str, Any] = {}
    raw_tables = (
        ("gates", "gates"),
        ("pipeline", "pipelines"),
        ("check", "check"),
        ("monitor", "monitoring"),
        ("alerts", "alerts"),
    )
    for name, doc in raw_tables:
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table, got {table!r}; see docs/{doc}.md")
        tables[name] = table
    return flat, tables


def _coerce(option: Option, raw: object, source: str) -> Any:
    expected = option.type.__name__
    try:
        if option.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(raw, bool):
            raise ValueError(raw)
        value = option.type(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting {option.name} from {source} must be a {expected}, got {raw!r}"
        ) from None
    if option.type in (int, float) and value <= 0:
        raise ConfigError(f"setting {option.name} from {source} must be > 0, got {raw!r}")
    return value


def _resolve_local(root: Path, value: str) -> str:
    """Relative paths in loopml.toml are relative to the workspace, not the shell."""
    if "://" in value:
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
            return f"sqlite:///{root / value[len('sqlite:///') :]}"
        return value
    return str(root / value) if not Path(value).is_absolute() else value


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file of the metadata URL, or None for any other database (and for URL
    forms the lean readers leave to SQLAlchemy, such as ``?`` options)."""
    url = settings.metadata_url
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    return Path(url[len("sqlite:///") :])
