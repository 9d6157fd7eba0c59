#!/usr/bin/python3
"""Byte sequences no driver library sends on request, written by hand to the socket:
`raw_flows.py <flow>`, connecting to $PGHOST:$PGPORT (trust authentication)."""
import os
import socket
import struct
import sys


def startup_packet(**params):
    body = struct.pack("!i", 196608)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def message(t, body=b""):
    return t.encode() + struct.pack("!i", len(body) + 4) + body


def query(sql):
    return message("Q", sql.encode() + b"\0")


def connect():
    return socket.create_connection((os.environ["PGHOST"], int(os.environ["PGPORT"])))


def read_until(s, wanted=b"Z", times=1):
    """Reads whole messages until `times` messages of type `wanted` have arrived."""
    buf = b""
    seen = 0
    while seen < times:
        chunk = s.recv(65536)
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 5:
            n = struct.unpack("!i", buf[1:5])[0]
            if len(buf) < n + 1:
                break
            if buf[:1] == wanted:
                seen += 1
            buf = buf[n + 1:]


def read_until_ready(s, times=1):
    read_until(s, b"Z", times)


def two_queries():
    """Two simple Queries written in one go: a read, then a write."""
    with connect() as s:
        s.sendall(startup_packet(user="app", database="app"))
        read_until_ready(s)
        s.sendall(query("SELECT count(*) FROM rec_t") + query("INSERT INTO rec_t (id, v) VALUES (200, 'raw')"))
        read_until_ready(s, 2)
        s.sendall(message("X"))


def parse_flush_then_query():
    """asyncpg's shape, reduced: Parse/Describe/Flush with no Sync, then a simple Query."""
    with connect() as s:
        s.sendall(startup_packet(user="app", database="app"))
        read_until_ready(s)
        s.sendall(message("P", b"s1\0SELECT 1\0\0\0") + message("D", b"Ss1\0") + message("H"))
        read_until(s, b"T")
        s.sendall(query("INSERT INTO rec_t (id, v) VALUES (201, 'raw')"))
        read_until_ready(s)
        s.sendall(message("X"))


def terminate_before_startup():
    """node-postgres' connect() then end() at once: Terminate before any startup packet."""
    with connect() as s:
        s.sendall(message("X"))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


def bad_startup_length():
    """A startup packet whose length is below the minimum."""
    with connect() as s:
        s.sendall(struct.pack("!i", 4))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


FLOWS = {
    "two-queries": two_queries,
    "parse-flush-then-query": parse_flush_then_query,
    "terminate-before-startup": terminate_before_startup,
    "bad-startup-length": bad_startup_length,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in FLOWS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(FLOWS)}}}")
    FLOWS[sys.argv[1]]()
