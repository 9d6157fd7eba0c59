"""The .pgtrace format: PostgreSQL v3 conversations as a client and a server had them, message by
message, in the order a proxy between them saw the messages.

    # free text (driver, version, what the flow does)
    === connection 1
    > 0000000804d2162f                          SSLRequest
    < 4e                                        (SSL refused: one byte)
    > 00000025000300007573657200...             StartupMessage user=app database=app
    < 520000000800000000                        AuthenticationOk
    > 51000000...                               Query "SELECT 1"

'>' is client to server, '<' server to client; then the message's bytes in hex, whole (type byte
and length included); after the hex, a summary for readers that tools ignore. Untyped messages
(startup packet, SSLRequest, CancelRequest) and the one-byte SSL answer appear as they were sent;
bytes that do not frame as a message (a garbled startup packet, a message cut by the connection's
end) are one last line of that side, as sent.
A read of either side that returned several messages is not marked: the order of lines is the
order in which whole messages arrived at the relay, which is what a session sees.
"""
import struct

CLIENT, SERVER = ">", "<"

_FRONTEND = {
    "B": "Bind", "C": "Close", "d": "CopyData", "c": "CopyDone", "f": "CopyFail", "D": "Describe",
    "E": "Execute", "H": "Flush", "F": "FunctionCall", "P": "Parse", "p": "Password", "Q": "Query",
    "S": "Sync", "X": "Terminate",
}
_BACKEND = {
    "R": "Authentication", "K": "BackendKeyData", "2": "BindComplete", "3": "CloseComplete",
    "C": "CommandComplete", "d": "CopyData", "c": "CopyDone", "G": "CopyInResponse",
    "H": "CopyOutResponse", "W": "CopyBothResponse", "D": "DataRow", "I": "EmptyQueryResponse",
    "E": "ErrorResponse", "V": "FunctionCallResponse", "v": "NegotiateProtocolVersion",
    "n": "NoData", "N": "NoticeResponse", "A": "NotificationResponse", "t": "ParameterDescription",
    "S": "ParameterStatus", "1": "ParseComplete", "s": "PortalSuspended", "Z": "ReadyForQuery",
    "T": "RowDescription",
}


def _cstrings(body, n=None):
    parts = body.split(b"\0")
    out = [p.decode("utf-8", "replace") for p in parts[:-1]]
    return out if n is None else out[:n]


def _short(text, limit=70):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary(direction, msg, typed=True):
    """A one-line description of one whole message (for readers of a trace)."""
    if not typed:
        if len(msg) == 1:
            return "SSL answer " + msg.decode()
        length = struct.unpack("!i", msg[:4])[0] if len(msg) >= 4 else -1
        if len(msg) < 8 or length != len(msg):
            return f"{len(msg)} bytes that are not a whole message (as sent, up to the end)"
        code = struct.unpack("!i", msg[4:8])[0]
        if code == 80877103:
            return "SSLRequest"
        if code == 80877104:
            return "GSSENCRequest"
        if code == 80877102:
            return "CancelRequest"
        pairs = _cstrings(msg[8:])
        kv = " ".join(f"{pairs[i]}={pairs[i + 1]}" for i in range(0, len(pairs) - 1, 2))
        return _short(f"StartupMessage {kv}", 100)
    t = chr(msg[0])
    body = msg[5:]
    name = (_FRONTEND if direction == CLIENT else _BACKEND).get(t, f"?{t}")
    if direction == CLIENT:
        if t == "Q":
            return f'{name} "{_short(_cstrings(body, 1)[0])}"'
        if t == "P":
            stmt, sql = _cstrings(body, 2)
            return f'{name} "{stmt}" "{_short(sql)}"'
        if t == "B":
            portal, stmt = _cstrings(body, 2)
            return f'{name} "{portal}" "{stmt}"'
        if t in "DC":
            return f'{name} {chr(body[0])} "{_cstrings(body[1:], 1)[0]}"'
        if t == "E":
            portal = _cstrings(body, 1)[0]
            rows = struct.unpack("!i", body[len(portal.encode()) + 1:][:4])[0]
            return f'{name} "{portal}" {rows}'
        if t == "d":
            return f"{name} {len(body)} bytes"
        return name
    if t == "Z":
        return f"{name} {chr(body[0])}"
    if t == "C":
        return f"{name} {_cstrings(body, 1)[0]}"
    if t in "EN":
        fields = {}
        for part in body.split(b"\0"):
            if part:
                fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
        return f'{name} {fields.get("V", fields.get("S", ""))} {fields.get("C", "")} "{_short(fields.get("M", ""))}"'
    if t == "S":
        k, v = _cstrings(body, 2)
        return f"{name} {k}={v}"
    if t == "R":
        return f"{name} {struct.unpack('!i', body[:4])[0]}"
    if t == "d":
        return f"{name} {len(body)} bytes"
    return name


def line(direction, msg, typed=True):
    return f"{direction} {msg.hex()}  {summary(direction, msg, typed)}"


def read(path):
    """[(connection_number, [(direction, bytes), ...]), ...] from a trace file."""
    conns = []
    for raw in open(path, encoding="utf-8"):
        raw = raw.rstrip("\n")
        if raw.startswith("=== connection"):
            conns.append((int(raw.split()[2]), []))
        elif raw[:2] in ("> ", "< "):
            conns[-1][1].append((raw[0], bytes.fromhex(raw[2:].split()[0])))
    return conns
