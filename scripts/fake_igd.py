#!/usr/bin/env python3
"""A hostile UPnP Internet Gateway Device, for tests of the reachability ladder.

Runs in a netlab router namespace in place of miniupnpd (`netlab.sh up <p> <n> off`). It
answers SSDP M-SEARCH on 239.255.255.250:1900 (joined on the LAN address) with a LOCATION
pointing at its own HTTP server, which serves a device description, the WANIPConnection
service description (SCPD) and SOAP answers according to a mode:

  valid          a well-formed IGD with a public external address (the control case: shows
                 that everything below fails where its mode says, not earlier)
  garbage-ssdp   the SSDP answer is random bytes (no LOCATION)
  garbage-desc   the device description is random bytes
  garbage-soap   description and SCPD are fine; every SOAP answer is random bytes
  invalid-soap   every SOAP answer is text that is not XML (and carries control characters)
  hang-desc      the HTTP server accepts the description request and never answers
  hang-soap      description fine; SOAP requests are accepted and never answered
  private        GetExternalIPAddress answers 192.168.1.1 (a second NAT); mapping succeeds
  cgnat          GetExternalIPAddress answers 100.64.0.1 (carrier-grade NAT); mapping succeeds
  huge-desc      the device description never ends
  huge-soap      every SOAP answer body never ends
  fault          AddPortMapping answers UPnP fault 718, AddAnyPortMapping fault 501

`fake_igd.py probe --from <lan-host-ip>` (run in the LAN namespace) sends M-SEARCH until an
impostor answers (the first multicast after a fresh join is sometimes lost) and exits 0, or 1
after ten tries.

Every request it gets is logged to stderr as one line (`fake_igd: ssdp ...`, `fake_igd: GET
/path`, `fake_igd: soap Action`), so a test can tell how far a client got. When it listens it
prints `ready <http-port>` on stdout. Python 3 standard library only. Stop it with SIGTERM.
"""

import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = [
    "valid",
    "garbage-ssdp",
    "garbage-desc",
    "garbage-soap",
    "invalid-soap",
    "hang-desc",
    "hang-soap",
    "private",
    "cgnat",
    "huge-desc",
    "huge-soap",
    "fault",
]

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900
IGD_TYPE = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
WANIP = "urn:schemas-upnp-org:service:WANIPConnection:1"
DESC_PATH = "/rootDesc.xml"
SCPD_PATH = "/WANIPCn.xml"
CONTROL_PATH = "/ctl/IPConn"
UUID = "uuid:5c4a1f7e-0d3e-4b8a-9a51-fa4e1d0c0de0"

DESCRIPTION = f"""<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>{IGD_TYPE}</deviceType>
<friendlyName>fake_igd</friendlyName>
<UDN>{UUID}</UDN>
<deviceList>
<device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<friendlyName>WANDevice</friendlyName>
<UDN>{UUID}-wan</UDN>
<deviceList>
<device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<friendlyName>WANConnectionDevice</friendlyName>
<UDN>{UUID}-conn</UDN>
<serviceList>
<service>
<serviceType>{WANIP}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>{CONTROL_PATH}</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
<SCPDURL>{SCPD_PATH}</SCPDURL>
</service>
</serviceList>
</device>
</deviceList>
</device>
</deviceList>
</device>
</root>
"""

MAPPING_ARGS = [
    "NewRemoteHost",
    "NewExternalPort",
    "NewProtocol",
    "NewInternalPort",
    "NewInternalClient",
    "NewEnabled",
    "NewPortMappingDescription",
    "NewLeaseDuration",
]


def action(name, ins, outs):
    args = "".join(
        f"<argument><name>{a}</name><direction>in</direction>"
        f"<relatedStateVariable>X</relatedStateVariable></argument>"
        for a in ins
    ) + "".join(
        f"<argument><name>{a}</name><direction>out</direction>"
        f"<relatedStateVariable>X</relatedStateVariable></argument>"
        for a in outs
    )
    return f"<action><name>{name}</name><argumentList>{args}</argumentList></action>"


SCPD = (
    '<?xml version="1.0"?>\n<scpd xmlns="urn:schemas-upnp-org:service-1-0">'
    "<specVersion><major>1</major><minor>0</minor></specVersion><actionList>"
    + action("GetExternalIPAddress", [], ["NewExternalIPAddress"])
    + action("AddPortMapping", MAPPING_ARGS, [])
    + action("AddAnyPortMapping", MAPPING_ARGS, ["NewReservedPort"])
    + action("DeletePortMapping", ["NewRemoteHost", "NewExternalPort", "NewProtocol"], [])
    + "</actionList><serviceStateTable></serviceStateTable></scpd>\n"
)

ENVELOPE = (
    '<?xml version="1.0"?>\n'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>{}</s:Body></s:Envelope>\n'
)


def soap_ok(name, fields):
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return ENVELOPE.format(f'<u:{name}Response xmlns:u="{WANIP}">{inner}</u:{name}Response>')


def soap_fault(code, description):
    return ENVELOPE.format(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
        '<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{description}</errorDescription>"
        "</UPnPError></detail></s:Fault>"
    )


def log(line):
    sys.stderr.write(f"fake_igd: {line}\n")
    sys.stderr.flush()


