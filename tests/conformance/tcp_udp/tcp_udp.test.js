'use strict';
// TCP and UDP device adapters against the real gateway (DESIGN §4, §7.5): node `net` and
// `dgram` devices sending byte-exact frames (wire.js, independent of the C codecs). One
// gateway serves every test, with one listener per framing / serializer variant; the last
// test checks a clean shutdown (exit code 0, which under ASan also means no leak).
const { describe, before, after, it } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Gateway, until, portOpen, devicePassword } = require('../lib/gateway');
const { json, binary, TcpDevice, UdpDevice } = require('./wire');

const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');

const FRAMES = {
  tcp: { type: 'delimiter', delimiter: '\n' },
  // length field counts the whole frame (adjustment -(offset+size)); nothing stripped, so
  // the gateway skips the 4 header bytes itself
  tcp_bin: { type: 'length_field', length_field_size: 2, length_field_offset: 2,
    length_adjustment: -4, initial_bytes_to_strip: 0 },
  tcp_lf: { type: 'length_field', length_field_size: 4, length_field_offset: 0,
    length_adjustment: 0, initial_bytes_to_strip: 4 },
  tcp_fixed: { type: 'fixed_length', fixed_length: 384 },
};

function authMsg(id, dev, password) {
  const pk = dev.productKey, dn = dev.deviceName;
  return { id, method: 'auth', params: { clientId: `${pk}.${dn}`, username: `${dn}&${pk}`,
    password: password ?? devicePassword(pk, dn, dev.deviceSecret) } };
}

