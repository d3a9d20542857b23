'use strict';
// Helpers shared by the HTTP-device and WebSocket conformance suites: devices and firmware
// through the admin API, the device side of an OTA (download, MD5/SHA-256 check), tokens
// signed independently of the gateway's C code, and the binary serializer of DESIGN §4
// written from the spec.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { devicePassword } = require('../lib/gateway');

const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

async function makeDevice(gw, prod, name) {
  const d = await gw.createDevice(prod.id, name);
  return Object.assign(d, {
    creds: {
      clientId: `${d.productKey}.${d.deviceName}`,
      username: `${d.deviceName}&${d.productKey}`,
      password: devicePassword(d.productKey, d.deviceName, d.deviceSecret),
    },
  });
}

// Downloads the firmware an upgrade names and checks size and digests.
async function fetchFirmware(params) {
  const res = await fetch(params.fileUrl);
  const body = Buffer.from(await res.arrayBuffer());
  return res.status === 200 && body.length === params.fileSize &&
    md5(body) === params.fileDigestValue && (!params.sha256 || sha256(body) === params.sha256);
}

async function createTask(gw, name, fw, devices) {
  return gw.ok(gw.post('/admin-api/iot/ota/task/create', {
    name, firmwareId: fw.id, deviceScope: 2, deviceIds: devices.map((d) => d.id),
  }));
}

async function recordOf(gw, taskId, deviceId) {
  const d = await gw.ok(gw.get('/admin-api/iot/ota/task/record/page',
    { taskId, pageNo: 1, pageSize: 100 }));
  return d.list.find((r) => r.deviceId === deviceId);
}

async function recordHistory(gw, recordId) {
  const d = await gw.ok(gw.get('/admin-api/iot/ota/task/record/history', { id: recordId }));
  return (Array.isArray(d) ? d : d.list).map((h) => h.toStatus);
}

async function deviceState(gw, id) {
  return (await gw.ok(gw.get('/admin-api/iot/device/get', { id }))).state;
}

// An HS256 token {productKey, deviceName, exp} signed with the gateway's secret file, made
// with node's crypto (not the gateway's JWT code).
function signToken(gw, claims) {
  const secret = fs.readFileSync(path.join(gw.dir, 'data', 'jwt.key'));
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

// Binary serializer (DESIGN §4): 0x7E, 1, type, u32 total, u16+id, u16+method, body.
function binEncode({ id, method, params }) {
  const idb = Buffer.from(id), mb = Buffer.from(method);
  const body = params === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(params));
  const buf = Buffer.alloc(7 + 2 + idb.length + 2 + mb.length + body.length);
  let o = 0;
  buf[o++] = 0x7e; buf[o++] = 1; buf[o++] = 1;
  buf.writeUInt32BE(buf.length, o); o += 4;
  buf.writeUInt16BE(idb.length, o); o += 2; idb.copy(buf, o); o += idb.length;
  buf.writeUInt16BE(mb.length, o); o += 2; mb.copy(buf, o); o += mb.length;
  body.copy(buf, o);
  return buf;
}

function binDecode(buf) {
  if (buf[0] !== 0x7e || buf[1] !== 1 || buf.readUInt32BE(3) !== buf.length)
    throw new Error(`not a binary message: ${buf.toString('hex').slice(0, 40)}`);
  const type = buf[2];
  let o = 7;
  const str = () => { const n = buf.readUInt16BE(o); o += 2; const s = buf.toString('utf8', o, o + n); o += n; return s; };
  const id = str(), method = str();
  const json = (b) => (b.length ? JSON.parse(b.toString()) : undefined);
  if (type === 1) return { id, method, params: json(buf.subarray(o)) };
  const code = buf.readInt32BE(o); o += 4;
  const msg = str();
  return { id, method, code, msg, data: json(buf.subarray(o)) };
}

module.exports = {
  md5, sha256, makeDevice, fetchFirmware, createTask, recordOf, recordHistory, deviceState,
  signToken, binEncode, binDecode,
};
