import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  del,
  get,
  media,
  patch,
  post,
  type ChannelCreated,
  type ChannelSettings,
  type Page,
  type Site,
  type StreamKey,
  type Video,
  type Visibility,
} from '../lib/api';
import { LivePlayer } from '../components/LivePlayer';
import { bytes, duration, eta } from '../lib/format';
import { usePoll } from '../lib/hooks';
import { t } from '../lib/i18n';
import { Link } from '../lib/router';
import { me, site } from '../lib/session';
import { useStore } from '../lib/store';
import { addFiles, cancel, clearFinished, pause, resume, unfinished, uploads } from '../lib/uploads';


const keyStore = (slug: string) => `vp.key.${slug}`;

function errText(e: unknown): string {
  return e instanceof ApiError ? e.message : String(e);
}

/** The creator studio: channel, stream key and going live, uploads, videos. */
export function Studio() {
  const user = useStore(me);
  const s = useStore(site);
  const channels = usePoll(() => (user ? get<ChannelSettings[]>('/api/v1/me/channels') : Promise.resolve([])), [user?.id], 3000);
  const [selected, setSelected] = useState<string | null>(null);
  if (user === undefined) return <main class="page">{t('common.loading')}</main>;
  if (user === null) {
    return (
      <main class="page narrow">
        <h1>{t('studio.title')}</h1>
        <p>{t('studio.signInFirst')}</p>
        <p class="row">
          <Link href="/signin?next=/studio" class="button">
            {t('auth.signIn')}
          </Link>
          <Link href="/signup" class="button secondary">
            {t('auth.signUp')}
          </Link>
        </p>
      </main>
    );
  }
  const list = channels.data ?? [];
  const c = list.find((x) => x.slug === selected) ?? list[0];
  return (
    <main class="page studio">
      <h1>{t('studio.title')}</h1>
      {channels.data === undefined ? (
        <p>{t('common.loading')}</p>
      ) : !c ? (
        <CreateChannel onCreated={() => void channels.reload()} />
      ) : (
        <>
          {list.length > 1 ? (
            <label class="field inline">
              {t('studio.channel')}{' '}
              <select value={c.slug} onChange={(e) => setSelected((e.target as HTMLSelectElement).value)}>
                {list.map((x) => (
                  <option key={x.slug} value={x.slug}>
                    {x.name}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
          <div class="studio-grid">
            <GoLive c={c} site={s} />
            <LivePreview c={c} site={s} />
            <ChannelForm key={c.slug} c={c} onSaved={() => void channels.reload()} />
          </div>
          {s ? <UploadPanel channel={c.slug} site={s} /> : null}
          <MyVideos />
        </>
      )}
    </main>
  );
}

function CreateChannel({ onCreated }: { onCreated: () => void }) {
  const [slug, setSlug] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <section class="card-box" aria-labelledby="new-ch">
      <h2 id="new-ch">{t('studio.createChannel')}</h2>
      <p class="muted">{t('studio.createChannelWhy')}</p>
      <form
        class="form"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          try {
            const created = await post<ChannelCreated>('/api/v1/channels', { slug: slug.trim(), name: name.trim() });
            sessionStorage.setItem(keyStore(created.channel.slug), JSON.stringify(created.key));
            onCreated();
          } catch (err) {
            setError(errText(err));
          }
        }}
      >
        <p class="field">
          <label for="ch-slug">{t('studio.slug')}</label>
          <input id="ch-slug" value={slug} required minLength={3} maxLength={32} pattern="[a-z0-9][a-z0-9\-]*" onInput={(e) => setSlug((e.target as HTMLInputElement).value.toLowerCase())} aria-describedby="ch-slug-hint" />
          <small id="ch-slug-hint" class="muted">
            {t('studio.slugHint')}
          </small>
        </p>
        <p class="field">
          <label for="ch-name">{t('studio.name')}</label>
          <input id="ch-name" value={name} required maxLength={80} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </p>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit">{t('studio.create')}</button>
      </form>
    </section>
  );
}

/** The stream key (masked, reveal, copy, rotate) and how to go live with OBS or ffmpeg. */
function GoLive({ c, site: s }: { c: ChannelSettings; site: Site | null }) {
  const [key, setKey] = useState<StreamKey | null>(() => {
    const k = sessionStorage.getItem(keyStore(c.slug));
    return k ? (JSON.parse(k) as StreamKey) : null;
  });
  const [reveal, setReveal] = useState(false);
  const [endLive, setEndLive] = useState(true);
  const [msg, setMsg] = useState<string | null>(null);
  useEffect(() => {
    const k = sessionStorage.getItem(keyStore(c.slug));
    setKey(k ? (JSON.parse(k) as StreamKey) : null);
    setReveal(false);
  }, [c.slug]);
  const server = key?.server ?? s?.rtmp_url ?? '';
  const rotate = async () => {
    if (!confirm(t('studio.rotateConfirm'))) return;
    try {
      const k = await post<StreamKey>(`/api/v1/channels/${c.slug}/key?end_live=${endLive}`);
      sessionStorage.setItem(keyStore(c.slug), JSON.stringify(k));
      setKey(k);
      setReveal(true);
      setMsg(t('studio.rotated'));
    } catch (e) {
      setMsg(errText(e));
    }
  };
  const shown = key ? (reveal ? key.stream_key : '•'.repeat(24)) : t('studio.keyHidden');
  return (
    <section class="card-box" aria-labelledby="golive">
      <h2 id="golive">{t('studio.goLive')}</h2>
      <dl class="kv">
        <dt>{t('studio.server')}</dt>
        <dd>
          <code data-testid="rtmp-server">{server}</code>{' '}
          <button type="button" class="small" onClick={() => void navigator.clipboard?.writeText(server)}>
            {t('studio.copy')}
          </button>
        </dd>
        <dt>{t('studio.streamKey')}</dt>
        <dd>
          <code data-testid="stream-key" data-key={reveal && key ? key.stream_key : ''}>
            {shown}
          </code>{' '}
          {key ? (
            <>
              <button type="button" class="small" onClick={() => setReveal(!reveal)} aria-pressed={reveal} data-testid="reveal-key">
                {reveal ? t('studio.hide') : t('studio.reveal')}
              </button>{' '}
              <button
                type="button"
                class="small"
                onClick={() => void navigator.clipboard?.writeText(key.stream_key).then(() => setMsg(t('studio.copied')))}
              >
                {t('studio.copy')}
              </button>
            </>
          ) : null}
        </dd>
      </dl>
      <p class="muted small">{t('studio.keyOnce')}</p>
      <p class="row">
        <button type="button" class="secondary" onClick={() => void rotate()} data-testid="rotate-key">
          {t('studio.rotate')}
        </button>
        <label class="small">
          <input type="checkbox" checked={endLive} onChange={(e) => setEndLive((e.target as HTMLInputElement).checked)} /> {t('studio.endLive')}
        </label>
      </p>
      {msg ? (
        <p role="status" class="small">
          {msg}
        </p>
      ) : null}
      <details>
        <summary>{t('studio.howTo')}</summary>
        <ol class="small">
          <li>{t('studio.obs1')}</li>
          <li>{t('studio.obs2', { server })}</li>
          <li>{t('studio.obs3')}</li>
        </ol>
        <p class="small">{t('studio.ffmpeg')}</p>
        <pre class="small">{`ffmpeg -re -i input.mp4 -c:v libx264 -preset veryfast -b:v 2500k -g 60 \\
  -c:a aac -b:a 128k -f flv ${server}/${key && reveal ? key.stream_key : '<STREAM_KEY>'}`}</pre>
      </details>
    </section>
  );
}

function LivePreview({ c, site: s }: { c: ChannelSettings; site: Site | null }) {
  const live = c.live;
  const h = live?.health;
  return (
    <section class="card-box" aria-labelledby="preview">
      <h2 id="preview">
        {t('studio.preview')}{' '}
        <span class={`badge ${live ? 'live' : ''}`} data-testid="studio-status">
          {live ? t('live.badge') : t('studio.offline')}
        </span>
      </h2>
      {live && s ? (
        <>
          <LivePlayer key={live.session_id} hls={media(s, live.hls)} flv={media(s, live.flv)} bitrateKbps={h?.bitrate_kbps} compact />
          <dl class="kv small">
            <dt>{t('studio.viewers')}</dt>
            <dd data-testid="studio-viewers">{live.viewers}</dd>
            <dt>{t('studio.health')}</dt>
            <dd>
              {[h?.video_codec, h?.audio_codec].filter(Boolean).join(' + ') || '—'}
              {h?.width ? ` · ${h.width}×${h.height}` : ''}
              {h?.fps ? ` · ${h.fps.toFixed(0)} fps` : ''}
              {h?.bitrate_kbps ? ` · ${h.bitrate_kbps} kbit/s` : ''}
            </dd>
          </dl>
          <Link href={`/c/${c.slug}/live`}>{t('studio.openLive')}</Link>
        </>
      ) : (
        <p class="muted">{t('studio.notLive')}</p>
      )}
    </section>
  );
}

function ChannelForm({ c, onSaved }: { c: ChannelSettings; onSaved: () => void }) {
  const [name, setName] = useState(c.name);
  const [description, setDescription] = useState(c.description);
  const [liveTitle, setLiveTitle] = useState(c.live_title);
  const [record, setRecord] = useState(c.record);
  const [msg, setMsg] = useState<string | null>(null);
  return (
    <section class="card-box" aria-labelledby="settings">
      <h2 id="settings">{t('studio.settings')}</h2>
      <form
        class="form"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await patch(`/api/v1/channels/${c.slug}`, { name, description, live_title: liveTitle, record });
            setMsg(t('studio.saved'));
            onSaved();
          } catch (err) {
            setMsg(errText(err));
          }
        }}
      >
        <p class="field">
          <label for="set-name">{t('studio.name')}</label>
          <input id="set-name" value={name} maxLength={80} required onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </p>
        <p class="field">
          <label for="set-title">{t('studio.liveTitle')}</label>
          <input id="set-title" value={liveTitle} maxLength={140} onInput={(e) => setLiveTitle((e.target as HTMLInputElement).value)} />
        </p>
        <p class="field">
          <label for="set-desc">{t('studio.description')}</label>
          <textarea id="set-desc" rows={3} maxLength={2000} value={description} onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)} />
        </p>
        <p class="field inline">
          <label>
            <input type="checkbox" checked={record} onChange={(e) => setRecord((e.target as HTMLInputElement).checked)} /> {t('studio.record')}
          </label>
        </p>
        <button type="submit">{t('studio.save')}</button>
        {msg ? (
          <span role="status" class="small">
            {' '}
            {msg}
          </span>
        ) : null}
      </form>
    </section>
  );
}

