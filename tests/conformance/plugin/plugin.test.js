// Conformance test of the mosquitto auth/ACL/presence plugin (gateway/plugin/iotgw_auth.so):
// a real mosquitto 2.0 loads the plugin, the store is written by plugin_store_tool the way
// the gateway writes it, and MQTT.js (independent of libmosquitto and paho) plays the devices
// and the gateway account. Loopback only, port found by binding port 0, readiness by
// polling the port. Run by ctest (see CMakeLists.txt) with:
//   GW_MOSQUITTO  the broker executable       GW_PLUGIN  the plugin .so
//   GW_STORE_TOOL plugin_store_tool           GW_TEST_TMP  a directory for scratch files
// As root the broker drops privileges to user mosquitto (no `user` line), as in production.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const mqtt = require('mqtt');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through ctest)`);
  return v;
};
const MOSQUITTO = env('GW_MOSQUITTO');
const PLUGIN = env('GW_PLUGIN');
const STORE_TOOL = env('GW_STORE_TOOL');
const TMP_ROOT = env('GW_TEST_TMP');

const PK = 'pk1';
const GW_USER = 'iotgw-gateway';
const GW_SECRET = crypto.randomBytes(16).toString('hex');
const WAIT_MS = 5000;
const DENIED_V5 = 135; // 0x87 Not authorized
const DENIED_SUB_V3 = 128;

// ---- helpers -------------------------------------------------------------------------

// DESIGN §4, computed here independently of the C code under test.
function designPassword(pk, dn, secret) {
  return crypto.createHmac('sha256', secret)
    .update(`clientId${pk}.${dn}deviceName${dn}deviceSecret${secret}productKey${pk}`)
    .digest('hex');
}

function storeTool(args) {
  const out = execFileSync(STORE_TOOL, args, { encoding: 'utf8', timeout: 60000 });
  return JSON.parse(out);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function writeConf(dir, name, port, pluginOpts) {
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous false',
    'persistence false',
    'log_dest stderr',
    'log_type error', 'log_type warning', 'log_type notice', 'log_type information',
    `plugin ${PLUGIN}`,
    ...Object.entries(pluginOpts).map(([k, v]) => `plugin_opt_${k} ${v}`),
  ];
  const file = path.join(dir, name);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

class Broker {
  constructor(conf) {
    this.log = '';
    this.exited = null; // { code, signal } once it ended
    this.proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => { this.log += d; });
    this.exit = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => { this.exited = { code, signal }; resolve(this.exited); });
    });
  }

  tail(n = 40) { return this.log.split('\n').slice(-n).join('\n'); }

  // Polls until the listener accepts a TCP connection (or the broker dies / time runs out).
  async ready(port, ms = 10000) {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.exited) throw new Error(`broker exited ${JSON.stringify(this.exited)}:\n${this.tail()}`);
      const ok = await new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`broker not listening after ${ms} ms:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(ms = 10000) {
    if (!this.exited) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms);
      await this.exit;
      clearTimeout(timer);
    }
    return this.exited;
  }
}

// Every message a client receives, in arrival order, with waits on a predicate.
class Inbox {
  constructor(client) {
    this.msgs = [];
    this.waiters = new Set();
    client.on('message', (topic, payload) => {
      const text = payload.toString();
      let json = null;
      if (topic.startsWith('$iotgw/presence/')) {
        try { json = JSON.parse(text); } catch { json = { invalid: text }; }
      }
      this.msgs.push({ topic, text, json, index: this.msgs.length });
      for (const w of [...this.waiters]) w();
    });
  }

  get mark() { return this.msgs.length; }

  wait(pred, what, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.msgs.find(pred);
        if (!m) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; last messages: ` +
          JSON.stringify(this.msgs.slice(-8).map((m) => [m.topic, m.text]))));
      }, ms);
      this.waiters.add(check);
      check();
    });
  }
}

// Predicate for a presence event of device dn, at or after inbox index `from`.
const presence = (dn, event, from = 0, seq = undefined) => (m) =>
  m.index >= from && m.topic === `$iotgw/presence/${PK}/${dn}` && m.json &&
  m.json.event === event && (seq === undefined || m.json.seq === seq);

