// A second WebSocket upgrade of an Engine.IO session that already upgraded, with the `ws`
// client the Socket.IO v5 protocol test suite uses: the handshake must complete (an HTTP
// error answer is an uncaught error in `ws`), then the server closes that socket, while the
// session goes on over its first WebSocket.
// Usage: node ws-double-upgrade.mjs http://HOST:PORT/
import { WebSocket } from "ws";

const base = process.argv[2];
const wsBase = base.replace(/^http/, "ws");
const fail = (msg) => {
  console.error(msg);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 10000);

const handshake = await fetch(`${base}socket.io/?EIO=4&transport=polling`);
const text = await handshake.text();
const { sid } = JSON.parse(text.slice(1));
const url = `${wsBase}socket.io/?EIO=4&transport=websocket&sid=${sid}`;

const first = new WebSocket(url);
await new Promise((resolve, reject) => {
  first.on("error", reject);
  first.on("open", () => first.send("2probe"));
  first.on("message", (data) => {
    if (data.toString() === "3probe") {
      first.send("5");
      resolve();
    }
  });
});

const second = new WebSocket(url);
second.on("error", (e) => fail(`second upgrade raised: ${e.message}`));
const opened = await new Promise((resolve) => {
  second.on("open", () => resolve(true));
  second.on("close", () => resolve(false));
});
if (!opened) fail("second upgrade did not complete its handshake");
await new Promise((resolve) => second.on("close", resolve));

// The first socket still carries the session: the server's next ping arrives there.
await new Promise((resolve) => {
  first.on("message", (data) => {
    if (data.toString() === "2") {
      first.send("3");
      resolve();
    }
  });
});
first.close();
console.log("ok");
process.exit(0);
