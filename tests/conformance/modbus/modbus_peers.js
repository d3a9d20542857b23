'use strict';
// Independent Modbus peers for the iotgw Modbus conformance suites (none of this shares code
// with the gateway's libmodbus or its C frame layer):
//  - Bank: the register/bit tables of one unit, with exception ranges, silent units, a log
//    of reads and writes, and write hooks (the OTA profile below uses them);
//  - Slave: a Modbus TCP slave built on modbus-serial's ServerTCP serving several unit ids;
//  - attachOta: a device implementing the DESIGN §5.6 OTA register profile on a Bank;
//  - DialIn: a dial-in device for the server mode speaking Modbus TCP or RTU frames by hand
//    over node `net` (own CRC-16, own MBAP), logging in with the custom function code.
const crypto = require('node:crypto');
const net = require('node:net');
const ModbusRTU = require('modbus-serial');

function modbusError(code) {
  const e = new Error(`Modbus exception ${code}`);
  e.modbusErrorCode = code;
  return e;
}

class Bank {
  constructor() {
    this.holding = new Uint16Array(65536);
    this.input = new Uint16Array(65536);
    this.coils = new Uint8Array(65536);
    this.discrete = new Uint8Array(65536);
    this.exceptions = []; // { table, from, to, code }
    this.hooks = [];      // { from, to, write(addr, values, done(err)) }: holding writes
    this.log = [];        // { op: 'read'|'fc6'|'fc16'|'coil', table, addr, len|values, t }
    this.delayMs = 0;     // every answer waits this long
  }

  check(table, addr, len) {
    for (const e of this.exceptions)
      if (e.table === table && addr < e.to && addr + len > e.from) throw modbusError(e.code);
  }

  read(table, addr, len) {
    this.check(table, addr, len);
    this.log.push({ op: 'read', table, addr, len, t: Date.now() });
    return Array.from(this[table].subarray(addr, addr + len));
  }

  writeHolding(addr, values, op, done) {
    try {
      this.check('holding', addr, values.length);
    } catch (e) {
      done(e);
      return;
    }
    this.log.push({ op, table: 'holding', addr, values: values.slice(), t: Date.now() });
    const hook = this.hooks.find((h) => addr >= h.from && addr < h.to);
    if (hook) {
      hook.write(addr, values, done);
      return;
    }
    this.holding.set(values, addr);
    done(null);
  }

  writeCoils(addr, values, done) {
    try {
      this.check('coils', addr, values.length);
    } catch (e) {
      done(e);
      return;
    }
    this.log.push({ op: 'coil', table: 'coils', addr, values: values.slice(), t: Date.now() });
    values.forEach((v, i) => { this.coils[addr + i] = v ? 1 : 0; });
    done(null);
  }

  // Registers of a UTF-8/ASCII string, NUL-padded, first byte high (DESIGN §5.6).
  setString(addr, regs, s) {
    const b = Buffer.alloc(regs * 2);
    b.write(s, 'latin1');
    for (let i = 0; i < regs; i++) this.holding[addr + i] = b.readUInt16BE(2 * i);
  }

  getString(addr, regs) {
    const b = Buffer.alloc(regs * 2);
    for (let i = 0; i < regs; i++) b.writeUInt16BE(this.holding[addr + i], 2 * i);
    const z = b.indexOf(0);
    return b.subarray(0, z < 0 ? b.length : z).toString('latin1');
  }
}

// A Modbus TCP slave on 127.0.0.1:port; units: Map(unitId → Bank). A unit id without a bank
// never answers (a dead unit behind a live connection).
class Slave {
  constructor(port, units) {
    this.port = port;
    this.units = units;
    this.connections = 0;
  }

