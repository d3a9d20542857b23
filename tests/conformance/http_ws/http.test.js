'use strict';
// HTTP devices against the real gateway (REFERENCE §4.4 + the beyond long-poll), with
// node fetch and curl as the clients: login, messages and replies, tokens, downstream
// requests through the admin API, a full OTA by long-poll, and presence from polling.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFile } = require('node:child_process');
const { Gateway, until } = require('../lib/gateway');
const {
  makeDevice, fetchFirmware, createTask, recordOf, recordHistory, deviceState, signToken,
} = require('./common');

const MAX_WAIT_S = 2; // reachable for 2 x 2 s after the last poll

function curl(args) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-w', '\n%{http_code}', ...args], (err, stdout) => {
      if (err) return reject(err);
      const i = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(i + 1)), body: JSON.parse(stdout.slice(0, i)) });
    });
  });
}

class HttpDevice {
  constructor(gw, dev, port = 'http') {
    this.gw = gw;
    this.dev = dev;
    this.base = `http://127.0.0.1:${gw.ports[port]}`;
    this.topic = `${this.base}/topic/sys/${dev.productKey}/${dev.deviceName}`;
  }

  async login(creds = this.dev.creds) {
    const res = await fetch(`${this.base}/auth`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(creds),
    });
    const body = await res.json();
    if (body.code === 0) this.token = body.data.token;
    return { status: res.status, body };
  }

  async send(pathTail, msg, token = this.token) {
    const res = await fetch(`${this.topic}/${pathTail}`, {
      method: 'POST', headers: { authorization: token, 'content-type': 'application/json' },
      body: JSON.stringify(msg),
    });
    return { status: res.status, body: await res.json() };
  }

  async poll(waitS, token = this.token) {
    const res = await fetch(`${this.topic}/downstream?wait=${waitS}`,
      { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  }
}

let gw, prod;

test.before(async () => {
  gw = new Gateway({
    adapters: (p) => [
      { type: 'http', name: 'http', listen: `127.0.0.1:${p.http}`, max_wait_s: MAX_WAIT_S },
      { type: 'http', name: 'httplong', listen: `127.0.0.1:${p.httplong}`, max_wait_s: 8 },
    ],
    extraPorts: ['http', 'httplong'],
  });
  await gw.start();
  prod = await gw.createProduct('http-meter');
});

test.after(async () => {
  if (!gw) return;
  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `clean shutdown\n${gw.log}`);
  gw.cleanup();
});

