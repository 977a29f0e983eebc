import { describe, expect, it } from 'vitest';
import { lang, t } from '../src/lib/i18n';

describe('messages', () => {
  it('speak Korean and English, with placeholders filled', () => {
    lang.set('ko');
    expect(t('live.viewers', { n: 3 })).toBe('3명 시청 중');
    lang.set('en');
    expect(t('live.viewers', { n: 3 })).toBe('3 watching');
    expect(t('chat.err.rate_limited', { s: 5 })).toContain('5 s');
  });
});