  vector() {
    const later = (bank, fn) => (bank.delayMs ? setTimeout(fn, bank.delayMs) : fn());
    const withBank = (unit, cb, fn) => {
      const bank = this.units.get(unit);
      if (!bank) return; // silent
      later(bank, () => {
        try {
          fn(bank);
        } catch (e) {
          cb(e);
        }
      });
    };
    const reader = (table) => ({
      one: (addr, unit, cb) => withBank(unit, cb, (b) => cb(null, b.read(table, addr, 1)[0])),
      many: (addr, len, unit, cb) => withBank(unit, cb, (b) => cb(null, b.read(table, addr, len))),
    });
    const h = reader('holding'), i = reader('input'), c = reader('coils'), d = reader('discrete');
    return {
      getHoldingRegister: h.one,
      getMultipleHoldingRegisters: h.many,
      getInputRegister: i.one,
      getMultipleInputRegisters: i.many,
      getCoil: (addr, unit, cb) => c.one(addr, unit, (e, v) => cb(e, !!v)),
      getDiscreteInput: (addr, unit, cb) => d.one(addr, unit, (e, v) => cb(e, !!v)),
      setRegister: (addr, value, unit, cb) =>
        withBank(unit, cb, (b) => b.writeHolding(addr, [value], 'fc6', cb)),
      setRegisterArray: (addr, values, unit, cb) =>
        withBank(unit, cb, (b) => b.writeHolding(addr, values, 'fc16', cb)),
      setCoil: (addr, value, unit, cb) =>
        withBank(unit, cb, (b) => b.writeCoils(addr, [value], cb)),
    };
  }

  start() {
    return new Promise((resolve, reject) => {
      this.server = new ModbusRTU.ServerTCP(this.vector(), {
        host: '127.0.0.1', port: this.port, unitID: 255,
      });
      this.server.on('serverError', reject);
      this.server.on('socketError', () => {}); // a dropped gateway connection
      this.server.on('initialized', resolve);
      this.server._server.on('connection', () => { this.connections++; });
    });
  }

  // Closes every open connection (the slave stays up).
  dropConnections() {
    for (const sock of this.server.socks.keys()) sock.destroy();
  }

  // The slave dies: listener closed, connections reset.
  stop() {
    return new Promise((resolve) => {
      if (!this.server) { resolve(); return; }
      this.dropConnections();
      this.server.close(() => resolve());
      this.server = null;
    });
  }
}

// The DESIGN §5.6 profile on bank at base. opts: version (current), behaviour 'ok' |
// 'badmd5' (the image it assembled fails its MD5 check) | 'stuck' (stays verifying at 60 %
// for ever), onBlock(st, index) after each
// accepted block. Returns the device state (counters for the assertions).
function attachOta(bank, base, opts = {}) {
  const st = {
    begins: 0, blocksWritten: 0, aborts: 0, outOfOrder: 0, applies: 0,
    status: 0, progress: 0, nextBlock: 0, image: null, size: 0, md5: '', target: '',
    current: opts.version || '1.0.0', blockTimes: [], behaviour: opts.behaviour || 'ok',
  };
  const H = bank.holding;
  const sync = () => {
    H[base + 1] = st.status;
    H[base + 2] = st.progress;
    H[base + 152] = st.nextBlock >>> 16;
    H[base + 153] = st.nextBlock & 0xffff;
    bank.setString(base + 154, 16, st.current);
  };
  const apply = () => {
    st.applies++;
    st.status = 2; // verifying
    st.progress = 0;
    sync();
    setTimeout(() => {
      st.progress = 60;
      sync();
      if (st.behaviour === 'stuck') return; // verifying at 60 % for ever
      setTimeout(() => {
        const img = Buffer.from(st.image);
        if (st.behaviour === 'badmd5') img[0] ^= 0xff;
        const ok = img.length === st.size &&
          crypto.createHash('md5').update(img).digest('hex') === st.md5;
        if (!ok) {
          st.status = 5;
          sync();
          return;
        }
        st.status = 3; // applying
        st.progress = 90;
        sync();
        setTimeout(() => {
          st.current = st.target;
          st.status = 4;
          st.progress = 100;
          sync();
        }, 100);
      }, 100);
    }, 100);
  };
  bank.hooks.push({
    from: base, to: base + 170,
    write(addr, values, done) {
      if (addr === base && values.length === 1) { // CTRL
        const v = values[0];
        if (v === 1) {
          st.size = (H[base + 3] << 16 | H[base + 4]) >>> 0;
          const md5 = Buffer.alloc(16);
          for (let i = 0; i < 8; i++) md5.writeUInt16BE(H[base + 5 + i], 2 * i);
          st.md5 = md5.toString('hex');
          st.target = bank.getString(base + 13, 16);
          st.image = Buffer.alloc(st.size);
          st.nextBlock = 0;
          st.status = 1;
          st.begins++;
        } else if (v === 2) {
          if (st.status !== 1 || st.nextBlock * 240 < st.size) { done(modbusError(4)); return; }
          apply();
        } else if (v === 3) {
          st.aborts++;
          st.status = 0;
        } else {
          done(modbusError(3));
          return;
        }
        sync();
        done(null);
        return;
      }
      if (addr === base + 29 && values.length === 123) { // one block
        if (st.status !== 1) { done(modbusError(4)); return; }
        const index = (values[0] << 16 | values[1]) >>> 0, len = values[2];
        if (index !== st.nextBlock || len < 1 || len > 240) {
          st.outOfOrder++;
          done(modbusError(3));
          return;
        }
        const data = Buffer.alloc(240);
        for (let i = 0; i < 120; i++) data.writeUInt16BE(values[3 + i], 2 * i);
        data.copy(st.image, index * 240, 0, len);
        st.nextBlock++;
        st.blocksWritten++;
        st.blockTimes.push(Date.now());
        sync();
        if (opts.onBlock) opts.onBlock(st, index);
        done(null);
        return;
      }
      if (addr >= base + 3 && addr + values.length <= base + 29) { // header
        H.set(values, addr);
        done(null);
        return;
      }
      done(modbusError(2)); // read-only or unknown OTA register
    },
  });
  sync();
  return st;
}

