'use strict';
// The CoAP adapter against node-coap (independent of libcoap): login, messages with the
// token option, Observe for downstream messages and OTA, firmware over Block2 (with resume),
// reachability following the registration, and a clean shutdown.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Gateway, until, devicePassword } = require('../lib/gateway');
const { freeUdpPort, request, json, block2Option, CoapDevice, RawPeer, DtlsPeer, haveOpenssl,
  option } = require('./coap_device');

const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');
const BLOCK_SIZE = 512; // configured coap.block_size

async function startGateway(t, extra = {}) {
  const coapPort = await freeUdpPort();
  const gw = new Gateway({
    adapters: () => [Object.assign({ type: 'coap', name: 'coap',
      listen: `127.0.0.1:${coapPort}`, block_size: BLOCK_SIZE }, extra)],
  });
  t.after(async () => { await gw.stop('SIGKILL'); gw.cleanup(); });
  await gw.start();
  gw.coapPort = coapPort;
  return gw;
}

async function deviceState(gw, id) {
  return (await gw.ok(gw.get('/admin-api/iot/device/get', { id }))).state;
}

test('CoAP: auth, property post, token checks', { timeout: 60000 }, async (t) => {
  const gw = await startGateway(t);
  const prod = await gw.createProduct('coap-meter');
  const dev = await gw.createDevice(prod.id, 'c1');
  const other = await gw.createDevice(prod.id, 'c2');
  const d = new CoapDevice(gw.coapPort, dev);
  const d2 = new CoapDevice(gw.coapPort, other);
  t.after(() => { d.close(); d2.close(); });

  // Wrong password: 4.01 with envelope code 401, no token.
  const bad = await d.auth('0'.repeat(64));
  assert.equal(bad.code, '4.01');
  assert.equal(bad.env.code, 401);
  assert.equal(bad.env.data, null);

  // Good credentials: the token comes back in the envelope (a JWT: three parts).
  const good = await d.auth();
  assert.equal(good.code, '2.05');
  assert.equal(good.env.code, 0);
  assert.equal(good.env.msg, '');
  assert.equal(good.env.data.token.split('.').length, 3);
  assert.equal((await d2.auth()).env.code, 0);

  // A body that is not the login object: 4.00.
  const junk = await request(gw.coapPort, { method: 'POST', path: '/auth', body: 'not json' });
  assert.equal(junk.code, '4.00');
  assert.equal(json(junk).code, 400);

  // A property post is answered with the core's reply and lands in the device's state.
  const post = await d.post('thing/property/post',
    { id: '7', method: 'thing.property.post', params: { temperature: 21.5 } });
  assert.equal(post.code, '2.05');
  assert.equal(post.env.code, 0);
  const info = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
  assert.equal(info.properties.temperature, 21.5);

  // Forged, missing and foreign tokens.
  const [h, p, s] = d.token.split('.');
  const forged = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
  let r = await d.post('thing/property/post',
    { id: '8', method: 'thing.property.post', params: { temperature: 1 } }, forged);
  assert.equal(r.code, '4.01');
  assert.equal(r.env.code, 401);
  r = await d.post('thing/property/post',
    { id: '9', method: 'thing.property.post', params: { temperature: 2 } }, null);
  assert.equal(r.code, '4.01');
  r = await d.post('thing/property/post',
    { id: '10', method: 'thing.property.post', params: { temperature: 3 } }, d2.token);
  assert.equal(r.code, '4.03');
  assert.equal(r.env.code, 403);
  const after = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
  assert.equal(after.properties.temperature, 21.5, 'refused posts changed nothing');

  // The body's method must be the path's.
  r = await d.post('thing/property/post', { id: '11', method: 'thing.event.post',
    params: { identifier: 'x', value: 1 } });
  assert.equal(r.code, '4.00');
  // An unknown resource.
  const nf = await request(gw.coapPort, { path: '/nothing/here' });
  assert.equal(nf.code, '4.04');

  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
});

