'use strict';
// Nothing a device sent is lost while the gateway lags behind its broker. The gateway is
// frozen (SIGSTOP) while one MQTT.js device sends more QoS 1 reports than the spawned
// broker's old per-client count bound (10000) held for the gateway's connection; the broker
// acknowledges every one of them to the device. Once the gateway runs again, every report
// must reach the store: the last one's value is read back, and the broker's log must not
// say it dropped messages. With a count bound the broker dropped the overflow, the last
// report among it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const mqtt = require('mqtt');
const { Gateway, until, devicePassword } = require('../lib/gateway');

const N = 15000;

test('a burst of QoS 1 reports while the gateway is frozen is stored in full',
  { timeout: 240000 }, async (t) => {
    const gw = new Gateway();
    let client = null;
    let frozen = false;
    t.after(async () => {
      if (frozen) gw.proc.kill('SIGCONT');
      if (client) await client.endAsync(true);
      if (process.env.GW_SHOW_LOG) console.log(gw.log);
      await gw.stop('SIGKILL');
      gw.cleanup();
    });
    await gw.start();
    const prod = await gw.createProduct('backlog');
    const dev = await gw.createDevice(prod.id, 'burst-1');
    const pk = dev.productKey, dn = dev.deviceName;
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
      clientId: `${pk}.${dn}`, username: `${dn}&${pk}`,
      password: devicePassword(pk, dn, dev.deviceSecret),
      reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 5000,
    });
    await client.subscribeAsync(`/sys/${pk}/${dn}/#`, { qos: 1 }); // online from here on
    await until('the device online', async () =>
      (await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }))).state === 1);

    gw.proc.kill('SIGSTOP');
    frozen = true;
    const topic = `/sys/${pk}/${dn}/thing/property/post`;
    for (let i = 0; i < N; i += 500) {
      const batch = [];
      for (let k = i; k < Math.min(N, i + 500); k++) {
        batch.push(client.publishAsync(topic, JSON.stringify({
          id: String(k), method: 'thing.property.post', params: { seq: k } }), { qos: 1 }));
      }
      await Promise.all(batch); // every one PUBACKed by the broker
    }
    gw.proc.kill('SIGCONT');
    frozen = false;

    await until(`report ${N - 1} stored`, async () => {
      const d = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
      return d.properties && d.properties.seq === N - 1;
    }, 120000, 200);
    const brokerLog = fs.readFileSync(path.join(gw.dir, 'data', 'broker', 'mosquitto.log'), 'utf8');
    assert.doesNotMatch(brokerLog, /dropped/i);
  });