describe('TCP and UDP adapters', { timeout: 240000 }, () => {
  const gw = new Gateway({
    extraPorts: ['tcp', 'tcp_bin', 'tcp_lf', 'tcp_fixed', 'tcp_slow', 'tcp_max', 'tcp_idle', 'udp',
      'udp_bin'],
    adapters: (p) => [
      { type: 'tcp', name: 'tcp', listen: `127.0.0.1:${p.tcp}`, serializer: 'json',
        framing: FRAMES.tcp },
      { type: 'tcp', name: 'tcp_bin', listen: `127.0.0.1:${p.tcp_bin}`, serializer: 'binary',
        framing: FRAMES.tcp_bin },
      { type: 'tcp', name: 'tcp_lf', listen: `127.0.0.1:${p.tcp_lf}`, serializer: 'json',
        framing: FRAMES.tcp_lf },
      { type: 'tcp', name: 'tcp_fixed', listen: `127.0.0.1:${p.tcp_fixed}`, serializer: 'json',
        framing: FRAMES.tcp_fixed },
      { type: 'tcp', name: 'tcp_slow', listen: `127.0.0.1:${p.tcp_slow}`, serializer: 'json',
        write_queue_max_bytes: 1024 },
      { type: 'tcp', name: 'tcp_max', listen: `127.0.0.1:${p.tcp_max}`, serializer: 'json',
        max_connections: 2 },
      { type: 'tcp', name: 'tcp_idle', listen: `127.0.0.1:${p.tcp_idle}`, serializer: 'json',
        idle_timeout_s: 1 },
      { type: 'udp', name: 'udp', listen: `127.0.0.1:${p.udp}`, serializer: 'json',
        session_timeout_s: 2 },
      { type: 'udp', name: 'udp_bin', listen: `127.0.0.1:${p.udp_bin}`, serializer: 'binary' },
    ],
  });
  let prod;
  const open = [];
  let n = 0;
  const newDevice = async () => gw.createDevice(prod.id, `dev-${++n}`);
  const connect = async (port, opts) => {
    const d = await TcpDevice.connect(port, opts);
    open.push(d);
    return d;
  };
  const devState = async (dev) => (await gw.ok(gw.get('/admin-api/iot/device/get',
    { id: dev.id }))).state;
  const devProps = async (dev) => (await gw.ok(gw.get('/admin-api/iot/device/get',
    { id: dev.id }))).properties;
  // device/message/send: the API waits for the device's reply and returns it.
  const sendDown = (dev, method, params, timeoutMs = 10000) => gw.post(
    '/admin-api/iot/device/message/send', { deviceId: dev.id, method, params, timeoutMs });

  before(async () => {
    await gw.start();
    for (const name of ['tcp', 'tcp_bin', 'tcp_lf', 'tcp_fixed', 'tcp_slow', 'tcp_max', 'tcp_idle'])
      await until(`the ${name} listener`, () => portOpen(gw.ports[name]));
    prod = await gw.createProduct('tcp-udp');
  });

  after(async () => {
    for (const d of open) d.close();
    if (process.env.GW_TEST_LOG) process.stderr.write(gw.log);
    await gw.stop('SIGKILL');
    gw.cleanup();
  });

  it('logs in (401 before auth and for a bad password, connection kept), posts, gets replies',
    async () => {
      const dev = await newDevice();
      const d = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
      // a business message before auth: 401, connection stays
      let r = await d.request({ id: 'p0', method: 'thing.property.post', params: { t: 1 } });
      assert.equal(r.code, 401);
      // bad password: the core's 401, connection stays
      r = await d.request(authMsg('a0', dev, '0'.repeat(64)));
      assert.equal(r.code, 401);
      assert.equal(d.isClosed, false);
      // good login
      r = await d.request(authMsg('a1', dev));
      assert.equal(r.code, 0, JSON.stringify(r));
      assert.equal(r.data.productKey, dev.productKey);
      assert.equal(r.data.deviceName, dev.deviceName);
      assert.equal(typeof r.data.token, 'string');
      // the reply frame on the wire: one JSON object followed by the delimiter
      const raw = d.rawFrames.at(-1);
      assert.equal(JSON.parse(raw.toString()).id, 'a1');
      await until('the device online', async () => (await devState(dev)) === 1);
      // property post: reply code 0 with our id; the payload's identity is ignored
      r = await d.request({ id: '42', method: 'thing.property.post',
        params: { temperature: 21.5, mode: 'eco' } });
      assert.equal(r.code, 0);
      const props = await devProps(dev);
      assert.equal(props.temperature, 21.5);
      assert.equal(props.mode, 'eco');
      d.close();
      await until('the device offline after close', async () => (await devState(dev)) === 2);
    });

  it('closes the connection at the third strike without a login', async () => {
    const d = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
    for (let i = 0; i < 3; i++) {
      const r = await d.request({ id: `s${i}`, method: 'thing.event.post',
        params: { identifier: 'x', value: {} } });
      assert.equal(r.code, 401);
    }
    await d.waitClosed();
  });

  it('delivers downstream requests and returns the device reply through the admin API',
    async () => {
      const dev = await newDevice();
      const d = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
      assert.equal((await d.request(authMsg('a', dev))).code, 0);
      const api = sendDown(dev, 'thing.property.set', { power: 1, level: 7 });
      const req = await d.next((m) => m.method === 'thing.property.set', 10000, 'property.set');
      assert.deepEqual(req.params, { power: 1, level: 7 });
      assert.equal(req.code, undefined);
      assert.match(req.id, /^[0-9a-f]{32}$/);
      d.send({ id: req.id, method: 'thing.property.set', code: 0, data: { power: 1 } });
      const res = await api;
      assert.equal(res.code, 0, JSON.stringify(res));
      assert.equal(res.data.code, 0);
      assert.deepEqual(res.data.data, { power: 1 });
      // every downstream method is delivered (the reference drops all but property.set)
      const api2 = sendDown(dev, 'thing.service.invoke', { identifier: 'reboot', inputParams: {} });
      const inv = await d.next((m) => m.method === 'thing.service.invoke', 10000, 'invoke');
      d.send({ id: inv.id, method: 'thing.service.invoke', code: 0, data: { ok: true } });
      const res2 = await api2;
      assert.equal(res2.code, 0);
      assert.deepEqual(res2.data.data, { ok: true });
    });

  it('a second login of the same device closes the first connection', async () => {
    const dev = await newDevice();
    const first = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
    assert.equal((await first.request(authMsg('a', dev))).code, 0);
    const second = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
    assert.equal((await second.request(authMsg('b', dev))).code, 0);
    await first.waitClosed();
    assert.equal((await second.request({ id: 'p', method: 'thing.property.post',
      params: { v: 2 } })).code, 0);
    assert.equal(await devState(dev), 1, 'the replaced connection does not take it offline');
    const api = sendDown(dev, 'thing.property.set', { v: 3 });
    const req = await second.next((m) => m.method === 'thing.property.set');
    second.send({ id: req.id, method: 'thing.property.set', code: 0, data: {} });
    assert.equal((await api).data.code, 0);
  });

  it('runs a full OTA over TCP: push, HTTP download with MD5, progress 20 then 30', async () => {
    const dev = await newDevice();
    const d = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
    assert.equal((await d.request(authMsg('a', dev))).code, 0);
    const image = crypto.randomBytes(100 * 1024 + 3);
    const fw = await gw.uploadFirmware(prod.id, `2.0.${n}`, image);
    const taskId = await gw.ok(gw.post('/admin-api/iot/ota/task/create', {
      name: `tcp-ota-${n}`, firmwareId: fw.id, deviceScope: 2, deviceIds: [dev.id] }));
    const up = await d.next((m) => m.method === 'thing.ota.upgrade', 15000, 'the upgrade');
    assert.equal(up.params.version, fw.version);
    assert.equal(up.params.fileDigestAlgorithm, 'MD5');
    const res = await fetch(up.params.fileUrl);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200);
    assert.equal(body.length, up.params.fileSize);
    assert.equal(md5(body), up.params.fileDigestValue);
    const progress = (status, p) => d.send({ id: `pr${status}`, method: 'thing.ota.progress',
      params: { version: fw.version, status, progress: p, description: 'tcp' } });
    progress(20, 50);
    progress(30, 100);
    await until('the record in success', async () => {
      const recs = await gw.ok(gw.get('/admin-api/iot/ota/task/record/page',
        { taskId, pageNo: 1, pageSize: 10 }));
      return recs.list[0].status === 30;
    }, 15000, 100);
    const after = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
    assert.equal(after.firmwareId, fw.id);
  });

  it('binary serializer with a length_field framing: the DESIGN §4 vector', async () => {
    const dev = await newDevice();
    const d = await connect(gw.ports.tcp_bin, { codec: binary, frame: FRAMES.tcp_bin });
    const r = await d.request(authMsg('1a', dev));
    assert.equal(r.code, 0, JSON.stringify(r));
    assert.equal(r.data.deviceName, dev.deviceName);
    const vector = Buffer.from('7e01010000002a0001310013' +
      '7468696e672e70726f70657274792e706f7374' + '7b2274656d70223a32357d', 'hex');
    assert.equal(vector.length, 42);
    // offset bytes (ignored by the gateway) + u16 length of the whole frame + the vector
    const frame = Buffer.concat([Buffer.from([0xab, 0xcd, 0x00, 46]), vector]);
    d.sendRaw(frame);
    const rep = await d.reply('1', 'thing.property.post');
    assert.equal(rep.code, 0);
    // the reply frame: two zero offset bytes, the whole-frame length, a type-2 message
    const raw = d.rawFrames.at(-1);
    assert.deepEqual([...raw.subarray(0, 2)], [0, 0]);
    assert.equal(raw.readUInt16BE(2), raw.length);
    assert.equal(raw[4], 0x7e);
    assert.equal(raw[6], 2);
    assert.equal((await devProps(dev)).temp, 25);
    // downstream in binary too
    const api = sendDown(dev, 'thing.property.set', { temp: 30 });
    const req = await d.next((m) => m.method === 'thing.property.set');
    assert.deepEqual(req.params, { temp: 30 });
    d.send({ id: req.id, method: 'thing.property.set', code: 0, msg: 'ok' });
    const res = await api;
    assert.equal(res.data.code, 0);
    assert.equal(res.data.msg, 'ok');
  });

  it('length_field framing stripping the header (u32 length + payload)', async () => {
    const dev = await newDevice();
    const d = await connect(gw.ports.tcp_lf, { frame: FRAMES.tcp_lf });
    const payload = Buffer.from(JSON.stringify(authMsg('x', dev)));
    const head = Buffer.alloc(4);
    head.writeUInt32BE(payload.length);
    // split across writes: the framer must reassemble it
    d.sendRaw(Buffer.concat([head, payload.subarray(0, 5)]));
    await new Promise((r) => setImmediate(r));
    d.sendRaw(payload.subarray(5));
    const r = await d.reply('x', 'auth');
    assert.equal(r.code, 0);
    const raw = d.rawFrames.at(-1);
    assert.equal(JSON.parse(raw.toString()).method, 'auth');
    assert.equal((await d.request({ id: 'y', method: 'thing.property.post',
      params: { lf: true } })).code, 0);
  });

  it('fixed_length framing: zero-padded frames both ways', async () => {
    const dev = await newDevice();
    const d = await connect(gw.ports.tcp_fixed, { frame: FRAMES.tcp_fixed });
    const r = await d.request(authMsg('f1', dev));
    assert.equal(r.code, 0, JSON.stringify(r));
    const raw = d.rawFrames.at(-1);
    assert.equal(raw.length, 384);
    assert.equal(raw.at(-1), 0);
    assert.equal((await d.request({ id: 'f2', method: 'thing.property.post',
      params: { fixed: 1 } })).code, 0);
    assert.equal((await devProps(dev)).fixed, 1);
  });

  it('a frame over 64 KiB closes the connection with a logged reason', async () => {
    const dev = await newDevice();
    const d = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
    assert.equal((await d.request(authMsg('a', dev))).code, 0);
    d.sendRaw(Buffer.alloc(70000, 0x61)); // no delimiter
    await d.waitClosed();
    await until('the reason in the log', () => /65536/.test(gw.log) && /exceed|larger/.test(gw.log));
    await until('the device offline', async () => (await devState(dev)) === 2);
  });

  it('refuses connections over max_connections and closes idle ones', async () => {
    const a = await connect(gw.ports.tcp_max);
    const b = await connect(gw.ports.tcp_max);
    // the two count once the gateway accepted them: a request answered proves it
    assert.equal((await a.request({ id: '1', method: 'thing.property.post', params: {} })).code, 401);
    assert.equal((await b.request({ id: '1', method: 'thing.property.post', params: {} })).code, 401);
    const c = await connect(gw.ports.tcp_max);
    await c.waitClosed();
    assert.equal(a.isClosed, false);
    a.close();
    await a.waitClosed();
    // a slot is free again (the gateway notices the close asynchronously)
    await until('a new connection accepted', async () => {
      const d = await connect(gw.ports.tcp_max);
      d.send({ id: '2', method: 'thing.property.post', params: {} });
      const ok = await Promise.race([d.reply('2', 'thing.property.post', 2000).then(() => true),
        d.closed.then(() => false)]).catch(() => false);
      if (!ok) d.close();
      return ok;
    });
    const idle = await connect(gw.ports.tcp_idle);
    const t0 = Date.now();
    await idle.waitClosed();
    assert.ok(Date.now() - t0 >= 900, 'closed by the 1 s idle timeout, not before');
  });

  it('a stuck reader is disconnected while another device keeps working', async () => {
    const stuck = await newDevice();
    const good = await newDevice();
    const s = await connect(gw.ports.tcp_slow);
    assert.equal((await s.request(authMsg('a', stuck))).code, 0);
    const g = await connect(gw.ports.tcp_slow);
    assert.equal((await g.request(authMsg('a', good))).code, 0);
    s.sock.pause(); // never reads again: the kernel buffers fill, then the gateway's queue
    // ~48 KiB per message; the admin API waits for a reply that never comes (short timeout)
    const big = { blob: 'x'.repeat(48 * 1024) };
    let stop = false;
    const flood = async () => {
      while (!stop) await sendDown(stuck, 'thing.property.set', big, 50).catch(() => {});
    };
    const floods = [flood(), flood(), flood()];
    try {
      await until('the stuck reader disconnected', async () => {
        // meanwhile the other device on the same listener is served
        const api = sendDown(good, 'thing.property.set', { ping: 1 }, 5000);
        const req = await g.next((m) => m.method === 'thing.property.set', 5000, 'ping');
        g.send({ id: req.id, method: 'thing.property.set', code: 0, data: { pong: 1 } });
        assert.deepEqual((await api).data.data, { pong: 1 });
        return (await devState(stuck)) === 2;
      }, 60000, 200);
    } finally {
      stop = true;
      await Promise.all(floods);
    }
    assert.match(gw.log, /slow reader/);
    assert.equal((await g.request({ id: 'p', method: 'thing.property.post',
      params: { alive: 1 } })).code, 0);
    s.close();
  });

  it('UDP: login, token-carrying posts, forged and missing tokens get 401', async () => {
    const dev = await newDevice();
    const u = await UdpDevice.open(gw.ports.udp);
    open.push(u);
    const r = await until('the UDP login reply', async () => {
      u.send(authMsg('u1', dev));
      return u.reply('u1', 'auth', 1000).catch(() => null);
    });
    assert.equal(r.code, 0, JSON.stringify(r));
    const token = r.data.token;
    assert.equal(token.split('.').length, 3);
    await until('the device online', async () => (await devState(dev)) === 1);
    // the envelope form
    let rep = await u.request({ token, body: { id: 'u2', method: 'thing.property.post',
      params: { hum: 40 } } });
    assert.equal(rep.code, 0);
    // the reference's form: token and body inside params
    rep = await u.request({ id: 'u3', method: 'thing.property.post',
      params: { token, body: { hum: 41, temp: 3 } } });
    assert.equal(rep.code, 0);
    const props = await devProps(dev);
    assert.equal(props.hum, 41);
    assert.equal(props.temp, 3);
    // forged: same header and payload, another signature
    const [h, p] = token.split('.');
    const forged = `${h}.${p}.${crypto.createHmac('sha256', 'not-the-key').update(`${h}.${p}`)
      .digest('base64url')}`;
    rep = await u.request({ token: forged, body: { id: 'u4', method: 'thing.property.post',
      params: { hum: 99 } } });
    assert.equal(rep.code, 401);
    // a payload naming another device with the original signature is forged too
    const other = Buffer.from(JSON.stringify({ productKey: dev.productKey, deviceName: 'dev-1',
      exp: 9999999999 })).toString('base64url');
    rep = await u.request({ id: 'u5', method: 'thing.property.post',
      params: { token: `${h}.${other}.${token.split('.')[2]}`, body: { hum: 98 } } });
    assert.equal(rep.code, 401);
    rep = await u.request({ id: 'u6', method: 'thing.property.post', params: { hum: 97 } });
    assert.equal(rep.code, 401);
    assert.equal((await devProps(dev)).hum, 41);
  });

  it('UDP: downstream goes to the last address, sessions expire to offline', async () => {
    const dev = await newDevice();
    const first = await UdpDevice.open(gw.ports.udp);
    const second = await UdpDevice.open(gw.ports.udp);
    open.push(first, second);
    const r = await first.request(authMsg('l', dev));
    assert.equal(r.code, 0);
    const token = r.data.token;
    // the device moves to another source port (NAT rebinding): its next datagram says so
    assert.equal((await second.request({ token, body: { id: 'm', method: 'thing.property.post',
      params: { moved: 1 } } })).code, 0);
    const api = sendDown(dev, 'thing.property.set', { led: 'on' });
    const req = await second.next((m) => m.method === 'thing.property.set', 10000, 'set');
    assert.deepEqual(req.params, { led: 'on' });
    second.send({ token, body: { id: req.id, method: 'thing.property.set', code: 0,
      data: { led: 'on' } } });
    const res = await api;
    assert.equal(res.code, 0, JSON.stringify(res));
    assert.deepEqual(res.data.data, { led: 'on' });
    assert.equal(first.inbox.items.length, 0, 'nothing went to the old address');
    // no datagram for session_timeout_s (2 s): the session expires, the device goes offline
    await until('the UDP session expired', async () => (await devState(dev)) === 2, 10000, 200);
    const gone = await sendDown(dev, 'thing.property.set', { led: 'off' }, 1000);
    assert.notEqual(gone.code, 0);
    // the token is still valid: the next datagram opens a new session
    assert.equal((await second.request({ token, body: { id: 'n', method: 'thing.property.post',
      params: { back: 1 } } })).code, 0);
    await until('online again', async () => (await devState(dev)) === 1);
  });

  it('UDP with the binary serializer (token in params)', async () => {
    const dev = await newDevice();
    const u = await UdpDevice.open(gw.ports.udp_bin, binary);
    open.push(u);
    const r = await until('the UDP login reply', async () => {
      u.send(authMsg('b1', dev));
      return u.reply('b1', 'auth', 1000).catch(() => null);
    });
    assert.equal(r.code, 0);
    const rep = await u.request({ id: 'b2', method: 'thing.property.post',
      params: { token: r.data.token, body: { bin: 7 } } });
    assert.equal(rep.code, 0);
    assert.equal((await devProps(dev)).bin, 7);
  });

  it('shuts down cleanly with live TCP connections and UDP sessions', async () => {
    for (const d of open) d.close();
    const dev = await newDevice();
    const t = await connect(gw.ports.tcp, { frame: FRAMES.tcp });
    assert.equal((await t.request(authMsg('a', dev))).code, 0);
    const pending = await connect(gw.ports.tcp_bin, { codec: binary, frame: FRAMES.tcp_bin });
    const udev = await newDevice();
    const u = await UdpDevice.open(gw.ports.udp);
    open.push(u);
    assert.equal((await u.request(authMsg('u', udev))).code, 0);
    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log.slice(-4000));
    await t.waitClosed();
    await pending.waitClosed();
  });
});
