"""The targets file: loaded and validated once, into frozen dataclasses.

Every error names the file and the key, on one line, with the fix. ``${VAR}`` in any
string is replaced from the environment; ``${VAR:-default}`` gives a default (an
empty default means "not set", so optional settings can be left to the environment).
"""

from __future__ import annotations

import os
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from croniter import croniter

from .backup import engine_backup_options
from .engines import all_engines, engine_for
from .errors import BadUrlError, ConfigError, MissingEnvVarError, UnsupportedEngineError
from .schema.model import parse_ignore

DEFAULT_CONFIG = "maintenance.yaml"
ALIGN_MODES = ("none", "additive", "full")
ON_DRIFT = ("verify", "maintain")
DEFAULT_IGNORE = ("alembic_version",)  # Alembic's table; each engine's own tables are added when the file loads
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")  # as Dagster checks an owner
_TEAM = re.compile(r"team:\S+")
_TAG_KEY = re.compile(r"([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_.-]{0,63}")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class EmailSettings:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False


@dataclass(frozen=True)
class AlertSettings:
    log_file: Path
    webhook_url: str | None = None
    email: EmailSettings | None = None
    ui_base_url: str = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class BackupSettings:
    dir: Path
    keep_last: int = 14
    keep_days: int = 30
    pin_pre_migration: bool = True
    fresh_within_hours: int = 26  # the newest verified backup older than this is stale (UI freshness, one alert)
    # each engine's own backup options (``backups.<engine name>``, read by the engine: ``Engine.backup_options``):
    # engine name -> the engine's value, handed back to the engine's ``backup`` as it is
    engine_options: dict[str, object] = field(default_factory=dict)

    def options_for(self, engine) -> object:
        """The backup options of ``engine`` (None: it takes none)."""
        return self.engine_options.get(engine.name)


@dataclass(frozen=True)
class UserCheck:
    name: str
    sql: str
    expect: object = 0


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    reference_url: str | None = None
    reference_metadata: str | None = None
    reference_schema: str | None = None  # PostgreSQL reference URL: the schema to read (None = its default)
    migrations: Path | None = None
    baseline_revision: str | None = None
    align: str = "additive"
    on_drift: str = "verify"
    ignore_tables: tuple[str, ...] = DEFAULT_IGNORE  # loaded from the targets file: with the engine's own tables
    checks: tuple[UserCheck, ...] = ()
    schema: str | None = None  # PostgreSQL schema (None = public)
    # how long one attempt of the migration waits for a lock (PostgreSQL: a table lock, SET LOCAL lock_timeout;
    # SQLite: the write lock) before it rolls back and tries again, up to lock_retries more times within
    # lock_deadline: an application is never queued behind the run for longer than one attempt's wait
    lock_timeout: str = "2s"
    lock_retries: int = 5
    lock_deadline: str = "60s"
    statement_timeout: str = "0"  # PostgreSQL: per statement limit during migrate ("0" = none)
    # what a dropped + added column pair is: ((table, old, new), ...) a rename (RENAME COLUMN keeps the values);
    # new None: really a drop and an add
    renames: tuple[tuple[str, str, str | None], ...] = ()
    # named objects left out of the comparison on both sides (``ignore:``; ``schema.model.parse_ignore``):
    # "index customers.ix_customers_full_name", "constraint orders.fk_x", "view v", ...; a "table t" entry is
    # in ignore_tables instead
    ignore: tuple[str, ...] = ()
    # who looks after it and how it is labelled in the Dagster catalog (``owners:``, ``tags:``): emails or
    # ``team:<name>``; key -> value (Dagster's tag rules, checked here so a bad one fails the load in one line)
    owners: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    engine_name: str = ""  # the engine of ``url``, resolved when the targets file loaded (empty: from the URL)

    @property
    def engine(self):
        """The target's engine (``engines``): named once when the targets file loaded, never parsed again from the
        URL."""
        from .engines import engine_named

        return engine_named(self.engine_name) if self.engine_name else engine_for(self.url)

    @property
    def lock_wait(self) -> tuple[float, int, float]:
        """(seconds one attempt waits for a lock, retries after the first, seconds all attempts may take)."""
        return duration_seconds(self.lock_timeout), self.lock_retries, duration_seconds(self.lock_deadline)

    @property
    def reference_label(self) -> str:
        from .dburl import mask_url

        return mask_url(self.reference_url) if self.reference_url else str(self.reference_metadata)


