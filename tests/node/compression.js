// permessage-deflate with Node's `ws` client: node compression.js WS_URL
// `ws` offers `permessage-deflate; client_max_window_bits` by default. Checks that
// `wsp serve --compression` accepts the offer, then sends a compressible 64 KiB message to
// itself through the pool (compressed by `ws`) and checks the delivery arrives intact and
// compressed (the socket read a fraction of the payload). Prints "compression: ok".
const WebSocket = require("ws");

const url = process.argv[2] + "?id=node-deflate&format=json";
const ws = new WebSocket(url, { perMessageDeflate: true, maxPayload: 0 });
const fail = (why) => { console.error("compression: " + why); process.exit(1); };
setTimeout(() => fail("timed out"), 10000).unref();

let text, before, seen = {};
ws.on("upgrade", (res) => {
  const ext = res.headers["sec-websocket-extensions"] || "";
  if (!ext.startsWith("permessage-deflate")) fail("not negotiated: " + ext);
});
ws.on("message", (data) => {
  const m = JSON.parse(data.toString());
  if (m.cmd === "welcome") {
    if (!ws.extensions.includes("permessage-deflate")) fail("ws did not enable deflate");
    const words = [];
    for (let i = 0; i < 4000; i++) words.push(`item-${i % 100} status=ok`);
    text = words.join(" ").slice(0, 64 * 1024);
    before = ws._socket.bytesRead;
    ws.send(JSON.stringify({ cmd: "send_to_client", seqno: "1",
                             data: { client_id: "node-deflate", data: text } }));
    return;
  }
  seen[m.cmd] = m;
  if (seen.message && seen.send_to_client) {
    if (seen.send_to_client.status !== 0) fail("reply " + JSON.stringify(seen.send_to_client));
    if (seen.message.data.data !== text) fail("payload changed in transit");
    const wire = ws._socket.bytesRead - before;
    if (wire >= text.length / 4) fail(`${wire} bytes read for a ${text.length}-byte payload`);
    console.log(`compression: ok (${ws.extensions}; ${text.length} payload bytes in ${wire} wire bytes)`);
    ws.close(1000);
  }
});
ws.on("close", () => process.exit(seen.message ? 0 : 1));
ws.on("error", (e) => fail(e.message));
