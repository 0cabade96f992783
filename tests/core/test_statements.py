"""Counting a check's statements before it runs: a ``;`` inside a literal, an identifier, a dollar-quoted body
or a comment ends nothing; one outside does."""

from __future__ import annotations

import pytest

from maintenance_pipeline.core.statements import first_keyword, split_statements


@pytest.mark.parametrize("sql, n", [
    ("SELECT 0", 1),
    ("SELECT 0;", 1),
    ("SELECT 0; -- done", 1),
    ("SELECT 0; COMMIT; DROP TABLE canary; SELECT 0", 4),
    ("SELECT ';' FROM t", 1),
    ("SELECT 'it''s; fine'", 1),
    ("SELECT E'a\\'; b'", 1),
    ('SELECT 1 AS "a;b"', 1),
    ("SELECT 1 AS `a;b`", 1),
    ("SELECT [a;b] FROM t", 1),
    ("SELECT $$ ; $$", 1),
    ("SELECT $x$ ; $y$ ; $x$", 1),
    ("SELECT 1 /* ; /* nested ; */ still ; */", 1),
    ("SELECT 1 -- ; \n", 1),
    ("SELECT 1 -- x\n; DELETE FROM t", 2),
    ("SELECT $1; DELETE FROM t", 2),  # a parameter, not a dollar quote
    ("  ;; ", 0),
    ("-- nothing", 0),
])
def test_statements_are_counted_outside_quotes_and_comments(sql, n):
    assert len(split_statements(sql)) == n


@pytest.mark.parametrize("sql, word", [
    ("select 1", "SELECT"),
    ("  -- a comment\n /* another */ ((SELECT 1))", "SELECT"),
    ("WITH x AS (SELECT 1) DELETE FROM t", "WITH"),
    ("commit", "COMMIT"),
    ("", ""),
])
def test_first_keyword(sql, word):
    assert first_keyword(sql) == word
