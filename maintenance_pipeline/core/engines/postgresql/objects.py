"""What PostgreSQL stores beyond SQLAlchemy's inspector, read from its catalogs in a few queries per schema and
written in the server's own canonical text (``pg_get_indexdef``, ``pg_get_constraintdef``, ``pg_get_viewdef``,
``pg_get_triggerdef``, ``pg_get_functiondef``, ``format_type``, enum labels):

* per table: CHECK and EXCLUDE constraints; index definitions (method, members with order, INCLUDE, WHERE,
  NULLS NOT DISTINCT); options of keys (MATCH FULL, DEFERRABLE, NULLS NOT DISTINCT); table options (UNLOGGED,
  INHERITS, PARTITION BY / OF, row level security, storage parameters, a deferrable primary key); every
  column's type as ``format_type`` says it (a type SQLAlchemy does not know is still named);
* schema objects: views, materialized views, triggers, functions and procedures (not an extension's), sequences
  not owned by a column, types (enums with their labels, domains, composite types), row level security policies;
* a sequence a column owns and takes its values from (a serial's, an identity's) is the column's ``sequence``:
  every option and its name; one it owns without taking values from it (``OWNED BY`` alone) is a sequence object
  (``OWNED BY`` in its definition);
* the primary key's constraint name (the inspector's keys keep theirs).

The definitions are read with ``search_path`` set to the schema alone, so the server leaves names of that
schema unqualified: a reference read in schema ``a`` and a target in schema ``b`` compare equal, and a
definition can be executed in the target's schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ...schema.model import SEQUENCE_NAME, Check, SchemaObject, Table

_TABLES = sa.text("""
SELECT c.relname, c.relpersistence, c.relkind, c.relispartition,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
       (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
          FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid),
       c.relrowsecurity, c.relforcerowsecurity, array_to_string(c.reloptions, ', '),
       obj_description(c.oid, 'pg_class')
FROM pg_catalog.pg_class c
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relkind IN ('r', 'p')
""")

_CONSTRAINTS = sa.text("""
SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid, true), k.condeferrable, k.condeferred,
       k.confmatchtype
FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND k.contype IN ('c', 'x', 'f', 'u', 'p')
ORDER BY c.relname, k.conname
""")

_INDEXES = sa.text("""
SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = CAST(:schema AS regnamespace)
""")

_COLUMNS = sa.text("""
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
            THEN (SELECT quote_ident(co.collname) FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation) END,
       col_description(c.oid, a.attnum)
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped
""")

_VIEWS = sa.text("""
SELECT c.relname, c.relkind, pg_get_viewdef(c.oid, true),
       ARRAY(SELECT DISTINCT r.relname::text FROM pg_catalog.pg_rewrite w
             JOIN pg_catalog.pg_depend d ON d.objid = w.oid AND d.classid = 'pg_catalog.pg_rewrite'::regclass
             JOIN pg_catalog.pg_class r ON r.oid = d.refobjid AND r.oid <> c.oid
             WHERE w.ev_class = c.oid AND r.relnamespace = c.relnamespace)
FROM pg_catalog.pg_class c
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relkind IN ('v', 'm')
ORDER BY c.oid
""")

_TRIGGERS = sa.text("""
SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid, true)
FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND NOT t.tgisinternal
ORDER BY t.oid
""")

_FUNCTIONS = sa.text("""
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = CAST(:schema AS regnamespace) AND p.prokind IN ('f', 'p', 'w')
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.oid
""")

_SEQUENCES = sa.text("""
SELECT c.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache,
       s.seqcycle, o.relname, a.attname,
       (SELECT quote_ident(ob.relname) || '.' || quote_ident(oa.attname) FROM pg_catalog.pg_depend od
        JOIN pg_catalog.pg_class ob ON ob.oid = od.refobjid
        JOIN pg_catalog.pg_attribute oa ON oa.attrelid = od.refobjid AND oa.attnum = od.refobjsubid
        WHERE od.classid = 'pg_catalog.pg_class'::regclass AND od.objid = c.oid AND od.deptype = 'a'
          AND od.refobjsubid > 0 LIMIT 1)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
     AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0
     AND (d.deptype = 'i' OR (d.deptype = 'a' AND EXISTS (  -- a serial: the column's default reads it
          SELECT 1 FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_depend dd
                 ON dd.classid = 'pg_catalog.pg_attrdef'::regclass AND dd.objid = ad.oid AND dd.refobjid = c.oid
          WHERE ad.adrelid = d.refobjid AND ad.adnum = d.refobjsubid)))
LEFT JOIN pg_catalog.pg_class o ON o.oid = d.refobjid
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relkind = 'S'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_class'::regclass
                  AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY c.oid
