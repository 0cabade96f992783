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


def writer(db: str, log: str, short: bool, interval: float) -> dict:
    out = {"commits": 0, "errors": 0, "first_errors": []}
    conn = None
    n = 0
    with open(log, "a", buffering=1) as lf:
        while not STOP:
            n += 1
            gid = f"app-{os.getpid()}-{n}"
            try:
                if conn is None:
                    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO goals (id, type, name) VALUES (?, 'task', ?)", (gid, f"written by app {n}"))
                conn.execute("COMMIT")
                lf.write(gid + "\n")
                out["commits"] += 1
            except sqlite3.Error as e:
                out["errors"] += 1
                if len(out["first_errors"]) < 5:
                    out["first_errors"].append(f"{type(e).__name__}: {e}")
                if conn is not None:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
            if short and conn is not None:
                conn.close()
                conn = None
            if interval:
                time.sleep(interval)
    if conn is not None:
        conn.close()
    return out


def pgwriter(url: str, log: str, interval: float) -> dict:
    import psycopg

    out = {"commits": 0, "errors": 0, "first_errors": []}
    conn = None
    n = 0
    with open(log, "a", buffering=1) as lf:
        while not STOP:
            n += 1
            gid = f"app-{os.getpid()}-{n}"
            try:
                if conn is None:
                    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
                with conn.transaction():  # BEGIN … COMMIT (ROLLBACK on an error inside)
                    conn.execute("INSERT INTO goals (id, type, name) VALUES (%s, 'task', %s)",
                                 (gid, f"written by app {n}"))
                lf.write(gid + "\n")
                out["commits"] += 1
            except psycopg.Error as e:
                out["errors"] += 1
                if len(out["first_errors"]) < 5:
                    out["first_errors"].append(f"{type(e).__name__}: {' '.join(str(e).split())}")
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                    conn = None
            if interval:
                time.sleep(interval)
    if conn is not None:
        conn.close()
    return out


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
