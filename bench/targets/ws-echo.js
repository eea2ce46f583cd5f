// Baseline of row 1: a bare `ws` server that parses each frame and answers a reply of the
// same size (the frame's own text), one `ws.send` per message. With `cork` as second
// argument (row 1's baseline), replies of one burst are batched into one write, as the
// gateway does: the best plain ws can do. Without it, one write per reply, as ws is used
// by default (reported beside the main figure).
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
const cork = process.argv[3] === 'cork';
const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  // ws keeps the net.Socket private; the echo target corks it directly.
  const sock = /** @type {import('node:net').Socket} */ (/** @type {any} */ (ws)._socket);
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  ws.on('message', (data) => {
    const text = data.toString();
    JSON.parse(text);
    if (cork && !corked) {
      corked = true;
      sock.cork();
      process.nextTick(uncork);
    }
    ws.send(text);
  });
});
