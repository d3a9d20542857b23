'use strict';
// Issue 6, client mode: the real iotgw as Modbus TCP master of modbus-serial slaves
// (independent of libmodbus). Every raw type and byte order against known register
// contents, merged reads, writes (FC 5/6/16) answered with their outcome, exception answers
// reported without stopping anything, several unit ids on one connection (one of them
// silent), devices created after the gateway started, and a slave that dies and comes back.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Gateway, freePort, until: untilDefault } = require('../lib/gateway');
const { Bank, Slave } = require('./modbus_peers');

// Generous deadlines: these suites also run under ASan on a loaded 2-core machine.
const until = (what, fn, ms = 30000, step = 50) => untilDefault(what, fn, Math.max(ms, 30000), step);

const PK = 'mbclient';

// Register contents computed independently (Python struct / by hand):
//   INT16 -2 = fffe; UINT16 4660 = 1234; INT32 -123456789 = f8a432eb;
//   UINT32 3000000000 = b2d05e00; FLOAT 25.5 = 41cc0000; DOUBLE 123.456 = 405edd2f1a9fbe77.
// Byte orders: BA/BADC swap bytes per register, CDAB reverses the register order, DCBA
// reverses all bytes (for DOUBLE over all eight bytes).
const POINTS = [
  ['i16_ab', 'INT16', 'AB', [0xfffe], -2],
  ['i16_ba', 'INT16', 'BA', [0xfeff], -2],
  ['u16_ab', 'UINT16', 'AB', [0x1234], 4660],
  ['u16_ba', 'UINT16', 'BA', [0x3412], 4660],
  ['i32_abcd', 'INT32', 'ABCD', [0xf8a4, 0x32eb], -123456789],
  ['i32_cdab', 'INT32', 'CDAB', [0x32eb, 0xf8a4], -123456789],
  ['i32_dcba', 'INT32', 'DCBA', [0xeb32, 0xa4f8], -123456789],
  ['i32_badc', 'INT32', 'BADC', [0xa4f8, 0xeb32], -123456789],
  ['u32_abcd', 'UINT32', 'ABCD', [0xb2d0, 0x5e00], 3000000000],
  ['u32_cdab', 'UINT32', 'CDAB', [0x5e00, 0xb2d0], 3000000000],
  ['u32_dcba', 'UINT32', 'DCBA', [0x005e, 0xd0b2], 3000000000],
  ['u32_badc', 'UINT32', 'BADC', [0xd0b2, 0x005e], 3000000000],
  ['f_abcd', 'FLOAT', 'ABCD', [0x41cc, 0x0000], 25.5],
  ['f_cdab', 'FLOAT', 'CDAB', [0x0000, 0x41cc], 25.5],
  ['f_dcba', 'FLOAT', 'DCBA', [0x0000, 0xcc41], 25.5],
  ['f_badc', 'FLOAT', 'BADC', [0xcc41, 0x0000], 25.5],
  ['d_abcd', 'DOUBLE', 'ABCD', [0x405e, 0xdd2f, 0x1a9f, 0xbe77], 123.456],
  ['d_cdab', 'DOUBLE', 'CDAB', [0xbe77, 0x1a9f, 0xdd2f, 0x405e], 123.456],
  ['d_dcba', 'DOUBLE', 'DCBA', [0x77be, 0x9f1a, 0x2fdd, 0x5e40], 123.456],
  ['d_badc', 'DOUBLE', 'BADC', [0x5e40, 0x2fdd, 0x9f1a, 0x77be], 123.456],
  ['b_reg', 'BOOLEAN', 'AB', [0x0001], true],
];

