"""Type and default comparison keys: by meaning, not spelling."""

from __future__ import annotations

import pytest

from maintenance_pipeline.core.engines.sqlite.types import sqlite_affinity
from maintenance_pipeline.core.schema.diff import default_key, type_key


@pytest.mark.parametrize(
    "declared, affinity",
    [
        ("INT", "INTEGER"), ("INTEGER", "INTEGER"), ("BIGINT", "INTEGER"), ("UNSIGNED BIG INT", "INTEGER"),
        ("FLOATING POINT", "INTEGER"),  # contains INT: rule 1 wins (the SQLite docs' own example)
        ("VARCHAR(50)", "TEXT"), ("NCHAR(5)", "TEXT"), ("CLOB", "TEXT"), ("text", "TEXT"),
        ("BLOB", "BLOB"), ("", "BLOB"), (None, "BLOB"),
        ("REAL", "REAL"), ("DOUBLE PRECISION", "REAL"), ("FLOAT", "REAL"),
        ("NUMERIC", "NUMERIC"), ("DECIMAL(10,5)", "NUMERIC"), ("BOOLEAN", "NUMERIC"), ("DATETIME", "NUMERIC"),
        ("STRING", "NUMERIC"),
    ],
)
def test_sqlite_affinity(declared, affinity):
    assert sqlite_affinity(declared) == affinity


SQLITE_EQUAL = [
    ("INT", "INTEGER"), ("integer", "BIGINT"), ("SMALLINT", "TINYINT"), ("MEDIUMINT", "INT8"),
    ("VARCHAR(50)", "VARCHAR(80)"), ("VARCHAR", "TEXT"), ("CHAR(3)", "NVARCHAR(100)"), ("CLOB", "text"),
    ("REAL", "FLOAT"), ("DOUBLE", "DOUBLE PRECISION"),
    ("NUMERIC(10, 2)", "DECIMAL"), ("DATETIME", "TIMESTAMP"), ("BOOLEAN", "BOOL"), ("BLOB", ""),
    ("varchar ( 50 )", "VARCHAR(50)"),
]
SQLITE_DIFFERENT = [
    ("STRING", "TEXT"),  # NUMERIC vs TEXT affinity: the trap real databases hold
    ("INTEGER", "TEXT"), ("INTEGER", "REAL"), ("TEXT", "BLOB"), ("NUMERIC", "INTEGER"),
    ("BOOLEAN", "NUMERIC"), ("DATETIME", "DATE"), ("DATE", "TIME"), ("DATETIME", "NUMERIC"),
    ("STRING", "NUMERIC"), ("JSON", "TEXT"),
]
PG_EQUAL = [
    ("INT", "INTEGER"), ("INT4", "integer"), ("SERIAL", "SERIAL4"), ("BIGINT", "INT8"), ("BIGSERIAL", "SERIAL8"),
    ("SMALLINT", "INT2"), ("VARCHAR(50)", "CHARACTER VARYING(50)"), ("VARCHAR", "character varying"),
    ("TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"), ("TIMESTAMP(6) WITHOUT TIME ZONE", "TIMESTAMP"),
    ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"), ("TIME", "TIME WITHOUT TIME ZONE"),
    ("BOOL", "BOOLEAN"), ("FLOAT8", "DOUBLE PRECISION"), ("FLOAT", "DOUBLE PRECISION"), ("FLOAT(10)", "REAL"),
    ("FLOAT4", "REAL"), ("DECIMAL(10,2)", "NUMERIC(10, 2)"), ("NUMERIC(10)", "NUMERIC(10,0)"),
    ("CHAR", "CHARACTER(1)"), ("BPCHAR(3)", "CHAR(3)"), ("INT4[]", "INTEGER[]"), ("VARBIT", "BIT VARYING"),
]
PG_DIFFERENT = [
    ("VARCHAR(50)", "VARCHAR(80)"), ("VARCHAR(50)", "VARCHAR"), ("VARCHAR", "TEXT"), ("INTEGER", "BIGINT"),
    ("NUMERIC(10,2)", "NUMERIC(12,2)"), ("TIMESTAMP", "TIMESTAMPTZ"), ("REAL", "DOUBLE PRECISION"),
    ("JSON", "JSONB"), ("INTEGER", "INTEGER[]"), ("CHAR(3)", "VARCHAR(3)"), ("TIMESTAMP(3)", "TIMESTAMP"),
]


@pytest.mark.parametrize("a, b", SQLITE_EQUAL)
def test_sqlite_synonyms_are_equal(a, b):
    assert type_key("sqlite", a) == type_key("sqlite", b)