test('login: a good password gets a token, a bad one 401, missing fields 400', async () => {
  const d = new HttpDevice(gw, await makeDevice(gw, prod, 'login-dev'));
  const ok = await d.login();
  assert.equal(ok.status, 200);
  assert.equal(ok.body.code, 0);
  assert.equal(ok.body.msg, '');
  assert.match(ok.body.data.token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const claims = JSON.parse(Buffer.from(ok.body.data.token.split('.')[1], 'base64url'));
  assert.equal(claims.productKey, d.dev.productKey);
  assert.equal(claims.deviceName, 'login-dev');

  const bad = await d.login({ ...d.dev.creds, password: '0'.repeat(64) });
  assert.equal(bad.status, 401);
  assert.equal(bad.body.code, 401);
  assert.equal(bad.body.data, null);

  const missing = await d.login({ clientId: d.dev.creds.clientId });
  assert.equal(missing.status, 400);
  assert.equal(missing.body.code, 400);

  // curl, an independent client, gets the same.
  const c = await curl(['-H', 'content-type: application/json', '-d', JSON.stringify(d.dev.creds),
    `${d.base}/auth`]);
  assert.equal(c.status, 200);
  assert.equal(c.body.code, 0);
  assert.ok(c.body.data.token);
});

test('property post is answered with the reply envelope and stored', async () => {
  const d = new HttpDevice(gw, await makeDevice(gw, prod, 'prop-dev'));
  await d.login();
  const r = await d.send('thing/property/post',
    { id: '42', method: 'thing.property.post', params: { temperature: 21.5, mode: 'eco' } });
  assert.equal(r.status, 200);
  assert.equal(r.body.code, 0);
  const got = await gw.ok(gw.get('/admin-api/iot/device/get', { id: d.dev.id }));
  assert.deepEqual(got.properties, { temperature: 21.5, mode: 'eco' });

  // A method without a reply is acknowledged once posted, with its message id.
  const ev = await d.send('thing/ota/progress',
    { id: '43', method: 'thing.ota.progress', params: { version: '1', status: 20, progress: 1 } });
  assert.equal(ev.body.code, 0);
  assert.match(ev.body.data.messageId, /^[0-9a-f]{32}$/);

  // A body whose method is not the path's is refused and changes nothing.
  const mism = await d.send('thing/property/post',
    { id: '44', method: 'thing.event.post', params: { identifier: 'x' } });
  assert.equal(mism.status, 400);
  assert.equal(mism.body.code, 400);

  // curl with "Authorization: Bearer <token>".
  const c = await curl(['-H', `Authorization: Bearer ${d.token}`, '-d',
    JSON.stringify({ id: '45', method: 'thing.property.post', params: { temperature: 22 } }),
    `${d.topic}/thing/property/post`]);
  assert.equal(c.status, 200);
  assert.equal(c.body.code, 0);
  const got2 = await gw.ok(gw.get('/admin-api/iot/device/get', { id: d.dev.id }));
  assert.equal(got2.properties.temperature, 22);
});

test('tokens: forged, expired, missing → 401; another device\'s → 403', async () => {
  const d = new HttpDevice(gw, await makeDevice(gw, prod, 'tok-dev'));
  const other = new HttpDevice(gw, await makeDevice(gw, prod, 'tok-other'));
  await d.login();
  await other.login();
  const msg = { id: '1', method: 'thing.property.post', params: { temperature: 99 } };
  const [h, p, s] = d.token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));

  // Same payload with another device name, old signature: forged.
  const tampered = Buffer.from(JSON.stringify({ ...claims, deviceName: 'tok-other' })).toString('base64url');
  // Signed with another key.
  const head = `${h}.${p}`;
  const otherKey = `${head}.${crypto.createHmac('sha256', crypto.randomBytes(32)).update(head).digest('base64url')}`;
  for (const token of [`${h}.${tampered}.${s}`, otherKey, 'garbage', '']) {
    const r = await d.send('thing/property/post', msg, token);
    assert.equal(r.status, 401, `token ${token.slice(0, 30)}`);
    assert.equal(r.body.code, 401);
  }
  // Signed with the right key but expired.
  const expired = signToken(gw, { ...claims, exp: Math.floor(Date.now() / 1000) - 10 });
  const e = await d.send('thing/property/post', msg, expired);
  assert.equal(e.status, 401);
  assert.equal(e.body.code, 401);
  assert.match(e.body.msg, /expired/);
  let got = await gw.ok(gw.get('/admin-api/iot/device/get', { id: d.dev.id }));
  assert.equal((got.properties || {}).temperature, undefined, 'no refused message was applied');
  // The same key and a future exp is accepted: the check is the signature, not our copy.
  const fresh = signToken(gw, { ...claims, exp: Math.floor(Date.now() / 1000) + 60 });
  assert.equal((await d.send('thing/property/post', msg, fresh)).body.code, 0);

  // A valid token of another device on this device's path.
  const x = await d.send('thing/property/post', msg, other.token);
  assert.equal(x.status, 403);
  assert.equal(x.body.code, 403);
  const poll = await d.poll(0, other.token);
  assert.equal(poll.status, 403);
  got = await gw.ok(gw.get('/admin-api/iot/device/get', { id: d.dev.id }));
  assert.equal(got.properties.temperature, 99);
});

test('downstream thing.property.set reaches a long-polling device; its reply returns to the API',
  async () => {
    const d = new HttpDevice(gw, await makeDevice(gw, prod, 'set-dev'));
    await d.login();
    const pollP = d.poll(MAX_WAIT_S);
    const sendP = gw.post('/admin-api/iot/device/message/send',
      { deviceId: d.dev.id, method: 'thing.property.set', params: { power: 1 }, timeoutMs: 5000 });
    const polled = await pollP;
    assert.equal(polled.status, 200);
    assert.equal(polled.body.length, 1);
    const m = polled.body[0];
    assert.equal(m.method, 'thing.property.set');
    assert.deepEqual(m.params, { power: 1 });
    const rep = await d.send('thing/property/set_reply',
      { id: m.id, method: 'thing.property.set', code: 0, data: { power: 1 } });
    assert.equal(rep.body.code, 0);
    const api = await sendP;
    assert.equal(api.code, 0, JSON.stringify(api));
    assert.equal(api.data.code, 0);
    assert.deepEqual(api.data.data, { power: 1 });

    // Nothing queued: a poll waits, then answers an empty array.
    const t0 = Date.now();
    const empty = await d.poll(1);
    assert.deepEqual(empty.body, []);
    assert.ok(Date.now() - t0 >= 900, 'the poll waited');
  });

