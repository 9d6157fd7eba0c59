#!/usr/bin/python3
"""Drivers' protocol flows through a replica region's Meridian and the primary region's (issue 25):
asyncpg's unsynced prepare followed by writes and COPY, psycopg 3's pipeline mode mixing reads
and writes, psycopg's statement cache evicting with DEALLOCATE, and its prepared statements on a type made
and rolled back (issue 33), a block lost with its server (issue 24). Each must succeed as it does against PostgreSQL directly, writes must reach the
primary, and reads must still go to the region's replica afterwards. Exits non-zero on the first
failed check.

Environment: MERIDIAN_DSN_<REGION> (libpq keyword DSNs, one per region to test, e.g. EU and US),
MERIDIAN_PRIMARY_PORT and MERIDIAN_READ_PORT_<REGION> (the PostgreSQL port reads are served from
in that region)."""
import asyncio
import os
import sys

import asyncpg
import psycopg

checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def kw(dsn):
    return dict(part.split("=", 1) for part in dsn.split())


async def asyncpg_flows(region, dsn, read_port, primary_port):
    k = kw(dsn)
    conn = await asyncpg.connect(host=k["host"], port=int(k["port"]), user=k["user"], password=k["password"],
                                 database=k["dbname"], ssl=False)
    try:
        base = {"us": 1000, "eu": 2000}[region]
        await conn.execute(f"DELETE FROM itest_flows WHERE id >= {base} AND id < {base + 1000}")
        # prepare() sends Parse/Describe/Flush with no Sync; the INSERT after it must still reach
        # the primary (it failed with 25006 through a replica region).
        stmt = await conn.prepare("SELECT 1")
        check(await stmt.fetchval() == 1, f"{region}: prepared read")
        port = await conn.fetchval("INSERT INTO itest_flows (id, v) VALUES ($1, 'prepare') RETURNING inet_server_port()",
                                   base)
        check(port == primary_port, f"{region}: INSERT after prepare() ran on the primary (port {port})")
        # The copy family, and a write after it on the same connection.
        await conn.copy_records_to_table("itest_flows", records=[(base + 1, "copy"), (base + 2, "copy")],
                                         columns=["id", "v"])
        await conn.execute(f"INSERT INTO itest_flows (id, v) VALUES ({base + 3}, 'after copy')")
        await conn.prepare("SELECT 2")
        import io
        await conn.copy_to_table("itest_flows", source=io.BytesIO(f"{base + 4}\tcopy_to\n".encode()),
                                 columns=["id", "v"])
        await conn.execute(f"INSERT INTO itest_flows (id, v) VALUES ({base + 5}, 'after prepare and copy')")
        n = await conn.fetchval(f"/* meridian:primary */ SELECT count(*) FROM itest_flows WHERE id >= {base} "
                                f"AND id < {base + 1000}")
        check(n == 6, f"{region}: all six rows written ({n})")
        # Reads still go where reads go.
        for _ in range(3):
            port = await conn.fetchval("SELECT inet_server_port()")
            check(port == read_port, f"{region}: a read after the writes ran on port {port}, not {read_port}")
    finally:
        await conn.close()


def psycopg_pipeline(region, dsn, read_port, primary_port):
    base = {"us": 1500, "eu": 2500}[region]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DELETE FROM itest_flows WHERE id >= {base} AND id < {base + 100}")
        with conn.pipeline():
            c1 = conn.execute("SELECT count(*) FROM itest_flows")
            c2 = conn.execute("INSERT INTO itest_flows (id, v) VALUES (%s, 'pipe') RETURNING inet_server_port()",
                              (base,))
            conn.execute("INSERT INTO itest_flows (id, v) VALUES (%s, 'pipe')", (base + 1,))
            c4 = conn.execute("SELECT v FROM itest_flows WHERE id = %s", (base,))
        check(c1.fetchone() is not None, f"{region}: pipelined read")
        check(c2.fetchone()[0] == primary_port, f"{region}: pipelined INSERT on the primary")
        check(c4.fetchone() == ("pipe",), f"{region}: the pipeline reads its own write")
        port = conn.execute("SELECT inet_server_port()").fetchone()[0]
        check(port == read_port, f"{region}: a read after the pipeline ran on port {port}, not {read_port}")