function UploadPanel({ channel, site: s }: { channel: string; site: Site }) {
  const items = useStore(uploads);
  const [over, setOver] = useState(false);
  const [left, setLeft] = useState<{ name: string; size: number }[]>([]);
  useEffect(() => {
    void unfinished().then(setLeft);
  }, [items.length]);
  const take = (files: FileList | null) => {
    if (files && files.length) addFiles([...files], channel, s);
  };
  const pending = left.filter((l) => !items.some((i) => i.name === l.name && i.size === l.size && i.state !== 'failed'));
  return (
    <section class="card-box" aria-labelledby="uploads">
      <h2 id="uploads">{t('upload.title')}</h2>
      <label
        class={`drop ${over ? 'over' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          take(e.dataTransfer?.files ?? null);
        }}
      >
        <input type="file" accept="video/*" multiple onChange={(e) => take((e.target as HTMLInputElement).files)} data-testid="upload-input" />
        <span>{t('upload.drop')}</span>
        {s.max_upload_bytes ? <small class="muted">{t('upload.limit', { size: bytes(s.max_upload_bytes) })}</small> : null}
      </label>
      {pending.length ? (
        <p class="muted small" data-testid="unfinished">
          {t('upload.unfinished', { names: pending.map((p) => p.name).join(', ') })}
        </p>
      ) : null}
      <ul class="uploads">
        {items.map((u) => {
          const pct = u.size ? Math.floor((u.sent / u.size) * 100) : 0;
          return (
            <li key={u.key} data-testid="upload-item" data-state={u.state}>
              <div class="row">
                <strong>{u.name}</strong>
                <span class="muted small">{bytes(u.size)}</span>
                <span class="grow" />
                {u.state === 'uploading' ? (
                  <button type="button" class="small" onClick={() => pause(u.key)}>
                    {t('upload.pause')}
                  </button>
                ) : null}
                {u.state === 'paused' || (u.state === 'failed' && !u.errorKey) ? (
                  <button type="button" class="small" onClick={() => resume(u.key)}>
                    {t('upload.resume')}
                  </button>
                ) : null}
                {u.state === 'uploading' || u.state === 'paused' ? (
                  <button type="button" class="small danger" onClick={() => cancel(u.key)}>
                    {t('upload.cancel')}
                  </button>
                ) : null}
              </div>
              <progress max={100} value={pct} aria-label={t('upload.progress', { name: u.name })} data-testid="upload-progress" />
              <p class="small muted" role="status">
                {u.state === 'uploading'
                  ? `${pct}% · ${bytes(u.speed)}/s${u.speed > 0 ? ` · ${t('upload.eta', { t: eta((u.size - u.sent) / u.speed) })}` : ''}`
                  : u.state === 'failed'
                    ? ''
                    : t(`upload.state.${u.state}` as never)}
              </p>
              {u.state === 'failed' ? (
                <p class="error small" role="alert" data-testid="upload-error">
                  {u.errorKey ? t(u.errorKey as never, { size: bytes(s.max_upload_bytes ?? 0) }) : t('upload.failed', { why: u.error ?? '' })}
                </p>
              ) : null}
            </li>
          );
        })}
      </ul>
      {items.some((u) => u.state !== 'uploading' && u.state !== 'paused') ? (
        <button type="button" class="small secondary" onClick={clearFinished}>
          {t('upload.clear')}
        </button>
      ) : null}
    </section>
  );
}

function VideoRow({ v, onChange }: { v: Video; onChange: () => void }) {
  const s = useStore(site);
  const [title, setTitle] = useState(v.title);
  const [description, setDescription] = useState(v.description);
  const [visibility, setVisibility] = useState<Visibility>(v.visibility);
  const [msg, setMsg] = useState<string | null>(null);
  const dirty = title !== v.title || description !== v.description || visibility !== v.visibility;
  return (
    <li class="video-row" data-testid="my-video" data-state={v.state} data-id={v.id} data-title={v.title}>
      <div class="thumb small">
        {v.poster ? <img src={media(s, v.poster)} alt="" width={160} height={90} /> : <div class="thumb-empty">▶</div>}
      </div>
      <form
        class="video-edit"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await patch(`/api/v1/videos/${v.id}`, { title, description, visibility });
            setMsg(t('studio.saved'));
            onChange();
          } catch (err) {
            setMsg(errText(err));
          }
        }}
      >
        <label class="sr-only" for={`t-${v.id}`}>
          {t('video.title')}
        </label>
        <input id={`t-${v.id}`} value={title} maxLength={140} required onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
        <label class="sr-only" for={`d-${v.id}`}>
          {t('studio.description')}
        </label>
        <textarea id={`d-${v.id}`} rows={2} maxLength={5000} value={description} placeholder={t('studio.description')} onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)} />
        <div class="row small">
          <label>
            {t('video.visibility')}{' '}
            <select value={visibility} onChange={(e) => setVisibility((e.target as HTMLSelectElement).value as Visibility)}>
              <option value="public">{t('video.public')}</option>
              <option value="unlisted">{t('video.unlisted')}</option>
              <option value="private">{t('video.private')}</option>
            </select>
          </label>
          <span class="grow" />
          <span data-testid="video-state" class={`state ${v.state}`}>
            {v.state === 'processing'
              ? t('video.processing', { p: v.progress })
              : v.state === 'failed'
                ? t('video.failed', { why: v.failure ?? '' })
                : t(`video.state.${v.state}` as never)}
          </span>
          {v.duration_ms ? <span class="muted">{duration(v.duration_ms)}</span> : null}
          {v.state === 'ready' ? <Link href={`/v/${v.id}`}>{t('video.open')}</Link> : null}
          <button type="submit" class="small" disabled={!dirty}>
            {t('studio.save')}
          </button>
          <button
            type="button"
            class="small danger"
            onClick={async () => {
              if (!confirm(t('video.deleteConfirm', { title: v.title }))) return;
              try {
                await del(`/api/v1/videos/${v.id}`);
                onChange();
              } catch (err) {
                setMsg(errText(err));
              }
            }}
          >
            {t('video.delete')}
          </button>
        </div>
        {v.state === 'processing' ? <progress max={100} value={v.progress} aria-label={t('video.processing', { p: v.progress })} /> : null}
        {msg ? (
          <p role="status" class="small">
            {msg}
          </p>
        ) : null}
      </form>
    </li>
  );
}

function MyVideos() {
  const [busy, setBusy] = useState(true);
  const videos = usePoll(
    async () => {
      const page = await get<Page<Video>>('/api/v1/me/videos?limit=50');
      setBusy(page.items.some((v) => v.state === 'uploading' || v.state === 'processing'));
      return page;
    },
    [busy],
    busy ? 2000 : 15000,
  );
  const items = videos.data?.items ?? [];
  return (
    <section class="card-box" aria-labelledby="myvideos">
      <h2 id="myvideos">{t('studio.myVideos')}</h2>
      {items.length === 0 ? (
        <p class="muted">{t('studio.noVideos')}</p>
      ) : (
        <ul class="video-rows">
          {items.map((v) => (
            <VideoRow key={v.id} v={v} onChange={() => void videos.reload()} />
          ))}
        </ul>
      )}
    </section>
  );
}
