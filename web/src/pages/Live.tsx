import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, media, type Channel, type Page, type Video } from '../lib/api';
import { ChatPanel } from '../components/ChatPanel';
import { LivePlayer } from '../components/LivePlayer';
import { count, duration } from '../lib/format';
import { useNow, usePoll } from '../lib/hooks';
import { lang, t } from '../lib/i18n';
import { Link } from '../lib/router';
import { site } from '../lib/session';
import { useStore } from '../lib/store';

/** Watching a channel live: the player, viewers, the chat; the replay once it ended. */
export function LivePage({ slug }: { slug: string }) {
  const s = useStore(site);
  const l = useStore(lang);
  const now = useNow();
  const ch = usePoll(() => get<Channel>(`/api/v1/channels/${encodeURIComponent(slug)}`), [slug], 3000);
  const c = ch.data;
  const session = useRef<{ id: string; started: number } | null>(null);
  const [ended, setEnded] = useState(false);
  if (c?.live) session.current = { id: c.live.session_id, started: c.live.started_at };
  useEffect(() => {
    if (c && !c.live && session.current) setEnded(true);
    if (c?.live) setEnded(false);
  }, [c?.live?.session_id, !!c?.live]);

  // Once the stream ended: its replay, when the channel keeps recordings.
  const replay = usePoll(
    async () => {
      if (!ended || !session.current) return null;
      const page = await get<Page<Video>>(`/api/v1/channels/${encodeURIComponent(slug)}/videos?limit=10`);
      return page.items.find((v) => v.source === 'recording' && v.created_at >= session.current!.started) ?? null;
    },
    [slug, ended],
    ended ? 3000 : undefined,
  );

  if (ch.error instanceof ApiError && ch.error.status === 404) {
    return (
      <main class="page narrow">
        <h1>{t('channel.notFound')}</h1>
      </main>
    );
  }
  return (
    <main class="page watch">
      <div class="watch-main">
        {c?.live && s ? (
          <LivePlayer
            key={c.live.session_id}
            hls={media(s, c.live.hls)}
            flv={media(s, c.live.flv)}
            bitrateKbps={c.live.health.bitrate_kbps}
          />
        ) : (
          <div class="player offline" data-testid="offline">
            {ended ? (
              <div class="player-note">
                <p>{t('live.ended')}</p>
                {replay.data?.state === 'ready' ? (
                  <Link href={`/v/${replay.data.id}`} class="button" data-testid="replay-link">
                    {t('live.watchReplay')}
                  </Link>
                ) : replay.data ? (
                  <p class="muted">{t('live.replaySoon')}</p>
                ) : null}
              </div>
            ) : (
              <div class="player-note">{c ? t('channel.offline') : t('common.loading')}</div>
            )}
          </div>
        )}
        {c ? (
          <div class="watch-info">
            <h1>{c.live?.title || c.name}</h1>
            <p class="muted">
              <Link href={`/c/${c.slug}`}>{c.name}</Link>
              {c.live ? (
                <>
                  {' · '}
                  <span data-testid="watch-viewers">{t('live.viewers', { n: count(c.live.viewers, l) })}</span>
                  {' · '}
                  {t('live.for', { d: duration(now - c.live.started_at) })}
                  {c.live.health.height ? ` · ${c.live.health.height}p` : ''}
                </>
              ) : null}
            </p>
          </div>
        ) : null}
      </div>
      <ChatPanel slug={slug} />
    </main>
  );
}
