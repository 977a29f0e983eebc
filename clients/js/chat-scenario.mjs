// socket.io-client driving the VideoPick chat: auth, join with history, messages,
// presence, moderation and a refused token. Prints one JSON object with what it saw.
// usage: node chat-scenario.mjs <url> <polling|websocket> '<{"alice":tok,...}>'
import { io } from "socket.io-client";

const [url, mode, tokensJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const out = { received: {}, presence: 0 };
const fail = (e) => { console.log(JSON.stringify({ error: String(e), ...out })); process.exit(1); };
setTimeout(() => fail("timeout"), 20000);

const connect = (token) => new Promise((res, rej) => {
  const opts = { auth: token ? { token } : {}, reconnection: false, timeout: 5000 };
  if (mode === "websocket") opts.transports = ["websocket"];
  const s = io(url, opts);
  s.on("connect", () => res(s));
  s.on("connect_error", (e) => rej(e));
});
const ack = (s, event, arg) => s.timeout(5000).emitWithAck(event, arg);
const room = "live:cam";

try {
  out.refused = await connect(tokens.bad).then(() => "connected", (e) => e.data?.code ?? e.message);
  out.anonymous = await connect(null).then(() => "connected", (e) => e.data?.code ?? e.message);
  const [alice, bob, mod] = [await connect(tokens.alice), await connect(tokens.bob), await connect(tokens.mod)];
  for (const [name, s] of [["alice", alice], ["bob", bob], ["mod", mod]]) {
    out.received[name] = [];
    s.on("message", (m) => out.received[name].push(m));
    s.on("deleted", (d) => out.received[name].push({ deleted: d.id }));
  }
  // Presence is sent at most once a second per room: the moderator stays to the end.
  const presenceSeen = new Promise((res) => mod.on("presence", (p) => {
    out.presence = Math.max(out.presence, p.count);
    if (out.presence >= 3) res();
  }));
  out.joins = [await ack(alice, "join", { room }), await ack(bob, "join", { room }), await ack(mod, "join", { room })].map((a) => a.count);
  out.notInRoom = (await ack(alice, "message", { room: "elsewhere", text: "x" })).error?.code;
  out.sent = await ack(alice, "message", { room, text: "hello" });
  out.sent2 = await ack(bob, "message", { room, text: "hi alice" });
  await new Promise((r) => setTimeout(r, 200));
  const carol = await connect(tokens.carol);
  out.carolJoin = await ack(carol, "join", { room });
  out.forbidden = (await ack(bob, "delete", { room, id: 1 })).error?.code;
  out.deleted = await ack(mod, "delete", { room, id: 1 });
  out.slow = await ack(mod, "slow_mode", { room, seconds: 30 });
  out.slowFirst = (await ack(alice, "message", { room, text: "a" })).ok;
  out.slowSecond = (await ack(alice, "message", { room, text: "b" })).error?.code;
  out.tooLong = (await ack(mod, "message", { room, text: "x".repeat(501) })).error?.code;
  out.ban = await ack(mod, "ban", { room, user: "bob" });
  out.bannedJoin = (await ack(bob, "join", { room })).error?.code;
  await Promise.race([presenceSeen, new Promise((r) => setTimeout(r, 3000))]);
  console.log(JSON.stringify(out));
  process.exit(0);
} catch (e) {
  fail(e);
}
