import { get, ApiError, type Channel, type Page, type Video } from '../lib/api';
import { VideoCard } from '../components/Cards';
import { usePoll } from '../lib/hooks';
import { t } from '../lib/i18n';
import { Link } from '../lib/router';

/** A channel: about, live status, its videos and replays. */
export function ChannelPage({ slug }: { slug: string }) {
  const ch = usePoll(() => get<Channel>(`/api/v1/channels/${encodeURIComponent(slug)}`), [slug], 10000);
  const videos = usePoll(
    () => get<Page<Video>>(`/api/v1/channels/${encodeURIComponent(slug)}/videos?limit=48`),
    [slug],
  );
  if (ch.error instanceof ApiError && ch.error.status === 404) {
    return (
      <main class="page narrow">
        <h1>{t('channel.notFound')}</h1>
      </main>
    );
  }
  const c = ch.data;
  if (!c) return <main class="page">{t('common.loading')}</main>;
  const items = videos.data?.items ?? [];
  const replays = items.filter((v) => v.source === 'recording');
  const uploads = items.filter((v) => v.source === 'upload');
  return (
    <main class="page">
      <header class="channel-head">
        <div>
          <h1>{c.name}</h1>
          <p class="muted">
            @{c.slug} · {c.owner.username}
          </p>
          {c.description ? <p class="about">{c.description}</p> : null}
        </div>
        {c.live ? (
          <Link href={`/c/${c.slug}/live`} class="button live" data-testid="watch-live">
            {t('live.badge')} · {c.live.title || t('channel.watchLive')}
          </Link>
        ) : (
          <span class="muted">{t('channel.offline')}</span>
        )}
      </header>
      <section aria-labelledby="ch-videos">
        <h2 id="ch-videos">{t('channel.videos')}</h2>
        {uploads.length === 0 ? (
          <p class="muted">{t('home.noVideos')}</p>
        ) : (
          <div class="grid">
            {uploads.map((v) => (
              <VideoCard key={v.id} v={v} showChannel={false} />
            ))}
          </div>
        )}
      </section>
      <section aria-labelledby="ch-replays">
        <h2 id="ch-replays">{t('channel.replays')}</h2>
        {replays.length === 0 ? (
          <p class="muted">{t('channel.noReplays')}</p>
        ) : (
          <div class="grid">
            {replays.map((v) => (
              <VideoCard key={v.id} v={v} showChannel={false} />
            ))}
          </div>
        )}
      </section>
    </main>
  );
}
