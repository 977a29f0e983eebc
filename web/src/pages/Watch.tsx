import { ApiError, get, media, post, type Video } from '../lib/api';
import { VodPlayer } from '../components/VodPlayer';
import { count } from '../lib/format';
import { usePoll } from '../lib/hooks';
import { lang, t } from '../lib/i18n';
import { Link } from '../lib/router';
import { site } from '../lib/session';
import { useStore } from '../lib/store';

/** Watching a video; while it is still processing, its progress. */
export function WatchPage({ id }: { id: string }) {
  const s = useStore(site);
  const l = useStore(lang);
  const v = usePoll(() => get<Video>(`/api/v1/videos/${encodeURIComponent(id)}`), [id], 5000);
  if (v.error instanceof ApiError && v.error.status === 404) {
    return (
      <main class="page narrow">
        <h1>{t('video.notFound')}</h1>
      </main>
    );
  }
  const video = v.data;
  if (!video) return <main class="page">{t('common.loading')}</main>;
  return (
    <main class="page watch single">
      <div class="watch-main">
        {video.state === 'ready' && video.playlist ? (
          <VodPlayer
            id={video.id}
            src={media(s, video.playlist)}
            poster={video.poster ? media(s, video.poster) : null}
            storyboard={video.storyboard ? media(s, video.storyboard) : null}
            onFirstPlay={() => void post(`/api/v1/videos/${video.id}/views`).catch(() => undefined)}
          />
        ) : (
          <div class="player offline">
            <div class="player-note">
              {video.state === 'failed'
                ? t('video.failed', { why: video.failure ?? '' })
                : t('video.processing', { p: video.progress })}
            </div>
          </div>
        )}
        <div class="watch-info">
          <h1>{video.title}</h1>
          <p class="muted">
            <Link href={`/c/${video.channel.slug}`}>{video.channel.name}</Link> · {t('video.views', { n: count(video.views, l) })} ·{' '}
            {new Date(video.created_at).toLocaleDateString(l)}
            {video.renditions.length ? ` · ${video.renditions.map((r) => `${r.height}p`).join(' / ')}` : ''}
          </p>
          {video.description ? <p class="about">{video.description}</p> : null}
        </div>
      </div>
    </main>
  );
}
