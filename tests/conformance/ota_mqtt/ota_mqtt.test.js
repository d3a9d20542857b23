'use strict';
// Issue 4 acceptance: a full OTA rollout over MQTT against the real gateway, the real
// mosquitto it spawns with its auth plugin, and MQTT.js devices (independent of paho and
// libmosquitto). The devices download the firmware over HTTP from the gateway's firmware
// server, verify size, MD5 and SHA-256, and report progress.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const mqtt = require('mqtt');
const { Gateway, until, devicePassword } = require('../lib/gateway');

const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

// An MQTT.js device that performs the upgrade it is sent. behaviour: 'ok' | 'fail' |
// 'wrong-version'.
async function connectDevice(gw, dev, behaviour = 'ok') {
  const pk = dev.productKey, dn = dev.deviceName;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
    clientId: `${pk}.${dn}`, username: `${dn}&${pk}`,
    password: devicePassword(pk, dn, dev.deviceSecret), reconnectPeriod: 0,
    protocolVersion: 4,
  });
  const seen = { upgrades: [], replies: [], verified: null };
  const base = `/sys/${pk}/${dn}`;
  const progress = (params) => client.publishAsync(`${base}/thing/ota/progress`, JSON.stringify({
    id: String(Date.now()), method: 'thing.ota.progress', params }), { qos: 1 });
  client.on('message', async (topic, payload) => {
    const msg = JSON.parse(payload.toString());
    if (topic.endsWith('_reply')) { seen.replies.push({ topic, msg }); return; }
    if (topic !== `${base}/thing/ota/upgrade`) return;
    seen.upgrades.push(msg);
    const p = msg.params;
    const res = await fetch(p.fileUrl);
    const body = Buffer.from(await res.arrayBuffer());
    seen.verified = res.status === 200 && body.length === p.fileSize &&
      md5(body) === p.fileDigestValue && sha256(body) === p.sha256;
    if (behaviour === 'wrong-version') {
      await progress({ version: '9.9.9', status: 20, progress: 10, description: 'x' });
      return;
    }
    await progress({ version: p.version, status: 20, progress: 50, description: 'flashing' });
    if (behaviour === 'fail' || !seen.verified)
      await progress({ version: p.version, status: 40, progress: 50, description: 'bad image' });
    else
      await progress({ version: p.version, status: 30, progress: 100, description: 'done' });
  });
  await client.subscribeAsync(`${base}/#`, { qos: 1 });
  return { client, seen };
}

async function taskRecords(gw, taskId) {
  const d = await gw.ok(gw.get('/admin-api/iot/ota/task/record/page',
    { taskId, pageNo: 1, pageSize: 100 }));
  return d.list;
}

