#!/usr/bin/env node
'use strict';
// A small MQTT device for trying iotgw by hand (README, "Using it"): logs in with the DESIGN §4
// credentials, posts a property, and performs any upgrade it is sent: downloads fileUrl,
// checks size, MD5 and SHA-256, reports progress 20 then 30 (or 40 when the check fails).
//   node tools/mqtt-device.js PRODUCT_KEY DEVICE_NAME DEVICE_SECRET [mqtt://127.0.0.1:1883]
// Needs the `mqtt` package: run `npm ci` once in tests/conformance (make test does).
const path = require('node:path');
const crypto = require('node:crypto');
let mqtt;
try {
  mqtt = require('mqtt');
} catch {
  mqtt = require(path.join(__dirname, '..', 'tests', 'conformance', 'node_modules', 'mqtt'));
}

const [pk, dn, secret, url = 'mqtt://127.0.0.1:1883'] = process.argv.slice(2);
if (!pk || !dn || !secret) {
  console.error('usage: mqtt-device.js PRODUCT_KEY DEVICE_NAME DEVICE_SECRET [mqtt://host:port]');
  process.exit(2);
}
const password = crypto.createHmac('sha256', secret)
  .update(`clientId${pk}.${dn}deviceName${dn}deviceSecret${secret}productKey${pk}`).digest('hex');
const base = `/sys/${pk}/${dn}`;
const client = mqtt.connect(url, { clientId: `${pk}.${dn}`, username: `${dn}&${pk}`, password });
const send = (method, params) => client.publish(`${base}/${method.replace(/\./g, '/')}`,
  JSON.stringify({ id: String(Date.now()), method, params }), { qos: 1 });

client.on('connect', () => {
  console.log(`connected as ${pk}.${dn}`);
  client.subscribe(`${base}/#`, { qos: 1 });
  send('thing.property.post', { temperature: 21.5 });
});
client.on('error', (e) => { console.error(`mqtt: ${e.message}`); process.exit(1); });
client.on('message', async (topic, payload) => {
  const msg = JSON.parse(payload.toString());
  console.log(`<- ${topic} ${payload.toString().slice(0, 200)}`);
  if (!topic.endsWith('/thing/ota/upgrade')) return;
  const p = msg.params;
  const body = Buffer.from(await (await fetch(p.fileUrl)).arrayBuffer());
  const ok = body.length === p.fileSize &&
    crypto.createHash('md5').update(body).digest('hex') === p.fileDigestValue &&
    crypto.createHash('sha256').update(body).digest('hex') === p.sha256;
  console.log(`downloaded ${body.length} bytes, digests ${ok ? 'match' : 'DO NOT match'}`);
  send('thing.ota.progress', { version: p.version, status: 20, progress: 50, description: 'flashing' });
  send('thing.ota.progress', { version: p.version, status: ok ? 30 : 40, progress: 100,
    description: ok ? 'upgraded' : 'digest mismatch' });
});
