#!/usr/bin/python3
"""psycopg 3 flows to record: `psycopg_flows.py <flow>`, connecting to $PGHOST:$PGPORT."""
import os
import sys
import threading

import psycopg


def dsn():
    return f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} user=app dbname=app sslmode=disable"


def plain():
    with psycopg.connect(dsn()) as conn:  # not autocommit: psycopg sends BEGIN before the first
        conn.execute("SELECT %s::int, %s::text", (1, "x")).fetchone()
        conn.execute("INSERT INTO rec_t (id, v) VALUES (%s, %s)", (100, "p"))
        conn.commit()
        try:
            conn.execute("INSERT INTO rec_t (id, v) VALUES (%s, %s)", (100, "dup"))
        except psycopg.errors.UniqueViolation:
            conn.rollback()
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO rec_t (id, v) VALUES (%s, %s)", [(101, "m"), (102, "m")])
        conn.commit()


def prepared_cache():
    # psycopg prepares after prepare_threshold runs and evicts with DEALLOCATE past prepared_max.
    with psycopg.connect(dsn(), autocommit=True, prepare_threshold=0) as conn:
        conn.prepared_max = 2
        for sql in ("select 1", "select 2", "select 3", "select 1"):
            conn.execute(sql).fetchone()


def pipeline_autocommit():
    with psycopg.connect(dsn(), autocommit=True) as conn:
        with conn.pipeline():
            conn.execute("SELECT count(*) FROM rec_t")
            conn.execute("INSERT INTO rec_t (id, v) VALUES (%s, %s)", (110, "pipe"))
            conn.execute("INSERT INTO rec_t (id, v) VALUES (%s, %s)", (111, "pipe"))
            cur = conn.execute("SELECT v FROM rec_t WHERE id = %s", (110,))
        cur.fetchone()


def pipeline_error():
    with psycopg.connect(dsn(), autocommit=True) as conn:
        try:
            with conn.pipeline():
                conn.execute("INSERT INTO rec_t (id, v) VALUES (%s, %s)", (120, "ok"))
                conn.execute("SELECT 1/0")
                conn.execute("INSERT INTO rec_t (id, v) VALUES (%s, %s)", (121, "skipped"))
        except psycopg.errors.DivisionByZero:
            pass
        conn.execute("SELECT 1").fetchone()


def pipeline_transaction():
    with psycopg.connect(dsn()) as conn:
        with conn.pipeline():
            conn.execute("INSERT INTO rec_t (id, v) VALUES (%s, %s)", (130, "tx"))
            conn.execute("SELECT v FROM rec_t WHERE id = %s", (130,))
            conn.commit()


def copy():
    with psycopg.connect(dsn(), autocommit=True) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY rec_t (id, v) FROM STDIN") as cp:
                cp.write_row((140, "c"))
                cp.write_row((141, "c"))
            with cur.copy("COPY (SELECT id FROM rec_t WHERE id >= 140) TO STDOUT") as cp:
                for _ in cp:
                    pass
        conn.execute("SELECT 1").fetchone()


def set_config():
    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_catalog.set_config('search_path', '', false)").fetchone()
        conn.execute("SELECT count(*) FROM public.rec_t").fetchone()


def terminated():
    """A backend terminated while it runs a query: the client gets FATAL 57P01."""
    with psycopg.connect(dsn(), autocommit=True) as victim:
        pid = victim.info.backend_pid

        def kill():
            with psycopg.connect(dsn(), autocommit=True) as killer:
                while not killer.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND query LIKE 'SELECT pg_sleep%%'",
                        (pid,)).fetchone()[0]:
                    pass
                killer.execute("SELECT pg_terminate_backend(%s)", (pid,))

        t = threading.Thread(target=kill)
        t.start()
        try:
            victim.execute("SELECT pg_sleep(30)")
        except psycopg.OperationalError:
            pass
        t.join()


FLOWS = {
    "plain": plain,
    "prepared-cache": prepared_cache,
    "pipeline-autocommit": pipeline_autocommit,
    "pipeline-error": pipeline_error,
    "pipeline-transaction": pipeline_transaction,
    "copy": copy,
    "set-config": set_config,
    "terminated": terminated,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in FLOWS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(FLOWS)}}}")
    FLOWS[sys.argv[1]]()
