'use strict';
// An MQTT.js device for conformance tests: logs in with the DESIGN §4 credentials, subscribes
// to its own topics, and performs the upgrades it is sent the way a real device would:
// download fileUrl in two HTTP Range requests, verify size, MD5 and SHA-256, report progress.
const crypto = require('node:crypto');
const mqtt = require('mqtt');
const { devicePassword } = require('./gateway');

const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

// Fetches url in two Range requests; returns { body, statuses }.
async function rangeDownload(url, size) {
  const half = Math.max(1, Math.floor(size / 2));
  const parts = [];
  const statuses = [];
  for (const range of [`bytes=0-${half - 1}`, `bytes=${half}-`]) {
    if (range === `bytes=${half}-` && half >= size) break;
    const res = await fetch(url, { headers: { range } });
    statuses.push(res.status);
    parts.push(Buffer.from(await res.arrayBuffer()));
  }
  return { body: Buffer.concat(parts), statuses };
}

// behaviour: 'ok' | 'fail' | 'wrong-version' | 'silent-once' (ignores its first upgrade) |
// 'hang' (reports 20 and never finishes). opts.stepMs: delay between progress reports.
async function connectDevice(gw, dev, behaviour = 'ok', opts = {}) {
  const pk = dev.productKey, dn = dev.deviceName;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, {
    clientId: `${pk}.${dn}`, username: `${dn}&${pk}`,
    password: devicePassword(pk, dn, dev.deviceSecret),
    reconnectPeriod: opts.reconnectPeriod ?? 0, protocolVersion: 4, connectTimeout: 5000,
  });
  const seen = { upgrades: [], cancels: [], replies: [], verified: null, statuses: [], done: false };
  const base = `/sys/${pk}/${dn}`;
  const progress = (params) => client.publishAsync(`${base}/thing/ota/progress`, JSON.stringify({
    id: String(Date.now()), method: 'thing.ota.progress', params }), { qos: 1 });
  const pause = () => new Promise((r) => setTimeout(r, opts.stepMs || 0));
  client.on('message', async (topic, payload) => {
    let msg;
    try { msg = JSON.parse(payload.toString()); } catch { return; }
    if (topic.endsWith('_reply')) { seen.replies.push({ topic, msg }); return; }
    if (topic === `${base}/thing/ota/cancel`) { seen.cancels.push(msg); return; }
    if (topic !== `${base}/thing/ota/upgrade`) return;
    seen.upgrades.push(msg);
    if (behaviour === 'silent-once' && seen.upgrades.length === 1) return;
    const p = msg.params;
    try {
      const { body, statuses } = await rangeDownload(p.fileUrl, p.fileSize);
      seen.statuses = statuses;
      seen.verified = body.length === p.fileSize && md5(body) === p.fileDigestValue &&
        sha256(body) === p.sha256;
      if (behaviour === 'wrong-version') {
        await progress({ version: '9.9.9', status: 20, progress: 10, description: 'x' });
        return;
      }
      await progress({ version: p.version, status: 20, progress: 50, description: 'flashing' });
      if (behaviour === 'hang') return;
      await pause();
      if (behaviour === 'fail' || !seen.verified)
        await progress({ version: p.version, status: 40, progress: 50, description: 'bad image' });
      else
        await progress({ version: p.version, status: 30, progress: 100, description: 'done' });
      seen.done = true;
    } catch (e) {
      seen.error = e.message;
    }
  });
  await client.subscribeAsync(`${base}/#`, { qos: 1 });
  return { client, seen, progress };
}

async function taskRecords(gw, taskId) {
  const d = await gw.ok(gw.get('/admin-api/iot/ota/task/record/page',
    { taskId, pageNo: 1, pageSize: 200 }));
  return d.list;
}

module.exports = { connectDevice, rangeDownload, taskRecords, md5, sha256 };