""")

_TYPES = sa.text("""
SELECT t.typname, t.typtype,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, t.typnotnull, t.typdefault,
       ARRAY(SELECT pg_get_constraintdef(k.oid, true) FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid
             ORDER BY k.conname),
       ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
             FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum)
FROM pg_catalog.pg_type t
WHERE t.typnamespace = CAST(:schema AS regnamespace)
  AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c
                                                         WHERE c.oid = t.typrelid) = 'c'))
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY t.oid
""")

_POLICIES = sa.text("""
SELECT p.polname, c.relname, p.polpermissive, p.polcmd,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END
             FROM unnest(p.polroles) AS r ORDER BY 1),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
WHERE c.relnamespace = CAST(:schema AS regnamespace)
ORDER BY p.oid
""")

_CMD = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_PREPARER = postgresql.dialect().identifier_preparer
# the server's keywords its ``quote_ident`` quotes (all but unreserved ones: ``user``, ``order``, ``values``, ``int``),
# read once with the first catalog read (``read_extras``); the dialect's reserved words are quoted before that
_KEYWORDS: set[str] = set()


def quote(name: str) -> str:
    """``name`` as an identifier in generated SQL, as the server's ``quote_ident`` writes it: quoted when it is not a
    plain lower-case name or when it is a keyword (``CREATE INDEX pw_idx ON "user" ...``)."""
    if name in _KEYWORDS:
        return '"' + name.replace('"', '""') + '"'
    return _PREPARER.quote(name)


def _read_keywords(conn: sa.Connection) -> None:
    if not _KEYWORDS:
        _KEYWORDS.update(r[0] for r in conn.exec_driver_sql(
            "SELECT word FROM pg_catalog.pg_get_keywords() WHERE catcode <> 'U'"))


@dataclass
class TableExtras:
    checks: list[Check] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    index_defs: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (definition, CREATE INDEX)
    key_options: dict[str, str] = field(default_factory=dict)  # constraint name -> "MATCH FULL DEFERRABLE ..."
    types: dict[str, str] = field(default_factory=dict)  # column -> format_type (+ COLLATE)
    primary_key_name: str | None = None
    sequences: dict[str, str] = field(default_factory=dict)  # column -> its own sequence (``Column.sequence``)


def _deferrable(deferrable: bool, deferred: bool) -> str:
    return ("DEFERRABLE INITIALLY DEFERRED" if deferred else "DEFERRABLE") if deferrable else ""


_INDEX_HEAD = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?(\S+) ", re.IGNORECASE)


def read_extras(conn: sa.Connection, schema: str) -> tuple[dict[str, TableExtras], dict[str, SchemaObject]]:
    """Per-table extras and the schema's objects, read with ``search_path`` = ``schema`` (then restored)."""
    _read_keywords(conn)
    old = conn.exec_driver_sql("SELECT current_setting('search_path')").scalar()
    conn.execute(sa.text("SELECT set_config('search_path', :v, true)"), {"v": quote(schema)})
    try:
        return _read(conn, schema)
    finally:
        conn.execute(sa.text("SELECT set_config('search_path', :v, true)"), {"v": old})


def _read(conn: sa.Connection, schema: str) -> tuple[dict[str, TableExtras], dict[str, SchemaObject]]:
    """One query per kind of thing, in this order; per-table extras first, then the schema's objects."""
    p = {"schema": quote(schema)}
    tables: dict[str, TableExtras] = {}
    _read_table_options(conn, p, tables)
    _read_constraints(conn, p, tables)
    _read_indexes(conn, p, tables)
    _read_column_types(conn, p, tables)
    objects: dict[str, SchemaObject] = {}
    for found in (_views(conn, p), _triggers(conn, p), _functions(conn, p, schema), _sequences(conn, p, tables),
                  _types(conn, p), _policies(conn, p)):
        for obj in found:
            objects[obj.key] = obj
    return tables, objects


def _ext(tables: dict[str, TableExtras], name: str) -> TableExtras:
    return tables.setdefault(name, TableExtras())


def _read_table_options(conn: sa.Connection, p: dict, tables: dict[str, TableExtras]) -> None:
    for name, persistence, kind, is_part, partkey, bound, parents, rls, force_rls, reloptions, comment in \
            conn.execute(_TABLES, p):
        opts = _ext(tables, name).options
        if comment is not None:
            opts.append(f"COMMENT {literal(comment)}")
        if persistence == "u":
            opts.append("UNLOGGED")
        if partkey:
            opts.append(f"PARTITION BY {partkey}")
        if is_part:
            opts.append(f"PARTITION OF {parents} {bound}")
        elif parents:
            opts.append(f"INHERITS ({parents})")
        if rls:
            opts.append("ROW LEVEL SECURITY")
        if force_rls:
            opts.append("FORCE ROW LEVEL SECURITY")
        if reloptions:
            opts.append(f"WITH ({reloptions})")


