// The chat panel's state, as a reducer over what the chat server says (docs/chat-protocol.md).
// Pure, so its rules (history, deletions, moderation, errors, reconnection) are unit-tested.

export interface ChatUser {
  id: string;
  name: string;
  role: string;
}

export interface ChatMessage {
  room: string;
  id: number;
  user: ChatUser;
  text: string;
  ts: number;
}

export type Connection = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface ChatState {
  connection: Connection;
  messages: ChatMessage[];
  count: number;
  /** The latest refusal, to show (code and seconds to wait). */
  notice: { code: string; retryAfter?: number; at: number } | null;
  /** Banned from this room. */
  banned: boolean;
  /** Timed out until (ms since the epoch). */
  timedOutUntil: number;
  /** Slow mode: seconds between messages (0: off). */
  slowMode: number;
}

export type ChatEvent =
  | { type: 'connecting' }
  | { type: 'connected' }
  | { type: 'disconnected'; willRetry: boolean }
  | { type: 'joined'; history: ChatMessage[]; count: number }
  | { type: 'message'; message: ChatMessage }
  | { type: 'deleted'; id: number }
  | { type: 'presence'; count: number }
  | { type: 'moderation'; action: string; user?: string; seconds?: number; me: string | null; now: number }
  | { type: 'refused'; code: string; retryAfter?: number; now: number }
  | { type: 'dismiss' };

/** Most messages kept on screen. */
export const MAX_MESSAGES = 200;

export const initialChat: ChatState = {
  connection: 'connecting',
  messages: [],
  count: 0,
  notice: null,
  banned: false,
  timedOutUntil: 0,
  slowMode: 0,
};

function withMessage(list: ChatMessage[], m: ChatMessage): ChatMessage[] {
  if (list.some((x) => x.id === m.id)) return list;
  const next = [...list, m];
  next.sort((a, b) => a.id - b.id);
  return next.length > MAX_MESSAGES ? next.slice(next.length - MAX_MESSAGES) : next;
}

export function reduceChat(s: ChatState, e: ChatEvent): ChatState {
  switch (e.type) {
    case 'connecting':
      return { ...s, connection: 'connecting' };
    case 'connected':
      return { ...s, connection: 'connected' };
    case 'disconnected':
      return { ...s, connection: e.willRetry ? 'reconnecting' : 'offline' };
    case 'joined': {
      // History on (re)join: merged with what is on screen, no duplicates.
      let list = s.messages;
      for (const m of e.history) list = withMessage(list, m);
      return { ...s, messages: list, count: e.count };
    }
    case 'message':
      return { ...s, messages: withMessage(s.messages, e.message) };
    case 'deleted':
      return { ...s, messages: s.messages.filter((m) => m.id !== e.id) };
    case 'presence':
      return { ...s, count: e.count };
    case 'moderation': {
      if (e.action === 'slow_mode') return { ...s, slowMode: e.seconds ?? 0 };
      if (e.user === undefined || e.user !== e.me) return s;
      if (e.action === 'ban') return { ...s, banned: true, notice: { code: 'banned', at: e.now } };
      if (e.action === 'timeout') {
        const secs = e.seconds ?? 0;
        return {
          ...s,
          timedOutUntil: e.now + secs * 1000,
          notice: { code: 'timed_out', retryAfter: secs, at: e.now },
        };
      }
      return s;
    }
    case 'refused': {
      const notice = { code: e.code, retryAfter: e.retryAfter, at: e.now };
      if (e.code === 'banned') return { ...s, banned: true, notice };
      if (e.code === 'timed_out' && e.retryAfter) {
        return { ...s, timedOutUntil: e.now + e.retryAfter * 1000, notice };
      }
      return { ...s, notice };
    }
    case 'dismiss':
      return { ...s, notice: null };
  }
}

/** Whether the viewer may send now (and why not: a message key). */
export function canSend(s: ChatState, signedIn: boolean, now: number): string | null {
  if (!signedIn) return 'chat.signInToChat';
  if (s.banned) return 'chat.err.banned';
  if (s.timedOutUntil > now) return 'chat.err.timed_out';
  if (s.connection !== 'connected') return 'chat.notConnected';
  return null;
}

/** The i18n key of an error code from the chat server. */
export function errorKey(code: string): string {
  const known = [
    'banned',
    'timed_out',
    'rate_limited',
    'slow_mode',
    'too_long',
    'unauthorized',
    'forbidden',
    'not_in_room',
    'not_found',
    'too_many_rooms',
    'too_many_connections',
    'token_expired',
    'bad_request',
  ];
  return known.includes(code) ? `chat.err.${code}` : 'chat.err.other';
}
