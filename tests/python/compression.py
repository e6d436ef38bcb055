"""permessage-deflate with a third-party client: python compression.py WS_URL.

Python `websockets` offers `permessage-deflate; client_max_window_bits` by default (as browsers
do). The script checks that `wsp serve --compression` accepts it, sends a compressible 64 KiB
message to itself through the pool (compressed by websockets), and checks that the delivery
arrives intact and compressed: the bytes read from the socket are a fraction of the payload.
Prints "compression: ok" on success."""

import asyncio
import json
import sys

from websockets.asyncio.client import connect


async def main(url):
    async with connect(url + "?id=py-deflate&format=json", max_size=None) as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ext.startswith("permessage-deflate"), f"not negotiated: {ext!r}"
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        welcome = json.loads(await ws.recv())
        assert welcome["cmd"] == "welcome", welcome

        # Count what the socket delivers from here on.
        received = 0
        original = ws.data_received

        def counting(data):
            nonlocal received
            received += len(data)
            original(data)

        ws.data_received = counting
        text = " ".join(f"item-{i % 100} status=ok" for i in range(4000))[: 64 * 1024]
        await ws.send(json.dumps({"cmd": "send_to_client", "seqno": "1",
                                  "data": {"client_id": "py-deflate", "data": text}}))
        got = {}
        while len(got) < 2:
            m = json.loads(await ws.recv())
            got[m["cmd"]] = m
        assert got["send_to_client"]["status"] == 0, got["send_to_client"]
        assert got["message"]["data"]["data"] == text, "payload changed in transit"
        assert received < len(text) / 4, f"{received} bytes read for a {len(text)}-byte payload"
        print(f"compression: ok ({ext}; {len(text)} payload bytes in {received} wire bytes)")


asyncio.run(main(sys.argv[1]))
