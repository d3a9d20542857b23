'use strict';
// Issue 4 acceptance at scale: a rollout over MQTT to 50+ MQTT.js devices with mixed outcomes,
// the security rules of the broker plugin and the admin API, and restarts (SIGTERM and SIGKILL)
// in the middle of a rollout.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const mqtt = require('mqtt');
const { Gateway, until, devicePassword } = require('../lib/gateway');
const { connectDevice, taskRecords, md5, sha256 } = require('../lib/mqtt_device');

const API = '/admin-api/iot';

test('rollout to 54 devices: success, failure, a silent device retried, a task cancelled mid-way',
  { timeout: 180000 }, async (t) => {
    const gw = new Gateway({ ota: { push_timeout_s: 2, max_retries: 2, retry_backoff_s: 1 } });
    const clients = [];
    t.after(async () => { clients.forEach((c) => c.client.end(true)); await gw.stop('SIGKILL'); gw.cleanup(); });
    await gw.start();

    const prod = await gw.createProduct('sensor');
    const image = crypto.randomBytes(64 * 1024 + 3);
    const fw = await gw.uploadFirmware(prod.id, '3.1.0', image);
    const plan = [];
    for (let i = 0; i < 50; i++) plan.push(i % 10 === 9 ? 'fail' : 'ok');
    plan.push('silent-once');
    const devs = [];
    for (let i = 0; i < plan.length; i++) devs.push(await gw.createDevice(prod.id, `s${i}`));
    for (let i = 0; i < plan.length; i++) clients.push(await connectDevice(gw, devs[i], plan[i]));

    const taskId = await gw.ok(gw.post(`${API}/ota/task/create`, {
      name: 'wave-1', firmwareId: fw.id, deviceScope: 2, deviceIds: devs.map((d) => d.id) }));

    // A second product and task whose devices hang in upgrading: cancelled mid-way.
    const prod2 = await gw.createProduct('valve');
    const fw2 = await gw.uploadFirmware(prod2.id, '1.0.1', Buffer.from('valve image'));
    const hangDevs = [];
    for (let i = 0; i < 3; i++) hangDevs.push(await gw.createDevice(prod2.id, `v${i}`));
    const hang = [];
    for (const d of hangDevs) hang.push(await connectDevice(gw, d, 'hang'));
    clients.push(...hang);
    const task2 = await gw.ok(gw.post(`${API}/ota/task/create`, {
      name: 'valves', firmwareId: fw2.id, deviceScope: 1 }));
    await until('valves upgrading', async () =>
      (await taskRecords(gw, task2)).every((r) => r.status === 20), 20000, 100);
    await gw.ok(gw.post(`${API}/ota/task/cancel`, undefined, { id: task2 }));
    const t2 = await gw.ok(gw.get(`${API}/ota/task/get`, { id: task2 }));
    assert.equal(t2.status, 30);
    assert.ok((await taskRecords(gw, task2)).every((r) => r.status === 50));
    await until('cancel hints', () => hang.every((h) => h.seen.cancels.length === 1), 10000);
    assert.equal(hang[0].seen.cancels[0].method, 'thing.ota.cancel');

    // Wave 1 ends: 45 success, 5 failure, the silent device succeeds after a re-push.
    await until('wave 1 ended', async () => {
      const task = await gw.ok(gw.get(`${API}/ota/task/get`, { id: taskId }));
      return task.status === 20;
    }, 60000, 200);
    const recs = await taskRecords(gw, taskId);
    const byDev = new Map(recs.map((r) => [r.deviceId, r]));
    assert.equal(recs.length, plan.length, 'one record per device');
    plan.forEach((b, i) => assert.equal(byDev.get(devs[i].id).status, b === 'fail' ? 40 : 30,
      `device s${i} (${b})`));
    const task = await gw.ok(gw.get(`${API}/ota/task/get`, { id: taskId }));
    assert.equal(task.deviceTotalCount, plan.length);
    assert.equal(task.deviceSuccessCount, plan.filter((b) => b !== 'fail').length);

    // Every device saw the right params and downloaded in two Range requests (206 each).
    for (let i = 0; i < 50; i++) {
      const c = clients[i];
      assert.equal(c.seen.verified, true, `s${i} verified MD5 and SHA-256`);
      assert.deepEqual(c.seen.statuses, [206, 206]);
      const p = c.seen.upgrades[0].params;
      assert.equal(p.version, '3.1.0');
      assert.equal(p.fileSize, image.length);
      assert.equal(p.fileDigestValue, md5(image));
      assert.equal(p.sha256, sha256(image));
      assert.equal(p.recordId, String(byDev.get(devs[i].id).id));
    }
    const silent = clients[50];
    assert.equal(silent.seen.upgrades.length, 2, 'the silent device was pushed again after the timeout');
    const silentRec = byDev.get(devs[50].id);
    const hist = await gw.ok(gw.get(`${API}/ota/task/record/history`, { id: silentRec.id }));
    const chain = (hist.list || hist).map((h) => `${h.fromStatus}>${h.toStatus}`);
    assert.deepEqual(chain, ['0>10', '10>0', '0>10', '10>20', '20>30']);

    // Device firmware follows the outcome.
    const okDev = await gw.ok(gw.get(`${API}/device/get`, { id: devs[0].id }));
    const failDev = await gw.ok(gw.get(`${API}/device/get`, { id: devs[9].id }));
    assert.equal(okDev.firmwareId, fw.id);
    assert.notEqual(failDev.firmwareId, fw.id);
    const stats = await gw.ok(gw.get(`${API}/ota/task/record/get-status-statistics`, { taskId }));
    assert.equal(Number(stats['30']), 46);
    assert.equal(Number(stats['40']), 5);

    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
  });