test('CoAP: downstream property.set over Observe, reply, cancel → offline', { timeout: 60000 },
  async (t) => {
    const gw = await startGateway(t);
    const prod = await gw.createProduct('coap-lamp');
    const dev = await gw.createDevice(prod.id, 'lamp1');
    const d = new CoapDevice(gw.coapPort, dev);
    t.after(() => d.close());
    assert.equal((await d.auth()).env.code, 0);
    // Logged in but not observing: not reachable (reachability follows the registration).
    await until('offline after login', async () => (await deviceState(gw, dev.id)) !== 1);

    const got = [];
    const reg = await d.observe('downstream', async (m) => {
      got.push(m);
      if (m.method === 'thing.property.set')
        await d.post('thing/property/set_reply',
          { id: m.id, method: 'thing.property.set', code: 0, data: { applied: m.params } });
    });
    assert.equal(reg.code, '2.05');
    assert.equal(reg.env.code, 0);
    await until('online while observing', async () => (await deviceState(gw, dev.id)) === 1);

    const reply = await gw.ok(gw.post('/admin-api/iot/device/message/send', {
      deviceId: dev.id, method: 'thing.property.set', params: { power: 'on' }, timeoutMs: 10000,
    }));
    assert.equal(reply.code, 0);
    assert.deepEqual(reply.data, { applied: { power: 'on' } });
    assert.equal(got.length, 1);
    assert.equal(got[0].method, 'thing.property.set');
    assert.deepEqual(got[0].params, { power: 'on' });

    // Deregistration (GET with Observe 1): the device goes offline, sends are refused.
    reg.stream.close(true);
    await until('offline after deregistration', async () => (await deviceState(gw, dev.id)) === 2);
    const refused = await gw.post('/admin-api/iot/device/message/send', {
      deviceId: dev.id, method: 'thing.property.set', params: { power: 'off' }, timeoutMs: 2000,
    });
    assert.notEqual(refused.code, 0);

    // A raw peer that registers and answers the next notification with RST: gone at once.
    const raw = new RawPeer(gw.coapPort);
    t.after(() => raw.close());
    await raw.bind();
    const tok = crypto.randomBytes(4);
    const pathOpts = `${d.base}/downstream`.split('/').filter(Boolean)
      .map((v) => ({ name: 'Uri-Path', value: Buffer.from(v) }));
    await raw.send({ confirmable: true, code: 'GET', token: tok, options: [
      { name: 'Observe', value: Buffer.alloc(0) }, ...pathOpts,
      { name: '2088', value: Buffer.from(d.token) }] });
    const ack = await raw.next((p) => p.ack && p.token.equals(tok));
    assert.equal(ack.code, '2.05');
    assert.ok(option(ack, 'Observe'), 'the registration answer carries Observe');
    await until('online with the raw observer', async () => (await deviceState(gw, dev.id)) === 1);
    const pending = gw.post('/admin-api/iot/device/message/send', {
      deviceId: dev.id, method: 'thing.property.set', params: { power: 'dim' }, timeoutMs: 3000,
    });
    const note = await raw.next((p) => p.confirmable && p.token.equals(tok));
    assert.equal(JSON.parse(note.payload.toString()).method, 'thing.property.set');
    await raw.send({ reset: true, code: '0.00', messageId: note.messageId });
    await until('offline after RST', async () => (await deviceState(gw, dev.id)) === 2);
    assert.notEqual((await pending).code, 0, 'no reply: the device reset the notification');

    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
  });