test('OTA over MQTT: push on subscribe, download, progress, success and failure, restart',
  { timeout: 120000 }, async (t) => {
    const gw = new Gateway();
    t.after(async () => { await gw.stop('SIGKILL'); gw.cleanup(); });
    await gw.start();

    const prod = await gw.createProduct('meter');
    const devs = [];
    for (const n of ['dev-ok', 'dev-fail', 'dev-late', 'dev-wrong'])
      devs.push(await gw.createDevice(prod.id, n));
    const image = crypto.randomBytes(256 * 1024 + 17);
    const fw = await gw.uploadFirmware(prod.id, '2.0.0', image);
    assert.equal(fw.fileSize, image.length);
    assert.equal(fw.fileDigestValue, md5(image));
    assert.equal(fw.sha256, sha256(image));

    const ok = await connectDevice(gw, devs[0], 'ok');
    const fail = await connectDevice(gw, devs[1], 'fail');
    const wrong = await connectDevice(gw, devs[3], 'wrong-version');
    t.after(() => { ok.client.end(true); fail.client.end(true); wrong.client.end(true); });

    const taskId = await gw.ok(gw.post('/admin-api/iot/ota/task/create', {
      name: 'rollout', firmwareId: fw.id, deviceScope: 2,
      deviceIds: devs.map((d) => d.id),
    }));

    // Online devices get the upgrade at once and finish; the failing one ends in 40.
    await until('dev-ok success and dev-fail failure', async () => {
      const recs = await taskRecords(gw, taskId);
      const st = Object.fromEntries(recs.map((r) => [r.deviceId, r.status]));
      return st[devs[0].id] === 30 && st[devs[1].id] === 40;
    }, 30000, 100);
    assert.equal(ok.seen.verified, true, 'firmware bytes, MD5 and SHA-256 verified by the device');
    assert.equal(ok.seen.upgrades.length, 1);
    const up = ok.seen.upgrades[0];
    assert.equal(up.method, 'thing.ota.upgrade');
    assert.equal(up.params.version, '2.0.0');
    assert.equal(up.params.fileDigestAlgorithm, 'MD5');
    assert.equal(String(up.params.taskId), String(taskId));

    // A report with the wrong version is refused with a reply naming the code; the record
    // does not move.
    await until('the wrong-version reply', () => wrong.seen.replies.length > 0, 15000);
    assert.equal(wrong.seen.replies[0].msg.code, 1050008203);
    const devOk = await gw.ok(gw.get('/admin-api/iot/device/get', { id: devs[0].id }));
    assert.equal(devOk.firmwareId, fw.id, 'a successful device is on the new firmware');
    const devFail = await gw.ok(gw.get('/admin-api/iot/device/get', { id: devs[1].id }));
    assert.notEqual(devFail.firmwareId, fw.id);

    // The device that was offline at task creation gets the upgrade when it subscribes.
    const late = await connectDevice(gw, devs[2], 'ok');
    t.after(() => late.client.end(true));
    await until('dev-late success', async () => {
      const recs = await taskRecords(gw, taskId);
      return recs.find((r) => r.deviceId === devs[2].id).status === 30;
    }, 30000, 100);

    let task = await gw.ok(gw.get('/admin-api/iot/ota/task/get', { id: taskId }));
    assert.equal(task.status, 10, 'still in progress: dev-wrong is active');
    assert.equal(task.deviceTotalCount, 4);
    assert.equal(task.deviceSuccessCount, 2);

    // Cancelling the last record ends the task.
    const recs = await taskRecords(gw, taskId);
    const wrongRec = recs.find((r) => r.deviceId === devs[3].id);
    assert.ok([10, 20].includes(wrongRec.status));
    await gw.ok(gw.req('PUT', '/admin-api/iot/ota/task/record/cancel', { query: { id: wrongRec.id } }));
    task = await gw.ok(gw.get('/admin-api/iot/ota/task/get', { id: taskId }));
    assert.equal(task.status, 20);

    // Clean shutdown, then a restart keeps every record.
    ok.client.end(true); fail.client.end(true); wrong.client.end(true); late.client.end(true);
    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
    await gw.spawn();
    const after = await taskRecords(gw, taskId);
    assert.deepEqual(after.map((r) => r.status).sort(), [30, 30, 40, 50]);
    const exit2 = await gw.stop('SIGTERM');
    assert.equal(exit2.code, 0, gw.log);
  });

test('MQTT takeover: a reconnect of the same device keeps it online and upgradable',
  { timeout: 60000 }, async (t) => {
    const gw = new Gateway();
    t.after(async () => { await gw.stop('SIGKILL'); gw.cleanup(); });
    await gw.start();
    const prod = await gw.createProduct('p');
    const dev = await gw.createDevice(prod.id, 'd1');
    const first = await connectDevice(gw, dev, 'ok');
    const second = await connectDevice(gw, dev, 'ok'); // takes over clientId pk.dn
    t.after(() => { first.client.end(true); second.client.end(true); });
    await until('the device online', async () => {
      const d = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
      return d.state === 1;
    });
    const fw = await gw.uploadFirmware(prod.id, '1.1', Buffer.from('tiny image'));
    const taskId = await gw.ok(gw.post('/admin-api/iot/ota/task/create', {
      name: 't', firmwareId: fw.id, deviceScope: 1 }));
    await until('success through the new connection', async () => {
      const recs = await taskRecords(gw, taskId);
      return recs[0].status === 30;
    }, 30000, 100);
    assert.equal(second.seen.upgrades.length, 1);
    assert.equal(first.seen.upgrades.length, 0);
    const exit = await gw.stop('SIGTERM');
    assert.equal(exit.code, 0, gw.log);
  });
