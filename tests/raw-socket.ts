// Raw engine.io connections for edge tests: what an attacker sends, byte for byte, without socket.io-client's
// encoder in the way. Polling: the handshake GET, then POSTed bodies (packets joined by the record separator
// \x1e). WebSocket: the `ws` package (Node 20 has no global WebSocket), answering the server's pings.

import WebSocket from 'ws';

const PATH = '/socket.io/?EIO=4';

export interface RawConnection {
  readonly transport: 'polling' | 'websocket';
  /** sends one engine.io frame (a text packet such as '42["x"]', or binary); false if the connection is gone */
  send(frame: string | Uint8Array): Promise<boolean>;
  /** text frames received so far (pings excluded) */
  readonly received: string[];
  readonly closed: boolean;
  /**
   * A round trip after the frames sent so far: true if the connection is still open. It asks to join a namespace
   * that does not exist, which the server refuses without logging or closing the connection.
   */
  barrier(): Promise<boolean>;
  close(): void;
}

let barriers = 0;

/** Sends the barrier request and waits for its answer in `received`, or for the close. */
async function roundTrip(conn: RawConnection): Promise<boolean> {
  const nsp = `/barrier-${++barriers}`;
  if (!(await conn.send(`40${nsp},`))) return false;
  const until = Date.now() + 5000;
  while (!conn.closed && Date.now() < until) {
    if (conn.received.some((p) => p.startsWith(`44${nsp},`))) return true;
    await new Promise((r) => setTimeout(r, 1));
  }
  if (!conn.closed) throw new Error(`no answer to the barrier ${nsp} within 5 s`);
  return false;
}

/**
 * Opens a polling connection; `connect` sends socket.io's CONNECT ('40') to the main namespace first. Like a real
 * client it keeps one GET pending (answering pings): the server tells a closed session only through it.
 */
export async function rawPolling(url: string, connect = true): Promise<RawConnection> {
  const open = await fetch(`${url}${PATH}&transport=polling`);
  const body = await open.text();
  if (!body.startsWith('0')) throw new Error(`no engine.io handshake: ${open.status} ${body.slice(0, 200)}`);
  const sid = (JSON.parse(body.slice(1)) as { sid: string }).sid;
  const at = `${url}${PATH}&transport=polling&sid=${sid}`;
  let closed = false;
  const received: string[] = [];
  let connected: () => void = () => {};
  const namespaceAnswered = new Promise<void>((resolve) => (connected = resolve));
  void (async () => {
    while (!closed) {
      try {
        const r = await fetch(at);
        const packets = (await r.text()).split('\x1e');
        if (r.status !== 200 || packets.includes('1')) break;
        for (const p of packets) {
          if (p === '2') void fetch(at, { method: 'POST', body: '3' }).catch(() => {});
          else if (p) received.push(p);
          if (p.startsWith('40')) connected();
        }
      } catch {
        break;
      }
    }
    closed = true;
  })();
  const conn: RawConnection = {
    transport: 'polling',
    received,
    get closed() {
      return closed;
    },
    async send(frame) {
      if (closed) return false;
      // binary over polling travels base64-encoded with a 'b' prefix
      const text = typeof frame === 'string' ? frame : `b${Buffer.from(frame).toString('base64')}`;
      try {
        const r = await fetch(at, { method: 'POST', body: text, headers: { 'content-type': 'text/plain' } });
        await r.arrayBuffer();
        if (r.status !== 200) closed = true;
      } catch {
        closed = true;
      }
      // the server answers a frame it refuses by closing the session, which the pending GET then reports
      await new Promise((r) => setImmediate(r));
      return !closed;
    },
    barrier: () => roundTrip(conn),
    close() {
      if (!closed) void fetch(at, { method: 'POST', body: '1' }).catch(() => {});
      closed = true;
    },
  };
  if (connect) {
    // events sent before the namespace has answered its CONNECT close the connection ("invalid state")
    await conn.send('40');
    await Promise.race([
      namespaceAnswered,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no CONNECT answer over polling')), 5000)),
    ]);
  }
  return conn;
}

/** Opens a websocket connection (engine.io without polling first). */
export function rawWebSocket(url: string, connect = true): Promise<RawConnection> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${PATH}&transport=websocket`);
  const received: string[] = [];
  let closed = false;
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const s = data.toString();
    if (s === '2') ws.send('3'); // pong, so the server keeps us
    else received.push(s);
  });
  ws.on('close', () => (closed = true));
  ws.on('error', () => (closed = true));
  const conn: RawConnection = {
    transport: 'websocket',
    received,
    get closed() {
      return closed || ws.readyState !== WebSocket.OPEN;
    },
    send(frame) {
      if (conn.closed) return Promise.resolve(false);
      return new Promise((resolve) =>
        ws.send(frame, { binary: typeof frame !== 'string' }, (err) => resolve(!err && !conn.closed)),
      );
    },
    barrier: () => roundTrip(conn),
    close() {
      ws.terminate();
      closed = true;
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('close', () => reject(new Error('closed before the namespace answered')));
    ws.once('open', () => {
      if (!connect) return resolve(conn);
      // events sent before the namespace has answered its CONNECT close the connection ("invalid state")
      void conn.send('40');
      const waitForConnect = (data: WebSocket.RawData, isBinary: boolean) => {
        if (isBinary || !data.toString().startsWith('40')) return;
        ws.off('message', waitForConnect);
        resolve(conn);
      };
      ws.on('message', waitForConnect);
    });
  });
}

/** Resolves when the connection is closed by the server, or after `ms` with false. */
export async function closedWithin(conn: RawConnection, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (conn.closed) return true;
    if (conn.transport === 'polling') await conn.send('6'); // a noop packet: a dead session answers 400
    await new Promise((r) => setTimeout(r, 50));
  }
  return conn.closed;
}