test('CoAP: OTA over Observe and Block2 with resume', { timeout: 90000 }, async (t) => {
  const gw = await startGateway(t);
  const prod = await gw.createProduct('coap-ota');
  const dev = await gw.createDevice(prod.id, 'ota1');
  const late = await gw.createDevice(prod.id, 'ota2'); // offline when the task starts
  const image = crypto.randomBytes(100 * 1024 + 17);
  const fw = await gw.uploadFirmware(prod.id, '3.1.0', image);
  const d = new CoapDevice(gw.coapPort, dev);
  t.after(() => d.close());
  assert.equal((await d.auth()).env.code, 0);

  const upgrades = [];
  const reg = await d.observe('thing/ota/upgrade', (m) => upgrades.push(m));
  assert.equal(reg.code, '2.05');
  await until('online', async () => (await deviceState(gw, dev.id)) === 1);

  const taskId = await gw.ok(gw.post('/admin-api/iot/ota/task/create', {
    name: 'coap rollout', firmwareId: fw.id, deviceScope: 2, deviceIds: [dev.id, late.id] }));
  const record = async (deviceId) => (await gw.ok(gw.get('/admin-api/iot/ota/task/record/page',
    { taskId, pageNo: 1, pageSize: 10 }))).list.find((x) => x.deviceId === deviceId);
  await until('the upgrade notification', () => upgrades.length > 0, 15000);
  const up = upgrades[0];
  assert.equal(up.method, 'thing.ota.upgrade');
  assert.equal(up.params.version, '3.1.0');
  assert.equal(up.params.fileSize, image.length);
  assert.equal(up.params.fileDigestAlgorithm, 'MD5');
  const url = new URL(up.params.fileUrl);
  assert.equal(url.protocol, 'coap:');
  assert.equal(url.host, `127.0.0.1:${gw.coapPort}`);
  assert.match(url.pathname, new RegExp(`^/ota/firmware/${fw.id}/\\d+$`));
  const query = url.search.slice(1);

  // The whole image over Block2, MD5-verified.
  const res = await request(gw.coapPort, { path: url.pathname, query, timeoutMs: 60000 });
  assert.equal(res.code, '2.05');
  assert.equal(res.payload.length, up.params.fileSize);
  assert.equal(md5(res.payload), up.params.fileDigestValue);

  // The configured block size when the device does not ask (raw GET for block 0), and a
  // resumed download: a GET for a later block returns the rest of the image.
  const raw = new RawPeer(gw.coapPort);
  t.after(() => raw.close());
  await raw.bind();
  const tok = crypto.randomBytes(4);
  await raw.send({ confirmable: true, code: 'GET', token: tok, options: [
    ...url.pathname.split('/').filter(Boolean).map((v) => ({ name: 'Uri-Path', value: Buffer.from(v) })),
    { name: 'Uri-Query', value: Buffer.from(query) }] });
  const first = await raw.next((p) => p.token.equals(tok));
  assert.equal(first.code, '2.05');
  const b2 = option(first, 'Block2');
  assert.equal(b2[b2.length - 1] & 7, Math.log2(BLOCK_SIZE) - 4, 'szx of block_size');
  assert.equal(first.payload.length, BLOCK_SIZE);
  assert.deepEqual(first.payload, image.subarray(0, BLOCK_SIZE));

  const resumeAt = 37; // 1024-byte blocks (szx 6) asked for by the device
  const rest = await request(gw.coapPort, { path: url.pathname, query,
    block2: block2Option(resumeAt, 6), timeoutMs: 60000 });
  assert.equal(rest.code, '2.05');
  assert.deepEqual(rest.payload, image.subarray(resumeAt * 1024));

  // A wrong download token is refused.
  const denied = await request(gw.coapPort, { path: url.pathname, query: 'token=' + '0'.repeat(64) });
  assert.equal(denied.code, '4.01');

  // Progress 20 then 30: the record succeeds and the device is on the new firmware.
  const prog = (status, progress) => d.post('thing/ota/progress', { id: String(status),
    method: 'thing.ota.progress',
    params: { version: '3.1.0', status, progress, description: `status ${status}` } });
  let r = await prog(20, 50);
  assert.equal(r.code, '2.05');
  assert.equal(r.env.code, 0);
  await until('record upgrading', async () => (await record(dev.id)).status === 20);
  r = await prog(30, 100);
  assert.equal(r.env.code, 0);
  await until('record success', async () => (await record(dev.id)).status === 30);
  const info = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
  assert.equal(info.firmwareId, fw.id);
  assert.equal(upgrades.length, 1, 'one upgrade notification');

  // The late device: logging in alone does not make it reachable (nothing could reach it);
  // its upgrade comes once it observes.
  assert.equal((await record(late.id)).status, 0);
  const d2 = new CoapDevice(gw.coapPort, late);
  t.after(() => d2.close());
  assert.equal((await d2.auth()).env.code, 0);
  const lateUpgrades = [];
  assert.equal((await d2.observe('thing/ota/upgrade', (m) => lateUpgrades.push(m))).code, '2.05');
  await until('the late upgrade', () => lateUpgrades.length > 0, 15000);
  assert.equal(new URL(lateUpgrades[0].params.fileUrl).protocol, 'coap:');
  await until('late record pushed', async () => (await record(late.id)).status === 10);

  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
});

