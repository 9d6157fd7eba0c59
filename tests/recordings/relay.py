"""A recording relay: forwards TCP connections to a PostgreSQL server unchanged and writes down
every whole message of each, in the order the messages arrived (see pgtrace.py)."""
import asyncio
import struct

import pgtrace

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
MAX_STARTUP_PACKET = 10000  # PostgreSQL's MAX_STARTUP_PACKET_LENGTH


class Conversation:
    def __init__(self, number):
        self.number = number
        self.lines = []
        self.done = asyncio.Event()

    def add(self, direction, msg, typed=True):
        self.lines.append(pgtrace.line(direction, msg, typed))


async def _pump(reader, writer, conv, direction, state):
    """Copies one direction, cutting it into messages. `state` is shared by both directions:
    'untyped' (client still in its startup packets), 'ssl_answer' (the server owes one byte)."""
    buf = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            buf += data
            while True:
                if direction == pgtrace.CLIENT and state["client_untyped"]:
                    if len(buf) < 8:
                        break
                    n = struct.unpack("!i", buf[:4])[0]
                    if n < 8 or n > MAX_STARTUP_PACKET:
                        # Not a startup packet (PostgreSQL refuses it): the rest as sent.
                        state["client_garbled"] = True
                        break
                    if len(buf) < n:
                        break
                    msg, buf = buf[:n], buf[n:]
                    code = struct.unpack("!i", msg[4:8])[0]
                    conv.add(direction, msg, typed=False)
                    if code in (SSL_REQUEST, GSSENC_REQUEST):
                        state["server_owes_byte"] = True
                    elif code != CANCEL_REQUEST:
                        state["client_untyped"] = False
                    continue
                if direction == pgtrace.SERVER and state["server_owes_byte"]:
                    if not buf:
                        break
                    state["server_owes_byte"] = False
                    conv.add(direction, buf[:1], typed=False)
                    if buf[:1] == b"S":
                        raise RuntimeError("the server accepted TLS: record with sslmode=disable")
                    buf = buf[1:]
                    continue
                if direction == pgtrace.CLIENT and state.get("client_garbled"):
                    break
                if len(buf) < 5:
                    break
                n = struct.unpack("!i", buf[1:5])[0]
                if len(buf) < n + 1:
                    break
                msg, buf = buf[: n + 1], buf[n + 1:]
                conv.add(direction, msg)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        if buf:
            conv.add(direction, buf, typed=False)
        try:
            writer.close()
        except Exception:
            pass


class Relay:
    def __init__(self, listen_port, server_port, host="127.0.0.1"):
        self.listen_port, self.server_port, self.host = listen_port, server_port, host
        self.conversations = []
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self._accept, self.host, self.listen_port)

    async def _accept(self, creader, cwriter):
        conv = Conversation(len(self.conversations) + 1)
        self.conversations.append(conv)
        sreader, swriter = await asyncio.open_connection(self.host, self.server_port)
        state = {"client_untyped": True, "server_owes_byte": False}
        await asyncio.gather(
            _pump(creader, swriter, conv, pgtrace.CLIENT, state),
            _pump(sreader, cwriter, conv, pgtrace.SERVER, state),
        )
        conv.done.set()

    def take(self):
        """The conversations since the last call (all closed first)."""
        convs, self.conversations = self.conversations, []
        return convs

    async def close(self):
        self.server.close()
        await self.server.wait_closed()
