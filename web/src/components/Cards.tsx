import type { Channel, Video } from '../lib/api';
import { media } from '../lib/api';
import { count, duration } from '../lib/format';
import { lang, t } from '../lib/i18n';
import { Link } from '../lib/router';
import { site } from '../lib/session';
import { useStore } from '../lib/store';

/** A live channel: thumbnail, title, channel, viewers and how long it has been live. */
export function LiveCard({ c, now }: { c: Channel; now: number }) {
  const s = useStore(site);
  const l = useStore(lang);
  const live = c.live!;
  return (
    <article class="card" data-testid="live-card">
      <Link href={`/c/${c.slug}/live`} class="thumb" aria-label={`${live.title || c.name} — ${t('live.watch')}`}>
        {live.thumbnail ? (
          <img src={media(s, live.thumbnail)} alt="" loading="lazy" width={320} height={180} />
        ) : (
          <div class="thumb-empty" aria-hidden="true">
            ▶
          </div>
        )}
        <span class="badge live">{t('live.badge')}</span>
        <span class="badge corner" data-testid="live-duration">
          {duration(now - live.started_at)}
        </span>
      </Link>
      <div class="meta">
        <h3>
          <Link href={`/c/${c.slug}/live`}>{live.title || c.name}</Link>
        </h3>
        <p>
          <Link href={`/c/${c.slug}`}>{c.name}</Link> ·{' '}
          <span data-testid="viewers">{t('live.viewers', { n: count(live.viewers, l) })}</span>
        </p>
      </div>
    </article>
  );
}

/** A video: poster, duration, title, channel and views. */
export function VideoCard({ v, showChannel = true }: { v: Video; showChannel?: boolean }) {
  const s = useStore(site);
  const l = useStore(lang);
  return (
    <article class="card" data-testid="video-card">
      <Link href={`/v/${v.id}`} class="thumb" aria-label={v.title}>
        {v.poster ? (
          <img src={media(s, v.poster)} alt="" loading="lazy" width={320} height={180} />
        ) : (
          <div class="thumb-empty" aria-hidden="true">
            ▶
          </div>
        )}
        {v.duration_ms ? <span class="badge corner">{duration(v.duration_ms)}</span> : null}
        {v.source === 'recording' ? <span class="badge">{t('video.replay')}</span> : null}
      </Link>
      <div class="meta">
        <h3>
          <Link href={`/v/${v.id}`}>{v.title}</Link>
        </h3>
        <p>
          {showChannel ? (
            <>
              <Link href={`/c/${v.channel.slug}`}>{v.channel.name}</Link> ·{' '}
            </>
          ) : null}
          {t('video.views', { n: count(v.views, l) })}
        </p>
      </div>
    </article>
  );
}
