#!/usr/bin/env python3
"""A DNS server that lies on purpose, for the SSRF tests (tests/ssrf_rebinding.rs).

It answers A queries for the names it is given with TTL 0, from a script of
answers per name: the n-th A query for a name gets the n-th answer, and the last
answer repeats. So `--name node.example.com=11.77.110.1,127.0.0.1` answers the
public address once and loopback from then on (DNS rebinding between a check and
a connect), and `--name mixed.example.com=11.77.110.1+127.0.0.1` answers both
addresses in one answer. AAAA queries for a scripted name get an empty answer
(NOERROR, no records: the scripts are IPv4 only); other names get NXDOMAIN.

Every query answered is appended to the --log file as one JSON line
({"name", "type", "n", "answer"}; `n` counts that name's A queries from 1), so a
test can count how many resolutions happened. Prints {"event": "listening"} on
stdout once bound. UDP only (what the system resolver sends first; the answers
are small).

Usage: rebind_dns.py --listen 127.0.0.1:53 --log FILE --name NAME=ANSWERS ...
  ANSWERS: answers separated by `,`; one answer's addresses joined by `+`.
Needs the `dnslib` package (PyPI).
"""

import argparse
import json
import socket
import sys

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord


def parse_name(spec):
    name, sep, answers = spec.partition("=")
    if not sep or not name or not answers:
        raise argparse.ArgumentTypeError(f"--name wants NAME=ANSWERS, got {spec!r}")
    steps = [step.split("+") for step in answers.split(",")]
    for step in steps:
        for address in step:
            socket.inet_aton(address)  # IPv4 only; raises on anything else
    return name.rstrip(".").lower(), steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port to bind (UDP)")
    parser.add_argument("--log", required=True, help="file that gets one JSON line per query")
    parser.add_argument("--name", action="append", type=parse_name, default=[])
    args = parser.parse_args()

    script = dict(args.name)
    asked = {name: 0 for name in script}
    host, _, port = args.listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    log = open(args.log, "a", encoding="utf-8")
    print(json.dumps({"event": "listening", "listen": args.listen}), flush=True)

    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = DNSRecord.parse(data)
        except Exception:  # not DNS: nothing to answer
            continue
        reply = query.reply()
        qname = str(query.q.qname).rstrip(".").lower()
        qtype = QTYPE.get(query.q.qtype, str(query.q.qtype))
        answer = []
        n = None
        if qname not in script:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype == "A":
            asked[qname] += 1
            n = asked[qname]
            steps = script[qname]
            answer = steps[min(n, len(steps)) - 1]
            for address in answer:
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(address), ttl=0))
        # AAAA and other types of a scripted name: NOERROR without records.
        # The log line is written before the answer is sent, so a test that
        # reads the log after its request finished sees every query it caused.
        record = {"name": qname, "type": qtype, "n": n, "answer": answer}
        log.write(json.dumps(record) + "\n")
        log.flush()
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