test('CoAP over DTLS-PSK: identity pk.dn, key = the device password', {
  timeout: 60000, skip: haveOpenssl() ? false : 'the openssl command is not installed',
}, async (t) => {
  const dtlsPort = await freeUdpPort();
  const gw = await startGateway(t, { dtls_listen: `127.0.0.1:${dtlsPort}` });
  const prod = await gw.createProduct('coaps');
  const dev = await gw.createDevice(prod.id, 's1');
  const other = await gw.createDevice(prod.id, 's2');
  const pk = dev.productKey;
  const uri = (p) => p.split('/').filter(Boolean).map((v) => ({ name: 'Uri-Path', value: Buffer.from(v) }));
  const postMsg = (dn, tok, params) => ({ confirmable: true, code: 'POST', token: tok,
    options: uri(`/topic/sys/${pk}/${dn}/thing/property/post`),
    payload: Buffer.from(JSON.stringify({ id: '1', method: 'thing.property.post', params })) });

  const peer = new DtlsPeer(dtlsPort, `${pk}.s1`, devicePassword(pk, 's1', dev.deviceSecret));
  t.after(() => peer.close());
  // No token option: the handshake identifies the device.
  let tok = crypto.randomBytes(4);
  peer.send(postMsg('s1', tok, { humidity: 40 }));
  let r = await peer.next((p) => p.token.equals(tok));
  assert.ok(r, 'an answer over DTLS');
  assert.equal(r.code, '2.05');
  assert.equal(JSON.parse(r.payload.toString()).code, 0);
  const info = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
  assert.equal(info.properties.humidity, 40);
  // Its session may not speak for another device.
  tok = crypto.randomBytes(4);
  peer.send(postMsg('s2', tok, { humidity: 1 }));
  r = await peer.next((p) => p.token.equals(tok));
  assert.equal(r.code, '4.03');

  // Downstream over DTLS: the upgrade names the coaps:// listener, and the image is there.
  const obsTok = crypto.randomBytes(4);
  peer.send({ confirmable: true, code: 'GET', token: obsTok, options: [
    { name: 'Observe', value: Buffer.alloc(0) }, ...uri(`/topic/sys/${pk}/s1/thing/ota/upgrade`)] });
  r = await peer.next((p) => p.token.equals(obsTok));
  assert.equal(r.code, '2.05');
  await until('online over DTLS', async () => (await deviceState(gw, dev.id)) === 1);
  const image = crypto.randomBytes(3000);
  const fw = await gw.uploadFirmware(prod.id, '9.0', image);
  await gw.ok(gw.post('/admin-api/iot/ota/task/create', {
    name: 'dtls', firmwareId: fw.id, deviceScope: 2, deviceIds: [dev.id] }));
  const note = await peer.next((p) => p.token.equals(obsTok));
  const up = JSON.parse(note.payload.toString());
  assert.equal(up.method, 'thing.ota.upgrade');
  const url = new URL(up.params.fileUrl);
  assert.equal(url.protocol, 'coaps:');
  assert.equal(url.host, `127.0.0.1:${dtlsPort}`);
  const getTok = crypto.randomBytes(4);
  peer.send({ confirmable: true, code: 'GET', token: getTok, options: [...uri(url.pathname),
    { name: 'Uri-Query', value: Buffer.from(url.search.slice(1)) }] });
  r = await peer.next((p) => p.token.equals(getTok));
  assert.equal(r.code, '2.05');
  assert.deepEqual(r.payload, image.subarray(0, r.payload.length));
  assert.equal(r.payload.length, BLOCK_SIZE);
  peer.close();

  // A wrong key fails the handshake: no answer at all.
  const bad = new DtlsPeer(dtlsPort, `${pk}.s2`, devicePassword(pk, 's2', 'not-the-secret'));
  t.after(() => bad.close());
  tok = crypto.randomBytes(4);
  bad.send(postMsg('s2', tok, { humidity: 2 }));
  assert.equal(await bad.next((p) => p.token.equals(tok), 5000).catch(() => null), null);
  const info2 = await gw.ok(gw.get('/admin-api/iot/device/get', { id: other.id }));
  assert.equal((info2.properties || {}).humidity, undefined);

  const exit = await gw.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
});
