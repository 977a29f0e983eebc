import { describe, expect, it } from 'vitest';
import { canSend, errorKey, initialChat, MAX_MESSAGES, reduceChat, type ChatMessage } from '../src/lib/chatState';

const msg = (id: number, user = 'u1'): ChatMessage => ({
  room: 'live:a',
  id,
  user: { id: user, name: user, role: 'viewer' },
  text: `m${id}`,
  ts: id,
});

describe('chat state', () => {
  it('merges history with live messages in order, without duplicates', () => {
    let s = reduceChat(initialChat, { type: 'message', message: msg(3) });
    s = reduceChat(s, { type: 'joined', history: [msg(1), msg(2), msg(3)], count: 4 });
    expect(s.messages.map((m) => m.id)).toEqual([1, 2, 3]);
    expect(s.count).toBe(4);
    s = reduceChat(s, { type: 'message', message: msg(2) });
    expect(s.messages).toHaveLength(3);
  });
  it('keeps a bounded list', () => {
    let s = initialChat;
    for (let i = 1; i <= MAX_MESSAGES + 20; i++) s = reduceChat(s, { type: 'message', message: msg(i) });
    expect(s.messages).toHaveLength(MAX_MESSAGES);
    expect(s.messages[0].id).toBe(21);
  });
  it('removes deleted messages', () => {
    let s = reduceChat(initialChat, { type: 'joined', history: [msg(1), msg(2)], count: 1 });
    s = reduceChat(s, { type: 'deleted', id: 1 });
    expect(s.messages.map((m) => m.id)).toEqual([2]);
  });
  it('shows reconnection, and offline when it will not retry', () => {
    let s = reduceChat(initialChat, { type: 'connected' });
    expect(s.connection).toBe('connected');
    s = reduceChat(s, { type: 'disconnected', willRetry: true });
    expect(s.connection).toBe('reconnecting');
    s = reduceChat(s, { type: 'disconnected', willRetry: false });
    expect(s.connection).toBe('offline');
  });
  it('applies moderation aimed at me, ignores the rest', () => {
    let s = reduceChat(initialChat, { type: 'connected' });
    s = reduceChat(s, { type: 'moderation', action: 'ban', user: 'other', me: 'me', now: 0 });
    expect(s.banned).toBe(false);
    s = reduceChat(s, { type: 'moderation', action: 'timeout', user: 'me', seconds: 60, me: 'me', now: 1000 });
    expect(s.timedOutUntil).toBe(61000);
    expect(canSend(s, true, 2000)).toBe('chat.err.timed_out');
    expect(canSend(s, true, 62000)).toBeNull();
    s = reduceChat(s, { type: 'moderation', action: 'ban', user: 'me', me: 'me', now: 0 });
    expect(s.banned).toBe(true);
    expect(s.notice?.code).toBe('banned');
    expect(canSend(s, true, 62000)).toBe('chat.err.banned');
    s = reduceChat(s, { type: 'moderation', action: 'slow_mode', seconds: 10, me: 'me', now: 0 });
    expect(s.slowMode).toBe(10);
  });
  it('turns refusals into notices with the time to wait', () => {
    let s = reduceChat(initialChat, { type: 'refused', code: 'rate_limited', retryAfter: 7, now: 0 });
    expect(s.notice).toEqual({ code: 'rate_limited', retryAfter: 7, at: 0 });
    s = reduceChat(s, { type: 'refused', code: 'timed_out', retryAfter: 30, now: 1000 });
    expect(s.timedOutUntil).toBe(31000);
    s = reduceChat(s, { type: 'dismiss' });
    expect(s.notice).toBeNull();
  });
  it('asks anonymous viewers to sign in, and waits for the connection', () => {
    expect(canSend(initialChat, false, 0)).toBe('chat.signInToChat');
    expect(canSend(initialChat, true, 0)).toBe('chat.notConnected');
  });
  it('names every chat error code, and a fallback for others', () => {
    for (const code of ['banned', 'timed_out', 'rate_limited', 'slow_mode', 'too_long']) {
      expect(errorKey(code)).toBe(`chat.err.${code}`);
    }
    expect(errorKey('weird')).toBe('chat.err.other');
  });
});
