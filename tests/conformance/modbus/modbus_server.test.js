'use strict';
// Issue 6, server mode: devices dial in to the real iotgw (modbus_tcp_server), written by
// hand over node `net` (own MBAP framing, own CRC-16: independent of the gateway's frame
// layer). Framing detected from the first bytes (TCP and RTU), login with the custom
// function code and the DESIGN §4 credentials, polling over the device's own socket with
// answers matched to requests, an RTU answer with a bad CRC dropped without harm, writes,
// a wrong login, a request before login, and a device that hangs up.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Gateway, until: untilDefault, devicePassword } = require('../lib/gateway');
const { Bank, DialIn, crc16 } = require('./modbus_peers');

// Generous deadlines: these suites also run under ASan on a loaded 2-core machine.
const until = (what, fn, ms = 30000, step = 50) => untilDefault(what, fn, Math.max(ms, 30000), step);

const PK = 'mbserver';

async function device(gw, dn) {
  return gw.ok(gw.get('/admin-api/iot/device/get', { productKey: PK, deviceName: dn }));
}

test('CRC-16/MODBUS of the peer matches the standard vector', () => {
  assert.equal(crc16(Buffer.from('01030000000a', 'hex')), 0xcdc5);
});

test('Modbus TCP server: dial-in TCP and RTU devices, login, polling, bad CRC, writes',
  { timeout: 120000 }, async (t) => {
    const poll = { pollIntervalMs: 200 };
    const gw = new Gateway({
      extraPorts: ['modbus'],
      adapters: (ports) => [{
        type: 'modbus_tcp_server', name: 'mbsrv', listen: `127.0.0.1:${ports.modbus}`,
        customFunctionCode: 65,
        devices: [
          { productKey: PK, deviceName: 'dial-tcp', timeoutMs: 400, points: [
            { identifier: 'temp', functionCode: 3, address: 0, rawType: 'UINT16', ...poll },
            { identifier: 'f', functionCode: 3, address: 1, rawType: 'FLOAT', byteOrder: 'CDAB', ...poll },
            { identifier: 'sw', functionCode: 1, address: 0, rawType: 'BOOLEAN', ...poll },
            { identifier: 'sp', functionCode: 3, address: 10, rawType: 'INT32', ...poll },
          ] },
          { productKey: PK, deviceName: 'dial-rtu', timeoutMs: 400, points: [
            { identifier: 'level', functionCode: 3, address: 10, rawType: 'INT16', ...poll },
            { identifier: 'flow', functionCode: 4, address: 0, rawType: 'UINT16', ...poll },
          ] },
        ],
      }],
    });
    const peers = [];
    t.after(async () => {
      if (process.env.GW_SHOW_LOG) console.log(gw.log);
      peers.forEach((p) => p.sock && p.sock.destroy());
      await gw.stop('SIGKILL');
      gw.cleanup();
    });
    await gw.start();
    assert.match(gw.log, new RegExp(`tcp://127\\.0\\.0\\.1:${gw.ports.modbus}`));
    const prod = await gw.ok(gw.post('/admin-api/iot/product/create',
      { name: 'dial-in meters', productKey: PK }));
    const dt = await gw.createDevice(prod.id, 'dial-tcp');
    const dr = await gw.createDevice(prod.id, 'dial-rtu');
    const cred = (d) => [`${d.deviceName}&${PK}`, devicePassword(PK, d.deviceName, d.deviceSecret)];

    // ---- Modbus TCP device ----
    const tb = new Bank();
    tb.holding[0] = 215;
    tb.holding.set([0x0000, 0x41cc], 1); // 25.5, CDAB
    tb.holding.set([0xffff, 0xfff6], 10); // -10
    tb.coils[0] = 1;
    const tcp = new DialIn(gw.ports.modbus, { framing: 'tcp', unit: 7, bank: tb });
    peers.push(tcp);
    await tcp.connect();
    const ans = await tcp.login(...cred(dt), `${PK}.dial-tcp`);
    assert.deepEqual(ans, { method: 'auth', code: 0, message: 'success' });
    assert.equal(tcp.loginFrame.tid, 0x4242, 'the login answer echoes the transaction id');
    assert.equal(tcp.loginFrame.unit, 7);
    await until('dial-tcp properties', async () => {
      const d = await device(gw, 'dial-tcp');
      return d.online && d.properties.temp === 215 && d.properties.f === 25.5 &&
        d.properties.sw === true && d.properties.sp === -10;
    });
    assert.equal(tcp.badFrames, 0, 'every request is a valid MBAP frame');
    assert.ok(tcp.requests.every((r) => r.unit === 7), 'requests go to the login unit');
    const tids = tcp.requests.map((r) => r.tid);
    assert.equal(new Set(tids).size, tids.length, 'transaction ids are not reused');

    // A write over the device's own socket: FC5 and FC16.
    let r = await gw.ok(gw.post('/admin-api/iot/device/message/send', {
      deviceId: dt.id, method: 'thing.property.set', params: { sw: false, sp: 100000 },
      timeoutMs: 5000 }));
    assert.equal(r.code, 0, JSON.stringify(r));
    assert.equal(tb.coils[0], 0);
    assert.deepEqual([...tb.holding.subarray(10, 12)], [0x0001, 0x86a0]);

    // ---- Modbus RTU device ----
    const rb = new Bank();
    rb.holding[10] = 5;
    rb.input[0] = 1234;
    const rtu = new DialIn(gw.ports.modbus, { framing: 'rtu', unit: 3, bank: rb });
    peers.push(rtu);
    await rtu.connect();
    assert.deepEqual(await rtu.login(...cred(dr)), { method: 'auth', code: 0, message: 'success' });
    await until('dial-rtu properties', async () => {
      const d = await device(gw, 'dial-rtu');
      return d.online && d.properties.level === 5 && d.properties.flow === 1234;
    });
    assert.equal(rtu.badFrames, 0, 'every request from the gateway carries a valid CRC');

    // One answer with a bad CRC and a value that must never be taken: dropped, the request
    // times out, the next poll reads the real value; the connection stays up.
    rb.holding[10] = 6;
    rtu.corruptNext = (pdu) => {
      const bad = Buffer.from(pdu);
      if (bad[0] === 3) bad.writeInt16BE(999, 2);
      return bad;
    };
    let saw999 = false;
    await until('the real value after the bad frame', async () => {
      const d = await device(gw, 'dial-rtu');
      if (d.properties.level === 999) saw999 = true;
      return rtu.corruptNext === null && d.properties.level === 6;
    });
    assert.equal(saw999, false);
    await until('the drop logged', async () => /bad CRC dropped/.test(gw.log));
    assert.equal(rtu.closed, false);
    assert.ok((await device(gw, 'dial-rtu')).online);

    // ---- refusals ----
    const wrong = new DialIn(gw.ports.modbus, { framing: 'rtu', unit: 1 });
    peers.push(wrong);
    await wrong.connect();
    const bad = await wrong.login(`dial-rtu&${PK}`, '00'.repeat(32));
    assert.equal(bad.code, 401, JSON.stringify(bad));
    await until('the refused connection closed', () => wrong.closed);
    assert.ok((await device(gw, 'dial-rtu')).online, 'a wrong login does not touch the session');

    const early = new DialIn(gw.ports.modbus, { framing: 'tcp', unit: 1 });
    peers.push(early);
    await early.connect();
    early.send(Buffer.from([3, 0, 0, 0, 1]));
    await until('a request before login closes the connection', () => early.closed);

    // The TCP device hangs up: offline.
    tcp.close();
    await until('dial-tcp offline', async () => !(await device(gw, 'dial-tcp')).online);
    r = await gw.post('/admin-api/iot/device/message/send', {
      deviceId: dt.id, method: 'thing.property.set', params: { sw: true }, timeoutMs: 2000 });
    assert.notEqual(r.code, 0, 'no write to a device that is gone');

    const exit = await gw.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
  });