test('security: credentials, topic isolation, admin token, download token',
  { timeout: 60000 }, async (t) => {
    const gw = new Gateway();
    t.after(async () => { await gw.stop('SIGKILL'); gw.cleanup(); });
    await gw.start();
    const prod = await gw.createProduct('p');
    const a = await gw.createDevice(prod.id, 'alice');
    const b = await gw.createDevice(prod.id, 'bob');
    const url = `mqtt://127.0.0.1:${gw.ports.mqtt}`;

    // Wrong password: refused at CONNECT (MQTT 5 reason 135 / 3.1.1 code 5).
    await assert.rejects(mqtt.connectAsync(url, { clientId: `${a.productKey}.alice`,
      username: `alice&${a.productKey}`, password: 'f'.repeat(64), reconnectPeriod: 0 }));

    const alice = await connectDevice(gw, a, 'ok');
    const bob = await connectDevice(gw, b, 'ok');
    t.after(() => { alice.client.end(true); bob.client.end(true); });
    // Alice publishes a property post on Bob's topic: it never reaches the gateway.
    await alice.client.publishAsync(`/sys/${b.productKey}/bob/thing/property/post`,
      JSON.stringify({ id: '1', method: 'thing.property.post', params: { spoofed: 1 } }), { qos: 1 });
    // Bob's own post does (and proves the gateway processed everything before it).
    await bob.client.publishAsync(`/sys/${b.productKey}/bob/thing/property/post`,
      JSON.stringify({ id: '2', method: 'thing.property.post', params: { temp: 21.5 } }), { qos: 1 });
    await until('bob reply', () => bob.seen.replies.some((r) => r.msg.id === '2'), 10000);
    const bobGet = await gw.ok(gw.get(`${API}/device/get`, { id: b.id }));
    const props = bobGet.properties || bobGet.property || bobGet;
    assert.equal(JSON.stringify(props).includes('spoofed'), false, 'spoofed post did not land');
    assert.equal(JSON.stringify(props).includes('21.5'), true);
    // Alice cannot subscribe to Bob's topics.
    const granted = await alice.client.subscribeAsync(`/sys/${b.productKey}/bob/#`, { qos: 1 })
      .then((g) => g, (e) => e.packet ? e.packet.granted.map((q) => ({ qos: q })) : []);
    assert.equal(granted[0].qos, 128);

    // Admin API: no token, wrong token → 401.
    const noTok = await fetch(gw.url(`${API}/product/page`, { pageNo: 1, pageSize: 1 }));
    assert.equal((await noTok.json()).code, 401);
    const badTok = await fetch(gw.url(`${API}/product/page`, { pageNo: 1, pageSize: 1 }),
      { headers: { authorization: 'Bearer wrong-token-wrong-token' } });
    assert.equal((await badTok.json()).code, 401);

    // Download with a wrong token is refused; with the pushed URL it works.
    const fw = await gw.uploadFirmware(prod.id, '2.0', Buffer.from('firmware bytes'));
    await gw.ok(gw.post(`${API}/ota/task/create`, { name: 'x', firmwareId: fw.id,
      deviceScope: 2, deviceIds: [a.id] }));
    await until('alice upgrade', () => alice.seen.upgrades.length === 1, 10000);
    const good = new URL(alice.seen.upgrades[0].params.fileUrl);
    assert.equal((await fetch(good)).status, 200);
    good.searchParams.set('token', '0'.repeat(64));
    assert.equal((await fetch(good)).status, 403);
    const exit = await gw.stop('SIGTERM');
    assert.equal(exit.code, 0, gw.log);
  });

