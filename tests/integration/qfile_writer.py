"""
Write a posthorn queue file (the format of src/global/qfile.h) so a test
can hand a message straight to a delivery agent, without smtpd, cleanup
or qmgr in the way.

    from qfile_writer import write_queue_file
    qid, offsets = write_queue_file(queue_dir, "active", sender="a@b.test",
                                    rcpts=["x@y.test"], content=b"Subject: t\\n\\nhi\\n",
                                    attrs={"smtputf8": "0"})

Records: 'V' version, 'T' arrival, 'S' sender, 'A' name=value attributes,
'R' recipients (addr NUL orig NUL notify NUL orcpt), 'M', 'B' content
chunks (at most 64 KiB), 'Z' content size, 'E'.  Each record is a type
byte, a little-endian base-128 length, then the data.  `offsets` are the
file offsets of each recipient's type byte, which the qmgr -> agent
protocol names.
"""

import itertools
import os
import time

QFILE_VERSION = b"posthorn-queue-1"
QFILE_CHUNK_MAX = 64 * 1024

_counter = itertools.count(1)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _record(rtype, data=b""):
    return rtype.encode() + _varint(len(data)) + data


def _b(s):
    return s if isinstance(s, bytes) else s.encode("utf-8")


def new_queue_id():
    """A fresh, syntactically valid queue ID ([0-9A-F])."""
    return "%X%05X%03X" % (int(time.time()), os.getpid() & 0xFFFFF, next(_counter) & 0xFFF)


def build_queue_file(sender, rcpts, content, attrs=None, arrival=None):
    """Bytes of a queue file and the recipient record offsets.

    rcpts: list of addresses, or of dicts with addr/orig/notify/orcpt/done.
    """
    out = bytearray()
    out += _record("V", QFILE_VERSION)
    out += _record("T", str(int(arrival if arrival is not None else time.time())).encode())
    out += _record("S", _b(sender))
    for name, value in (attrs or {}).items():
        out += _record("A", _b("%s=%s" % (name, value)))
    offsets = []
    for r in rcpts:
        if isinstance(r, (str, bytes)):
            r = {"addr": r}
        fields = [_b(r.get(k, "")) for k in ("addr", "orig", "notify", "orcpt")]
        offsets.append(len(out))
        out += _record("D" if r.get("done") else "R", b"\0".join(fields))
    out += _record("M")
    content = _b(content)
    for i in range(0, len(content), QFILE_CHUNK_MAX):
        out += _record("B", content[i:i + QFILE_CHUNK_MAX])
    out += _record("Z", str(len(content)).encode())
    out += _record("E")
    return bytes(out), offsets


def write_queue_file(queue_dir, queue, sender, rcpts, content, attrs=None, arrival=None,
                     queue_id=None):
    """Write queue_dir/queue/<ID>; returns (queue_id, recipient offsets)."""
    data, offsets = build_queue_file(sender, rcpts, content, attrs, arrival)
    qid = queue_id or new_queue_id()
    d = os.path.join(queue_dir, queue)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, qid)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o700)
    return qid, offsets
