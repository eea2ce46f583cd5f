import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { parseRedisUrl } from '../../src/store/redis-url.js';

describe('GATEWAY_STORE=redis://... parsing', () => {
  it('reads host, port, db and namespace', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6390')).toEqual({ mode: 'single', urls: ['redis://127.0.0.1:6390/0'], db: 0, namespace: 'auth-gateway' });
    expect(parseRedisUrl('redis://h:6390/3?namespace=blue')).toEqual({ mode: 'single', urls: ['redis://h:6390/3'], db: 3, namespace: 'blue' });
    expect(parseRedisUrl('rediss://user:p%40ss@h:6390/').urls).toEqual(['rediss://user:p%40ss@h:6390/0']);
    expect(parseRedisUrl('redis://:50%25off@h:6390').urls).toEqual(['redis://:50%25off@h:6390/0']);
    expect(parseRedisUrl('redis://[::1]:6390').urls).toEqual(['redis://[::1]:6390/0']);
    expect(parseRedisUrl('redis://my_redis:6379').urls).toEqual(['redis://my_redis:6379/0']);
  });

  it('reads several hosts (or cluster=1) as a Redis Cluster', () => {
    expect(parseRedisUrl('redis://a:7001,b:7002,c:7003')).toMatchObject({ mode: 'cluster', urls: ['redis://a:7001', 'redis://b:7002', 'redis://c:7003'] });
    expect(parseRedisUrl('redis://a:7001?cluster=1')).toMatchObject({ mode: 'cluster', urls: ['redis://a:7001'] });
  });

  it('refuses bad forms with one line that never repeats the URL (it may hold a password)', () => {
    const bad = [
      'redis://',
      'redis://user:hunter2@h:99999',
      'redis://user:hunter2@h:6390/16',
      'redis://user:hunter2@a:1,b:2/1',
      'redis://user:hunter2@h:6390?namespace=has space',
      'redis://user:hunter2@h:6390?password=x',
      'redis://user:hunter2@h:6390/x',
      'redis://user:hunter2%zz@h:6390',
      'redis://:hunter2%@h:6390',
      'redis://us%2user:hunter2@h:6390',
      'redis://user:hunter2@h:6390?namespace=a&namespace=b',
      'redis://user:hunter2@h:6390?cluster=1&cluster=true',
    ];
    for (const url of bad) {
      let err: unknown;
      try {
        parseRedisUrl(url);
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain('hunter2');
      expect((err as Error).message).not.toContain('\n');
    }
  });
});
