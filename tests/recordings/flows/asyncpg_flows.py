#!/usr/bin/python3
"""asyncpg flows to record: `asyncpg_flows.py <flow>`, connecting to $PGHOST:$PGPORT."""
import asyncio
import io
import os
import sys

import asyncpg


async def connect():
    return await asyncpg.connect(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
                                 user="app", database="app", ssl=False)


async def prepare_then_insert(conn):
    stmt = await conn.prepare("SELECT 1")
    await stmt.fetchval()
    await conn.execute("INSERT INTO rec_t (id, v) VALUES (1, 'a')")


async def fetch(conn):
    await conn.fetch("SELECT $1::int AS a, $2::text AS b", 1, "x")
    await conn.fetchrow("SELECT id, v FROM rec_t WHERE id = $1", 1)
    await conn.fetchval("SELECT count(*) FROM rec_t")
    await conn.execute("SELECT 1; SELECT 2")


async def executemany(conn):
    await conn.executemany("INSERT INTO rec_t (id, v) VALUES ($1, $2)", [(i, f"v{i}") for i in range(10, 15)])


async def copy_records(conn):
    await conn.copy_records_to_table("rec_t", records=[(i, f"r{i}") for i in range(20, 25)])
    await conn.execute("INSERT INTO rec_t (id, v) VALUES (26, 'after copy')")


async def copy_to_table(conn):
    data = io.BytesIO(b"30\tc30\n31\tc31\n")
    await conn.copy_to_table("rec_t", source=data)
    out = io.BytesIO()
    await conn.copy_from_table("rec_t", output=out)
    await conn.copy_from_query("SELECT id FROM rec_t WHERE id > $1", 20, output=io.BytesIO())


async def prepare_then_copy(conn):
    await conn.prepare("SELECT 1")
    await conn.copy_to_table("rec_t", source=io.BytesIO(b"40\tp40\n"))
    await conn.execute("INSERT INTO rec_t (id, v) VALUES (41, 'after')")


async def transaction(conn):
    async with conn.transaction():
        await conn.execute("INSERT INTO rec_t (id, v) VALUES (50, 't')")
        await conn.fetchval("SELECT v FROM rec_t WHERE id = 50")
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO rec_t (id, v) VALUES (50, 'duplicate')")
    except asyncpg.UniqueViolationError:
        pass
    await conn.fetchval("SELECT 1")


async def cursor(conn):
    async with conn.transaction():
        async for _ in conn.cursor("SELECT generate_series(1, 10)", prefetch=3):
            pass
        cur = await conn.cursor("SELECT generate_series(1, 10)")
        await cur.fetch(4)
        await cur.forward(2)


FLOWS = {
    "prepare-then-insert": prepare_then_insert,
    "fetch": fetch,
    "executemany": executemany,
    "copy-records": copy_records,
    "copy-to-table": copy_to_table,
    "prepare-then-copy": prepare_then_copy,
    "transaction": transaction,
    "cursor": cursor,
}


async def main(flow):
    conn = await connect()
    try:
        await FLOWS[flow](conn)
    finally:
        await conn.close()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in FLOWS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(FLOWS)}}}")
    asyncio.run(main(sys.argv[1]))
