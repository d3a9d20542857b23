'use strict';
// WebSocket devices against the real gateway (REFERENCE §4.8, with every downstream method
// delivered), using the `ws` package (independent of libwebsockets): login, messages and
// replies, downstream requests through the admin API, a full OTA pushed over the socket,
// clients with and without a subprotocol, takeover by a second login, the 64 KiB limit, the
// idle timeout and a binary listener.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { Gateway, until } = require('../lib/gateway');
const {
  makeDevice, fetchFirmware, createTask, recordOf, recordHistory, deviceState, binEncode,
  binDecode,
} = require('./common');

const IDLE_S = 2; // idle timeout of the binary listener

// A device connection: every message it receives is kept; next(pred) waits for one.
class WsDevice {
  constructor(url, protocols) {
    this.ws = new WebSocket(url, protocols);
    this.inbox = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) =>
      resolve({ code, reason: reason.toString() })));
    this.ws.on('message', (data, isBinary) => {
      const m = isBinary ? binDecode(data) : JSON.parse(data.toString());
      m.binaryFrame = isBinary;
      this.inbox.push(m);
      this.waiters = this.waiters.filter((w) => !w(m));
    });
  }

  open() {
    return new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
  }

  send(m) { this.ws.send(JSON.stringify(m)); }

  next(pred, timeoutMs = 5000) {
    const found = this.inbox.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no matching message')), timeoutMs);
      this.waiters.push((m) => {
        if (!pred(m)) return false;
        clearTimeout(t);
        resolve(m);
        return true;
      });
    });
  }

  async request(m) {
    this.send(m);
    return this.next((r) => r.id === m.id && r.code !== undefined);
  }

  async login(dev, id = 'login') {
    return this.request({ id, method: 'auth', params: dev.creds });
  }
}

let gw, prod;

async function connect(dev, { protocols, port = 'ws', path = '/ws' } = {}) {
  const d = new WsDevice(`ws://127.0.0.1:${gw.ports[port]}${path}`, protocols);
  await d.open();
  if (dev) {
    const r = await d.login(dev);
    assert.equal(r.code, 0, JSON.stringify(r));
  }
  return d;
}

test.before(async () => {
  gw = new Gateway({
    adapters: (p) => [
      { type: 'websocket', name: 'ws', listen: `127.0.0.1:${p.ws}`, idle_timeout_s: 300 },
      { type: 'websocket', name: 'wsbin', listen: `127.0.0.1:${p.wsbin}`, path: '/dev',
        serializer: 'binary', idle_timeout_s: IDLE_S },
    ],
    extraPorts: ['ws', 'wsbin'],
  });
  await gw.start();
  prod = await gw.createProduct('ws-meter');
});

test.after(async () => {
  if (!gw) return;
  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `clean shutdown\n${gw.log}`);
  gw.cleanup();
});

test('login without a subprotocol: bad password 401, nothing before auth, then auth', async () => {
  const dev = await makeDevice(gw, prod, 'login-dev');
  const d = await connect(null); // offers no subprotocol: still the device protocol
  assert.equal(d.ws.protocol, '');
  const early = await d.request({ id: 'e1', method: 'thing.property.post', params: { t: 1 } });
  assert.equal(early.code, 401, 'business message before auth');
  const bad = await d.request({ id: 'b1', method: 'auth',
    params: { ...dev.creds, password: 'f'.repeat(64) } });
  assert.equal(bad.code, 401);
  assert.equal(bad.method, 'auth');
  const ok = await d.login(dev, 'l1');
  assert.equal(ok.code, 0);
  assert.equal(ok.data.productKey, dev.productKey);
  assert.equal(ok.data.deviceName, 'login-dev');
  await until('online', async () => (await deviceState(gw, dev.id)) === 1);
  d.ws.close();
  await d.closed;
  await until('offline after close', async () => (await deviceState(gw, dev.id)) === 2);
});

test('a client offering the iotgw subprotocol works too; other paths are refused', async () => {
  const dev = await makeDevice(gw, prod, 'proto-dev');
  const d = await connect(dev, { protocols: ['iotgw'] });
  assert.equal(d.ws.protocol, 'iotgw');
  d.ws.close();
  const wrong = new WsDevice(`ws://127.0.0.1:${gw.ports.ws}/other`);
  await assert.rejects(wrong.open(), 'upgrade on another path');
});

test('property post + reply; identity comes from the login, not the payload', async () => {
  const dev = await makeDevice(gw, prod, 'prop-dev');
  const d = await connect(dev);
  const r = await d.request({ id: 'p1', method: 'thing.property.post',
    params: { temperature: 19.5 }, productKey: 'evil', deviceName: 'other' });
  assert.equal(r.code, 0);
  assert.equal(r.method, 'thing.property.post');
  const got = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
  assert.deepEqual(got.properties, { temperature: 19.5 });
  d.ws.close();
});

test('downstream thing.property.set and service.invoke are delivered; replies reach the API',
  async () => {
    const dev = await makeDevice(gw, prod, 'set-dev');
    const d = await connect(dev);
    d.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.code === undefined)
        d.send({ id: m.id, method: m.method, code: 0, data: { echo: m.params } });
    });
    for (const [method, params] of [['thing.property.set', { power: 1 }],
      ['thing.service.invoke', { identifier: 'reboot', inputParams: { delay: 1 } }]]) {
      const api = await gw.post('/admin-api/iot/device/message/send',
        { deviceId: dev.id, method, params, timeoutMs: 5000 });
      assert.equal(api.code, 0, JSON.stringify(api));
      assert.equal(api.data.code, 0);
      assert.deepEqual(api.data.data, { echo: params });
      const seen = await d.next((m) => m.method === method && m.code === undefined);
      assert.deepEqual(seen.params, params);
      assert.equal(seen.binaryFrame, false, 'JSON listener: text frames');
    }
    d.ws.close();
  });