function layout(bank) {
  const points = [];
  let addr = 0;
  for (const [identifier, rawType, byteOrder, regs] of POINTS) {
    bank.holding.set(regs, addr);
    points.push({ identifier, functionCode: 3, address: addr, rawType, byteOrder,
                  pollIntervalMs: 200 });
    addr += regs.length;
  }
  const merged = addr; // one contiguous FC3 block
  bank.holding[addr] = 255; // scale 0.1 → 25.5
  points.push({ identifier: 'scaled', functionCode: 3, address: addr, rawType: 'UINT16',
                scale: 0.1, pollIntervalMs: 200 });
  bank.input[100] = 0xfffb; // -5
  points.push({ identifier: 'in16', functionCode: 4, address: 100, rawType: 'INT16',
                pollIntervalMs: 200 });
  bank.coils[0] = 1;
  bank.coils[1] = 0;
  points.push({ identifier: 'coil0', functionCode: 1, address: 0, rawType: 'BOOLEAN',
                pollIntervalMs: 200 });
  points.push({ identifier: 'coil1', functionCode: 1, address: 1, rawType: 'BOOLEAN',
                pollIntervalMs: 200 });
  bank.discrete[5] = 1;
  points.push({ identifier: 'di5', functionCode: 2, address: 5, rawType: 'BOOLEAN',
                pollIntervalMs: 200 });
  // A register the slave refuses to read (exception 2) and to write.
  bank.exceptions.push({ table: 'holding', from: 200, to: 201, code: 2 });
  points.push({ identifier: 'broken', functionCode: 3, address: 200, rawType: 'UINT16',
                pollIntervalMs: 200 });
  return { points, merged: merged + 1 };
}

async function device(gw, dn) {
  return gw.ok(gw.get('/admin-api/iot/device/get', { productKey: PK, deviceName: dn }));
}

async function send(gw, id, params) {
  return gw.ok(gw.post('/admin-api/iot/device/message/send',
    { deviceId: id, method: 'thing.property.set', params, timeoutMs: 5000 }));
}