def hang_forever():
    while True:
        time.sleep(3600)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_igd/1"

    def log_message(self, *args):  # the test reads our own lines, not http.server's
        pass

    def answer(self, status, body, content_type="text/xml"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def endless(self, head):
        """A body with no length that never ends (until the client goes away)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        pad = b"<pad>" + b"x" * 65536 + b"</pad>\n"
        sent = 0
        try:
            self.wfile.write(head.encode())
            while True:
                self.wfile.write(pad)
                sent += len(pad)
        except OSError:
            log(f"endless body: the client went away after {sent} bytes")

    def do_GET(self):
        mode = self.server.mode
        log(f"GET {self.path}")
        if self.path == DESC_PATH:
            if mode == "garbage-desc":
                return self.answer(200, os.urandom(4096))
            if mode == "hang-desc":
                hang_forever()
            if mode == "huge-desc":
                return self.endless('<?xml version="1.0"?>\n<root xmlns="urn:schemas-upnp-org:device-1-0">')
            return self.answer(200, DESCRIPTION)
        if self.path == SCPD_PATH:
            return self.answer(200, SCPD)
        return self.answer(404, "not here", "text/plain")

    def do_POST(self):
        mode = self.server.mode
        length = min(int(self.headers.get("Content-Length") or 0), 65536)
        self.rfile.read(length)
        soap_action = self.headers.get("SOAPAction", "").strip('"')
        name = soap_action.rsplit("#", 1)[-1]
        log(f"soap {name}")
        if self.path != CONTROL_PATH:
            return self.answer(404, "not here", "text/plain")
        if mode == "garbage-soap":
            return self.answer(200, os.urandom(4096))
        if mode == "invalid-soap":
            return self.answer(200, "this is not XML \x1b[31m\x07 <<<&&&\n" * 64)
        if mode == "hang-soap":
            hang_forever()
        if mode == "huge-soap":
            return self.endless(ENVELOPE.split("{}")[0])
        if name == "GetExternalIPAddress":
            return self.answer(200, soap_ok(name, {"NewExternalIPAddress": self.server.external_ip}))
        if name == "AddPortMapping":
            if mode == "fault":
                return self.answer(500, soap_fault(718, "ConflictInMappingEntry"))
            return self.answer(200, soap_ok(name, {}))
        if name == "AddAnyPortMapping":
            if mode == "fault":
                return self.answer(500, soap_fault(501, "ActionFailed"))
            return self.answer(200, soap_ok(name, {"NewReservedPort": self.server.mapped_port}))
        if name == "DeletePortMapping":
            return self.answer(200, soap_ok(name, {}))
        return self.answer(500, soap_fault(401, "Invalid Action"))


def ssdp_socket(lan_ip):
    """UDP 1900, member of the SSDP group on the LAN interface."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", SSDP_PORT))
    mreq = struct.pack("4s4s", socket.inet_aton(SSDP_GROUP), socket.inet_aton(lan_ip))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return sock


def ssdp_loop(sock, mode, lan_ip, http_port):
    while True:
        data, peer = sock.recvfrom(2048)
        text = data.decode("latin-1")
        if not text.upper().startswith("M-SEARCH"):
            continue
        log(f"ssdp M-SEARCH from {peer[0]}:{peer[1]}")
        if mode == "garbage-ssdp":
            answer = os.urandom(512)
        else:
            answer = (
                "HTTP/1.1 200 OK\r\n"
                "CACHE-CONTROL: max-age=120\r\n"
                f"ST: {IGD_TYPE}\r\n"
                f"USN: {UUID}::{IGD_TYPE}\r\n"
                "EXT:\r\n"
                "SERVER: Linux UPnP/1.1 fake_igd/1\r\n"
                f"LOCATION: http://{lan_ip}:{http_port}{DESC_PATH}\r\n"
                "\r\n"
            ).encode()
        sock.sendto(answer, peer)


def probe(from_ip):
    """Exit 0 once an M-SEARCH from `from_ip` is answered; 1 after ten tries."""
    request = (
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        f'ST: {IGD_TYPE}\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n'
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((from_ip, 0))
        sock.settimeout(0.3)
        for _ in range(10):
            sock.sendto(request, (SSDP_GROUP, SSDP_PORT))
            try:
                sock.recvfrom(2048)
                return 0
            except socket.timeout:
                continue
    return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=MODES + ["probe"])
    parser.add_argument("--from", dest="from_ip", default="192.168.77.2",
                        help="probe: the LAN host address to search from")
    parser.add_argument("--lan-ip", default="192.168.77.1", help="the router's LAN address")
    parser.add_argument("--external-ip", default="11.77.30.1",
                        help="the public address told in modes that tell a public one")
    parser.add_argument("--mapped-port", default="40123", help="AddAnyPortMapping's answer")
    args = parser.parse_args()
    if args.mode == "probe":
        sys.exit(probe(args.from_ip))

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = ThreadingHTTPServer((args.lan_ip, 0), Handler)
    server.daemon_threads = True
    server.mode = args.mode
    server.external_ip = {"private": "192.168.1.1", "cgnat": "100.64.0.1"}.get(args.mode, args.external_ip)
    server.mapped_port = args.mapped_port
    http_port = server.server_address[1]
    sock = ssdp_socket(args.lan_ip)
    threading.Thread(
        target=ssdp_loop, args=(sock, args.mode, args.lan_ip, http_port), daemon=True
    ).start()
    print(f"ready {http_port}", flush=True)
    log(f"mode {args.mode}, http on {args.lan_ip}:{http_port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
