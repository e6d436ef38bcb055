"""Drives a real headless Chromium over the DevTools protocol against `wsp serve --demo`.

Two demo pages exchange messages through the pool (typed into the page and sent with its own
buttons, read back from what the page shows), and a page served from another origin is refused
unless that origin is allowed.

usage: browser.py CHROMIUM POOL_HTTP FOREIGN_HTTP ALLOWING_WS [SCREENSHOT.png]
  POOL_HTTP     http://127.0.0.1:P of `wsp serve --demo`
  FOREIGN_HTTP  http://127.0.0.1:Q of another `wsp serve --demo` (another origin)
  ALLOWING_WS   ws://127.0.0.1:R/ws of a pool started with --allow-origin FOREIGN_HTTP
"""

import asyncio
import os
import json
import re
import shutil
import subprocess
import sys
import tempfile

import websockets

TIMEOUT = 15.0


class Browser:
    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="wsp-chromium-")
        self.proc = subprocess.Popen(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                "--window-size=1200,800", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ws = None
        self.next_id = 0
        self.replies = {}

    async def start(self):
        endpoint = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while endpoint is None:
            if loop.time() > deadline:
                raise SystemExit("chromium did not print its DevTools endpoint")
            line = await loop.run_in_executor(None, self.proc.stderr.readline)
            if not line and self.proc.poll() is not None:
                raise SystemExit(f"chromium exited with {self.proc.returncode}")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                endpoint = m.group(1)
        self.ws = await websockets.connect(endpoint, max_size=None)
        self.reader = asyncio.create_task(self.read())

    async def read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.replies:
                self.replies.pop(msg["id"]).set_result(msg)

    async def send(self, method, params=None, session=None):
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.replies[self.next_id] = fut
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, TIMEOUT)
        if "error" in reply:
            raise SystemExit(f"{method}: {reply['error']}")
        return reply["result"]

    async def open(self, url):
        target = await self.send("Target.createTarget", {"url": url})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        return Page(self, attached["sessionId"], url)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser, session, url):
        self.b, self.session, self.url = browser, session, url

    async def eval(self, expression):
        r = await self.b.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in r:
            raise SystemExit(f"{self.url}: {expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait(self, expression, what):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        last = None
        while loop.time() < deadline:
            try:
                last = await self.eval(expression)
            except SystemExit:
                last = None  # the page is still loading
            if last:
                return last
            await asyncio.sleep(0.1)
        status = await self.text("#status")
        frames = await self.text("#frames")
        raise SystemExit(f"{self.url}: timed out waiting for {what} (status {status!r}; frames {frames[-600:]!r})")

    async def text(self, selector):
        try:
            return await self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")
        except SystemExit:
            return ""

    async def type_and_send(self, route, target, text):
        await self.eval(
            f"""(() => {{
              document.querySelector('#route').value = {json.dumps(route)};
              document.querySelector('#target').value = {json.dumps(target)};
              document.querySelector('#text').value = {json.dumps(text)};
              document.querySelector('#send').click();
              return true;
            }})()"""
        )

    async def screenshot(self, path):
        import base64
        r = await self.b.send("Page.captureScreenshot", {"format": "png"}, self.session)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))


async def main(chromium, pool, foreign, allowing, shot):
    b = Browser(chromium)
    try:
        await b.start()
        connected = "document.querySelector('#status').innerText === 'connected'"
        bob = await b.open(f"{pool}/?id=bob&channel=news")
        await bob.wait(connected, "bob connected")
        # WSP_BROWSER_ALICE: where alice's page comes from (e.g. a `wsp proxy` in front of the
        # pool: her page and her WebSocket both go through it); bob is always direct.
        alice_base = os.environ.get("WSP_BROWSER_ALICE", pool)
        alice = await b.open(f"{alice_base}/?id=alice&channel=news")
        await alice.wait(connected, "alice connected")
        assert await alice.text("#client-id") == "alice"
        # The members list is live: alice's page lists bob, bob's lists alice.
        await alice.wait("[...document.querySelectorAll('#members li')].some(l => l.dataset.id === 'bob')", "bob in alice's member list")
        await bob.wait("[...document.querySelectorAll('#members li')].some(l => l.dataset.id === 'alice')", "alice in bob's member list")

        # A channel message typed into alice's page reaches bob's page.
        await alice.type_and_send("channel", "news", "hello from alice")
        await bob.wait("document.querySelector('#frames').innerText.includes('hello from alice')", "alice's message on bob's page")
        frames = await bob.text("#frames")
        assert '"from":"alice"' in frames, frames[-500:]
        # A unicast from bob to alice.
        await bob.type_and_send("client", "alice", "hi alice, bob here")
        await alice.wait("document.querySelector('#frames').innerText.includes('hi alice, bob here')", "bob's unicast on alice's page")
        # Joining a channel from the page's own form.
        await bob.eval("document.querySelector('#join-name').value = 'sport'; document.querySelector('#join').click(); true")
        await bob.wait("[...document.querySelectorAll('#channels li span')].some(s => s.innerText === 'sport')", "sport in bob's channels")
        await alice.type_and_send("channel", "sport", "alice is not in sport")
        await alice.wait("document.querySelector('#frames').innerText.includes('\"delivered\":1')", "the reply counting bob alone")
        if shot:
            await bob.screenshot(shot)

        # A page from another origin is refused by the pool...
        eve = await b.open(f"{foreign}/?id=eve&url={pool.replace('http', 'ws')}/ws")
        await eve.wait("document.querySelector('#status').innerText.startsWith('refused')", "eve refused")
        # ... and accepted by a pool that allows that origin.
        eve2 = await b.open(f"{foreign}/?id=eve&url={allowing}")
        await eve2.wait(connected, "eve connected where her origin is allowed")
        print("browser: ok")
    finally:
        b.close()


if __name__ == "__main__":
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) > 5 else None))
