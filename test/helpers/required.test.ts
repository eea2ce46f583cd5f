import { describe, expect, it } from 'vitest';
import { required, skipAllowed } from './required.js';

describe('required components', () => {
  it('GATEWAY_TEST_SKIP names what may be skipped; nothing by default', () => {
    expect(skipAllowed('redis-server', {})).toBe(false);
    expect(skipAllowed('redis-server', { GATEWAY_TEST_SKIP: '' })).toBe(false);
    expect(skipAllowed('redis-server', { GATEWAY_TEST_SKIP: 'chromium' })).toBe(false);
    expect(skipAllowed('redis-server', { GATEWAY_TEST_SKIP: 'chromium, redis-server' })).toBe(true);
    expect(skipAllowed('build', { GATEWAY_TEST_SKIP: 'all' })).toBe(true);
  });

  it('a component that is there is simply available', () => {
    expect(required('build')).toBe(true);
  });
});
