import { TabSession } from '/client/src/index.js'; // served by the gateway

// One WebSocket for all the tabs of this origin; every tab gets every event.
const tabs = new TabSession({
  url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`,
  // The page cannot read its HttpOnly cookie: ask the backend whether the session lives.
  checkSession: async () => (await fetch('/me')).ok,
});
tabs.on('session_expiring', ({ expiresIn }) => console.log(`Your session ends in ${expiresIn} s`));
tabs.on('session_regenerated', () => console.log('Same session, new cookie'));
tabs.on('session_expired', ({ reason }) => console.log(`Session ended: ${reason}`)); // ttl | idle | destroyed | revoked | regenerated | unknown
tabs.start();
