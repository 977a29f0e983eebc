import { useEffect, useRef, useState } from 'preact/hooks';
import { detectSupport, Fallback, liveSources, type LiveSource, type SourceKind } from '../lib/playback';
import { t } from '../lib/i18n';

interface Engine {
  destroy(): void;
  /** Seconds behind the live edge, if the engine knows. */
  latency(): number | null;
  /** Download rate in kbit/s, if the engine knows. */
  rate(): number | null;
}

/** Start `src` on `video`; `failed` is called once if it cannot go on. */
async function start(video: HTMLVideoElement, src: LiveSource, failed: (why: string) => void): Promise<Engine> {
  const abs = new URL(src.url, window.location.href).toString();
  if (src.engine === 'hls.js') {
    const { default: Hls } = await import('hls.js');
    // Catch up (at most 1.5× speed) when playback starts or falls behind the playlist's
    // PART-HOLD-BACK: without it, hls.js keeps whatever delay its start-up left it with.
    const hls = new Hls({
      lowLatencyMode: true,
      maxLiveSyncPlaybackRate: 1.5,
      backBufferLength: 30,
      liveDurationInfinity: true,
    });
    hls.on(Hls.Events.ERROR, (_e, d) => {
      if (d.fatal) failed(`hls: ${d.details}`);
    });
    hls.loadSource(abs);
    hls.attachMedia(video);
    return {
      destroy: () => hls.destroy(),
      latency: () => (isFinite(hls.latency) ? hls.latency : null),
      rate: () => (hls.bandwidthEstimate ? hls.bandwidthEstimate / 1000 : null),
    };
  }
  if (src.engine === 'mpegts.js') {
    const { default: mpegts } = await import('mpegts.js');
    // Its errors come to `failed` (and the fallback); its own console logging stays off.
    mpegts.LoggingControl.enableAll = false;
    const player = mpegts.createPlayer(
      { type: 'flv', isLive: true, url: abs, hasAudio: true, hasVideo: true },
      { enableWorker: true, enableStashBuffer: false, liveBufferLatencyChasing: true, lazyLoad: false },
    );
    player.on(mpegts.Events.ERROR, (type: string, detail: string) => failed(`flv: ${type} ${detail}`));
    player.attachMediaElement(video);
    player.load();
    return {
      destroy: () => {
        player.pause();
        player.unload();
        player.detachMediaElement();
        player.destroy();
      },
      latency: () => (video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : null),
      rate: () => {
        const speed = (player.statisticsInfo as { speed?: number } | undefined)?.speed;
        return speed ? speed * 8 : null;
      },
    };
  }
  const onError = () => failed('native playback error');
  video.addEventListener('error', onError, { once: true });
  video.src = abs;
  return {
    destroy: () => {
      video.removeEventListener('error', onError);
      video.removeAttribute('src');
      video.load();
    },
    latency: () => (video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : null),
    rate: () => null,
  };
}

/**
 * A live stream: low-latency HLS (or HLS) first, HTTP-FLV as "lowest latency"; falls back
 * by itself when one fails or stalls. A stats overlay shows latency and bitrate.
 */
