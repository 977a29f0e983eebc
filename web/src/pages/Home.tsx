import { get, type Channel, type Page, type Video } from '../lib/api';
import { LiveCard, VideoCard } from '../components/Cards';
import { useNow, usePoll } from '../lib/hooks';
import { t } from '../lib/i18n';

/** Channels live now (refreshed every 3 s), the latest videos, and search results. */
export function Home({ q }: { q: string }) {
  const now = useNow();
  const live = usePoll(() => get<Page<Channel>>('/api/v1/live'), [], 3000);
  const videos = usePoll(
    () => get<Page<Video>>(`/api/v1/videos?limit=24${q ? `&q=${encodeURIComponent(q)}` : ''}`),
    [q],
    q ? undefined : 15000,
  );
  const channels = live.data?.items ?? [];
  return (
    <main class="page">
      {q ? null : (
        <section aria-labelledby="live-now">
          <h2 id="live-now">{t('home.liveNow')}</h2>
          {live.data === undefined ? (
            <p class="muted">{t('common.loading')}</p>
          ) : channels.length === 0 ? (
            <p class="muted" data-testid="no-live">
              {t('home.nobodyLive')}
            </p>
          ) : (
            <div class="grid" data-testid="live-list">
              {channels.map((c) => (
                <LiveCard key={c.id} c={c} now={now} />
              ))}
            </div>
          )}
        </section>
      )}
      <section aria-labelledby="videos">
        <h2 id="videos">{q ? t('home.results', { q }) : t('home.latest')}</h2>
        {videos.data === undefined ? (
          <p class="muted">{t('common.loading')}</p>
        ) : videos.data.items.length === 0 ? (
          <p class="muted">{q ? t('home.noResults') : t('home.noVideos')}</p>
        ) : (
          <div class="grid" data-testid="video-list">
            {videos.data.items.map((v) => (
              <VideoCard key={v.id} v={v} />
            ))}
          </div>
        )}
      </section>
    </main>
  );
}
