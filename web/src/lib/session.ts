// Who is signed in, and the site's settings; loaded once, refreshed on sign-in/out.
import { get, post, type Site, type User } from './api';
import { Store } from './store';

/** undefined: not known yet; null: signed out. */
export const me = new Store<User | null | undefined>(undefined);
export const site = new Store<Site | null>(null);

export async function loadMe() {
  try {
    me.set((await get<{ user: User | null }>('/api/v1/auth/session')).user);
  } catch {
    me.set(null);
  }
}

export async function loadSite() {
  try {
    site.set(await get<Site>('/api/v1/site'));
  } catch {
    site.set(null);
  }
}

export async function signIn(login: string, password: string) {
  const s = await post<{ user: User }>('/api/v1/auth/signin', { login, password });
  me.set(s.user);
}

export async function signUp(username: string, email: string, password: string) {
  const s = await post<{ user: User }>('/api/v1/auth/signup', { username, email, password });
  me.set(s.user);
}

export async function signOut() {
  try {
    await post('/api/v1/auth/signout');
  } finally {
    me.set(null);
  }
}