for (const signal of ['SIGTERM', 'SIGKILL']) {
  test(`restart with ${signal} mid-rollout: it completes, nothing lost or duplicated`,
    { timeout: 120000 }, async (t) => {
      // A SIGKILL can lose the reports the gateway had received but not yet committed; the
      // upgrade timeout re-pushes those records, which is what completes them.
      const gw = new Gateway({ ota: { push_timeout_s: 2, upgrade_timeout_s: 3, max_retries: 5,
        retry_backoff_s: 1 } });
      const clients = [];
      t.after(async () => { clients.forEach((c) => c.client.end(true)); await gw.stop('SIGKILL'); gw.cleanup(); });
      await gw.start();
      const prod = await gw.createProduct('r');
      const fw = await gw.uploadFirmware(prod.id, '5.0', crypto.randomBytes(32 * 1024));
      const devs = [];
      for (let i = 0; i < 20; i++) devs.push(await gw.createDevice(prod.id, `r${i}`));
      // Devices take ~0.6 s per upgrade and reconnect on their own after the gateway dies.
      for (const d of devs)
        clients.push(await connectDevice(gw, d, 'ok', { stepMs: 600, reconnectPeriod: 200 }));
      const taskId = await gw.ok(gw.post(`${API}/ota/task/create`, {
        name: 'restart', firmwareId: fw.id, deviceScope: 1 }));
      await until('some records upgrading', async () =>
        (await taskRecords(gw, taskId)).some((r) => r.status === 20), 20000, 50);

      const exit = await gw.stop(signal);
      if (signal === 'SIGTERM') assert.equal(exit.code, 0, gw.log);
      await gw.spawn();
      await until('the rollout completes after the restart', async () => {
        const task = await gw.ok(gw.get(`${API}/ota/task/get`, { id: taskId }));
        return task.status === 20;
      }, 60000, 200);
      const recs = await taskRecords(gw, taskId);
      assert.equal(recs.length, devs.length, 'one record per device, none lost');
      assert.equal(new Set(recs.map((r) => r.deviceId)).size, devs.length, 'no duplicates');
      assert.ok(recs.every((r) => r.status === 30), JSON.stringify(recs.map((r) => r.status)));
      const task = await gw.ok(gw.get(`${API}/ota/task/get`, { id: taskId }));
      assert.equal(task.deviceSuccessCount, devs.length);
      const exit2 = await gw.stop('SIGTERM');
      assert.equal(exit2.code, 0, gw.log);
    });
}
