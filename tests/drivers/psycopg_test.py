#!/usr/bin/python3
"""psycopg 3 through Meridian: connect, server-side prepared statements reused many times,
transactions, errors and recovery. Exits non-zero on the first failed check."""
import os
import sys

import psycopg

dsn = os.environ["MERIDIAN_DSN"]
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


with psycopg.connect(dsn, prepare_threshold=1) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS driver_psycopg (id int PRIMARY KEY, v text)")
    conn.execute("TRUNCATE driver_psycopg")
    conn.commit()

    # prepare_threshold=1: from the second execution psycopg uses a named server-side statement.
    for i in range(200):
        row = conn.execute("SELECT %s::int * 2, %s::text", (i, f"v{i}")).fetchone()
        check(row == (i * 2, f"v{i}"), f"prepared select {i}")
    conn.commit()

    with conn.transaction():
        for i in range(100):
            conn.execute("INSERT INTO driver_psycopg VALUES (%s, %s)", (i, f"row{i}"))
    count = conn.execute("SELECT count(*) FROM driver_psycopg").fetchone()[0]
    check(count == 100, "transaction committed 100 rows")

    try:
        with conn.transaction():
            conn.execute("INSERT INTO driver_psycopg VALUES (1000, 'x')")
            conn.execute("INSERT INTO driver_psycopg VALUES (1, 'duplicate')")
        check(False, "duplicate key must raise")
    except psycopg.errors.UniqueViolation as e:
        check(e.sqlstate == "23505", "unique violation sqlstate")
    count = conn.execute("SELECT count(*) FROM driver_psycopg").fetchone()[0]
    check(count == 100, "failed transaction rolled back")

    try:
        conn.execute("SELECT 1/0")
        check(False, "division by zero must raise")
    except psycopg.errors.DivisionByZero:
        conn.rollback()
    check(conn.execute("SELECT 'recovered'").fetchone()[0] == "recovered", "session usable after error")

    # The prepared statements are still there after the errors.
    for i in range(50):
        check(conn.execute("SELECT %s::int * 2, %s::text", (i, "x")).fetchone() == (i * 2, "x"), "prepared reuse after error")

    with conn.cursor() as cur:
        with cur.copy("COPY driver_psycopg (id, v) FROM STDIN") as copy:
            for i in range(2000, 2500):
                copy.write_row((i, f"copied{i}"))
    conn.commit()
    check(conn.execute("SELECT count(*) FROM driver_psycopg").fetchone()[0] == 600, "COPY via psycopg")

print(f"psycopg: {checks} passed, 0 failed")