test('Modbus TCP client: types, byte orders, merged reads, writes, exceptions, reconnect',
  { timeout: 120000 }, async (t) => {
    const port = await freePort();
    const bank1 = new Bank(), bank2 = new Bank();
    const { points, merged } = layout(bank1);
    bank2.holding[0] = 77;
    // unit 3 has no bank: the slave never answers it
    let slave = new Slave(port, new Map([[1, bank1], [2, bank2]]));
    await slave.start();
    const common = { host: '127.0.0.1', port, timeoutMs: 300, retryIntervalMs: 300 };
    const gw = new Gateway({
      adapters: () => [{
        type: 'modbus_tcp_client', name: 'modbus',
        devices: [
          { productKey: PK, deviceName: 'meter1', unitId: 1, ...common, points },
          { productKey: PK, deviceName: 'meter2', unitId: 2, ...common,
            points: [{ identifier: 'v', functionCode: 3, address: 0, rawType: 'INT16',
                       pollIntervalMs: 200 }] },
          { productKey: PK, deviceName: 'silent', unitId: 3, ...common,
            points: [{ identifier: 'v', functionCode: 3, address: 0, rawType: 'INT16',
                       pollIntervalMs: 200 }] },
        ],
      }],
    });
    t.after(async () => {
      if (process.env.GW_SHOW_LOG) console.log(gw.log);
      await gw.stop('SIGKILL');
      gw.cleanup();
      await slave.stop();
    });
    await gw.start();

    // The devices are created after the adapter started polling: its first posts are
    // refused ("no such device") and it announces the session again once they pass.
    const prod = await gw.ok(gw.post('/admin-api/iot/product/create',
      { name: 'modbus meters', productKey: PK }));
    const d1 = await gw.createDevice(prod.id, 'meter1');
    const d2 = await gw.createDevice(prod.id, 'meter2');
    await gw.createDevice(prod.id, 'silent');

    const expected = Object.fromEntries(POINTS.map(([id, , , , v]) => [id, v]));
    Object.assign(expected, { scaled: 25.5, in16: -5, coil0: true, coil1: false, di5: true });
    const got = await until('meter1 properties', async () => {
      const d = await device(gw, 'meter1');
      return Object.keys(expected).every((k) => k in d.properties) && d.online ? d : null;
    });
    for (const [k, v] of Object.entries(expected))
      assert.deepEqual(got.properties[k], v, `property ${k}`);
    assert.equal('broken' in got.properties, false, 'an exception answer posts no value');
    assert.match(gw.log, /exception 2 \(illegal data address\)/);

    // Merged reads: the contiguous FC3 block (every typed point and the scaled one) is one
    // read of `merged` registers. (modbus-serial asks for coils one bit at a time, so the
    // two-bit coil read is checked by the planner's unit test, not here.)
    const reads = bank1.log.filter((e) => e.op === 'read');
    assert.ok(reads.some((e) => e.table === 'holding' && e.addr === 0 && e.len === merged),
      `one read of ${merged} registers: ${JSON.stringify(reads.slice(0, 8))}`);
    assert.ok(!reads.some((e) => e.table === 'holding' && e.addr > 0 && e.addr < merged),
      'no separate reads inside the merged block');

    // Unit 2 on the same connection.
    await until('meter2 value', async () => (await device(gw, 'meter2')).properties.v === 77);
    assert.equal(slave.connections, 1, 'three unit ids share one TCP connection');
    // The silent unit is reported offline (timeouts) while the others keep going.
    await until('the silent unit reported offline', () =>
      /mbclient\/silent offline \(not answering\)/.test(gw.log));
    assert.equal((await device(gw, 'silent')).online, false);
    assert.ok((await device(gw, 'meter2')).online);

    // Writes: FC6 for one register, FC16 for several, FC5 for a coil.
    const before = bank1.log.length;
    let r = await send(gw, d1.id, { u16_ab: 4242, f_abcd: -1.25, d_cdab: 6.5, coil0: false,
                                    i32_dcba: -7, scaled: 12.3 });
    assert.equal(r.code, 0, JSON.stringify(r));
    assert.equal(bank1.holding[2], 4242);
    assert.deepEqual([...bank1.holding.subarray(20, 22)], [0xbfa0, 0x0000]); // -1.25
    assert.deepEqual([...bank1.holding.subarray(32, 36)], [0x0000, 0x0000, 0x0000, 0x401a]);
    assert.deepEqual([...bank1.holding.subarray(8, 10)], [0xf9ff, 0xffff]);
    assert.equal(bank1.holding[merged - 1], 123); // 12.3 / 0.1
    assert.equal(bank1.coils[0], 0);
    const writes = bank1.log.slice(before).filter((e) => e.op !== 'read');
    assert.deepEqual(writes.map((e) => `${e.op}@${e.addr}`).sort(),
      ['coil@0', 'fc16@20', 'fc16@32', 'fc16@8', 'fc6@2', `fc6@${merged - 1}`].sort());
    await until('the new values read back', async () => {
      const p = (await device(gw, 'meter1')).properties;
      return p.u16_ab === 4242 && p.f_abcd === -1.25 && p.d_cdab === 6.5 && p.coil0 === false &&
        p.i32_dcba === -7 && p.scaled === 12.3;
    });

    // Refusals change nothing: a read-only point, an unknown one, a value out of range.
    const snapshot = Buffer.from(bank1.holding.buffer).toString('hex');
    r = await gw.post('/admin-api/iot/device/message/send',
      { deviceId: d1.id, method: 'thing.property.set', params: { in16: 1 }, timeoutMs: 5000 });
    assert.equal(r.data.code, 400);
    assert.match(r.data.msg, /read-only/);
    r = await send(gw, d1.id, { nope: 1 });
    assert.equal(r.code, 400);
    r = await send(gw, d1.id, { u16_ab: 1, i16_ab: 40000 });
    assert.equal(r.code, 400);
    assert.match(r.msg, /INT16/);
    assert.equal(Buffer.from(bank1.holding.buffer).toString('hex'), snapshot);
    // An exception answer to a write is reported in the reply.
    r = await send(gw, d1.id, { broken: 5 });
    assert.equal(r.code, 500);
    assert.match(r.msg, /exception 2/);

    // The slave dies: its devices go offline; it comes back with new contents: polling
    // resumes on a new connection.
    await slave.stop();
    await until('meter1 offline', async () => !(await device(gw, 'meter1')).online);
    bank1.holding[0] = 0xfff0; // -16
    slave = new Slave(port, new Map([[1, bank1], [2, bank2]]));
    await slave.start();
    await until('meter1 back online with the new value', async () => {
      const d = await device(gw, 'meter1');
      return d.online && d.properties.i16_ab === -16;
    }, 20000);
    assert.equal(slave.connections, 1);
    assert.ok((await device(gw, 'meter2')).online);
    assert.equal(d2.deviceName, 'meter2');

    const exit = await gw.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
  });
