"""python tls_peer.py HOST PORT CAFILE: fetches https://HOST:PORT/healthz verifying the server
with CAFILE, and prints one JSON line: the certificate's serial number and the /healthz body."""

import json
import socket
import ssl
import sys

host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
with socket.create_connection((host, port), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=host) as s:
        serial = s.getpeercert()["serialNumber"]
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
body = data.split(b"\r\n\r\n", 1)[1]
print(json.dumps({"serial": serial, "healthz": json.loads(body)}))
