#!/usr/bin/env python3
"""A stand-in for the Internet: the relay host SMTP/Acme sends to.

    python3 examples/acme/sink.py [PORT]      (default 2626, on 127.0.0.1)

Accepts every message and prints its envelope and headers; refuses
recipients whose local part starts with "reject" (550 5.1.1), so a Delivery
Failure Report can be seen too. Standard library only.
"""

import socketserver
import sys


class Session(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 sink.example ESMTP")
        sender, rcpts = "", []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-sink.example\r\n250-PIPELINING\r\n250 8BITMIME")
            elif cmd.upper().startswith("MAIL FROM:"):
                sender, rcpts = (cmd[10:].split() or [""])[0].strip("<>"), []
                self.reply("250 2.1.0 ok")
            elif cmd.upper().startswith("RCPT TO:"):
                rcpt = (cmd[8:].split() or [""])[0].strip("<>")
                if rcpt.lower().startswith("reject"):
                    self.reply("550 5.1.1 no such user here")
                else:
                    rcpts.append(rcpt)
                    self.reply("250 2.1.5 ok")
            elif verb == "DATA" and not rcpts:
                self.reply("554 5.5.1 No valid recipients")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = []
                while True:
                    l = self.rfile.readline()
                    if not l or l == b".\r\n":
                        break
                    data.append(l.decode("utf-8", "replace"))
                headers = "".join(data).split("\r\n\r\n", 1)[0]
                print(f"--- from <{sender}> to {', '.join('<%s>' % r for r in rcpts)}")
                print(headers, flush=True)
                self.reply("250 2.0.0 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 2626
    with Server(("127.0.0.1", port), Session) as s:
        print(f"sink: listening on 127.0.0.1:{port}", flush=True)
        s.serve_forever()
