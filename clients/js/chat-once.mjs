// Join a chat room with socket.io-client (default transports) and optionally send one message.
//   node chat-once.mjs <url> <room> [text]
// Env: CHAT_TOKEN (the connect token; none: anonymous).
// Prints {"join": <ack>, "message": <ack>} as JSON, or {"connect_error": {...}}.
import { io } from 'socket.io-client';

const [url, room, text] = process.argv.slice(2);
const token = process.env.CHAT_TOKEN;
const s = io(url, { auth: token ? { token } : {}, reconnection: false, timeout: 5000 });
const out = {};
const done = (code) => {
  console.log(JSON.stringify(out));
  s.close();
  process.exit(code);
};
s.on('connect_error', (e) => {
  out.connect_error = { message: e.message, code: e.data?.code };
  done(0);
});
s.on('connect', async () => {
  try {
    out.join = await s.timeout(5000).emitWithAck('join', { room });
    if (text !== undefined) out.message = await s.timeout(5000).emitWithAck('message', { room, text });
    done(0);
  } catch (e) {
    out.error = String(e);
    done(1);
  }
});
