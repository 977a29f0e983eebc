// socket.io-client against two (then three) chat-server nodes on one Redis: messages
// cross nodes exactly once and in one order, presence sums across nodes, moderation
// reaches the other node, a node that just started serves history, and delivery
// resumes after Redis restarts.
// usage: node chat-cluster.mjs <urlA> <urlB> <urlC> '<{"alice":tok,...}>'
// Talks to the test on stdio: prints "RESTART" and waits for a line on stdin once Redis
// should be restarted; prints one JSON object with what it saw last.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const [urlA, urlB, urlC, tokensJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const out = { received: {}, presence: {} };
const fail = (e) => { console.log(JSON.stringify({ error: String(e?.stack ?? e), ...out })); process.exit(1); };
setTimeout(() => fail("timeout"), 60000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stdin = createInterface({ input: process.stdin });
const nextLine = () => new Promise((res) => stdin.once("line", res));

const connect = (url, token, transports) => new Promise((res, rej) => {
  const opts = { auth: { token }, reconnection: false, timeout: 5000 };
  if (transports) opts.transports = transports;
  const s = io(url, opts);
  s.on("connect", () => res(s));
  s.on("connect_error", (e) => rej(e));
});
const ack = (s, event, arg) => s.timeout(8000).emitWithAck(event, arg);
const until = async (what, cond, ms = 15000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};
const room = "live:cluster";

try {
  // alice and mod on node A (default transports: polling then upgrade), carol and dave
  // on node B (WebSocket only).
  const clients = {
    alice: await connect(urlA, tokens.alice),
    mod: await connect(urlA, tokens.mod),
    carol: await connect(urlB, tokens.carol, ["websocket"]),
    dave: await connect(urlB, tokens.dave, ["websocket"]),
  };
  for (const [name, s] of Object.entries(clients)) {
    out.received[name] = [];
    s.on("message", (m) => out.received[name].push(m));
    s.on("deleted", (d) => out.received[name].push({ deleted: d.id }));
    s.on("moderation", (m) => out.received[name].push({ moderation: m.action, user: m.user }));
    s.on("presence", (p) => { out.presence[name] = p.count; });
  }
  out.joins = [];
  for (const name of ["alice", "mod", "carol", "dave"]) {
    out.joins.push((await ack(clients[name], "join", { room })).count);
  }
  // Presence: every member, on either node, ends up seeing the sum (4).
  await until("presence 4 everywhere", () => Object.keys(clients).every((n) => out.presence[n] === 4));

  // 20 messages from each node at once.
  const sends = [];
  for (let i = 0; i < 20; i++) {
    sends.push(ack(clients.alice, "message", { room, text: `a${i}` }));
    sends.push(ack(clients.carol, "message", { room, text: `c${i}` }));
  }
  out.acks = (await Promise.all(sends)).map((a) => a.ok);
  await until("40 messages everywhere", () => Object.values(out.received).every((r) => r.length >= 40));
  await sleep(300); // anything extra (a duplicate) would arrive now
  out.firstRound = Object.fromEntries(Object.entries(out.received).map(([n, r]) => [n, r.map((m) => [m.id, m.text])]));

  // Moderation from node A reaches node B: a delete, then a ban of dave.
  const victim = out.received.carol[0].id;
  out.delete = await ack(clients.mod, "delete", { room, id: victim });
  out.ban = await ack(clients.mod, "ban", { room, user: "dave" });
  await until("moderation on node B", () =>
    out.received.carol.some((m) => m.deleted === victim) && out.received.dave.some((m) => m.moderation === "ban"));
  out.daveRejoin = (await ack(clients.dave, "join", { room })).error?.code;
  // dave left the room on node B: both nodes' members see the sum drop to 3.
  await until("presence 3 after the ban", () => ["alice", "mod", "carol"].every((n) => out.presence[n] === 3));
  out.deletedSeenBy = Object.entries(out.received).filter(([, r]) => r.some((m) => m.deleted === victim)).map(([n]) => n).sort();

  // Node C has never had a member in the room: its history comes from Redis.
  const erin = await connect(urlC, tokens.erin, ["websocket"]);
  const joinC = await ack(erin, "join", { room });
  out.historyOnC = joinC.history.map((m) => m.text);
  out.countOnC = joinC.count;
  out.lastIdBefore = Math.max(...out.received.alice.filter((m) => m.id).map((m) => m.id));
  erin.disconnect();

  // Redis goes away: node A keeps serving its own members.
  console.log("RESTART");
  await nextLine(); // Redis is down now
  const before = out.received.mod.length;
  out.duringRedisOutage = await ack(clients.alice, "message", { room, text: "while redis is down" });
  await until("local delivery while Redis is down", () => out.received.mod.length > before, 5000);
  console.log("UP");
  await nextLine(); // Redis is back
  // Delivery across nodes resumes once the nodes have reconnected and resubscribed.
  let n = 0;
  const seenOnB = () => out.received.carol.some((m) => typeof m.text === "string" && m.text.startsWith("after "));
  while (!seenOnB()) {
    if (n > 100) throw new Error("delivery did not resume after the restart");
    await ack(clients.alice, "message", { room, text: `after ${n++}` });
    await sleep(150);
  }
  // Then a burst from node B must reach node A exactly once.
  const resumeAcks = [];
  for (let i = 0; i < 10; i++) resumeAcks.push(ack(clients.carol, "message", { room, text: `resumed ${i}` }));
  out.resumeAcks = (await Promise.all(resumeAcks)).map((a) => a.ok);
  await until("resumed burst on node A", () => out.received.alice.filter((m) => m.text?.startsWith("resumed ")).length >= 10);
  await sleep(300);
  // Redis lost the presence keys; the nodes wrote theirs again on reconnecting.
  await until("presence 3 after the restart", () => ["alice", "mod", "carol"].every((n) => out.presence[n] === 3));
  out.resumed = Object.fromEntries(["alice", "mod", "carol"].map((nm) => [nm,
    out.received[nm].filter((m) => m.text?.startsWith("resumed ")).map((m) => [m.id, m.text])]));
  console.log(JSON.stringify(out));
  process.exit(0);
} catch (e) {
  fail(e);
}
