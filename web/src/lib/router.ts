// History-API routing for the single-page app: the server answers every page route with
// index.html; links navigate without reloading.
import { h } from 'preact';
import type { AnchorHTMLAttributes, ComponentChildren } from 'preact';
import { Store, useStore } from './store';

const location = new Store(new URL(window.location.href));
window.addEventListener('popstate', () => location.set(new URL(window.location.href)));

export function navigate(to: string, replace = false) {
  const url = new URL(to, window.location.href);
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  location.set(url);
  if (!replace) window.scrollTo(0, 0);
}

export function useLocation(): URL {
  return useStore(location);
}

/** Match `/c/:slug/live` against a path: the named parts, or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) out[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return out;
}

type LinkProps = AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren };

export function Link(props: LinkProps) {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return h('a', { ...props, onClick });
}
