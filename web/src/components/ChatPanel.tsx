import { useEffect, useReducer, useRef, useState } from 'preact/hooks';
import type { Socket } from 'socket.io-client';
import { post, type ChatToken } from '../lib/api';
import { canSend, errorKey, initialChat, reduceChat, type ChatMessage } from '../lib/chatState';
import { useNow } from '../lib/hooks';
import { t } from '../lib/i18n';
import { Link } from '../lib/router';
import { me, site } from '../lib/session';
import { useStore } from '../lib/store';

const MAX_LEN = 500;

/** A channel's chat: history on join, live messages, sending, moderation, and why not. */
export function ChatPanel({ slug }: { slug: string }) {
  const user = useStore(me);
  const s = useStore(site);
  const [state, dispatch] = useReducer(reduceChat, initialChat);
  const [text, setText] = useState('');
  const socket = useRef<Socket | null>(null);
  const token = useRef<ChatToken | null>(null);
  const list = useRef<HTMLOListElement>(null);
  const now = useNow(1000);
  const room = s ? `${s.live_app}:${slug}` : '';

  useEffect(() => {
    if (!s?.chat_url || user === undefined) return;
    let closed = false;
    let sock: Socket | null = null;
    dispatch({ type: 'connecting' });
    void (async () => {
      const { io } = await import('socket.io-client');
      if (closed) return;
      sock = io(s.chat_url!, {
        // Asked again on every (re)connection: a fresh token when the old one expired.
        auth: (cb) => {
          const anonymous = () => cb({});
          if (!user || !s.chat_posting) return anonymous();
          post<ChatToken>('/api/v1/chat/token', { channel: slug })
            .then((tok) => {
              token.current = tok;
              cb({ token: tok.token });
            })
            .catch(anonymous);
        },
        reconnectionDelayMax: 5000,
      });
      socket.current = sock;
      sock.on('connect', async () => {
        dispatch({ type: 'connected' });
        try {
          const ack = await sock!.timeout(5000).emitWithAck('join', { room });
          if (ack?.ok) dispatch({ type: 'joined', history: ack.history ?? [], count: ack.count ?? 0 });
          else dispatch({ type: 'refused', code: ack?.error?.code ?? 'other', now: Date.now() });
        } catch {
          dispatch({ type: 'refused', code: 'other', now: Date.now() });
        }
      });
      sock.on('disconnect', (reason) => dispatch({ type: 'disconnected', willRetry: reason !== 'io client disconnect' }));
      sock.on('connect_error', (e: Error & { data?: { code?: string } }) => {
        dispatch({ type: 'disconnected', willRetry: sock?.active ?? false });
        if (e.data?.code) dispatch({ type: 'refused', code: e.data.code, now: Date.now() });
      });
      sock.on('message', (m: ChatMessage) => m.room === room && dispatch({ type: 'message', message: m }));
      sock.on('deleted', (d: { room: string; id: number }) => d.room === room && dispatch({ type: 'deleted', id: d.id }));
      sock.on('presence', (p: { room: string; count: number }) => p.room === room && dispatch({ type: 'presence', count: p.count }));
      sock.on('moderation', (m: { room: string; action: string; user?: string; seconds?: number }) => {
        if (m.room === room) dispatch({ type: 'moderation', ...m, me: user?.id ?? null, now: Date.now() });
      });
    })();
    return () => {
      closed = true;
      sock?.close();
      socket.current = null;
    };
  }, [slug, user?.id, s?.chat_url, room]);

  // Keep the newest message in view.
  useEffect(() => {
    const el = list.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [state.messages.length]);

  const act = async (event: string, payload: Record<string, unknown>) => {
    const sock = socket.current;
    if (!sock) return;
    try {
      const ack = await sock.timeout(5000).emitWithAck(event, { room, ...payload });
      if (!ack?.ok) {
        dispatch({ type: 'refused', code: ack?.error?.code ?? 'other', retryAfter: ack?.error?.retry_after, now: Date.now() });
      }
    } catch {
      dispatch({ type: 'refused', code: 'other', now: Date.now() });
    }
  };

  const send = async () => {
    const body = text.trim();
    if (!body) return;
    if (body.length > MAX_LEN) {
      dispatch({ type: 'refused', code: 'too_long', now: Date.now() });
      return;
    }
    setText('');
    await act('message', { text: body });
  };

  const blocked = canSend(state, !!user && !!s?.chat_posting, now);
  const moderator = token.current?.role === 'broadcaster' || token.current?.role === 'moderator';
  const waiting = state.timedOutUntil > now ? Math.ceil((state.timedOutUntil - now) / 1000) : 0;

  if (s && !s.chat_url) return null;
  return (
    <aside class="chat" aria-label={t('chat.title')} data-testid="chat">
      <header class="chat-head">
        <h2>{t('chat.title')}</h2>
        <span class={`conn ${state.connection}`} data-testid="chat-connection" role="status">
          {t(`chat.conn.${state.connection}` as never)}
        </span>
        <span class="muted">{t('chat.members', { n: state.count })}</span>
      </header>
      {state.slowMode > 0 ? <p class="chat-note">{t('chat.slowMode', { s: state.slowMode })}</p> : null}
      <ol class="messages" ref={list} aria-live="polite" data-testid="chat-messages">
        {state.messages.map((m) => (
          <li key={m.id} data-testid="chat-message" data-id={m.id}>
            <span class={`author ${m.user.role}`}>{m.user.name}</span> <span class="text">{m.text}</span>
            {moderator && m.user.id !== user?.id ? (
              <details class="mod">
                <summary aria-label={t('chat.moderate', { name: m.user.name })} data-testid="mod-menu">
                  ⋯
                </summary>
                <div class="mod-menu">
                  <button type="button" onClick={() => void act('delete', { id: m.id })} data-testid="mod-delete">
                    {t('chat.delete')}
                  </button>
                  <button type="button" onClick={() => void act('timeout', { user: m.user.id, seconds: 60 })}>
                    {t('chat.timeout1')}
                  </button>
                  <button type="button" onClick={() => void act('timeout', { user: m.user.id, seconds: 600 })}>
                    {t('chat.timeout10')}
                  </button>
                  <button type="button" class="danger" onClick={() => void act('ban', { user: m.user.id })} data-testid="mod-ban">
                    {t('chat.ban')}
                  </button>
                </div>
              </details>
            ) : moderator && m.user.id === user?.id ? (
              <button type="button" class="link small" onClick={() => void act('delete', { id: m.id })}>
                {t('chat.delete')}
              </button>
            ) : null}
          </li>
        ))}
      </ol>
      {state.notice ? (
        <p class="chat-error" role="alert" data-testid="chat-error" data-code={state.notice.code}>
          {t(errorKey(state.notice.code) as never, { s: waiting || state.notice.retryAfter || 0 })}{' '}
          <button type="button" class="link small" onClick={() => dispatch({ type: 'dismiss' })}>
            {t('common.dismiss')}
          </button>
        </p>
      ) : null}
      {!user ? (
        <p class="chat-note">
          <Link href="/signin">{t('chat.signInToChat')}</Link>
        </p>
      ) : (
        <form
          class="chat-send"
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <label class="sr-only" for="chat-input">
            {t('chat.say')}
          </label>
          <textarea
            id="chat-input"
            rows={2}
            maxLength={MAX_LEN}
            value={text}
            disabled={blocked !== null && blocked !== 'chat.notConnected'}
            placeholder={blocked ? t(blocked as never, { s: waiting }) : t('chat.say')}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                void send();
              }
            }}
            data-testid="chat-input"
          />
          <div class="chat-send-row">
            <span class="muted small">
              {text.length}/{MAX_LEN}
            </span>
            <button type="submit" disabled={blocked !== null || !text.trim()} data-testid="chat-send">
              {t('chat.send')}
            </button>
          </div>
        </form>
      )}
    </aside>
  );
}
