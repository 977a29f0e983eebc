import { useEffect, useState } from 'preact/hooks';
import { Link, match, navigate, useLocation } from './lib/router';
import { useStore } from './lib/store';
import { me, signOut } from './lib/session';
import { lang, setLang, t, type Lang } from './lib/i18n';
import { Home } from './pages/Home';
import { ChannelPage } from './pages/Channel';
import { LivePage } from './pages/Live';
import { WatchPage } from './pages/Watch';
import { Studio } from './pages/Studio';
import { SignInPage, SignUpPage } from './pages/Auth';

function Header() {
  const user = useStore(me);
  const l = useStore(lang);
  const loc = useLocation();
  const [q, setQ] = useState(loc.searchParams.get('q') ?? '');
  useEffect(() => setQ(loc.pathname === '/' ? (loc.searchParams.get('q') ?? '') : ''), [loc]);
  return (
    <header class="top">
      <Link href="/" class="logo" aria-label="VideoPick">
        <span class="logo-mark" aria-hidden="true">▶</span> VideoPick
      </Link>
      <form
        class="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(q.trim() ? `/?q=${encodeURIComponent(q.trim())}` : '/');
        }}
      >
        <input
          type="search"
          value={q}
          onInput={(e) => setQ((e.target as HTMLInputElement).value)}
          placeholder={t('search.placeholder')}
          aria-label={t('search.label')}
          maxLength={100}
        />
        <button type="submit">{t('search.go')}</button>
      </form>
      <nav class="nav" aria-label={t('nav.label')}>
        <Link href="/studio">{t('nav.studio')}</Link>
        <label class="lang">
          <span class="sr-only">{t('nav.language')}</span>
          <select value={l} onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)}>
            <option value="ko">한국어</option>
            <option value="en">English</option>
          </select>
        </label>
        {user ? (
          <>
            <span class="who" data-testid="who">{user.username}</span>
            <button type="button" class="link" onClick={() => void signOut().then(() => navigate('/'))}>
              {t('nav.signOut')}
            </button>
          </>
        ) : user === null ? (
          <>
            <Link href="/signin">{t('nav.signIn')}</Link>
            <Link href="/signup" class="button">
              {t('nav.signUp')}
            </Link>
          </>
        ) : null}
      </nav>
    </header>
  );
}

function NotFound() {
  return (
    <main class="page narrow">
      <h1>{t('notFound.title')}</h1>
      <p>
        <Link href="/">{t('notFound.home')}</Link>
      </p>
    </main>
  );
}

function Routes() {
  const loc = useLocation();
  const p = loc.pathname;
  let m: Record<string, string> | null;
  if (p === '/') return <Home q={loc.searchParams.get('q') ?? ''} />;
  if ((m = match('/c/:slug/live', p))) return <LivePage slug={m.slug} />;
  if ((m = match('/c/:slug', p))) return <ChannelPage slug={m.slug} />;
  if ((m = match('/v/:id', p))) return <WatchPage id={m.id} />;
  if (p === '/studio' || p.startsWith('/studio/')) return <Studio />;
  if (p === '/signin') return <SignInPage />;
  if (p === '/signup') return <SignUpPage />;
  return <NotFound />;
}

export function App() {
  const l = useStore(lang);
  useEffect(() => {
    document.documentElement.lang = l;
  }, [l]);
  return (
    <>
      <a class="skip" href="#main">
        {t('nav.skip')}
      </a>
      <Header />
      <div id="main" tabIndex={-1}>
        <Routes />
      </div>
    </>
  );
}
