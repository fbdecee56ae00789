#!/usr/bin/env python3
"""A tiny authoritative DNS server over UDP for the outbound tests (stdlib
only). Zone, fixed:

  mx.test       MX 20 b.mx.test, MX 10 a.mx.test (listed out of order)
  a.mx.test     A 127.0.0.2   (nothing listens there: the sender must
                               move on to the next MX)
  b.mx.test     A 127.0.0.1
  nomx.test     A 127.0.0.1   (no MX: the domain's own address is used)
  nullmx.test   MX 0 .        (RFC 7505: accepts no mail)
  anything else NXDOMAIN

It writes its port to --port-file and logs each question to --log.
"""
import argparse
import os
import socket
import struct

A = 1
MX = 15

ZONE = {
    ("mx.test", MX): [(20, "b.mx.test"), (10, "a.mx.test")],
    ("a.mx.test", A): ["127.0.0.2"],
    ("b.mx.test", A): ["127.0.0.1"],
    ("nomx.test", A): ["127.0.0.1"],
    ("nullmx.test", MX): [(0, "")],
}
NAMES = {name for name, _ in ZONE}


def encode_name(name):
    out = b""
    for label in name.split(".") if name else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def parse_question(data):
    i, labels = 12, []
    while data[i]:
        n = data[i]
        labels.append(data[i + 1:i + 1 + n].decode().lower())
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", data[i + 1:i + 5])
    return ".".join(labels), qtype, data[12:i + 5]


def rdata(qtype, value):
    if qtype == A:
        return socket.inet_aton(value)
    return struct.pack("!H", value[0]) + encode_name(value[1])


def answer(data):
    qid, flags = struct.unpack("!HH", data[:4])
    name, qtype, question = parse_question(data)
    records = ZONE.get((name, qtype), [])
    rcode = 0 if name in NAMES else 3
    head = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode,
                       1, len(records), 0, 0)
    body = b""
    for r in records:
        rd = rdata(qtype, r)
        body += struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rd)) + rd
    return head + question + body, name, qtype, rcode


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    args = p.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(tmp, args.port_file)
    while True:
        data, peer = s.recvfrom(4096)
        try:
            reply, name, qtype, rcode = answer(data)
        except (IndexError, struct.error, UnicodeDecodeError):
            continue
        with open(args.log, "a") as f:
            f.write("%s %d rcode=%d\n" % (name, qtype, rcode))
        s.sendto(reply, peer)


if __name__ == "__main__":
    main()
