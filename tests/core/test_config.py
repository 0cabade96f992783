"""The targets file: valid files load, every kind of mistake gives one line naming file and key."""

from __future__ import annotations

import textwrap

import pytest

from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ConfigError, MissingEnvVarError

GOOD = """
backups: {dir: bk, keep_last: 3}
schedule: {cron: "0 2 * * *", timezone: Europe/Berlin}
alerts:
  webhook_url: ${HOOK:-}
  email: {host: 127.0.0.1, port: 2525, sender: a@example.com, to: [b@example.com], password: "${SMTP_PW:-}"}
targets:
  app:
    url: sqlite:///data/app.db
    reference: {metadata: "models:Base.metadata"}
    checks:
      - {name: positive, sql: "SELECT 0", expect: 0}
"""


def write(tmp_path, text: str):
    p = tmp_path / "maintenance.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_file_loads_with_paths_resolved_against_its_folder(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    t = cfg.targets["app"]
    assert t.url == f"sqlite:///{tmp_path / 'data' / 'app.db'}"
    assert t.reference_metadata == "models:Base.metadata" and t.reference_url is None
    assert cfg.backups.dir == tmp_path / "bk" and cfg.backups.keep_last == 3 and cfg.backups.keep_days == 30
    assert cfg.alerts.webhook_url is None and cfg.alerts.email.password is None  # empty defaults = unset
    assert cfg.alerts.email.port == 2525 and cfg.schedule_timezone == "Europe/Berlin"
    assert t.align == "additive" and t.ignore_tables == ("alembic_version", "sqlite_sequence")
    assert t.checks[0].name == "positive"


def test_env_variables_are_substituted(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK", "http://127.0.0.1:9/hook")
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.alerts.webhook_url == "http://127.0.0.1:9/hook"


def test_config_path_from_environment(tmp_path, monkeypatch):
    p = write(tmp_path, GOOD)
    monkeypatch.setenv("MAINTENANCE_CONFIG", str(p))
    assert load_config().path == p


@pytest.mark.parametrize(
    "text, must_name",
    [
        (GOOD.replace("keep_last: 3", "keep_lats: 3"), "backups.keep_lats"),
        (GOOD.replace("    url: sqlite:///data/app.db\n", ""), "targets.app.url"),
        (GOOD.replace('"0 2 * * *"', '"0 25 * * *"'), "schedule.cron"),
        (GOOD.replace("Europe/Berlin", "Mars/Olympus"), "schedule.timezone"),
        (GOOD.replace("    checks:", "    align: sideways\n    checks:"), "targets.app.align"),
        (GOOD.replace('{metadata: "models:Base.metadata"}', '{}'), "targets.app.reference"),
        (GOOD.replace("targets:", "targetz:"), "targetz"),
        (GOOD.replace("url: sqlite:///data/app.db", "url: 'not a url'"), "targets.app.url"),
        (GOOD + "\n  : [\n", "YAML"),
        (GOOD.replace('{metadata: "models:Base.metadata"}', '{metadata: "models:Base.metadata", schema: dev}'),
         "targets.app.reference.schema"),
        (GOOD.replace('{metadata: "models:Base.metadata"}', '{url: "sqlite:///dev.db", schema: dev}'),
         "targets.app.reference.schema"),
    ],
    ids=["unknown-key", "missing-url", "bad-cron", "bad-timezone", "bad-align", "no-reference", "unknown-top",
         "bad-url", "bad-yaml", "reference-schema-with-metadata", "reference-schema-with-sqlite"],
)
def test_bad_file_gives_one_line_naming_file_and_key(tmp_path, text, must_name):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(p) in msg and must_name in msg


def test_missing_env_variable_names_it(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR_X", raising=False)
    p = write(tmp_path, GOOD.replace("${HOOK:-}", "${NO_SUCH_VAR_X}"))
    with pytest.raises(MissingEnvVarError) as e:
        load_config(p)
    assert "NO_SUCH_VAR_X" in str(e.value) and "alerts.webhook_url" in str(e.value) and str(p) in str(e.value)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(e.value) and "MAINTENANCE_CONFIG" in str(e.value)


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["a0: &a0 [x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n" + GOOD.lstrip("\n")


def test_a_yaml_alias_bomb_is_refused_in_one_line_without_expanding_it(tmp_path):
    # 8 levels x 9 aliases: 9**8 = 43 million values once expanded (the ${VAR} walk never finished)
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, _alias_bomb(8, 9)))
    msg = str(e.value)
    assert "\n" not in msg and "aliases expand to" in msg and "maintenance.yaml" in msg


def test_a_recursive_yaml_alias_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="recursive alias"):
        load_config(write(tmp_path, "loop: &loop [*loop]\n" + GOOD.lstrip("\n")))


def test_aliases_that_stay_small_still_load(tmp_path):
    text = GOOD.replace("checks:\n      - {name: positive, sql: \"SELECT 0\", expect: 0}",
                        "checks: &checks\n      - {name: positive, sql: \"SELECT 0\", expect: 0}")
    text += "  app2:\n    url: sqlite:///data/app2.db\n    reference: {metadata: \"models:Base.metadata\"}\n" \
            "    checks: *checks\n"
    cfg = load_config(write(tmp_path, text))
    assert [c.name for c in cfg.targets["app2"].checks] == ["positive"]
