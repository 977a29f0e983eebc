// socket.io-client against an echo server: connect (with auth), event round trip, ack,
// binary, a second namespace, a refused one. Prints one JSON line with what it saw.
// usage: node sio-echo.mjs <url> <polling|websocket> [token]
import { io } from "socket.io-client";

const [url, mode, token] = process.argv.slice(2);
const opts = { auth: { token: token ?? "t0k3n" }, reconnection: false, timeout: 5000 };
if (mode === "websocket") opts.transports = ["websocket"];
const out = {};
const fail = (e) => { console.log(JSON.stringify({ error: String(e), ...out })); process.exit(1); };
setTimeout(() => fail("timeout"), 15000);

const socket = io(url, opts);
socket.on("connect_error", (e) => fail(`connect_error: ${e.message}`));
socket.on("auth", (auth) => { out.auth = auth; });
socket.on("connect", async () => {
  try {
    out.connected = true;
    out.echo = await new Promise((res) => {
      socket.once("message-back", (...args) => res(args));
      socket.emit("message", 1, "2", { three: 3 });
    });
    out.ack = await new Promise((res, rej) => {
      socket.timeout(5000).emit("message-with-ack", "a", [1, 2], (err, ...args) => (err ? rej(err) : res(args)));
    });
    out.binary = await new Promise((res) => {
      socket.once("message-back", (buf) => res(Array.from(new Uint8Array(buf))));
      socket.emit("message", Uint8Array.from([1, 2, 3]));
    });
    // Wait for the upgrade when polling started it.
    for (let i = 0; i < 50 && mode !== "websocket" && socket.io.engine.transport.name !== "websocket"; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    out.transport = socket.io.engine.transport.name;
    const custom = io(url + "custom", opts);
    out.custom = await new Promise((res) => custom.on("auth", (a) => res(a)));
    const nowhere = io(url + "nowhere", opts);
    out.refused = await new Promise((res) => nowhere.on("connect_error", (e) => res(e.message)));
    console.log(JSON.stringify(out));
    process.exit(0);
  } catch (e) {
    fail(e);
  }
});
