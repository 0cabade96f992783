"""Independent judges of "are these two schemas the same?": the engines' own output, normalised by a few plain
rules written here (not the product's snapshot or canonical text).

* SQLite: every pragma about every table (``table_xinfo``, ``index_list`` + ``index_xinfo``, ``foreign_key_list``)
  and the ``sqlite_master.sql`` of tables, indexes, views and triggers, with identifiers unquoted, case and
  whitespace folded;
* PostgreSQL: ``pg_dump --schema-only`` with settings, ownership and grants left out, statements collapsed to one
  line each and sorted, and the lines inside a ``CREATE TABLE`` sorted: column order is the one property the
  product does not compare (it never reorders columns), said here and in the README.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path


def _fold_sql(sql: str) -> str:
    out = []
    for m in re.finditer(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|\s+|[^\s'\"`\[]+", sql or ""):
        t = m.group(0)
        if t.isspace():
            out.append(" ")
        elif t[0] in "\"`[":
            out.append(t[1:-1].replace('""', '"').lower())
        elif t[0] == "'":
            out.append(t)
        else:
            out.append(t.lower())
    text = "".join(out)
    text = re.sub(r"\s*([(),])\s*", r"\1", text)
    return " ".join(text.split()).rstrip(";")


def sqlite_judge(path: Path) -> dict:
    con = sqlite3.connect(path)
    try:
        out: dict = {}
        for kind, name, table, sql in con.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "ORDER BY type, name"):
            entry = {"sql": _fold_sql(sql)}
            if kind == "table":
                entry["columns"] = con.execute(f"SELECT * FROM pragma_table_xinfo(?)", (name,)).fetchall()
                entry["indexes"] = sorted(
                    (il[1], il[2], il[3], il[4],
                     tuple(con.execute("SELECT seqno, cid, name, \"desc\", coll, key FROM pragma_index_xinfo(?)",
                                       (il[1],)).fetchall()))
                    for il in con.execute("SELECT * FROM pragma_index_list(?)", (name,)).fetchall()
                    if not il[1].startswith("sqlite_autoindex"))
                entry["foreign_keys"] = sorted(con.execute("SELECT * FROM pragma_foreign_key_list(?)", (name,)))
            out[f"{kind} {name.lower()}"] = entry
        return out
    finally:
        con.close()


def pg_judge(pg, dbname: str) -> list[str]:
    url = pg.url(dbname).replace("postgresql+psycopg://", "postgresql://")
    dump = subprocess.run([str(pg.bindir / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
                           "-d", url], capture_output=True, text=True, check=True, timeout=120).stdout
    statements = []
    for stmt in dump.split(";\n"):
        lines = [ln for ln in stmt.splitlines() if ln.strip() and not ln.startswith("--") and not ln.startswith("\\")]
        text = "\n".join(lines).strip()
        if not text or text.startswith("SET ") or text.startswith("SELECT pg_catalog.set_config"):
            continue
        m = re.match(r"(CREATE (?:UNLOGGED )?TABLE [^(]+\()(.*)(\)[^)]*)$", text, re.DOTALL)
        if m:  # column order is not compared: sort the lines of the body
            body = sorted(" ".join(x.strip().rstrip(",").split()) for x in m.group(2).splitlines() if x.strip())
            text = m.group(1) + ", ".join(body) + m.group(3)
        statements.append(" ".join(text.split()))
    return sorted(statements)