@pytest.mark.parametrize("a, b", SQLITE_DIFFERENT)
def test_sqlite_different_meanings_differ(a, b):
    assert type_key("sqlite", a) != type_key("sqlite", b)


def test_sqlite_affinity_change_is_always_a_change():
    names = ["INT", "TEXT", "VARCHAR(5)", "BLOB", "REAL", "NUMERIC", "BOOLEAN", "DATETIME", "STRING", ""]
    for a in names:
        for b in names:
            if sqlite_affinity(a) != sqlite_affinity(b):
                assert type_key("sqlite", a) != type_key("sqlite", b), (a, b)


@pytest.mark.parametrize("a, b", PG_EQUAL)
def test_postgresql_synonyms_are_equal(a, b):
    assert type_key("postgresql", a) == type_key("postgresql", b)


@pytest.mark.parametrize("a, b", PG_DIFFERENT)
def test_postgresql_lengths_and_kinds_differ(a, b):
    assert type_key("postgresql", a) != type_key("postgresql", b)


def test_type_key_examples():
    assert type_key("sqlite", "VARCHAR(50)") == "TEXT"
    assert type_key("sqlite", "STRING") == "NUMERIC:STRING"
    assert type_key("sqlite", "TIMESTAMP") == "NUMERIC:DATETIME"
    assert type_key("postgresql", "character varying(50)") == "VARCHAR(50)"
    assert type_key("postgresql", "timestamp without time zone") == "TIMESTAMP"


@pytest.mark.parametrize(
    "dialect, a, b",
    [
        ("sqlite", "(datetime('now'))", "datetime('now')"),
        ("sqlite", "( (0) )", "0"),
        ("sqlite", "'0'", "0"),
        ("sqlite", "current_timestamp", "(CURRENT_TIMESTAMP)"),
        ("sqlite", "  lower( 'x' )  ", "LOWER('x')"),
        ("sqlite", "TRUE", "1"),
        ("sqlite", "false", "'0'"),
        ("sqlite", "+5", "5"),
        ("postgresql", "'x'::character varying", "'x'"),
        ("postgresql", "'0'", "0"),
        ("postgresql", "now()", "NOW()"),
        ("postgresql", "false", "FALSE"),
    ],
)
def test_default_spellings_are_equal(dialect, a, b):
    assert default_key(dialect, a) == default_key(dialect, b)


@pytest.mark.parametrize(
    "dialect, a, b",
    [
        ("sqlite", "'abc'", "'ABC'"),  # string contents are never touched
        ("sqlite", "0", "1"),
        ("sqlite", "1", "1.0"),
        ("sqlite", "(1)+(2)", "3"),
        ("sqlite", "'x'", "x"),  # a string vs an identifier
        ("postgresql", "true", "'true'"),
    ],
)
def test_default_meanings_differ(dialect, a, b):
    assert default_key(dialect, a) != default_key(dialect, b)


def test_default_null_is_no_default():
    assert default_key("sqlite", None) is None
    assert default_key("sqlite", "NULL") is None
    assert default_key("sqlite", "(null)") is None
    assert default_key("postgresql", "NULL::character varying") is None


def test_quoted_number_stays_a_string_on_sqlite_blob_affinity():
    assert default_key("sqlite", "'0'", "TEXT") == default_key("sqlite", "0", "TEXT")
    assert default_key("sqlite", "'0'", "INTEGER") == default_key("sqlite", "0", "INTEGER")
    assert default_key("sqlite", "'0'", "BLOB") != default_key("sqlite", "0", "BLOB")
    assert default_key("sqlite", "'0'", "") != default_key("sqlite", "0", "")


@pytest.mark.parametrize("a, b", [
    ("SERIAL", "INTEGER"), ("BIGSERIAL", "BIGINT"),
    ("INTEGER GENERATED ALWAYS AS IDENTITY", "INTEGER GENERATED BY DEFAULT AS IDENTITY"),
    ("INTEGER GENERATED BY DEFAULT AS IDENTITY", "INTEGER"), ("INTEGER GENERATED BY DEFAULT AS IDENTITY", "SERIAL"),
    ("INTEGER GENERATED ALWAYS AS (a * 2) STORED", "INTEGER"), ('TEXT COLLATE "C"', "TEXT"),
])
def test_postgresql_value_sources_and_collations_differ(a, b):
    # how a column gets its values is part of what it is: a sequence default, an identity (and its kind), an
    # expression; so is a non-default collation
    assert type_key("postgresql", a) != type_key("postgresql", b)
