#!/usr/bin/env python3
"""Capture what `ovs-ofctl` sends: a minimal OpenFlow switch on a unix socket.

Usage: capture.py SOCKET VERSION OUT COMMAND...

Listens on SOCKET, runs COMMAND (an ovs-ofctl invocation whose target is
unix:SOCKET), answers it as a switch speaking wire VERSION (1 = OpenFlow 1.0,
4 = OpenFlow 1.3) would, and writes every message ovs-ofctl sent to OUT, one
hex line each, after a `# command:` line and a `# connection N` line per
connection (ovs-ofctl may connect more than once). The switch has one port (number 1,
name p1). Replies are minimal: enough for ovs-ofctl to finish its work.
"""
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_FEATURES_REQUEST = 5
OFPT_GET_CONFIG_REQUEST = 7


def port10():
    return struct.pack("!H6s16sIIIIII", 1, b"\x02\x00\x00\x00\x00\x01", b"p1", 0, 0, 0x2040, 0, 0, 0)


def port13():
    return struct.pack("!I4x6s2x16sIIIIIIII", 1, b"\x02\x00\x00\x00\x00\x01", b"p1", 0, 4, 0x2040, 0, 0, 0,
                       10000000, 10000000)


def msg(version, type_, xid, body=b""):
    return struct.pack("!BBHI", version, type_, 8 + len(body), xid) + body


def reply(version, type_, xid, body):
    """The answer to one message from ovs-ofctl, or None."""
    if type_ == OFPT_ECHO_REQUEST:
        return msg(version, OFPT_ECHO_REPLY, xid, body)
    if type_ == OFPT_FEATURES_REQUEST:
        if version == 1:
            return msg(version, 6, xid, struct.pack("!QIB3xII", 0x1234, 256, 254, 0xc7, 0xfff) + port10())
        return msg(version, 6, xid, struct.pack("!QIBB2xII", 0x1234, 256, 254, 0, 0x4f, 0))
    if type_ == OFPT_GET_CONFIG_REQUEST:
        return msg(version, 8, xid, struct.pack("!HH", 0, 128))
    barrier_request = 18 if version == 1 else 20
    if type_ == barrier_request:
        return msg(version, type_ + 1, xid)
    stats_request = 16 if version == 1 else 18
    if type_ == stats_request:
        stype = struct.unpack("!H", body[:2])[0]
        head = struct.pack("!HH", stype, 0) + (b"" if version == 1 else b"\0" * 4)
        rest = body[len(head):]
        aggregate = struct.pack("!QQI4x", 0, 0, 0)
        if stype == 0xFFFF:  # vendor/experimenter stats: echo vendor + subtype
            payload = rest[:8] + (b"\0" * 4 if version == 1 else b"")
            if rest[4:8] == b"\0\0\0\x01":  # NXST_AGGREGATE
                payload += aggregate
        elif stype == 2:  # aggregate
            payload = aggregate
        elif stype == 12 and version == 4:  # table features: table 0, the 8 required properties, empty
            props = b"".join(struct.pack("!HH4x", t, 4) for t in (0, 2, 4, 6, 8, 10, 12, 14))
            payload = struct.pack("!HB5x32sQQII", 64 + len(props), 0, b"t0", 0, 0, 0, 1000) + props
        elif stype == 0:  # desc
            payload = b"".join(s.ljust(n, b"\0") for s, n in
                               ((b"ferrovs", 256), (b"capture", 256), (b"0", 256), (b"0", 32), (b"none", 256)))
        elif stype == 13 and version == 4:  # port desc
            payload = port13()
        else:
            payload = b""
        return msg(version, type_ + 1, xid, head + payload)
    if version == 4 and type_ == 24:  # role request
        return msg(version, 25, xid, body)
    if type_ == 4 and body[:4] == b"\x00\x00\x23\x20":  # Nicira vendor message: nothing to answer
        return None
    return None


def accept_all(listener, version, conns):
    while True:
        conn, _ = listener.accept()
        out = []
        conns.append(out)
        threading.Thread(target=serve, args=(conn, version, out), daemon=True).start()


def serve(conn, version, out):
    conn.sendall(msg(version, OFPT_HELLO, 0))
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
        while len(buf) >= 8:
            length = struct.unpack("!H", buf[2:4])[0]
            if len(buf) < length:
                break
            m, buf = buf[:length], buf[length:]
            out.append(m.hex())
            if os.environ.get("CAPTURE_DEBUG"):
                sys.stderr.write("recv %s\n" % m.hex())
            r = reply(version, m[1], struct.unpack("!I", m[4:8])[0], m[8:])
            if r is not None:
                conn.sendall(r)
    conn.close()


def main():
    path, version, out_path, command = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    conns = []
    threading.Thread(target=accept_all, args=(listener, version, conns), daemon=True).start()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired as e:
        sys.stderr.write("timed out; ovs-ofctl stderr:\n%s\n" % (e.stderr or b"").decode())
        raise
    time.sleep(0.2)
    os.unlink(path)
    printable = " ".join("'%s'" % a if any(c in a for c in " ,=()") else a for a in command)
    printable = printable.replace("unix:" + path, "unix:SOCK")
    with open(out_path, "w") as f:
        f.write("# command: %s\n" % printable)
        f.write("# exit: %d\n" % proc.returncode)
        for line in proc.stderr.strip().splitlines():
            f.write("# stderr: %s\n" % re.sub(r"^[0-9TZ:.-]+\|[0-9]+\|", "", line))
        for i, out in enumerate(conns):
            f.write("# connection %d\n" % (i + 1))
            for m in out:
                f.write(m + "\n")
    sys.stdout.write(proc.stdout)


if __name__ == "__main__":
    main()
