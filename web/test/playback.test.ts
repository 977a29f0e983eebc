import { describe, expect, it } from 'vitest';
import { cueAt, Fallback, liveSources, parseStoryboard } from '../src/lib/playback';

const urls = { hls: '/live/a.m3u8', flv: '/live/a.flv' };

describe('choosing a live source', () => {
  it('prefers HLS through hls.js, HTTP-FLV next, where MSE exists', () => {
    const s = liveSources(urls, { mse: true, nativeHls: false });
    expect(s.map((x) => `${x.kind}/${x.engine}`)).toEqual(['hls/hls.js', 'flv/mpegts.js']);
  });
  it('puts HTTP-FLV first when the viewer asked for the lowest latency', () => {
    const s = liveSources(urls, { mse: true, nativeHls: true }, 'flv');
    expect(s.map((x) => x.kind)).toEqual(['flv', 'hls']);
  });
  it('uses the browser’s own HLS without MSE (iOS), and offers no HTTP-FLV there', () => {
    const s = liveSources(urls, { mse: false, nativeHls: true }, 'flv');
    expect(s.map((x) => `${x.kind}/${x.engine}`)).toEqual(['hls/native']);
  });
  it('offers nothing a browser cannot play', () => {
    expect(liveSources(urls, { mse: false, nativeHls: false })).toEqual([]);
  });
});

describe('falling back', () => {
  it('tries each source once, then gives up until one plays', () => {
    const f = new Fallback(liveSources(urls, { mse: true, nativeHls: false }));
    expect(f.current()?.kind).toBe('hls');
    expect(f.fail()?.kind).toBe('flv');
    expect(f.fail()).toBeNull();
  });
  it('counts failures anew once a source plays', () => {
    const f = new Fallback(liveSources(urls, { mse: true, nativeHls: false }));
    expect(f.fail()?.kind).toBe('flv');
    f.playing();
    expect(f.fail()?.kind).toBe('hls');
    expect(f.fail()).toBeNull();
  });
  it('switches on request and resets the count', () => {
    const f = new Fallback(liveSources(urls, { mse: true, nativeHls: false }));
    f.fail();
    expect(f.choose('hls')?.kind).toBe('hls');
    expect(f.fail()?.kind).toBe('flv');
    expect(new Fallback([]).current()).toBeNull();
    expect(f.choose('hls')?.engine).toBe('hls.js');
  });
});

describe('storyboards', () => {
  const vtt =
    'WEBVTT\n\n00:00:00.000 --> 00:00:05.000\nstoryboard.jpg#xywh=0,0,160,90\n\n' +
    '00:00:05.000 --> 00:00:10.000\nstoryboard.jpg#xywh=160,0,160,90\n\n' +
    '01:00:00.000 --> 01:00:05.000\nstoryboard.jpg#xywh=320,90,160,90\n\nbroken --> cue\nx.jpg\n';
  const cues = parseStoryboard(vtt, 'http://h/vod/v1/storyboard.vtt');
  it('reads every well-formed cue with its sprite region', () => {
    expect(cues).toHaveLength(3);
    expect(cues[1]).toEqual({ start: 5, end: 10, url: 'http://h/vod/v1/storyboard.jpg', x: 160, y: 0, w: 160, h: 90 });
    expect(cues[2].start).toBe(3600);
  });
  it('finds the cue of a time', () => {
    expect(cueAt(cues, 0)?.x).toBe(0);
    expect(cueAt(cues, 7.5)?.x).toBe(160);
    expect(cueAt(cues, 10)).toBeNull();
    expect(cueAt(cues, 3602)?.y).toBe(90);
    expect(cueAt([], 1)).toBeNull();
  });
});
