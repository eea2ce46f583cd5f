import { ManualClock } from '../../src/clock.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { storeContract } from './contract.js';

storeContract('memory', async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const store = createMemoryStore(clock);
  return {
    store,
    now: () => clock.now(),
    pass: async (ms) => clock.advance(ms),
    close: () => store.close(),
  };
});
