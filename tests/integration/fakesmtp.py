"""
fakesmtp - a small fake remote SMTP (or LMTP) server on 127.0.0.1 for the
relay tests, written with the standard library (no smtp-sink, no aiosmtpd).

    remote = Remote()                 # listens on 127.0.0.1:remote.port
    remote.rcpt_replies["x@r.test"] = "450 4.2.1 busy"
    ...
    remote.received()                 # [(MAIL line, [rcpt], body bytes)]
    remote.stop()

Knobs (change them at any time):
  ehlo          keywords announced after EHLO/LHLO
  tls_context   an ssl.SSLContext: STARTTLS is announced and works
  lmtp          True: one reply per accepted recipient after the dot
  mail_reply    reply to MAIL FROM
  rcpt_replies  {address: reply line}; others get 250
  data_reply    reply to the final dot
  drop          True: hang up after the first line of message content
  delay         seconds to wait before the final reply

It records every accepted message (with whether it came over TLS in
details()), the number of connections and the highest number open at
once.  Everything has a time-out: a stuck client costs a thread for at
most 60 s, never the test run.
"""

import re
import socket
import socketserver
import threading
import time


class Remote:
    def __init__(self, port=0):
        self.ehlo = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
        self.tls_context = None
        self.lmtp = False
        self.mail_reply = "250 2.1.0 Ok"
        self.rcpt_replies = {}
        self.data_reply = "250 2.0.0 Ok: queued as FAKE"
        self.drop = False
        self.delay = 0.0
        self.lock = threading.Lock()
        self.messages = []
        self.details_ = []
        self.active = 0
        self.max_active = 0
        self.connections = 0
        remote = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                remote._session(self)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            # socketserver's default listen backlog is 5: with twenty
            # delivery agents connecting at once, the overflow was dropped
            # and those clients timed out waiting for the greeting.
            request_queue_size = 128

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def hop(self):
        return "[127.0.0.1]:%d" % self.port

    def relay(self):
        return "127.0.0.1[127.0.0.1]:%d" % self.port

    def received(self):
        with self.lock:
            return list(self.messages)

    def details(self):
        """[{"mail", "rcpts", "body", "tls"}] of every accepted message."""
        with self.lock:
            return list(self.details_)

    def _session(self, h):
        with self.lock:
            self.active += 1
            self.connections += 1
            self.max_active = max(self.max_active, self.active)
        try:
            h.connection.settimeout(60)
            self._converse(h.connection, h.rfile, h.wfile)
        except OSError:
            pass
        finally:
            with self.lock:
                self.active -= 1

    def _converse(self, conn, rfile, wfile):
        def send(line):
            wfile.write(line.encode() + b"\r\n")
            wfile.flush()

        tls = False
        send("220 remote.test ESMTP fake")
        mail, rcpts = None, []
        while True:
            raw = rfile.readline(65536)
            if not raw:
                return
            cmd = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                kws = list(self.ehlo)
                if self.tls_context is not None and not tls:
                    kws.append("STARTTLS")
                lines = ["remote.test"] + kws
                for i, kw in enumerate(lines):
                    send("250%s%s" % ("-" if i < len(lines) - 1 else " ", kw))
            elif verb == "HELO":
                send("250 remote.test")
            elif verb == "STARTTLS" and self.tls_context is not None and not tls:
                send("220 2.0.0 Ready to start TLS")
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                conn.settimeout(60)
                rfile, wfile = conn.makefile("rb"), conn.makefile("wb")
                tls = True
                mail, rcpts = None, []
            elif verb == "MAIL":
                send(self.mail_reply)
                if self.mail_reply.startswith("2"):
                    mail, rcpts = cmd, []
            elif verb == "RCPT":
                m = re.match(r"RCPT TO:<([^>]*)>", cmd, re.I)
                addr = m.group(1) if m else ""
                reply = self.rcpt_replies.get(addr, "250 2.1.5 Ok")
                if reply.startswith("2") and mail is not None:
                    rcpts.append(addr)
                send(reply)
            elif verb == "DATA":
                if mail is None or not rcpts:
                    send("554 5.5.1 Error: no valid recipients")
                    continue
                send("354 End data with <CR><LF>.<CR><LF>")
                body = bytearray()
                while True:
                    line = rfile.readline(1 << 20)
                    if not line:
                        return
                    if self.drop:
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    if line in (b".\r\n", b".\n"):
                        break
                    if line.startswith(b"."):
                        line = line[1:]
                    body += line.replace(b"\r\n", b"\n")
                if self.delay:
                    time.sleep(self.delay)
                reply = self.data_reply
                if reply.startswith("2"):
                    with self.lock:
                        self.messages.append((mail, list(rcpts), bytes(body)))
                        self.details_.append({"mail": mail, "rcpts": list(rcpts), "body": bytes(body),
                                              "tls": tls})
                if self.lmtp:
                    for r in rcpts:
                        send(reply)
                else:
                    send(reply)
                mail, rcpts = None, []
            elif verb == "RSET":
                mail, rcpts = None, []
                send("250 2.0.0 Ok")
            elif verb == "NOOP":
                send("250 2.0.0 Ok")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Error: command not recognized")