def _read_constraints(conn: sa.Connection, p: dict, tables: dict[str, TableExtras]) -> None:
    for table, name, kind, definition, deferrable, deferred, match in conn.execute(_CONSTRAINTS, p):
        e = _ext(tables, table)
        later = _deferrable(deferrable, deferred)
        if kind in ("c", "x"):
            e.checks.append(Check(name, definition, definition))
        elif kind == "p":
            e.primary_key_name = name
            if later:
                e.options.append(f"PRIMARY KEY {later}")
        else:
            words = []
            if kind == "f" and match == "f":
                words.append("MATCH FULL")
            if kind == "u" and "NULLS NOT DISTINCT" in definition.upper():
                words.append("NULLS NOT DISTINCT")
            if later:
                words.append(later)
            e.key_options[name] = " ".join(words)


def _read_indexes(conn: sa.Connection, p: dict, tables: dict[str, TableExtras]) -> None:
    for table, name, definition in conn.execute(_INDEXES, p):
        m = _INDEX_HEAD.match(definition)
        if m is None:  # pragma: no cover - pg_get_indexdef always starts so
            _ext(tables, table).index_defs[name] = (definition, definition)
            continue
        body = definition[m.end():]
        # the statement names the table unqualified, so it creates the index in the target's schema
        _ext(tables, table).index_defs[name] = (body, f"CREATE {m.group(1) or ''}INDEX {quote(name)} ON "
                                                      f"{m.group(2) or ''}{quote(table)} {body}")


def _read_column_types(conn: sa.Connection, p: dict, tables: dict[str, TableExtras]) -> None:
    for table, column, type_, collation, comment in conn.execute(_COLUMNS, p):
        _ext(tables, table).types[column] = type_ + (f" COLLATE {collation}" if collation else "")
        if comment is not None:
            _ext(tables, table).options.append(f"COMMENT ON COLUMN {quote(column)} {literal(comment)}")


def _views(conn: sa.Connection, p: dict) -> list[SchemaObject]:
    found = []
    for name, kind, definition, reads in conn.execute(_VIEWS, p):
        what = "view" if kind == "v" else "materialized view"
        body = " ".join(definition.split()).rstrip(";")
        found.append(SchemaObject(what, name, body, f"CREATE {what.upper()} {quote(name)} AS {body}",
                                  f"DROP {what.upper()} {quote(name)}", reads=tuple(reads)))
    return found


def _triggers(conn: sa.Connection, p: dict) -> list[SchemaObject]:
    return [SchemaObject("trigger", f"{name} on {table}", definition, definition,
                         f"DROP TRIGGER {quote(name)} ON {quote(table)}", table=table)
            for name, table, definition in conn.execute(_TRIGGERS, p)]


def _functions(conn: sa.Connection, p: dict, schema: str) -> list[SchemaObject]:
    found = []
    for name, args, definition in conn.execute(_FUNCTIONS, p):
        text = _unqualify_function(definition, schema)
        kind = "PROCEDURE" if text.upper().startswith("CREATE OR REPLACE PROCEDURE") else "FUNCTION"
        found.append(SchemaObject("function", f"{name}({args})", " ".join(text.split()), text,
                                  f"DROP {kind} {quote(name)}({args})", text))
    return found


def _sequences(conn: sa.Connection, p: dict, tables: dict[str, TableExtras]) -> list[SchemaObject]:
    """The schema's sequences: a column's own goes to its table's extras (``TableExtras.sequences``), the others are
    sequence objects."""
    found = []
    for name, type_, inc, lo, hi, start, cache, cycle, owner, column, owned_by in conn.execute(_SEQUENCES, p):
        if owner is not None:  # a column's own: compared and aligned with the column
            seqs = _ext(tables, owner).sequences
            own = sequence_spec(name, type_, start, inc, lo, hi, cache, cycle)
            seqs[column] = f"{seqs[column]}; {own}" if column in seqs else own  # two: refused (``align``)
            continue
        spec = (f"AS {type_} INCREMENT BY {inc} MINVALUE {lo} MAXVALUE {hi} START WITH {start} CACHE {cache} "
                f"{'' if cycle else 'NO '}CYCLE") + (f" OWNED BY {owned_by}" if owned_by else "")
        found.append(SchemaObject("sequence", name, spec, f"CREATE SEQUENCE {quote(name)} {spec}",
                                  f"DROP SEQUENCE {quote(name)}", f"ALTER SEQUENCE {quote(name)} {spec}"))
    return found


