import { useState } from 'preact/hooks';
import { ApiError } from '../lib/api';
import { t } from '../lib/i18n';
import { Link, navigate, useLocation } from '../lib/router';
import { signIn, signUp } from '../lib/session';

function problemText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 0) return t('common.offline');
    if (e.code === 'rate-limited') return t('auth.rateLimited', { s: e.retryAfter ?? 60 });
    return e.message;
  }
  return String(e);
}

function Field(props: {
  id: string;
  label: string;
  type?: 'text' | 'email' | 'password';
  value: string;
  set: (v: string) => void;
  autocomplete?: string;
  minLength?: number;
  maxLength?: number;
  hint?: string;
}) {
  return (
    <p class="field">
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        name={props.id}
        type={(props.type ?? 'text') as 'text'}
        value={props.value}
        required
        autocomplete={props.autocomplete}
        minLength={props.minLength}
        maxLength={props.maxLength}
        aria-describedby={props.hint ? `${props.id}-hint` : undefined}
        onInput={(e) => props.set((e.target as HTMLInputElement).value)}
      />
      {props.hint ? (
        <small id={`${props.id}-hint`} class="muted">
          {props.hint}
        </small>
      ) : null}
    </p>
  );
}

export function SignInPage() {
  const loc = useLocation();
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="page narrow">
      <h1>{t('auth.signIn')}</h1>
      <form
        class="form"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await signIn(login.trim(), password);
            navigate(loc.searchParams.get('next') ?? '/studio');
          } catch (err) {
            setError(problemText(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field id="login" label={t('auth.login')} value={login} set={setLogin} autocomplete="username" maxLength={254} />
        <Field id="password" label={t('auth.password')} type="password" value={password} set={setPassword} autocomplete="current-password" maxLength={256} />
        {error ? (
          <p class="error" role="alert" data-testid="auth-error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {t('auth.signIn')}
        </button>
        <p class="muted">
          {t('auth.noAccount')} <Link href="/signup">{t('auth.signUp')}</Link>
        </p>
      </form>
    </main>
  );
}

export function SignUpPage() {
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main class="page narrow">
      <h1>{t('auth.signUp')}</h1>
      <form
        class="form"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await signUp(username.trim(), email.trim(), password);
            navigate('/studio');
          } catch (err) {
            setError(problemText(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field id="username" label={t('auth.username')} value={username} set={setUsername} autocomplete="username" minLength={3} maxLength={32} hint={t('auth.usernameHint')} />
        <Field id="email" label={t('auth.email')} type="email" value={email} set={setEmail} autocomplete="email" maxLength={254} />
        <Field id="password" label={t('auth.password')} type="password" value={password} set={setPassword} autocomplete="new-password" minLength={8} maxLength={128} hint={t('auth.passwordHint')} />
        {error ? (
          <p class="error" role="alert" data-testid="auth-error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {t('auth.signUp')}
        </button>
        <p class="muted">
          {t('auth.haveAccount')} <Link href="/signin">{t('auth.signIn')}</Link>
        </p>
      </form>
    </main>
  );
}
