import { TabSession } from '/client/src/index.js'; // served by the gateway

// One WebSocket for all the tabs of this origin; every tab gets every event.
const tabs = new TabSession({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/` });
tabs.on('session_expiring', ({ expiresIn }) => console.log(`Your session ends in ${expiresIn} s`));
tabs.on('session_regenerated', () => console.log('Same session, new cookie')); // not an end
tabs.on('session_expired', ({ reason }) => console.log(`Session ended: ${reason}`)); // ttl | idle | destroyed | revoked | regenerated | unknown
tabs.start({ session: true }); // this page holds a session: its backend set the cookie