test('full OTA over HTTP: upgrade by long-poll, download, MD5, progress 20 → 30, success',
  async () => {
    const d = new HttpDevice(gw, await makeDevice(gw, prod, 'ota-dev'));
    await d.login();
    const image = crypto.randomBytes(64 * 1024 + 3);
    const fw = await gw.uploadFirmware(prod.id, '3.1.0', image);
    const pollP = d.poll(MAX_WAIT_S);
    const taskId = await createTask(gw, 'http rollout', fw, [d.dev]);

    let up;
    for (let i = 0; i < 5 && !up; i++) {
      const r = i === 0 ? await pollP : await d.poll(MAX_WAIT_S);
      up = r.body.find((m) => m.method === 'thing.ota.upgrade');
    }
    assert.ok(up, 'the upgrade came through the long-poll');
    assert.equal(up.params.version, '3.1.0');
    assert.equal(up.params.fileDigestAlgorithm, 'MD5');
    assert.equal(String(up.params.taskId), String(taskId));
    assert.equal(await fetchFirmware(up.params), true, 'size, MD5 and SHA-256 verified');

    const progress = (status, progress) => d.send('thing/ota/progress', {
      id: `p${status}`, method: 'thing.ota.progress',
      params: { version: up.params.version, status, progress, description: `s${status}` },
    });
    assert.equal((await progress(20, 50)).body.code, 0);
    await until('record upgrading', async () => (await recordOf(gw, taskId, d.dev.id)).status === 20);
    assert.equal((await progress(30, 100)).body.code, 0);
    await until('record success', async () => (await recordOf(gw, taskId, d.dev.id)).status === 30);
    const rec = await recordOf(gw, taskId, d.dev.id);
    const hist = await recordHistory(gw, rec.id);
    assert.deepEqual(hist.slice(-3), [10, 20, 30]);
    const dev = await gw.ok(gw.get('/admin-api/iot/device/get', { id: d.dev.id }));
    assert.equal(dev.firmwareId, fw.id);
    const task = await gw.ok(gw.get('/admin-api/iot/ota/task/get', { id: taskId }));
    assert.equal(task.status, 20);
    assert.equal(task.deviceSuccessCount, 1);
  });

test('presence: online while polling, offline after 2 x max_wait_s without a poll', async () => {
  const d = new HttpDevice(gw, await makeDevice(gw, prod, 'presence-dev'));
  await d.login();
  assert.equal(await deviceState(gw, d.dev.id), 1, 'online after login');
  // Polling keeps it online past the window.
  const until6 = Date.now() + 2 * MAX_WAIT_S * 1000 + 1500;
  while (Date.now() < until6) await d.poll(1);
  assert.equal(await deviceState(gw, d.dev.id), 1, 'still online while polling');
  // Silent: offline after the window.
  await until('offline after the poll window', async () => (await deviceState(gw, d.dev.id)) === 2,
    4 * MAX_WAIT_S * 1000 + 2000, 100);
  // A downstream request now fails fast: nobody receives it.
  const r = await gw.post('/admin-api/iot/device/message/send',
    { deviceId: d.dev.id, method: 'thing.property.set', params: { a: 1 }, timeoutMs: 3000 });
  assert.equal(r.code, 1050003007);
  // Polling again brings it back (its token is still valid).
  await d.poll(0);
  await until('online again', async () => (await deviceState(gw, d.dev.id)) === 1);
});

test('a long-poll longer than lws\'s 5 s request timeout is answered when a message comes',
  async () => {
    const d = new HttpDevice(gw, await makeDevice(gw, prod, 'long-dev'), 'httplong');
    await d.login();
    const t0 = Date.now();
    const pollP = d.poll(7);
    await new Promise((r) => setTimeout(r, 6000));
    const sendP = gw.post('/admin-api/iot/device/message/send',
      { deviceId: d.dev.id, method: 'thing.property.set', params: { late: true }, timeoutMs: 3000 });
    const polled = await pollP;
    assert.equal(polled.status, 200);
    assert.ok(Date.now() - t0 >= 6000);
    assert.deepEqual(polled.body.map((m) => m.params), [{ late: true }]);
    await d.send('thing/property/set_reply',
      { id: polled.body[0].id, method: 'thing.property.set', code: 0 });
    assert.equal((await sendP).code, 0);
  });