test('full OTA over WebSocket: push, download, MD5, progress 20 → 30, success', async () => {
  const dev = await makeDevice(gw, prod, 'ota-dev');
  const d = await connect(dev);
  const image = crypto.randomBytes(100 * 1024 + 7);
  const fw = await gw.uploadFirmware(prod.id, '4.0.1', image);
  const taskId = await createTask(gw, 'ws rollout', fw, [dev]);
  const up = await d.next((m) => m.method === 'thing.ota.upgrade', 10000);
  assert.equal(up.params.version, '4.0.1');
  assert.equal(String(up.params.taskId), String(taskId));
  assert.equal(await fetchFirmware(up.params), true, 'size, MD5 and SHA-256 verified');
  const progress = (status, progress) => d.send({ id: `p${status}`, method: 'thing.ota.progress',
    params: { version: up.params.version, status, progress, description: `s${status}` } });
  progress(20, 40);
  await until('record upgrading', async () => (await recordOf(gw, taskId, dev.id)).status === 20);
  progress(30, 100);
  await until('record success', async () => (await recordOf(gw, taskId, dev.id)).status === 30);
  const rec = await recordOf(gw, taskId, dev.id);
  assert.deepEqual((await recordHistory(gw, rec.id)).slice(-3), [10, 20, 30]);
  const got = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
  assert.equal(got.firmwareId, fw.id);
  // A report with a wrong version is refused with a code (beyond) and changes nothing.
  const wrong = await d.request({ id: 'w1', method: 'thing.ota.progress',
    params: { version: '9.9', status: 20, progress: 1 } });
  assert.notEqual(wrong.code, 0);
  d.ws.close();
});

test('a second login of the same device closes the first connection', async () => {
  const dev = await makeDevice(gw, prod, 'twice-dev');
  const first = await connect(dev);
  const second = await connect(dev);
  const closed = await first.closed;
  assert.equal(closed.code, 1008);
  // The device stays online and downstream goes to the new connection.
  assert.equal(await deviceState(gw, dev.id), 1);
  second.ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.method === 'thing.property.set' && m.code === undefined)
      second.send({ id: m.id, method: m.method, code: 0, data: { via: 'second' } });
  });
  const api = await gw.post('/admin-api/iot/device/message/send',
    { deviceId: dev.id, method: 'thing.property.set', params: { x: 1 }, timeoutMs: 5000 });
  assert.equal(api.code, 0, JSON.stringify(api));
  assert.deepEqual(api.data.data, { via: 'second' });
  second.ws.close();
});

test('a message over 64 KiB closes the connection (1009); 64 KiB itself is fine', async () => {
  const dev = await makeDevice(gw, prod, 'big-dev');
  const d = await connect(dev);
  const msg = (n) => {
    const base = JSON.stringify({ id: 'big', method: 'thing.property.post', params: { blob: '' } });
    return JSON.stringify({ id: 'big', method: 'thing.property.post',
      params: { blob: 'x'.repeat(n - base.length) } });
  };
  const exact = msg(65536);
  assert.equal(exact.length, 65536);
  d.ws.send(exact);
  assert.equal((await d.next((m) => m.id === 'big')).code, 0);
  d.ws.send(msg(65537));
  const closed = await d.closed;
  assert.equal(closed.code, 1009);
});

test('binary listener: JSON login, binary frames both ways, idle timeout closes', async () => {
  const dev = await makeDevice(gw, prod, 'bin-dev');
  const d = await connect(dev, { port: 'wsbin', path: '/dev' });
  assert.equal(d.inbox[0].binaryFrame, false, 'the JSON login is answered in JSON');
  d.ws.send(binEncode({ id: 'b1', method: 'thing.property.post', params: { temp: 25 } }));
  const r = await d.next((m) => m.id === 'b1');
  assert.equal(r.binaryFrame, true);
  assert.equal(r.code, 0);
  const apiP = gw.post('/admin-api/iot/device/message/send',
    { deviceId: dev.id, method: 'thing.property.set', params: { p: 2 }, timeoutMs: 5000 });
  const set = await d.next((m) => m.method === 'thing.property.set' && m.code === undefined);
  assert.equal(set.binaryFrame, true);
  assert.deepEqual(set.params, { p: 2 });
  // A reply in the binary form (type 2): code 0, empty msg, data {"ok":true}.
  const idb = Buffer.from(set.id), mb = Buffer.from(set.method), data = Buffer.from('{"ok":true}');
  const buf = Buffer.alloc(7 + 2 + idb.length + 2 + mb.length + 4 + 2 + data.length);
  let o = 0;
  buf[o++] = 0x7e; buf[o++] = 1; buf[o++] = 2; buf.writeUInt32BE(buf.length, o); o += 4;
  buf.writeUInt16BE(idb.length, o); o += 2; idb.copy(buf, o); o += idb.length;
  buf.writeUInt16BE(mb.length, o); o += 2; mb.copy(buf, o); o += mb.length;
  buf.writeInt32BE(0, o); o += 4; buf.writeUInt16BE(0, o); o += 2; data.copy(buf, o);
  d.ws.send(buf);
  const api = await apiP;
  assert.equal(api.code, 0, JSON.stringify(api));
  assert.deepEqual(api.data.data, { ok: true });

  // Silence: the listener closes the connection after idle_timeout_s.
  const t0 = Date.now();
  await d.closed;
  const idle = Date.now() - t0;
  assert.ok(idle >= (IDLE_S - 1) * 1000 && idle < (IDLE_S + 3) * 1000, `closed after ${idle} ms`);
  await until('offline after the idle close', async () => (await deviceState(gw, dev.id)) === 2);
});