// Each test is bounded; the after() hook still stops the broker when one times out.
describe('mosquitto plugin iotgw_auth.so', { timeout: 120000 }, () => {
  let tmp, db, port, broker, gateway, inbox;
  const devs = {};

  function connect(opts) {
    return new Promise((resolve, reject) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
        protocolVersion: 5, reconnectPeriod: 0, connectTimeout: WAIT_MS, clean: true, ...opts,
      });
      const done = (fn) => (arg) => {
        c.off('connect', onConnect); c.off('error', onError); c.off('close', onClose);
        fn(arg);
      };
      const onConnect = done((connack) => { c.on('error', () => {}); resolve({ client: c, connack }); });
      const onError = done((err) => { c.end(true); reject(err); });
      const onClose = done(() => reject(Object.assign(new Error('closed before CONNACK'), { code: 'CLOSED' })));
      c.on('connect', onConnect); c.on('error', onError); c.on('close', onClose);
    });
  }

  const deviceOpts = (dn, extra = {}) => ({
    clientId: `${PK}.${dn}`, username: `${dn}&${PK}`, password: devs[dn].password, ...extra,
  });

  // CONNACK code of a login: 0 accepted, otherwise the refusal code MQTT.js reports.
  async function loginCode(opts) {
    try {
      const { client } = await connect(opts);
      await client.endAsync();
      return 0;
    } catch (err) {
      return err.code;
    }
  }

  async function grantedCodes(client, filter, qos = 1) {
    try {
      return (await client.subscribeAsync(filter, { qos })).map((g) => g.qos);
    } catch (err) {
      if (err.packet && err.packet.granted) return err.packet.granted; // any code >= 128 rejects
      throw err;
    }
  }

  // Everything the plugin published before this point has reached the gateway once it
  // sees the online event of a fresh login (one connection, in order).
  async function syncPresence(dn) {
    const from = inbox.mark;
    const { client } = await connect(deviceOpts(dn));
    const on = await inbox.wait(presence(dn, 'online', from), `sync online of ${dn}`);
    await client.endAsync();
    await inbox.wait(presence(dn, 'offline', from, on.json.seq), `sync offline of ${dn}`);
    return from;
  }

  before(async () => {
    fs.mkdirSync(TMP_ROOT, { recursive: true });
    tmp = fs.mkdtempSync(path.join(TMP_ROOT, 'plugin-'));
    fs.chmodSync(tmp, 0o755); // the broker may run as user mosquitto
    db = path.join(tmp, 'db');
    // A 1 MiB map, so that a later bulk insert outgrows the map the broker opened.
    const made = storeTool(['-m', '1', '-g', 'mosquitto', db, PK, 'dev1', 'dev2', 'dev3', 'dev4', 'sync']);
    for (const d of made.devices) devs[d.deviceName] = d;
    port = await freePort();
    const conf = writeConf(tmp, 'mosquitto.conf', port, {
      db_path: db, gateway_user: GW_USER, gateway_secret: GW_SECRET, trace: '1',
    });
    broker = new Broker(conf);
    // Last resort if the runner exits without after() (e.g. an uncaught error).
    process.on('exit', () => { if (!broker.exited) broker.proc.kill('SIGKILL'); });
    await broker.ready(port);
    ({ client: gateway } = await connect({ clientId: 'iotgw-gw', username: GW_USER, password: GW_SECRET }));
    inbox = new Inbox(gateway);
    assert.deepEqual(await grantedCodes(gateway, '$iotgw/presence/#'), [1]);
    assert.deepEqual(await grantedCodes(gateway, '/sys/#'), [1]);
  });

  after(async () => {
    if (gateway) gateway.end(true);
    if (broker) await broker.stop();
    if (tmp && !process.env.GW_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('store passwords are the DESIGN §4 HMAC (vector and every device)', () => {
    assert.equal(designPassword('pk001', 'dev01', '0123456789abcdef0123456789abcdef'),
      '4c159e5ca63a983dc0bd690c912978b53a1c1559a987462019880be66373a9f0');
    for (const d of Object.values(devs)) {
      assert.equal(d.password, designPassword(d.productKey, d.deviceName, d.deviceSecret));
    }
  });

  it('the broker runs as user mosquitto when started as root, and reads the store', (t) => {
    if (process.getuid() !== 0) return t.skip('not root: the broker keeps this user');
    const uid = Number(execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).trim());
    const status = fs.readFileSync(`/proc/${broker.proc.pid}/status`, 'utf8');
    const uids = status.match(/^Uid:\s+(\d+)\s+(\d+)/m);
    assert.equal(Number(uids[1]), uid);
    assert.equal(Number(uids[2]), uid);
    const st = fs.statSync(path.join(db, 'lock.mdb'));
    assert.equal(st.mode & 0o777, 0o660);
  });

  it('a device with the right password connects; online, subscribed, offline share one seq', async () => {
    const from = inbox.mark;
    const { client: dev, connack } = await connect(deviceOpts('dev1'));
    assert.equal(connack.reasonCode, 0);
    const on = await inbox.wait(presence('dev1', 'online', from), 'dev1 online');
    assert.ok(Number.isInteger(on.json.seq) && on.json.seq > 0);
    assert.deepEqual(Object.keys(on.json).sort(), ['event', 'seq']);

    // A filter that does not reach the downstream topics does not count as "subscribed".
    assert.deepEqual(await grantedCodes(dev, `/sys/${PK}/dev1/thing/event/#`), [1]);
    await dev.publishAsync(`/sys/${PK}/dev1/thing/event/property/post`, '{"id":"1"}', { qos: 1 });
    await inbox.wait((m) => m.index >= from && m.topic === `/sys/${PK}/dev1/thing/event/property/post`,
      'the device publish at the gateway');
    assert.equal(inbox.msgs.find(presence('dev1', 'subscribed', from)), undefined);

    // /sys/pk/dev/thing/# covers thing/ota/upgrade: now the device is reachable.
    dev.on('message', (topic, payload) => dev.emit('test-message', { topic, text: payload.toString() }));
    assert.deepEqual(await grantedCodes(dev, `/sys/${PK}/dev1/thing/#`), [1]);
    const sub = await inbox.wait(presence('dev1', 'subscribed', from), 'dev1 subscribed');
    assert.equal(sub.json.seq, on.json.seq);
    assert.ok(sub.index > on.index);

    // What the gateway publishes on "subscribed" reaches the device.
    const got = new Promise((resolve) => dev.once('test-message', resolve));
    await gateway.publishAsync(`/sys/${PK}/dev1/thing/ota/upgrade`, '{"method":"thing.ota.upgrade"}', { qos: 1 });
    assert.deepEqual(await got, { topic: `/sys/${PK}/dev1/thing/ota/upgrade`, text: '{"method":"thing.ota.upgrade"}' });

    // Only the first covering subscription is reported.
    assert.deepEqual(await grantedCodes(dev, `/sys/${PK}/dev1/#`), [1]);
    await dev.endAsync();
    const off = await inbox.wait(presence('dev1', 'offline', from), 'dev1 offline');
    assert.equal(off.json.seq, on.json.seq);
    assert.equal(inbox.msgs.filter(presence('dev1', 'subscribed', from)).length, 1);
  });

  it('wrong password, unknown device and mismatched ids are refused at CONNACK', async () => {
    const d1 = devs.dev1, d2 = devs.dev2;
    const cases = [
      ['wrong password', deviceOpts('dev1', { password: designPassword(PK, 'dev1', 'not-the-secret') })],
      ['password of another device', deviceOpts('dev1', { password: d2.password })],
      ['no password', { clientId: `${PK}.dev1`, username: `dev1&${PK}` }],
      ['unknown device', { clientId: `${PK}.nodev`, username: `nodev&${PK}`, password: designPassword(PK, 'nodev', d1.deviceSecret) }],
      ['unknown product', { clientId: 'pk9.dev1', username: 'dev1&pk9', password: designPassword('pk9', 'dev1', d1.deviceSecret) }],
      ['username of another device', { clientId: `${PK}.dev1`, username: `dev2&${PK}`, password: d2.password }],
      ['clientId of another device', { clientId: `${PK}.dev2`, username: `dev1&${PK}`, password: d1.password }],
      ['clientId not pk.dn', { clientId: 'dev1', username: `dev1&${PK}`, password: d1.password }],
      ['wildcard device name', { clientId: `${PK}.+`, username: `+&${PK}`, password: d1.password }],
      ['no credentials', { clientId: `${PK}.dev1` }],
      ['gateway account, wrong secret', { clientId: 'gw2', username: GW_USER, password: GW_SECRET + 'x' }],
    ];
    for (const [what, opts] of cases) {
      assert.equal(await loginCode(opts), DENIED_V5, `${what} (MQTT 5)`);
    }
    // MQTT 3.1.1: CONNACK return code 5, not authorised.
    assert.equal(await loginCode({ ...cases[0][1], protocolVersion: 4 }), 5);
    assert.equal(await loginCode({ ...cases[3][1], protocolVersion: 4 }), 5);
    assert.equal(await loginCode(deviceOpts('dev2', { protocolVersion: 4 })), 0);
  });

  it('a refused login with an online device\'s ids does not report it offline', async () => {
    const from = inbox.mark;
    const { client: dev } = await connect(deviceOpts('dev1'));
    const on = await inbox.wait(presence('dev1', 'online', from), 'dev1 online');
    assert.equal(await loginCode(deviceOpts('dev1', { password: 'f'.repeat(64) })), DENIED_V5);
    assert.equal(await loginCode(deviceOpts('dev1', { password: 'f'.repeat(64), protocolVersion: 4 })), 5);
    await syncPresence('sync');
    assert.equal(inbox.msgs.find(presence('dev1', 'offline', from)), undefined);
    assert.ok(dev.connected);
    await dev.publishAsync(`/sys/${PK}/dev1/thing/event/x/post`, 'still here', { qos: 1 });
    await dev.endAsync();
    await inbox.wait(presence('dev1', 'offline', from, on.json.seq), 'dev1 offline');
  });

  it('a device may not publish or subscribe outside /sys/{pk}/{dn}/ (MQTT 5 reason 135)', async () => {
    const from = inbox.mark;
    const { client: dev } = await connect(deviceOpts('dev1'));
    const denied = [
      `/sys/${PK}/dev2/thing/event/property/post`,
      `$iotgw/presence/${PK}/dev2`,
      `$iotgw/presence/${PK}/dev1`,
      `/sys/${PK}/dev1`,
      'sys/pk1/dev1/x',
    ];
    for (const topic of denied) {
      await assert.rejects(dev.publishAsync(topic, 'spoof', { qos: 1 }),
        (err) => err.code === DENIED_V5, `publish ${topic}`);
    }
    for (const filter of [`/sys/${PK}/dev2/#`, `/sys/${PK}/+/#`, '/sys/#', '#', '+/+/+/+/#',
      '$iotgw/#', `$iotgw/presence/${PK}/dev1`, '$share/g/sys/pk1/dev1/#']) {
      assert.deepEqual(await grantedCodes(dev, filter), [DENIED_V5], `subscribe ${filter}`);
    }
    assert.deepEqual(await grantedCodes(dev, `/sys/${PK}/dev1/+/ota/upgrade`), [1]);
    // Unsubscribing is always allowed.
    const unsub = await dev.unsubscribeAsync(`/sys/${PK}/dev2/#`);
    assert.ok(!unsub || !unsub.reasonCode || unsub.reasonCode < 128, JSON.stringify(unsub));
    await dev.publishAsync(`/sys/${PK}/dev1/thing/event/allowed/post`, 'ok', { qos: 1 });
    await inbox.wait((m) => m.index >= from && m.topic === `/sys/${PK}/dev1/thing/event/allowed/post`,
      'the allowed publish');
    await syncPresence('sync');
    // None of the denied publishes reached the gateway.
    const leaked = inbox.msgs.filter((m) => m.index >= from && m.text === 'spoof');
    assert.deepEqual(leaked, []);
    await dev.endAsync();
  });

  it('MQTT 3.1.1: denied subscribe gets 128, denied publish is dropped', async () => {
    const from = inbox.mark;
    const { client: dev } = await connect(deviceOpts('dev2', { protocolVersion: 4 }));
    assert.deepEqual(await grantedCodes(dev, `/sys/${PK}/dev1/#`), [DENIED_SUB_V3]);
    assert.deepEqual(await grantedCodes(dev, '$iotgw/presence/#'), [DENIED_SUB_V3]);
    await dev.publishAsync(`/sys/${PK}/dev1/thing/event/property/post`, 'spoof', { qos: 1 });
    await dev.publishAsync(`/sys/${PK}/dev2/thing/event/property/post`, 'mine', { qos: 1 });
    await inbox.wait((m) => m.index >= from && m.text === 'mine', 'the allowed v3 publish');
    assert.deepEqual(inbox.msgs.filter((m) => m.index >= from && m.text === 'spoof'), []);
    await dev.endAsync();
  });

  it('takeover by the same clientId: online(new seq) arrives before offline(old seq)', async () => {
    const from = inbox.mark;
    const { client: a } = await connect(deviceOpts('dev3', { protocolVersion: 4 }));
    const onA = await inbox.wait(presence('dev3', 'online', from), 'first online');
    const aClosed = new Promise((resolve) => a.once('close', resolve));
    const { client: b } = await connect(deviceOpts('dev3', { protocolVersion: 4 }));
    const onB = await inbox.wait(presence('dev3', 'online', onA.index + 1), 'second online');
    const offA = await inbox.wait(presence('dev3', 'offline', from, onA.json.seq), 'offline of the first');
    await aClosed;
    assert.equal(onB.json.seq, onA.json.seq + 1); // one counter for all connections
    assert.ok(onB.index < offA.index, 'online(new) must come before offline(old)');
    // So a gateway applying offline only for the current seq keeps dev3 online.
    assert.equal(inbox.msgs.find(presence('dev3', 'offline', from, onB.json.seq)), undefined);
    assert.ok(b.connected);
    await b.endAsync();
    await inbox.wait(presence('dev3', 'offline', from, onB.json.seq), 'offline of the second');
  });

  it('a persistent session\'s second DISCONNECT does not report the new connection offline', async () => {
    const from = inbox.mark;
    const opts = deviceOpts('dev4', { clean: false, properties: { sessionExpiryInterval: 300 } });
    const { client: c1 } = await connect(opts);
    const on1 = await inbox.wait(presence('dev4', 'online', from), 'first online');
    await c1.endAsync();
    await inbox.wait(presence('dev4', 'offline', from, on1.json.seq), 'first offline');
    const { client: c2, connack } = await connect(opts);
    assert.equal(connack.sessionPresent, true);
    const on2 = await inbox.wait(presence('dev4', 'online', on1.index + 1), 'second online');
    await syncPresence('sync');
    assert.equal(inbox.msgs.filter(presence('dev4', 'offline', from)).length, 1);
    await c2.endAsync();
    await inbox.wait(presence('dev4', 'offline', from, on2.json.seq), 'second offline');
  });

  it('a device created while the broker runs can log in at once', async () => {
    const made = storeTool(['-g', 'mosquitto', db, PK, 'dev5']);
    const d = made.devices[0];
    devs.dev5 = d;
    assert.equal(await loginCode(deviceOpts('dev5')), 0);
  });

  it('a store grown beyond the map the broker opened still authenticates (MDB_MAP_RESIZED)', async () => {
    const made = storeTool(['-m', '64', '-n', '8000', '-g', 'mosquitto', db, PK, 'dev6']);
    devs.dev6 = made.devices[0];
    assert.ok(made.mapUsed > 1 << 20, `data must outgrow the broker's 1 MiB map (used ${made.mapUsed})`);
    assert.equal(await loginCode(deviceOpts('dev6')), 0);
    assert.equal(await loginCode(deviceOpts('dev1')), 0);
  });

  it('the gateway account may publish anywhere, including $iotgw/', async () => {
    await gateway.publishAsync('$iotgw/control/test', 'x', { qos: 1 });
    await gateway.publishAsync(`/sys/${PK}/dev2/thing/property/set`, 'x', { qos: 1 });
  });

  it('stops cleanly on SIGTERM, with no failed presence publish logged', async () => {
    gateway.end(true);
    gateway = null;
    const res = await broker.stop();
    assert.deepEqual(res, { code: 0, signal: null }, broker.tail());
    assert.doesNotMatch(broker.log, /presence publish .* failed|out of memory/);
    assert.match(broker.log, /iotgw_auth: store .*, gateway account iotgw-gateway, trace on/);
  });

  it('refuses to start with a bad option or without a store', async () => {
    const cases = [
      [{ db_path: db, db_pth: db }, /unknown option plugin_opt_db_pth/],
      [{ gateway_user: GW_USER, gateway_secret: 'x' }, /plugin_opt_db_path is required/],
      [{ db_path: db, gateway_user: GW_USER }, /go together/],
      [{ db_path: path.join(tmp, 'nothing-here') }, /cannot open the device store/],
    ];
    for (const [i, [opts, why]] of cases.entries()) {
      const b = new Broker(writeConf(tmp, `bad${i}.conf`, await freePort(), opts));
      process.on('exit', () => { if (!b.exited) b.proc.kill('SIGKILL'); });
      const timer = setTimeout(() => b.proc.kill('SIGKILL'), 10000);
      const res = await b.exit;
      clearTimeout(timer);
      assert.notEqual(res.code, 0, `case ${i} must not start:\n${b.tail()}`);
      assert.match(b.log, why);
    }
  });
});
