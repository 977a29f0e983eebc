// The platform API (/api/v1): JSON in and out, RFC 9457 problems as ApiError. The session
// is the HttpOnly cookie the API sets at sign-in, so every call is same-origin with it.

export interface User {
  id: string;
  username: string;
  email: string;
  role: 'viewer' | 'creator' | 'admin';
  created_at: number;
}

export interface StreamHealth {
  video_codec?: string | null;
  audio_codec?: string | null;
  width?: number | null;
  height?: number | null;
  fps?: number | null;
  bitrate_kbps?: number | null;
}

export interface LiveNow {
  session_id: string;
  title: string;
  started_at: number;
  viewers: number;
  peak_viewers: number;
  health: StreamHealth;
  thumbnail?: string | null;
  flv: string;
  hls: string;
}

export interface Channel {
  id: string;
  slug: string;
  name: string;
  description: string;
  owner: { id: string; username: string };
  created_at: number;
  live?: LiveNow | null;
}

export interface ChannelSettings extends Channel {
  record: boolean;
  live_title: string;
}

export interface StreamKey {
  stream_key: string;
  server: string;
}

export interface ChannelCreated {
  channel: ChannelSettings;
  key: StreamKey;
}

export interface Rendition {
  name: string;
  width: number;
  height: number;
  bitrate_kbps: number;
}

export type VideoState = 'uploading' | 'processing' | 'ready' | 'failed';
export type Visibility = 'public' | 'unlisted' | 'private';

export interface Video {
  id: string;
  channel: { slug: string; name: string };
  title: string;
  description: string;
  state: VideoState;
  progress: number;
  failure?: string | null;
  visibility: Visibility;
  source: 'upload' | 'recording';
  duration_ms?: number | null;
  renditions: Rendition[];
  poster?: string | null;
  storyboard?: string | null;
  playlist?: string | null;
  views: number;
  created_at: number;
  updated_at: number;
}

export interface Page<T> {
  items: T[];
  next?: string | null;
}

export interface Site {
  chat_url?: string | null;
  chat_posting: boolean;
  rtmp_url: string;
  live_app: string;
  media_base: string;
  upload_url: string;
  max_upload_bytes?: number | null;
}

export interface ChatToken {
  token: string;
  room: string;
  role: string;
  expires_at: number;
  url?: string | null;
}

/** A problem answer (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', String(e));
  }
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const retry = Number(resp.headers.get('retry-after')) || undefined;
    throw new ApiError(
      resp.status,
      data?.code ?? 'http',
      data?.detail ?? data?.title ?? `${resp.status} ${resp.statusText}`,
      data?.field ?? undefined,
      retry,
    );
  }
  return data as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const del = (path: string) => api<void>('DELETE', path);

/** `url` made absolute against the media base (empty: this origin). */
export function media(site: Site | null, url: string): string {
  if (/^[a-z]+:\/\//.test(url)) return url;
  return `${site?.media_base ?? ''}${url}`;
}
