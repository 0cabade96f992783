"""A stand-in for the application that uses a SQLite database while the pipeline runs (a real process).

    python app_process.py writer DB LOG [--short] [--interval S]
        BEGIN IMMEDIATE; INSERT INTO goals …; COMMIT, every S seconds (default 0.005), on one connection
        or (``--short``) a new connection per write; the id of every committed row is appended to LOG
        after its COMMIT returned, so LOG lists exactly what the application knows it committed.
    python app_process.py reader DB [--interval S]
        open -> SELECT count(*) FROM goals -> close, in a loop (a web request, a cron script).
    python app_process.py pgwriter URL LOG [--interval S]
        the writer on PostgreSQL (psycopg 3, URL ``postgresql://…``): BEGIN; INSERT INTO goals …; COMMIT
        on one connection, a new connection after any error; LOG as for ``writer``.

Runs until SIGTERM/SIGINT; then prints one JSON line: commits, reads, errors (with the first few).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import time

STOP = False


def _stop(signum, frame):  # noqa: ANN001
    global STOP
    STOP = True


def _write_loop(log: str, interval: float, write, errors: tuple, reset) -> dict:
    """Until stopped: ``write(n, id)`` commits one row; its id goes to ``log`` after the commit returned. On an
    error of ``errors`` the loop counts it and calls ``reset()`` (roll back or reconnect) and goes on."""
    out = {"commits": 0, "errors": 0, "first_errors": []}
    n = 0
    with open(log, "a", buffering=1) as lf:
        while not STOP:
            n += 1
            gid = f"app-{os.getpid()}-{n}"
            try:
                write(n, gid)
                lf.write(gid + "\n")
                out["commits"] += 1
            except errors as e:
                out["errors"] += 1
                if len(out["first_errors"]) < 5:
                    out["first_errors"].append(f"{type(e).__name__}: {' '.join(str(e).split())}")
                reset()
            if interval:
                time.sleep(interval)
    return out


def writer(db: str, log: str, short: bool, interval: float) -> dict:
    state = {"conn": None}

    def write(n: int, gid: str) -> None:
        if state["conn"] is None:
            state["conn"] = sqlite3.connect(db, timeout=60, isolation_level=None)
        conn = state["conn"]
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO goals (id, type, name) VALUES (?, 'task', ?)", (gid, f"written by app {n}"))
            conn.execute("COMMIT")
        finally:
            if short:
                close()

    def rollback() -> None:
        if state["conn"] is not None:
            try:
                state["conn"].execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def close() -> None:
        if state["conn"] is not None:
            state["conn"].close()
            state["conn"] = None

    try:
        return _write_loop(log, interval, write, (sqlite3.Error,), rollback)
    finally:
        close()


def pgwriter(url: str, log: str, interval: float) -> dict:
    import psycopg

    state = {"conn": None}

    def write(n: int, gid: str) -> None:
        if state["conn"] is None:
            state["conn"] = psycopg.connect(url, autocommit=True, connect_timeout=10)
        with state["conn"].transaction():  # BEGIN … COMMIT (ROLLBACK on an error inside)
            state["conn"].execute("INSERT INTO goals (id, type, name) VALUES (%s, 'task', %s)",
                                  (gid, f"written by app {n}"))

    def reconnect() -> None:
        if state["conn"] is not None:
            try:
                state["conn"].close()
            except psycopg.Error:
                pass
            state["conn"] = None

    try:
        return _write_loop(log, interval, write, (psycopg.Error,), reconnect)
    finally:
        reconnect()


def reader(db: str, interval: float) -> dict:
    out = {"reads": 0, "errors": 0, "first_errors": []}
    while not STOP:
        try:
            conn = sqlite3.connect(db, timeout=60)
            try:
                conn.execute("SELECT count(*) FROM goals").fetchone()
            finally:
                conn.close()
            out["reads"] += 1
        except sqlite3.Error as e:
            out["errors"] += 1
            if len(out["first_errors"]) < 5:
                out["first_errors"].append(f"{type(e).__name__}: {e}")
        if interval:
            time.sleep(interval)
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("writer", "reader", "pgwriter"))
    p.add_argument("db")
    p.add_argument("log", nargs="?")
    p.add_argument("--short", action="store_true")
    p.add_argument("--interval", type=float, default=None)
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("ready", flush=True)
    if a.role == "writer":
        out = writer(a.db, a.log, a.short, 0.005 if a.interval is None else a.interval)
    elif a.role == "pgwriter":
        out = pgwriter(a.db, a.log, 0.005 if a.interval is None else a.interval)
    else:
        out = reader(a.db, 0.0 if a.interval is None else a.interval)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