@dataclass(frozen=True)
class MaintenanceConfig:
    path: Path
    backups: BackupSettings
    reports_dir: Path
    alerts: AlertSettings
    targets: dict[str, Target] = field(default_factory=dict)
    schedule_cron: str = "0 2 * * *"
    schedule_timezone: str = "UTC"
    schedules_running: bool = True
    sensors_running: bool = True
    sensor_interval_seconds: int = 60
    # the restore drill (``drill:``): every night, after the verification, the newest verified backup of each target
    # restored into a scratch place and checked (``core/run/drill.py``); ``drill_cron`` in ``schedule_timezone``
    drill_enabled: bool = True
    drill_cron: str = "0 3 * * *"

    @property
    def root(self) -> Path:
        return self.path.parent

    def target(self, name: str) -> Target:
        try:
            return self.targets[name]
        except KeyError:
            raise ConfigError(
                f"unknown target {name!r}; {self.path} defines: {', '.join(self.targets) or 'no target'}"
            ) from None


def config_path(path: str | os.PathLike | None = None) -> Path:
    if path is None:
        path = os.environ.get("MAINTENANCE_CONFIG") or DEFAULT_CONFIG
    return Path(path).expanduser().resolve()


def load_config(path: str | os.PathLike | None = None) -> MaintenanceConfig:
    p = config_path(path)
    if not p.is_file():
        raise ConfigError(
            f"targets file {p} not found; create it (see README 'Configuration') or set MAINTENANCE_CONFIG"
        )
    try:
        raw = _safe_load(p.read_text(), p) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{p}: not valid YAML{line}; fix the syntax") from None
    return _Parser(p).parse(_expand(raw, p, "")) if isinstance(raw, dict) else _Parser(p).fail("", "must be a mapping")


# a targets file is a few hundred values; aliases (``&a`` / ``*a``) that expand past this are a bomb, not a config
MAX_EXPANDED_NODES = 100_000


def _safe_load(text: str, path: Path):
    """``yaml.safe_load`` that first counts what the aliases expand to (each alias counts as the whole node it
    repeats): nested aliases (``a: &a [x, x]; b: &b [*a, *a]; ...``) grow exponentially, and walking the result
    (``${VAR}`` expansion, validation) would hang the code location."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return None
    sizes: dict[int, int] = {}
    walking: set[int] = set()

    def size(n) -> int:
        known = sizes.get(id(n))
        if known is not None:
            return known
        if id(n) in walking:
            raise ConfigError(f"{path}: a YAML alias refers to a value that contains it (a recursive alias); "
                              "write the values out instead")
        walking.add(id(n))
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in n.value)
        else:
            total = 1
        walking.discard(id(n))
        sizes[id(n)] = total
        return total

    expanded = size(node)
    if expanded > MAX_EXPANDED_NODES:
        raise ConfigError(f"{path}: its YAML aliases expand to {expanded:,} values (more than "
                          f"{MAX_EXPANDED_NODES:,}); write the values out instead of nesting aliases (&name / *name)")
    return _construct(node)


def _construct(node):
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expand(value, path: Path, key: str):
    if isinstance(value, str):

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise MissingEnvVarError(
                f"{path}: {key or 'a value'} uses ${{{name}}} but environment variable {name} is not set; "
                f"export it or write ${{{name}:-default}}"
            )

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, path, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, None: 1.0}


def duration_seconds(text) -> float:
    """Seconds of a duration as PostgreSQL writes them (``500ms``, ``2s``, ``1min``, ``1h``; a bare number is
    seconds); ValueError otherwise."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _has_schemas(url: str) -> bool:
    try:
        return engine_for(url).has_schemas
    except BadUrlError:
        return True  # the url itself is reported with its own key


def drill_default_cron(schedule_cron: str) -> str:
    """The restore drill's default cron: the nightly verification's one hour later (``0 2 * * *`` -> ``0 3 * * *``),
    so the drill restores the backup the verification just made; a schedule whose hour is not one number (``*/6``,
    ``1,13``) is kept as it is (set ``drill.cron`` then)."""
    fields = str(schedule_cron).split()
    if len(fields) == 5 and fields[1].isdigit() and int(fields[1]) < 24:
        fields[1] = str((int(fields[1]) + 1) % 24)
        return " ".join(fields)
    return str(schedule_cron)