def psycopg_prepared_cache(region, dsn):
    """psycopg's statement cache evicts with DEALLOCATE _pg3_N (issue 33: 26000 through Meridian,
    whose server-side statements have other names and may serve other clients)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.prepare_threshold, conn.prepared_max = 0, 2
        for q, want in [("select 1", 1), ("select 2", 2), ("select 3", 3), ("select 1", 1)] * 3:
            check(conn.execute(q).fetchone()[0] == want, f"{region}: {q} with a cache of two")
        conn.prepared_max = 5
        for i in range(40):
            check(conn.execute(f"select {i % 9} + %s", (i,)).fetchone()[0] == i % 9 + i, f"{region}: eviction {i}")
    # The same through the simple protocol, beside another client using the same text.
    with psycopg.connect(dsn, autocommit=True) as a, psycopg.connect(dsn, autocommit=True) as b:
        for c, name in ((a, b"mine"), (b, b"theirs")):
            r = c.pgconn.prepare(name, b"SELECT 42")
            check(r.status == psycopg.pq.ExecStatus.COMMAND_OK, f"{region}: prepare {name}")
        r = a.pgconn.exec_(b"DEALLOCATE mine")
        check(r.status == psycopg.pq.ExecStatus.COMMAND_OK and r.command_status == b"DEALLOCATE",
              f"{region}: DEALLOCATE answered as PostgreSQL does ({r.error_message})")
        r = a.pgconn.exec_prepared(b"mine", [])
        check(r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"26000", f"{region}: deallocated is gone")
        r = a.pgconn.exec_(b"DEALLOCATE mine")
        check(r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"26000", f"{region}: twice: 26000")
        for _ in range(5):
            r = b.pgconn.exec_prepared(b"theirs", [])
            check(r.status == psycopg.pq.ExecStatus.TUPLES_OK and r.get_value(0, 0) == b"42",
                  f"{region}: the other client's statement of the same text lives on")


def psycopg_type_recreated(region, dsn):
    """A prepared statement must not outlive the type it was planned with (issue 33: through
    eu-west-1, 'cache lookup failed for type' on every run, also from new connections). Each run
    makes the type and a table in a transaction, inserts with a prepared statement whose parameter
    has that type, and rolls back; then a run that commits and drops them again."""
    for run in range(3):
        with psycopg.connect(dsn) as conn:
            conn.prepare_threshold = 0
            conn.execute("CREATE TYPE prepenum AS ENUM ('foo', 'bar', 'baz')")
            conn.execute("CREATE TABLE preptable (id integer, bar prepenum[])")
            conn.cursor().execute("INSERT INTO preptable (bar) VALUES (%s::prepenum[])", (["foo", "bar"],))
            n = conn.execute("SELECT count(*) FROM preptable").fetchone()[0]
            check(n == 1, f"{region}: run {run}: inserted with a statement prepared on a new type")
            conn.rollback()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.prepare_threshold = 0
        conn.execute("DROP TABLE IF EXISTS preptable2")
        conn.execute("DROP TYPE IF EXISTS prepenum2")
        for run in range(3):
            conn.execute("CREATE TYPE prepenum2 AS ENUM ('foo', 'bar')")
            conn.execute("CREATE TABLE preptable2 (id integer, bar prepenum2)")
            conn.execute("INSERT INTO preptable2 (bar) VALUES (%s::prepenum2)", ("foo",))
            conn.execute("DROP TABLE preptable2")
            conn.execute("DROP TYPE prepenum2")
        check(True, f"{region}: a type dropped and made again, committed")


def psycopg_lost_block(region, dsn):
    """A transaction whose server connection dies (here its backend ends itself) fails once, with
    57P01; psycopg's ROLLBACK after it (extended protocol) is answered as PostgreSQL answers it,
    with no warning, and the connection goes on (issue 24). Nothing of the block is committed."""
    base = {"us": 1900, "eu": 2900}[region]
    with psycopg.connect(dsn) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("DELETE FROM itest_flows WHERE id = %s", (base,))
        conn.commit()
        conn.execute("INSERT INTO itest_flows (id, v) VALUES (%s, 'lost block')", (base,))
        try:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            check(False, f"{region}: a statement whose backend ended succeeded")
        except psycopg.errors.AdminShutdown:
            pass
        check(conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR,
              f"{region}: the block is failed after the loss ({conn.info.transaction_status})")
        conn.rollback()
        check(notices == [], f"{region}: ROLLBACK of the lost block answered without warnings: {notices}")
        check(conn.execute("SELECT 1").fetchone()[0] == 1, f"{region}: the connection goes on")
        conn.commit()
        n = conn.execute("/* meridian:primary */ SELECT count(*) FROM itest_flows WHERE id = %s", (base,)).fetchone()[0]
        check(n == 0, f"{region}: nothing of the lost block committed ({n})")


def main():
    primary_port = int(os.environ["MERIDIAN_PRIMARY_PORT"])
    regions = [r for r in ("us", "eu") if f"MERIDIAN_DSN_{r.upper()}" in os.environ]
    check(len(regions) == 2, "both regions given")
    with psycopg.connect(os.environ["MERIDIAN_DSN_US"], autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS itest_flows (id int PRIMARY KEY, v text)")
    for region in regions:
        dsn = os.environ[f"MERIDIAN_DSN_{region.upper()}"]
        read_port = int(os.environ[f"MERIDIAN_READ_PORT_{region.upper()}"])
        asyncio.run(asyncpg_flows(region, dsn, read_port, primary_port))
        psycopg_pipeline(region, dsn, read_port, primary_port)
        psycopg_prepared_cache(region, dsn)
        psycopg_type_recreated(region, dsn)
        psycopg_lost_block(region, dsn)
    print(f"{checks} checks passed")


if __name__ == "__main__":
    main()
