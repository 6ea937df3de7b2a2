"""
A minimal authoritative DNS server for tests: UDP on 127.0.0.1, MX, A and
AAAA records of a small in-memory zone, NXDOMAIN for unknown names, NODATA
for known names without records of the asked type, and names that get
SERVFAIL or no answer at all.  Test code only (the product resolves
through c-ares); written with the standard library.

    with FakeDNS() as dns:
        dns.add_mx("example.test", 10, "mx.example.test")
        dns.add_a("mx.example.test", "127.0.0.1")
        dns.server            # "127.0.0.1:PORT" for dns_server_addresses
        dns.queries           # [(name, type), ...] as asked
"""

import ipaddress
import socket
import struct
import threading

TYPE_A = 1
TYPE_MX = 15
TYPE_AAAA = 28
TYPE_NAMES = {TYPE_A: "A", TYPE_MX: "MX", TYPE_AAAA: "AAAA"}

RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3


def encode_name(name):
    out = bytearray()
    for label in name.strip(".").split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError("bad label in %r" % name)
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def parse_question(packet):
    """(id, flags, name, qtype, end offset of the question) or None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        return None
    pos, labels = 12, []
    while True:
        if pos >= len(packet):
            return None
        n = packet[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0 or pos + n > len(packet):
            return None
        labels.append(packet[pos:pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(packet):
        return None
    qtype, _qclass = struct.unpack("!HH", packet[pos:pos + 4])
    return qid, flags, ".".join(labels).lower(), qtype, pos + 4


class FakeDNS:
    def __init__(self, host="127.0.0.1"):
        self.records = {}        # name -> {type: [rdata bytes]}
        self.servfail = set()
        self.silent = set()
        self.queries = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()
        self.server = "%s:%d" % (self.host, self.port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # ---- zone ----

    def _add(self, name, rtype, rdata):
        with self.lock:
            self.records.setdefault(name.lower().strip("."), {}).setdefault(rtype, []).append(rdata)

    def add_name(self, name):
        """The name exists (NODATA for every type) unless records are added."""
        with self.lock:
            self.records.setdefault(name.lower().strip("."), {})

    def add_mx(self, name, pref, host):
        self._add(name, TYPE_MX, struct.pack("!H", pref) + encode_name(host))

    def add_null_mx(self, name):
        self._add(name, TYPE_MX, struct.pack("!H", 0) + b"\x00")

    def add_a(self, name, ip):
        self._add(name, TYPE_A, ipaddress.IPv4Address(ip).packed)

    def add_aaaa(self, name, ip):
        self._add(name, TYPE_AAAA, ipaddress.IPv6Address(ip).packed)

    def add_servfail(self, name):
        self.servfail.add(name.lower().strip("."))

    def add_silent(self, name):
        self.silent.add(name.lower().strip("."))

    def asked(self, name, rtype=None):
        with self.lock:
            return [q for q in self.queries
                    if q[0] == name.lower() and (rtype is None or q[1] == rtype)]

    # ---- server ----

    def answer(self, packet):
        q = parse_question(packet)
        if q is None:
            return None
        qid, flags, name, qtype, qend = q
        with self.lock:
            self.queries.append((name, TYPE_NAMES.get(qtype, str(qtype))))
            if name in self.silent:
                return None
            rcode, answers = 0, []
            if name in self.servfail:
                rcode = RCODE_SERVFAIL
            elif name not in self.records:
                rcode = RCODE_NXDOMAIN
            else:
                answers = list(self.records[name].get(qtype, []))
        rd = flags & 0x0100
        header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode,
                             1, len(answers), 0, 0)
        out = bytearray(header + packet[12:qend])
        for rdata in answers:
            # Name: pointer to the question (offset 12).
            out += struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
        return bytes(out)

    def _serve(self):
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(packet)
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