class _Parser:
    def __init__(self, path: Path):
        self.path = path
        self.root = path.parent

    def fail(self, key: str, problem: str):
        raise ConfigError(f"{self.path}: {key + ' ' if key else ''}{problem}")

    def section(self, raw, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(key, "must be a mapping")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            self.fail(
                f"{key}.{unknown[0]}" if key else unknown[0],
                f"is not a known key; allowed here: {', '.join(sorted(allowed))}",
            )
        for r in sorted(required):
            if raw.get(r) in (None, ""):
                self.fail(f"{key}.{r}" if key else r, "is missing; it is required")
        return raw

    def int_(self, raw: dict, key: str, name: str, default: int, minimum: int = 0) -> int:
        v = raw.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self.fail(f"{key}.{name}", f"must be a whole number >= {minimum}, got {v!r}")
        return v

    def duration_(self, raw: dict, key: str, name: str, default: str) -> str:
        v = str(raw.get(name, default))
        try:
            duration_seconds(v)
        except ValueError:
            self.fail(f"{key}.{name}", f"must be a duration such as 500ms, 2s or 1min, got {v!r}")
        return v

    def bool_(self, raw: dict, key: str, name: str, default: bool) -> bool:
        v = raw.get(name, default)
        if not isinstance(v, bool):
            self.fail(f"{key}.{name}", f"must be true or false, got {v!r}")
        return v

    def path_(self, value: str) -> Path:
        return (self.root / Path(value).expanduser()).resolve()

    def url_(self, value, key: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(key, "must be a database URL such as sqlite:///data/app.db")
        try:
            engine = engine_for(value)
        except UnsupportedEngineError as e:
            self.fail(key, f"names an engine this version does not support: {e}")
        except BadUrlError:
            self.fail(key, "is not a valid database URL; write e.g. sqlite:///data/app.db or "
                      "postgresql+psycopg://user@host/db")
        return engine.resolve_url(value, self.root)  # e.g. a relative SQLite path, against this file's folder

    def parse(self, raw: dict) -> MaintenanceConfig:
        top = self.section(raw, "", {"backups", "reports", "schedule", "alerts", "targets", "automation", "drill"},
                           {"targets"})
        engines = all_engines()
        b = self.section(top.get("backups"), "backups",
                         {"dir", "keep_last", "keep_days", "pin_pre_migration", "fresh_within_hours",
                          *(k for e in engines for k in (e.name, *e.legacy_backup_keys))})
        backups = BackupSettings(
            dir=self.path_(b.get("dir", "backups")),
            keep_last=self.int_(b, "backups", "keep_last", 14, 1),
            keep_days=self.int_(b, "backups", "keep_days", 30, 0),
            pin_pre_migration=self.bool_(b, "backups", "pin_pre_migration", True),
            fresh_within_hours=self.int_(b, "backups", "fresh_within_hours", 26, 1),
            engine_options={e.name: engine_backup_options(e, b, self.fail) for e in engines},
        )
        r = self.section(top.get("reports"), "reports", {"dir"})
        s = self.section(top.get("schedule"), "schedule", {"cron", "timezone"})
        cron = s.get("cron", "0 2 * * *")
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            self.fail("schedule.cron", f"{cron!r} is not a valid cron expression; e.g. \"0 2 * * *\"")
        tz = s.get("timezone", "UTC")
        try:
            zoneinfo.ZoneInfo(str(tz))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.fail("schedule.timezone", f"{tz!r} is not a known time zone; e.g. UTC or Europe/Berlin")
        auto = self.section(top.get("automation"), "automation",
                            {"schedules_running", "sensors_running", "sensor_interval_seconds"})
        drill = self.section(top.get("drill"), "drill", {"enabled", "cron"})
        drill_cron = drill.get("cron", drill_default_cron(cron))
        if not isinstance(drill_cron, str) or not croniter.is_valid(drill_cron):
            self.fail("drill.cron", f"{drill_cron!r} is not a valid cron expression; e.g. \"0 3 * * *\"")
        return MaintenanceConfig(
            path=self.path,
            backups=backups,
            reports_dir=self.path_(r.get("dir", "reports")),
            alerts=self.alerts(top.get("alerts")),
            targets=self.targets(top.get("targets")),
            schedule_cron=cron,
            schedule_timezone=str(tz),
            schedules_running=self.bool_(auto, "automation", "schedules_running", True),
            sensors_running=self.bool_(auto, "automation", "sensors_running", True),
            sensor_interval_seconds=self.int_(auto, "automation", "sensor_interval_seconds", 60, 1),
            drill_enabled=self.bool_(drill, "drill", "enabled", True),
            drill_cron=drill_cron,
        )

    def alerts(self, raw) -> AlertSettings:
        a = self.section(raw, "alerts", {"webhook_url", "email", "log_file", "ui_base_url"})
        email = None
        if a.get("email"):
            e = self.section(a["email"], "alerts.email",
                             {"host", "port", "sender", "to", "username", "password", "starttls"},
                             {"host", "sender", "to"})
            to = e["to"] if isinstance(e["to"], list) else [e["to"]]
            email = EmailSettings(
                host=str(e["host"]), port=self.int_(e, "alerts.email", "port", 25, 1), sender=str(e["sender"]),
                to=tuple(str(x) for x in to), username=e.get("username") or None,
                password=e.get("password") or None, starttls=self.bool_(e, "alerts.email", "starttls", False),
            )
        return AlertSettings(
            log_file=self.path_(a.get("log_file") or "alerts.jsonl"),
            webhook_url=a.get("webhook_url") or None,
            email=email,
            ui_base_url=str(a.get("ui_base_url") or "http://127.0.0.1:3000").rstrip("/"),
        )

    def targets(self, raw) -> dict[str, Target]:
        if not isinstance(raw, dict) or not raw:
            self.fail("targets", "must map at least one target name to its settings")
        out = {}
        for name, t in raw.items():
            key = f"targets.{name}"
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", str(name)):
                self.fail(key, "name may only hold letters, digits, '_', '.' and '-'")
            t = self.section(t, key, {"url", "reference", "migrations", "baseline_revision", "align", "on_drift",
                                      "ignore_tables", "checks", "schema", "lock_timeout", "lock_retries",
                                      "lock_deadline", "statement_timeout", "renames", "ignore", "owners",
                                      "tags"},
                             {"url", "reference"})
            ref = self.section(t["reference"], f"{key}.reference", {"url", "metadata", "schema"})
            if bool(ref.get("url")) == bool(ref.get("metadata")):
                self.fail(f"{key}.reference", "needs exactly one of url / metadata")
            if ref.get("schema") and (not ref.get("url") or not _has_schemas(ref["url"])):
                self.fail(f"{key}.reference.schema", "only applies to a PostgreSQL reference url (a SQLite file "
                          "has one schema; a MetaData names its tables' schemas itself); remove it")
            align = t.get("align", "additive")
            if align not in ALIGN_MODES:
                self.fail(f"{key}.align", f"must be one of {', '.join(ALIGN_MODES)}, got {align!r}")
            on_drift = t.get("on_drift", "verify")
            if on_drift not in ON_DRIFT:
                self.fail(f"{key}.on_drift", f"must be one of {', '.join(ON_DRIFT)}, got {on_drift!r}")
            ignore = t.get("ignore_tables", list(DEFAULT_IGNORE))
            if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
                self.fail(f"{key}.ignore_tables", "must be a list of table names")
            ignore, ignored = self.ignore_(t, key, ignore)
            checks = []
            for i, c in enumerate(t.get("checks") or []):
                c = self.section(c, f"{key}.checks[{i}]", {"name", "sql", "expect"}, {"name", "sql"})
                checks.append(UserCheck(name=str(c["name"]), sql=str(c["sql"]), expect=c.get("expect", 0)))
            renames = []
            raw_renames = t.get("renames") or {}
            if not isinstance(raw_renames, dict):
                self.fail(f"{key}.renames", "must map 'table.old_column' to the new column name (or null: not a "
                          "rename), e.g. {goals.age: dog_age}")
            for old, new in raw_renames.items():
                table, dot, column = str(old).rpartition(".")
                if not dot or not table or not column or (new is not None and not str(new).strip()):
                    self.fail(f"{key}.renames", f"{old!r}: write 'table.old_column: new_column' (or null: not a "
                              "rename), e.g. goals.age: dog_age")
                renames.append((table, column, None if new is None else str(new)))
            migrations = None
            if t.get("migrations"):
                migrations = self.path_(t["migrations"])
                if not (migrations / "env.py").is_file() and not migrations.is_dir():
                    self.fail(f"{key}.migrations", f"folder {migrations} does not exist; fix the path")
            baseline = t.get("baseline_revision")
            url = self.url_(t["url"], f"{key}.url")
            engine = engine_for(url)
            out[str(name)] = Target(
                name=str(name),
                url=url,
                engine_name=engine.name,
                reference_url=self.url_(ref["url"], f"{key}.reference.url") if ref.get("url") else None,
                reference_metadata=str(ref["metadata"]) if ref.get("metadata") else None,
                reference_schema=str(ref["schema"]) if ref.get("schema") else None,
                migrations=migrations,
                baseline_revision=str(baseline) if baseline is not None else None,
                align=align,
                on_drift=on_drift,
                ignore_tables=tuple(ignore) + tuple(n for n in engine.internal_tables if n not in ignore),
                checks=tuple(checks),
                schema=str(t["schema"]) if t.get("schema") else None,
                lock_timeout=self.duration_(t, key, "lock_timeout", "2s"),
                lock_retries=self.int_(t, key, "lock_retries", 5, 0),
                lock_deadline=self.duration_(t, key, "lock_deadline", "60s"),
                statement_timeout=str(t.get("statement_timeout", "0")),
                renames=tuple(renames),
                ignore=ignored,
                owners=self.owners_(t, key),
                tags=self.tags_(t, key),
            )
        return out

    def owners_(self, t: dict, key: str) -> tuple[str, ...]:
        """``owners:``: a list of emails or ``team:<name>`` (what Dagster's catalog accepts as an owner)."""
        raw = t.get("owners") or []
        if not isinstance(raw, list):
            self.fail(f"{key}.owners", "must be a list of emails or team:<name>, e.g. [dba@example.com, team:data]")
        for i, owner in enumerate(raw):
            if not isinstance(owner, str) or not (_EMAIL.fullmatch(owner) or _TEAM.fullmatch(owner)):
                self.fail(f"{key}.owners[{i}]", f"must be an email or team:<name>, got {owner!r}")
        return tuple(raw)

    def tags_(self, t: dict, key: str) -> tuple[tuple[str, str], ...]:
        """``tags:``: key -> value; keys ``[prefix/]name`` and values of at most 63 letters, digits, ``_ . -``
        (Dagster's rules for an asset's tags; a value may be empty: a label)."""
        raw = t.get("tags") or {}
        if not isinstance(raw, dict):
            self.fail(f"{key}.tags", "must map tag names to values, e.g. {tier: gold, pii: \"\"}")
        out = []
        for k, v in raw.items():
            value = "" if v is None else v
            if not isinstance(k, str) or not _TAG_KEY.fullmatch(k):
                self.fail(f"{key}.tags", f"{k!r} is not a tag name: up to 63 letters, digits, '_', '.' or '-' "
                          "(optionally prefix/name)")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or \
                    not _TAG_VALUE.fullmatch(str(value)):
                self.fail(f"{key}.tags.{k}", f"must be up to 63 letters, digits, '_', '.' or '-', got {v!r}")
            out.append((k, str(value)))
        return tuple(out)

    def ignore_(self, t: dict, key: str, ignore_tables: list) -> tuple[list, tuple[str, ...]]:
        """(ignore_tables with the ``table t`` entries of ``ignore:``, the other ``ignore:`` entries normalised)."""
        raw = t.get("ignore") or []
        if not isinstance(raw, list):
            self.fail(f"{key}.ignore", "must be a list of named objects, e.g. [index customers.ix_customers_full_name]")
        tables, named = list(ignore_tables), []
        for i, entry in enumerate(raw):
            try:
                kind, table, name = parse_ignore(entry if isinstance(entry, str) else "")
            except ValueError as e:
                self.fail(f"{key}.ignore[{i}]", str(e) if isinstance(entry, str) else
                          f"must be text such as 'index customers.ix_customers_full_name', got {entry!r}")
            if kind == "table":
                tables += [name] if name not in tables else []
            else:
                named.append(f"{kind} {table}.{name}" if table else f"{kind} {name}")
        return tables, tuple(named)