// ---- dial-in devices (server mode), frames by hand ----

function crc16(buf) {
  let crc = 0xffff;
  for (const b of buf) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

function rtuFrame(unit, pdu) {
  const f = Buffer.alloc(pdu.length + 3);
  f[0] = unit;
  pdu.copy(f, 1);
  f.writeUInt16LE(crc16(f.subarray(0, pdu.length + 1)), pdu.length + 1);
  return f;
}

function tcpFrame(tid, unit, pdu) {
  const f = Buffer.alloc(7 + pdu.length);
  f.writeUInt16BE(tid, 0);
  f.writeUInt16BE(0, 2);
  f.writeUInt16BE(pdu.length + 1, 4);
  f[6] = unit;
  pdu.copy(f, 7);
  return f;
}

// A device that dials in to the gateway. framing 'tcp' | 'rtu'; bank answers the gateway's
// requests. Records every request frame it got (and whether its CRC/MBAP was valid).
class DialIn {
  constructor(port, { framing = 'tcp', unit = 1, bank = new Bank(), customFc = 65 } = {}) {
    Object.assign(this, { port, framing, unit, bank, customFc });
    this.buf = Buffer.alloc(0);
    this.requests = [];
    this.badFrames = 0;
    this.closed = false;
    this.corruptNext = null; // (pdu) => pdu to send with a wrong CRC, once
    this.waiters = [];
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.sock = net.connect(this.port, '127.0.0.1', resolve);
      this.sock.once('error', reject);
      this.sock.on('data', (d) => this.onData(d));
      this.sock.on('close', () => { this.closed = true; this.wake(); });
      this.closedPromise = new Promise((r) => this.sock.once('close', r));
    });
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  send(pdu, tid = 1) {
    this.sock.write(this.framing === 'rtu' ? rtuFrame(this.unit, pdu) : tcpFrame(tid, this.unit, pdu));
  }

  // Sends the login frame; resolves with the gateway's JSON answer.
  async login(username, password, clientId = '') {
    const json = Buffer.from(JSON.stringify({ method: 'auth', params: { clientId, username, password } }));
    const pdu = Buffer.concat([Buffer.from([this.customFc, json.length]), json]);
    this.loginAnswer = null;
    this.send(pdu, 0x4242);
    const end = Date.now() + 20000;
    while (!this.loginAnswer && !this.closed && Date.now() < end)
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 100); });
    return this.loginAnswer;
  }

  // One frame off the stream: { unit, tid, pdu, len } | null (need more) | { bad: len }.
  split() {
    const b = this.buf;
    if (this.framing === 'tcp') {
      if (b.length < 7) return null;
      const len = b.readUInt16BE(4);
      if (b.length < 6 + len) return null;
      if (b.readUInt16BE(2) !== 0) return { bad: 6 + len };
      return { tid: b.readUInt16BE(0), unit: b[6], pdu: b.subarray(7, 6 + len), len: 6 + len };
    }
    if (b.length < 2) return null;
    const fc = b[1];
    let total;
    if (fc === this.customFc) {
      if (b.length < 3) return null;
      total = 3 + b[2] + 2;
    } else if (fc >= 1 && fc <= 6) total = 8;
    else if (fc === 15 || fc === 16) {
      if (b.length < 7) return null;
      total = 7 + b[6] + 2;
    } else return { bad: b.length };
    if (b.length < total) return null;
    const ok = crc16(b.subarray(0, total - 2)) === b.readUInt16LE(total - 2);
    if (!ok) return { bad: total };
    return { tid: 0, unit: b[0], pdu: b.subarray(1, total - 2), len: total };
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const f = this.split();
      if (!f) break;
      this.buf = this.buf.subarray(f.bad || f.len);
      if (f.bad) { this.badFrames++; continue; }
      this.onFrame(f);
    }
    this.wake();
  }

  onFrame(f) {
    const pdu = Buffer.from(f.pdu);
    if (pdu[0] === this.customFc) {
      this.loginAnswer = JSON.parse(pdu.subarray(2, 2 + pdu[1]).toString());
      this.loginFrame = f;
      return;
    }
    this.requests.push({ unit: f.unit, tid: f.tid, fc: pdu[0], t: Date.now() });
    let answer;
    try {
      answer = this.answer(pdu);
    } catch (e) {
      answer = Buffer.from([pdu[0] | 0x80, e.modbusErrorCode || 4]);
    }
    if (this.corruptNext && pdu[0] >= 1 && pdu[0] <= 4) {
      const bad = this.corruptNext(answer);
      this.corruptNext = null;
      const frame = this.framing === 'rtu' ? rtuFrame(this.unit, bad) : tcpFrame(f.tid, this.unit, bad);
      frame[frame.length - 1] ^= 0x5a; // RTU: the CRC no longer matches
      this.sock.write(frame);
      return;
    }
    this.send(answer, f.tid);
  }

  answer(pdu) {
    const fc = pdu[0], addr = pdu.readUInt16BE(1), b = this.bank;
    if (fc === 3 || fc === 4) {
      const n = pdu.readUInt16BE(3);
      const v = b.read(fc === 3 ? 'holding' : 'input', addr, n);
      const out = Buffer.alloc(2 + 2 * n);
      out[0] = fc;
      out[1] = 2 * n;
      v.forEach((x, i) => out.writeUInt16BE(x, 2 + 2 * i));
      return out;
    }
    if (fc === 1 || fc === 2) {
      const n = pdu.readUInt16BE(3);
      const v = b.read(fc === 1 ? 'coils' : 'discrete', addr, n);
      const out = Buffer.alloc(2 + Math.ceil(n / 8));
      out[0] = fc;
      out[1] = Math.ceil(n / 8);
      v.forEach((x, i) => { if (x) out[2 + (i >> 3)] |= 1 << (i & 7); });
      return out;
    }
    let err = null;
    const done = (e) => { err = e; };
    if (fc === 5) b.writeCoils(addr, [pdu.readUInt16BE(3) === 0xff00], done);
    else if (fc === 6) b.writeHolding(addr, [pdu.readUInt16BE(3)], 'fc6', done);
    else if (fc === 16) {
      const n = pdu.readUInt16BE(3), v = [];
      for (let i = 0; i < n; i++) v.push(pdu.readUInt16BE(6 + 2 * i));
      b.writeHolding(addr, v, 'fc16', done);
    } else throw modbusError(1);
    if (err) throw err;
    return fc === 16 ? Buffer.from(pdu.subarray(0, 5)) : Buffer.from(pdu);
  }

  close() {
    this.sock.destroy();
  }
}

module.exports = { Bank, Slave, attachOta, DialIn, crc16, modbusError };
