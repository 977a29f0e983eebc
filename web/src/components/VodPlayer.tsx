import { useEffect, useRef, useState } from 'preact/hooks';
import type Hls from 'hls.js';
import { cueAt, parseStoryboard, type StoryboardCue } from '../lib/playback';
import { duration } from '../lib/format';
import { t } from '../lib/i18n';

interface Level {
  index: number;
  height: number;
  bitrate: number;
}

const posKey = (id: string) => `vp.pos.${id}`;

/**
 * A video on demand: adaptive HLS (hls.js, or the browser's own) with a quality menu,
 * storyboard thumbnails over the seek bar, keyboard shortcuts (space, ←/→, f, m) and
 * resuming where the viewer left off.
 */
export function VodPlayer({
  id,
  src,
  poster,
  storyboard,
  onFirstPlay,
}: {
  id: string;
  src: string;
  poster?: string | null;
  storyboard?: string | null;
  onFirstPlay?: () => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const video = useRef<HTMLVideoElement>(null);
  const hls = useRef<Hls | null>(null);
  const [levels, setLevels] = useState<Level[]>([]);
  const [level, setLevel] = useState(-1);
  const [playing, setPlaying] = useState(false);
  const [time, setTime] = useState(0);
  const [total, setTotal] = useState(0);
  const [muted, setMuted] = useState(false);
  const [cues, setCues] = useState<StoryboardCue[]>([]);
  const [hover, setHover] = useState<{ x: number; t: number } | null>(null);
  const [resumed, setResumed] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const played = useRef(false);

  useEffect(() => {
    const v = video.current;
    if (!v) return;
    let dead = false;
    const abs = new URL(src, window.location.href).toString();
    const isHls = /\.m3u8(\?|$)/.test(src);
    void (async () => {
      // hls.js wherever Media Source Extensions exist (it gives the quality menu); the
      // browser's own HLS otherwise (iOS).
      const HlsJs = isHls ? (await import('hls.js')).default : null;
      if (dead) return;
      if (HlsJs && !HlsJs.isSupported() && !v.canPlayType('application/vnd.apple.mpegurl')) {
        setError(t('player.unsupported'));
        return;
      }
      if (HlsJs && HlsJs.isSupported()) {
        const h = new HlsJs({ capLevelToPlayerSize: true });
        hls.current = h;
        h.on(HlsJs.Events.MANIFEST_PARSED, (_e, d) => {
          setLevels(
            d.levels
              .map((l, index) => ({ index, height: l.height, bitrate: l.bitrate }))
              .sort((a, b) => b.height - a.height),
          );
        });
        h.on(HlsJs.Events.ERROR, (_e, d) => {
          if (d.fatal) setError(`${t('player.failed')} (${d.details})`);
        });
        h.loadSource(abs);
        h.attachMedia(v);
      } else {
        v.src = abs;
      }
    })();
    return () => {
      dead = true;
      hls.current?.destroy();
      hls.current = null;
    };
  }, [src]);

  useEffect(() => {
    if (!storyboard) return;
    const url = new URL(storyboard, window.location.href).toString();
    fetch(url, { credentials: 'same-origin' })
      .then((r) => (r.ok ? r.text() : ''))
      .then((text) => setCues(parseStoryboard(text, url)))
      .catch(() => setCues([]));
  }, [storyboard]);

  // Where the viewer left off: remembered every few seconds and on pause.
  const remember = () => {
    const v = video.current;
    if (!v || !isFinite(v.duration)) return;
    if (v.currentTime > 5 && v.currentTime < v.duration - 10) localStorage.setItem(posKey(id), String(Math.floor(v.currentTime)));
    else localStorage.removeItem(posKey(id));
  };
  useEffect(() => {
    const iv = setInterval(remember, 5000);
    return () => {
      clearInterval(iv);
      remember();
    };
  }, [id]);

  const toggle = () => {
    const v = video.current;
    if (!v) return;
    if (v.paused) void v.play();
    else v.pause();
  };
  const seekBy = (d: number) => {
    const v = video.current;
    if (v) v.currentTime = Math.max(0, Math.min(v.duration || 0, v.currentTime + d));
  };
  const fullscreen = () => {
    if (document.fullscreenElement) void document.exitFullscreen();
    else void box.current?.requestFullscreen?.();
  };
  const mute = () => {
    const v = video.current;
    if (!v) return;
    v.muted = !v.muted;
    setMuted(v.muted);
  };
  const chooseLevel = (i: number) => {
    setLevel(i);
    if (hls.current) hls.current.currentLevel = i;
  };

  const onKey = (e: KeyboardEvent) => {
    const tag = (e.target as HTMLElement).tagName;
    if (tag === 'INPUT' && (e.target as HTMLInputElement).type !== 'range') return;
    if (tag === 'SELECT' || tag === 'TEXTAREA' || (tag === 'BUTTON' && e.key === ' ')) return;
    if (e.key === ' ' || e.key === 'k') toggle();
    else if (e.key === 'ArrowLeft') seekBy(-5);
    else if (e.key === 'ArrowRight') seekBy(5);
    else if (e.key === 'f') fullscreen();
    else if (e.key === 'm') mute();
    else return;
    e.preventDefault();
  };

  const cue = hover ? cueAt(cues, hover.t) : null;
  return (
    <div class="player vod" ref={box} tabIndex={0} onKeyDown={onKey} data-testid="vod-player" aria-label={t('player.video')}>
      <video
        ref={video}
        playsInline
        poster={poster ?? undefined}
        onClick={toggle}
        data-testid="vod-video"
        onPlay={() => {
          setPlaying(true);
          if (!played.current) {
            played.current = true;
            onFirstPlay?.();
          }
        }}
        onPause={() => {
          setPlaying(false);
          remember();
        }}
        onTimeUpdate={(e) => setTime((e.target as HTMLVideoElement).currentTime)}
        onDurationChange={(e) => setTotal((e.target as HTMLVideoElement).duration)}
        onLoadedMetadata={(e) => {
          const v = e.target as HTMLVideoElement;
          const at = Number(localStorage.getItem(posKey(id)));
          if (at > 5 && at < v.duration - 10) {
            v.currentTime = at;
            setResumed(at);
          }
        }}
      />
      {error ? (
        <div class="player-note error" role="alert">
          {error}
        </div>
      ) : null}
      {resumed !== null ? (
        <div class="toast" role="status" data-testid="resumed">
          {t('player.resumed', { at: duration(resumed * 1000) })}{' '}
          <button
            type="button"
            class="link small"
            onClick={() => {
              if (video.current) video.current.currentTime = 0;
              setResumed(null);
            }}
          >
            {t('player.fromStart')}
          </button>
        </div>
      ) : null}
      <div class="controls" role="toolbar" aria-label={t('player.controls')}>
        <button type="button" onClick={toggle} aria-label={playing ? t('player.pause') : t('player.play')} data-testid="play">
          {playing ? '❚❚' : '▶'}
        </button>
        <div
          class="seek"
          onMouseMove={(e) => {
            const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
            const x = Math.max(0, Math.min(r.width, e.clientX - r.left));
            setHover({ x, t: (x / r.width) * (total || 0) });
          }}
          onMouseLeave={() => setHover(null)}
        >
          <input
            type="range"
            min={0}
            max={total || 0}
            step={0.1}
            value={time}
            aria-label={t('player.seek')}
            aria-valuetext={`${duration(time * 1000)} / ${duration(total * 1000)}`}
            onInput={(e) => {
              const v = video.current;
              if (v) v.currentTime = Number((e.target as HTMLInputElement).value);
            }}
          />
          {hover && cue ? (
            <div class="storyboard" style={{ left: `${hover.x}px` }} data-testid="storyboard">
              <div
                class="sprite"
                style={{
                  width: `${cue.w}px`,
                  height: `${cue.h}px`,
                  backgroundImage: `url("${cue.url}")`,
                  backgroundPosition: `-${cue.x}px -${cue.y}px`,
                }}
              />
              <span>{duration(hover.t * 1000)}</span>
            </div>
          ) : null}
        </div>
        <span class="time">
          {duration(time * 1000)} / {duration(total * 1000)}
        </span>
        <button type="button" onClick={mute} aria-pressed={muted}>
          {muted ? t('player.unmute') : t('player.mute')}
        </button>
        {levels.length > 0 ? (
          <label class="quality">
            <span class="sr-only">{t('player.quality')}</span>
            <select value={level} onChange={(e) => chooseLevel(Number((e.target as HTMLSelectElement).value))} data-testid="quality">
              <option value={-1}>{t('player.auto')}</option>
              {levels.map((l) => (
                <option key={l.index} value={l.index}>
                  {l.height}p
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <button type="button" onClick={fullscreen}>
          {t('player.fullscreen')}
        </button>
      </div>
    </div>
  );
}
