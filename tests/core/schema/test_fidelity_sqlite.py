"""No silent difference on SQLite: each object kind x {add, drop, change}, as a table of cases.

Every case asserts, against an independent judge (``schema_judges.sqlite_judge``: SQLite's pragmas and its
``sqlite_master.sql``, normalised by plain rules, not the product's snapshot):

* the two schemas really differ, and the product's diff names the difference (of the expected kind) and
  ``schema_matches_reference`` fails;
* ``align: full`` makes them equal by the judge, every row of the kept tables kept (or refuses with a reason and
  leaves the file bytewise unchanged, when the product cannot align it);
* ``align: additive`` aligns it when every change is additive, and otherwise refuses and changes nothing.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("sqlite_cases", "schema_judges")

from maintenance_pipeline.core.errors import DestructiveChangeRefusedError, UnalignableChangeError  # noqa: E402
from maintenance_pipeline.core.verify.checks import verify_target  # noqa: E402
from schema_judges import sqlite_judge  # noqa: E402
from sqlite_cases import Case  # noqa: E402

T = "CREATE TABLE t (id INTEGER PRIMARY KEY, a INT, s TEXT{cols}){opts};"
ROWS = "INSERT INTO t (id, a, s) VALUES (1, 5, 'x'), (2, 20, 'Y'), (3, NULL, NULL);"


def t(cols: str = "", opts: str = "", after: str = "") -> str:
    return T.format(cols=cols, opts=opts) + after


# (id, current, reference, kinds the diff must name, "aligned" | "refused")
CASES = [
    ("check-add", t(), t(", CONSTRAINT ck_a CHECK (a > 0)"), {"add_check"}, "aligned"),
    ("check-drop", t(", CONSTRAINT ck_a CHECK (a > 0)"), t(), {"drop_check"}, "aligned"),
    ("check-change", t(", CONSTRAINT ck_a CHECK (a > 0)"), t(", CONSTRAINT ck_a CHECK (a > 1)"),
     {"add_check", "drop_check"}, "aligned"),
    ("column-check-add", T.format(cols="", opts="").replace("a INT", "a INT CHECK (a < 100)"), t(), {"drop_check"},
     "aligned"),
    ("strict-add", t(), t(opts=" STRICT"), {"alter_table"}, "aligned"),
    ("strict-drop", t(opts=" STRICT"), t(), {"alter_table"}, "aligned"),
    ("without-rowid-add", "CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY, a INT, s TEXT);",
     "CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY, a INT, s TEXT) WITHOUT ROWID;", {"alter_table"}, "aligned"),
    ("generated-virtual-add", t(), t(", g INT GENERATED ALWAYS AS (a * 2) VIRTUAL"), {"add_column"}, "aligned"),
    ("generated-stored-add", t(), t(", g INT GENERATED ALWAYS AS (a * 2) STORED"), {"add_column"}, "aligned"),
    ("generated-change", t(", g INT GENERATED ALWAYS AS (a * 2) VIRTUAL"),
     t(", g INT GENERATED ALWAYS AS (a * 3) VIRTUAL"), {"alter_column"}, "aligned"),
    ("generated-virtual-to-stored", t(", g INT GENERATED ALWAYS AS (a * 2) VIRTUAL"),
     t(", g INT GENERATED ALWAYS AS (a * 2) STORED"), {"alter_column"}, "aligned"),
    ("generated-to-plain", t(", g INT GENERATED ALWAYS AS (a * 2) STORED"), t(", g INT"), {"alter_column"},
     "aligned"),
    ("collation-change", t(), t().replace("s TEXT", "s TEXT COLLATE NOCASE"), {"alter_column"}, "aligned"),
    ("pk-not-null", "CREATE TABLE k (code TEXT PRIMARY KEY, v INT); INSERT INTO k VALUES ('a', 1);",
     "CREATE TABLE k (code TEXT NOT NULL PRIMARY KEY, v INT);", {"alter_column"}, "aligned"),
    ("partial-index-where", t(after="CREATE INDEX ix ON t (a) WHERE a > 0;"),
     t(after="CREATE INDEX ix ON t (a) WHERE a > 10;"), {"add_index", "drop_index"}, "aligned"),
    ("full-to-partial-index", t(after="CREATE INDEX ix ON t (a);"), t(after="CREATE INDEX ix ON t (a) WHERE a > 0;"),
     {"add_index", "drop_index"}, "aligned"),
    ("expression-index", t(after="CREATE INDEX ix ON t (lower(s));"), t(after="CREATE INDEX ix ON t (upper(s));"),
     {"add_index", "drop_index"}, "aligned"),
    ("desc-index", t(after="CREATE INDEX ix ON t (a);"), t(after="CREATE INDEX ix ON t (a DESC);"),
     {"add_index", "drop_index"}, "aligned"),
    ("fk-deferred", t(", pid INT REFERENCES p (id)", after="CREATE TABLE p (id INTEGER PRIMARY KEY);"),
     t(", pid INT REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED", after="CREATE TABLE p (id INTEGER PRIMARY KEY);"),
     {"add_foreign_key", "drop_foreign_key"}, "aligned"),
    ("table-fk-deferred", t(", pid INT, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id)",
                            after="CREATE TABLE p (id INTEGER PRIMARY KEY);"),
     t(", pid INT, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED",
       after="CREATE TABLE p (id INTEGER PRIMARY KEY);"), {"add_foreign_key", "drop_foreign_key"}, "aligned"),
    ("autoincrement", t(), t().replace("id INTEGER PRIMARY KEY", "id INTEGER PRIMARY KEY AUTOINCREMENT"),
     {"alter_table"}, "aligned"),
    ("on-conflict", t(), t().replace("s TEXT", "s TEXT UNIQUE ON CONFLICT REPLACE"), {"alter_table"}, "aligned"),
    ("virtual-table-add", t(), t(after="CREATE VIRTUAL TABLE docs USING fts5(body);"), {"add_object"}, "aligned"),
    ("virtual-table-drop", t(after="CREATE VIRTUAL TABLE docs USING fts5(body); INSERT INTO docs VALUES ('x');"),
     t(), {"drop_object"}, "aligned"),
    ("view-add", t(), t(after="CREATE VIEW v AS SELECT a FROM t;"), {"add_object"}, "aligned"),
    ("view-drop", t(after="CREATE VIEW v AS SELECT a FROM t;"), t(), {"drop_object"}, "aligned"),
    ("view-change", t(after="CREATE VIEW v AS SELECT a FROM t;"), t(after="CREATE VIEW v AS SELECT a, s FROM t;"),
     {"alter_object"}, "aligned"),
    ("trigger-add", t(after="CREATE TABLE log (m TEXT);"),
     t(after="CREATE TABLE log (m TEXT); CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.s); "
             "END;"), {"add_object"}, "aligned"),
    ("trigger-change", t(after="CREATE TABLE log (m TEXT); CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
                               "INSERT INTO log VALUES (new.s); END;"),
     t(after="CREATE TABLE log (m TEXT); CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); "
             "END;"), {"alter_object"}, "aligned"),
    # names SQLite keeps: an index's (DROP INDEX + CREATE INDEX), a constraint's in the CREATE TABLE text (a rebuild)
    ("index-name", t(after="CREATE INDEX ix_old ON t (a);"), t(after="CREATE INDEX ix_new ON t (a);"), {"rename_index"},
     "aligned"),
    ("index-names-swapped", t(after="CREATE INDEX ix_one ON t (a); CREATE INDEX ix_two ON t (s);"),
     t(after="CREATE INDEX ix_two ON t (a); CREATE INDEX ix_one ON t (s);"), {"rename_index"}, "aligned"),
    ("unique-name", t(", CONSTRAINT uq_a UNIQUE (a)"), t(", CONSTRAINT uq_a_renamed UNIQUE (a)"), {"rename_constraint"},
     "aligned"),
    ("unique-named", t(", UNIQUE (a)"), t(", CONSTRAINT uq_a UNIQUE (a)"), {"rename_constraint"}, "aligned"),
    ("fk-name", t(", pid INT CONSTRAINT fk_old REFERENCES p (id)", after="CREATE TABLE p (id INTEGER PRIMARY KEY);"),
     t(", pid INT, CONSTRAINT fk_new FOREIGN KEY (pid) REFERENCES p (id)",
       after="CREATE TABLE p (id INTEGER PRIMARY KEY);"),
     {"rename_constraint"}, "aligned"),
    ("check-name", t(", CONSTRAINT ck_old CHECK (a < 100)"), t(", CONSTRAINT ck_new CHECK (a < 100)"),
     {"rename_constraint"}, "aligned"),
    ("pk-name", "CREATE TABLE k (code TEXT NOT NULL, v INT, CONSTRAINT pk_old PRIMARY KEY (code)); "
                "INSERT INTO k VALUES ('a', 1);",
     "CREATE TABLE k (code TEXT NOT NULL, v INT, CONSTRAINT pk_new PRIMARY KEY (code));", {"rename_constraint"},
     "aligned"),
]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def fidelity(request, tmp_path):
    _id, current, reference, kinds, outcome = request.param
    if current.startswith("CREATE TABLE t "):
        current += ROWS
    return Case(tmp_path, current, reference), kinds, outcome


def _rows(c: Case) -> dict:
    out = {}
    for (name,) in c.q("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        cols = [r[1] for r in c.q(f"SELECT * FROM pragma_table_xinfo('{name}') WHERE hidden = 0")]
        out[name] = sorted(c.q(f"SELECT {', '.join(cols)} FROM {name}"), key=repr)
    return out


def test_the_diff_sees_it_and_full_alignment_makes_the_judge_agree(fidelity):
    c, kinds, outcome = fidelity
    assert sqlite_judge(c.path) != sqlite_judge(c.ref_path)  # the difference is real
    changes = c.remaining()
    assert changes and kinds <= {ch.kind for ch in changes}, [ch.describe() for ch in changes]
    check = next(x for x in verify_target(c.target, c.ref, backup_path=None, backup_verified=False,
                                          mode="verify").checks if x.name == "schema_matches_reference")
    assert not check.passed
    rows = _rows(c)
    if outcome == "refused":
        with pytest.raises(UnalignableChangeError, match="cannot be aligned automatically"):
            c.run()
        assert c.unchanged()
        return
    c.run()
    assert sqlite_judge(c.path) == sqlite_judge(c.ref_path)
    assert c.remaining() == []
    after = _rows(c)
    for table, before in rows.items():  # every row of every kept table kept
        if table in after:
            assert len(after[table]) == len(before), table
    assert c.q("PRAGMA integrity_check") == [("ok",)]


def test_additive_aligns_only_what_is_additive(fidelity):
    c, _kinds, outcome = fidelity
    changes = c.remaining()
    if outcome == "refused":
        return
    if any(ch.destructive for ch in changes):
        with pytest.raises(DestructiveChangeRefusedError):
            c.run(align="additive")
        assert c.unchanged()
    else:
        c.run(align="additive")
        assert sqlite_judge(c.path) == sqlite_judge(c.ref_path)