def _types(conn: sa.Connection, p: dict) -> list[SchemaObject]:
    found = []
    for name, kind, labels, base, notnull, default, constraints, attributes in conn.execute(_TYPES, p):
        if kind == "e":
            spec = "ENUM (" + ", ".join("'" + v.replace("'", "''") + "'" for v in labels) + ")"
            found.append(SchemaObject("type", name, spec, f"CREATE TYPE {quote(name)} AS {spec}",
                                      f"DROP TYPE {quote(name)}", values=tuple(labels)))
        elif kind == "d":
            spec = " ".join(x for x in (f"DOMAIN AS {base}", f"DEFAULT {default}" if default else "",
                                        "NOT NULL" if notnull else "", *constraints) if x)
            found.append(SchemaObject("type", name, spec, f"CREATE DOMAIN {quote(name)} AS " + spec[len("DOMAIN AS "):],
                                      f"DROP DOMAIN {quote(name)}"))
        else:
            spec = "(" + ", ".join(attributes) + ")"
            found.append(SchemaObject("type", name, spec, f"CREATE TYPE {quote(name)} AS {spec}",
                                      f"DROP TYPE {quote(name)}"))
    return found


def _policies(conn: sa.Connection, p: dict) -> list[SchemaObject]:
    found = []
    for name, table, permissive, cmd, roles, qual, check in conn.execute(_POLICIES, p):
        spec = " ".join(x for x in (f"AS {'PERMISSIVE' if permissive else 'RESTRICTIVE'}", f"FOR {_CMD.get(cmd, cmd)}",
                                    f"TO {', '.join(roles)}", f"USING ({qual})" if qual else "",
                                    f"WITH CHECK ({check})" if check else "") if x)
        found.append(SchemaObject("policy", f"{name} on {table}", spec,
                                  f"CREATE POLICY {quote(name)} ON {quote(table)} {spec}",
                                  f"DROP POLICY {quote(name)} ON {quote(table)}", table=table))
    return found


def sequence_spec(name: str | None, type_: str, start, inc, lo, hi, cache, cycle: bool) -> str:
    """A column's sequence as ``Column.sequence`` says it: every option, then its name."""
    spec = (f"AS {type_}, START WITH {start}, INCREMENT BY {inc}, MINVALUE {lo}, MAXVALUE {hi}, CACHE {cache}, "
            f"{'' if cycle else 'NO '}CYCLE")
    return spec + (f"{SEQUENCE_NAME}{name}" if name is not None else "")


def _unqualify_function(definition: str, schema: str) -> str:
    """``pg_get_functiondef`` always names the function with its schema: drop it (the target's schema is another)."""
    for prefix in (quote(schema) + ".", '"' + schema.replace('"', '""') + '".'):
        definition = re.sub(r"^(CREATE OR REPLACE (?:FUNCTION|PROCEDURE) )" + re.escape(prefix), r"\1", definition,
                            count=1)
    return definition.strip()


def merge_table(t: Table, e: TableExtras | None, engine) -> Table:
    """The inspector's table with what the catalogs add (``read_extras``)."""
    if e is None:
        return t
    columns = []
    for c in t.columns:
        decl = c.type
        full = e.types.get(c.name, "")
        if not decl.strip():  # a type SQLAlchemy does not know (circle, a domain ...): the server's name for it
            decl = full
        if " COLLATE " in full and " COLLATE " not in decl.upper():
            plain, rest = _split_source(decl)
            decl = f"{plain} COLLATE {full.split(' COLLATE ', 1)[1]}{rest}"
        if decl != c.type:
            c = replace(c, type=decl, type_key=engine.type_key(decl))
        columns.append(replace(c, sequence=e.sequences[c.name]) if c.name in e.sequences else c)
    indexes = tuple(replace(i, definition=e.index_defs[i.name][0], sql=e.index_defs[i.name][1])
                    if i.name in e.index_defs else i for i in t.indexes)
    uniques = tuple(replace(u, options=e.key_options.get(u.name or "", "")) for u in t.uniques)
    fks = tuple(replace(f, options=e.key_options.get(f.name or "", "")) for f in t.foreign_keys)
    return replace(t, columns=tuple(columns), indexes=indexes, uniques=uniques, foreign_keys=fks,
                   checks=tuple(e.checks), options=tuple(sorted(e.options)), primary_key_name=e.primary_key_name)


_SOURCE = re.compile(r"\s+GENERATED\s+(?:ALWAYS|BY\s+DEFAULT)\s+AS\b.*$", re.IGNORECASE | re.DOTALL)


def _split_source(decl: str) -> tuple[str, str]:
    m = _SOURCE.search(decl)
    return (decl[:m.start()], decl[m.start():]) if m else (decl, "")
