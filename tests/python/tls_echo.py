"""A wss:// echo server for the `wsp connect` TLS test: python tls_echo.py CERT KEY.
Prints its port, echoes every message, exits after 30 s."""

import asyncio
import ssl
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for msg in ws:
        await ws.send(msg)


async def main(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with serve(echo, "127.0.0.1", 0, ssl=ctx) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(30)


asyncio.run(main(sys.argv[1], sys.argv[2]))
