"""Identifiers are data, not Markdown: a real SQLite database whose tables, columns, indexes and check are named with
newlines, ``#``, ``[x](y)``, ``<script>``, backticks and ``|``, and a reference that differs, so the names are in
the drift, the changes, the checks and the SQL of a maintain run (``pipeline.run_job``, and one Dagster run for
the metadata). The Markdown is parsed with a real parser (markdown-it): the report has no heading but its own, no
link, image or HTML a name put there, the names show as themselves, and its SQL block holds the statements that
ran, byte for byte. So does every Markdown metadata value of the Dagster run."""

from __future__ import annotations

import sqlite3

import dagster as dg
from markdown_it import MarkdownIt

from targets import write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.orchestration.definitions import build_definitions

TABLE = "evil\n\n## ✅ SUCCESS — all checks passed\n\n[click](http://x)"
COLUMN = "<script>alert('c')</script> `tick` | pipe # [x](y) ![i](http://x/i.png)"
NEW_COLUMN = "new\n## col *bold* _u_ <b>b</b> ``` fence & www.x.com"
INDEX = "ix\n# heading | `a``b` <img src=x onerror=alert(1)>"
NEW_TABLE = "<b>new</b>\n\n# made |x| [y](javascript:alert(1))"
CHECK = "check [x](http://x)\n# h <i>i</i> | `c`"

OWN_HEADINGS = {"Summary", "Error", "Restored", "Drift found", "Compared with the reference", "Planned (not applied)",
                "Changes applied", "Refused", "Verification", "Before vs after", "Timeline", "Backups",
                "What it cost the application"}


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _databases(folder) -> None:
    folder.mkdir()
    live = sqlite3.connect(folder / "live.db")
    live.executescript(f"CREATE TABLE {q(TABLE)} (id INTEGER PRIMARY KEY, {q(COLUMN)} TEXT);")
    live.executemany(f"INSERT INTO {q(TABLE)} ({q(COLUMN)}) VALUES (?)", [("a",), ("b|c",), ("<script>",)])
    live.commit()
    live.close()
    ref = sqlite3.connect(folder / "ref.db")
    ref.executescript(f"""
        CREATE TABLE {q(TABLE)} (id INTEGER PRIMARY KEY, {q(COLUMN)} TEXT, {q(NEW_COLUMN)} TEXT);
        CREATE INDEX {q(INDEX)} ON {q(TABLE)} ({q(COLUMN)});
        CREATE TABLE {q(NEW_TABLE)} (id INTEGER PRIMARY KEY, {q(COLUMN)} TEXT);""")
    ref.close()


def _config(tmp_path):
    _databases(tmp_path / "data")
    check = {"name": CHECK, "expect": 0, "sql": f"SELECT count(*) FROM {q(TABLE)} WHERE {q(COLUMN)} = 'none|<x>'"}
    return load_config(write_config(tmp_path, {"goals": {
        "url": "sqlite:///data/live.db", "reference": {"url": "sqlite:///data/ref.db"}, "checks": [check]}}))


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _tokens(md: str):
    """Every token, inline children included."""
    for t in _parser().parse(md):
        yield t
        yield from t.children or []


def _headings(md: str) -> list[str]:
    tokens = _parser().parse(md)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def assert_inert(md: str, ui: str | None = None) -> None:
    """No link, image or HTML in ``md`` (but a link to the run's page ``ui``), no heading but the report's own."""
    for t in _tokens(md):
        assert t.type not in ("image", "html_inline", "html_block"), (t.type, t.content)
        if t.type == "link_open":
            assert ui is not None and str(t.attrGet("href")).startswith(ui), t.attrGet("href")
    for h in _headings(md):
        assert h.startswith("Database maintenance report — ") or h in OWN_HEADINGS, h


def _visible(name: str) -> str:
    return name.replace("\n", "\\n")


def _sql_blocks(md: str) -> list[str]:
    return [t.content for t in _parser().parse(md) if t.type == "fence" and t.info.strip() == "sql"]


def assert_holds(block: str, statements: list[str]) -> None:
    """``block`` is the statements, each whole and in order, with only ``;`` and line ends between them."""
    rest = block
    for s in statements:
        at = rest.index(s)
        assert set(rest[:at]) <= {";", "\n"}, rest[:at]
        rest = rest[at + len(s):]
    assert set(rest) <= {";", "\n"}, rest


def test_a_report_shows_hostile_names_as_text_and_its_sql_byte_for_byte(tmp_path):
    config = _config(tmp_path)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    md = open(report["report_paths"]["markdown"]).read()
    assert_inert(md)
    headings = _headings(md)
    assert headings[0] == "Database maintenance report — goals" and headings.count(headings[0]) == 1
    # the names are in drift, changes, checks and before/after, shown as themselves (a newline as \n)
    code = {t.content for t in _tokens(md) if t.type == "code_inline"}
    assert _visible(TABLE) in code and f"{_visible(TABLE)}.{_visible(NEW_COLUMN)}" in code
    assert _visible(NEW_TABLE) in code
    text = "".join(t.content for t in _tokens(md) if t.type == "text")
    assert _visible(CHECK) in text  # the check's name in Verification
    # the SQL block holds what ran, and it did run: the new column, index and table are there
    statements = report["sql"]
    assert any(INDEX in s for s in statements) and any(NEW_COLUMN in s for s in statements)
    (block,) = _sql_blocks(md)
    assert_holds(block, statements)
    live = sqlite3.connect(tmp_path / "data" / "live.db")
    names = {r[0] for r in live.execute("SELECT name FROM sqlite_master")}
    live.close()
    assert {TABLE, INDEX, NEW_TABLE} <= names


def _markdown_metadata(result) -> dict[str, list[str]]:
    """Every Markdown metadata value of a run's events, by key: step outputs, materializations, observations,
    check evaluations."""
    out: dict[str, list[str]] = {}
    for e in result.all_events:
        data = e.event_specific_data
        for meta in (getattr(data, "metadata", None),
                     getattr(getattr(data, "materialization", None), "metadata", None),
                     getattr(getattr(data, "asset_observation", None), "metadata", None)):
            for key, value in (meta or {}).items():
                if isinstance(value, dg.MarkdownMetadataValue):
                    out.setdefault(key, []).append(value.value)
    return out


def test_the_dagster_runs_markdown_metadata_shows_hostile_names_as_text(tmp_path):
    config = _config(tmp_path)
    defs = build_definitions(config)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("maintain_database").execute_in_process(
            partition_key="goals", instance=instance, raise_on_error=False)
    assert result.success
    found = _markdown_metadata(result)
    assert {"changes", "report", "sql"} <= set(found), sorted(found)
    ui = config.alerts.ui_base_url
    for key, values in found.items():
        for md in values:
            assert_inert(md, ui)
            if key != "report":
                assert _headings(md) == [], (key, md)
    # the schema change's list names the changes as text: one list item each, nothing else
    for md in found["changes"]:
        tokens = _parser().parse(md)
        items = [t for t in tokens if t.type == "list_item_open"]
        paragraphs = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "paragraph_open"]
        assert len(items) == len(paragraphs) >= 3
        rendered = "".join(c.content for t in tokens for c in (t.children or []) if c.type == "text")
        assert _visible(TABLE) in rendered and _visible(NEW_TABLE) in rendered
    # a user check's SQL is shown as the targets file has it
    assert any(config.target("goals").checks[0].sql in block for md in found["sql"] for block in _sql_blocks(md))