export function LivePlayer({
  hls,
  flv,
  bitrateKbps,
  compact = false,
}: {
  hls: string;
  flv: string;
  bitrateKbps?: number | null;
  compact?: boolean;
}) {
  const video = useRef<HTMLVideoElement>(null);
  const engine = useRef<Engine | null>(null);
  const fallback = useRef<Fallback | null>(null);
  const [source, setSource] = useState<LiveSource | null>(null);
  const [status, setStatus] = useState<'loading' | 'playing' | 'failed'>('loading');
  const [muted, setMuted] = useState(true);
  const [showStats, setShowStats] = useState(false);
  const [stats, setStats] = useState<{ latency: number | null; rate: number | null }>({ latency: null, rate: null });
  const generation = useRef(0);

  const play = async (src: LiveSource | null) => {
    const v = video.current;
    const gen = ++generation.current;
    engine.current?.destroy();
    engine.current = null;
    setSource(src);
    if (!v || !src) {
      setStatus('failed');
      return;
    }
    setStatus('loading');
    const failed = (why: string) => {
      if (gen !== generation.current) return;
      console.warn(`live source ${src.kind} failed: ${why}`);
      void play(fallback.current?.fail() ?? null);
    };
    try {
      const e = await start(v, src, failed);
      if (gen !== generation.current) {
        e.destroy();
        return;
      }
      engine.current = e;
      v.muted = muted;
      await v.play().catch(() => undefined);
    } catch (e) {
      failed(String(e));
    }
  };

  useEffect(() => {
    const prefer = (localStorage.getItem('vp.live.source') as SourceKind | null) ?? 'hls';
    fallback.current = new Fallback(liveSources({ hls, flv }, detectSupport(), prefer));
    void play(fallback.current.current());
    return () => {
      generation.current++;
      engine.current?.destroy();
      engine.current = null;
    };
  }, [hls, flv]);

  // Playing, stalled, and the stats overlay's figures.
  useEffect(() => {
    let last = -1;
    let still = 0;
    const id = setInterval(() => {
      const v = video.current;
      if (!v) return;
      if (v.currentTime !== last) {
        if (last >= 0 && !v.paused) {
          setStatus('playing');
          fallback.current?.playing();
        }
        last = v.currentTime;
        still = 0;
      } else if (!v.paused && engine.current) {
        still++;
        if (still >= 12) {
          // Twelve seconds without progress: try the next source.
          still = 0;
          void play(fallback.current?.fail() ?? null);
        }
      }
      const e = engine.current;
      setStats({ latency: e?.latency() ?? null, rate: e?.rate() ?? null });
    }, 1000);
    return () => clearInterval(id);
  }, []);

  const choose = (kind: SourceKind) => {
    localStorage.setItem('vp.live.source', kind);
    const src = fallback.current?.choose(kind) ?? null;
    if (src) void play(src);
  };

  return (
    <div class={`player ${compact ? 'compact' : ''}`} data-testid="live-player" data-source={source?.kind ?? ''} data-status={status}>
      <video
        ref={video}
        playsInline
        autoplay
        muted={muted}
        data-testid="live-video"
        aria-label={t('player.live')}
        onPlaying={() => setStatus('playing')}
      />
      {status === 'loading' ? <div class="player-note">{t('player.loading')}</div> : null}
      {status === 'failed' ? (
        <div class="player-note error" role="alert">
          {t('player.failed')}{' '}
          <button type="button" onClick={() => void play(fallback.current?.choose('hls') ?? fallback.current?.current() ?? null)}>
            {t('player.retry')}
          </button>
        </div>
      ) : null}
      {showStats ? (
        <dl class="stats" data-testid="stats">
          <dt>{t('player.source')}</dt>
          <dd>{source ? `${source.kind.toUpperCase()} (${source.engine})` : '—'}</dd>
          <dt>{t('player.latency')}</dt>
          <dd data-testid="stat-latency">{stats.latency != null ? `${stats.latency.toFixed(1)} s` : '—'}</dd>
          <dt>{t('player.bitrate')}</dt>
          <dd>{bitrateKbps ? `${bitrateKbps} kbit/s` : '—'}</dd>
          <dt>{t('player.download')}</dt>
          <dd>{stats.rate != null ? `${Math.round(stats.rate)} kbit/s` : '—'}</dd>
        </dl>
      ) : null}
      <div class="controls" role="toolbar" aria-label={t('player.controls')}>
        <button
          type="button"
          onClick={() => {
            const v = video.current;
            if (!v) return;
            v.muted = !muted;
            setMuted(!muted);
            void v.play().catch(() => undefined);
          }}
          aria-pressed={!muted}
        >
          {muted ? t('player.unmute') : t('player.mute')}
        </button>
        <span class="grow" />
        <div class="seg" role="group" aria-label={t('player.source')}>
          <button type="button" aria-pressed={source?.kind === 'hls'} onClick={() => choose('hls')} data-testid="use-hls">
            HLS
          </button>
          <button type="button" aria-pressed={source?.kind === 'flv'} onClick={() => choose('flv')} data-testid="use-flv">
            {t('player.lowest')}
          </button>
        </div>
        <button type="button" aria-pressed={showStats} onClick={() => setShowStats(!showStats)}>
          {t('player.stats')}
        </button>
        <button type="button" onClick={() => void video.current?.requestFullscreen?.()}>
          {t('player.fullscreen')}
        </button>
      </div>
    </div>
  );
}
