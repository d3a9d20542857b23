'use strict';
// Independent implementations of the device side of DESIGN §4 (the JSON and binary
// serializers, the three TCP framings) and of §7.5 TCP / UDP devices, for the conformance
// tests. Nothing here shares code with the gateway's C codecs.
const dgram = require('node:dgram');
const net = require('node:net');

// ---- serializers ----

const json = {
  name: 'json',
  encode: (m) => Buffer.from(JSON.stringify(m)),
  decode: (b) => JSON.parse(b.toString('utf8')),
};

// 7e 01 type u32(total) u16+id u16+method body; request body = params JSON; reply body =
// i32 code, u16+msg, data JSON.
const binary = {
  name: 'binary',
  encode(m) {
    const id = Buffer.from(m.id || '');
    const method = Buffer.from(m.method);
    const isReply = m.code !== undefined;
    let body;
    if (!isReply) {
      body = m.params === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(m.params));
    } else {
      const msg = Buffer.from(m.msg || '');
      const head = Buffer.alloc(6);
      head.writeInt32BE(m.code, 0);
      head.writeUInt16BE(msg.length, 4);
      const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(m.data));
      body = Buffer.concat([head, msg, data]);
    }
    const total = 7 + 2 + id.length + 2 + method.length + body.length;
    const out = Buffer.alloc(total);
    let o = 0;
    out[o++] = 0x7e;
    out[o++] = 0x01;
    out[o++] = isReply ? 2 : 1;
    out.writeUInt32BE(total, o); o += 4;
    out.writeUInt16BE(id.length, o); o += 2;
    id.copy(out, o); o += id.length;
    out.writeUInt16BE(method.length, o); o += 2;
    method.copy(out, o); o += method.length;
    body.copy(out, o);
    return out;
  },
  decode(b) {
    if (b[0] !== 0x7e || b[1] !== 1) throw new Error(`not a binary message: ${b.toString('hex')}`);
    const type = b[2];
    const total = b.readUInt32BE(3);
    if (total !== b.length) throw new Error(`length ${total} != ${b.length}`);
    let o = 7;
    const idLen = b.readUInt16BE(o); o += 2;
    const id = b.subarray(o, o + idLen).toString(); o += idLen;
    const mLen = b.readUInt16BE(o); o += 2;
    const method = b.subarray(o, o + mLen).toString(); o += mLen;
    const m = { id, method };
    if (type === 1) {
      if (o < b.length) m.params = JSON.parse(b.subarray(o).toString());
    } else {
      m.code = b.readInt32BE(o); o += 4;
      const msgLen = b.readUInt16BE(o); o += 2;
      if (msgLen) m.msg = b.subarray(o, o + msgLen).toString();
      o += msgLen;
      if (o < b.length) m.data = JSON.parse(b.subarray(o).toString());
    }
    return m;
  },
};

// ---- framings (device side) ----

// cfg as in the gateway's config: { type, delimiter?, length_field_size, length_field_offset,
// length_adjustment, initial_bytes_to_strip, fixed_length }. unwrap() turns an emitted frame
// into the serialized message (skipping header bytes the strip left, trimming padding).
function framing(cfg) {
  const type = cfg.type;
  const delim = Buffer.from(cfg.delimiter || '\n');
  const size = cfg.length_field_size || 4;
  const offset = cfg.length_field_offset || 0;
  const adj = cfg.length_adjustment || 0;
  const strip = cfg.initial_bytes_to_strip ?? offset + size;
  return {
    encode(payload) {
      if (type === 'delimiter') return Buffer.concat([payload, delim]);
      if (type === 'fixed_length') {
        if (payload.length > cfg.fixed_length) throw new Error('payload too long');
        return Buffer.concat([payload, Buffer.alloc(cfg.fixed_length - payload.length)]);
      }
      const head = Buffer.alloc(offset + size);
      head.writeUIntBE(payload.length - adj, offset, size);
      return Buffer.concat([head, payload]);
    },
    // Returns [frames, rest].
    split(buf) {
      const frames = [];
      for (;;) {
        if (type === 'delimiter') {
          const i = buf.indexOf(delim);
          if (i < 0) break;
          frames.push(buf.subarray(0, i));
          buf = buf.subarray(i + delim.length);
        } else if (type === 'fixed_length') {
          if (buf.length < cfg.fixed_length) break;
          frames.push(buf.subarray(0, cfg.fixed_length));
          buf = buf.subarray(cfg.fixed_length);
        } else {
          if (buf.length < offset + size) break;
          const total = offset + size + buf.readUIntBE(offset, size) + adj;
          if (buf.length < total) break;
          frames.push(buf.subarray(strip, total));
          buf = buf.subarray(total);
        }
      }
      return [frames, buf];
    },
    unwrap(frame) {
      if (type === 'length_field') return frame.subarray(Math.max(0, offset + size - strip));
      if (type === 'fixed_length') {
        let n = frame.length;
        while (n > 0 && frame[n - 1] === 0) n--;
        // binary replies may end in zero bytes: the length field says where the message ends
        if (frame[0] === 0x7e) n = frame.readUInt32BE(3);
        return frame.subarray(0, n);
      }
      return frame;
    },
  };
}

// ---- a mailbox: messages in arrival order, awaited by predicate ----

class Inbox {
  constructor() { this.items = []; this.waiters = []; }
  push(m) {
    const w = this.waiters.find((x) => x.pred(m));
    if (w) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      clearTimeout(w.timer);
      w.resolve(m);
    } else {
      this.items.push(m);
    }
  }
  next(pred = () => true, timeoutMs = 10000, what = 'a message') {
    const i = this.items.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
}

// ---- a TCP device ----

class TcpDevice {
  static connect(port, { codec = json, frame = { type: 'delimiter' } } = {}) {
    return new Promise((resolve, reject) => {
      const d = new TcpDevice(codec, framing(frame));
      d.sock = net.connect(port, '127.0.0.1');
      d.sock.once('connect', () => resolve(d));
      d.sock.once('error', reject);
      d.sock.on('data', (chunk) => d.onData(chunk));
      d.closed = new Promise((r) => d.sock.once('close', () => { d.isClosed = true; r(); }));
      d.sock.on('error', () => {});
    });
  }

  constructor(codec, fr) {
    this.codec = codec;
    this.fr = fr;
    this.rest = Buffer.alloc(0);
    this.inbox = new Inbox();
    this.rawFrames = [];
    this.isClosed = false;
  }

  onData(chunk) {
    const [frames, rest] = this.fr.split(Buffer.concat([this.rest, chunk]));
    this.rest = rest;
    for (const f of frames) {
      this.rawFrames.push(Buffer.from(f));
      this.inbox.push(this.codec.decode(this.fr.unwrap(f)));
    }
  }

  send(m) { this.sock.write(this.fr.encode(this.codec.encode(m))); }
  sendRaw(buf) { this.sock.write(buf); }
  next(pred, timeoutMs, what) { return this.inbox.next(pred, timeoutMs, what); }
  reply(id, method, timeoutMs = 10000) {
    return this.next((m) => m.id === id && m.method === method && m.code !== undefined,
      timeoutMs, `the reply to ${method} ${id}`);
  }
  async request(m, timeoutMs) {
    this.send(m);
    return this.reply(m.id, m.method, timeoutMs);
  }
  // Resolves when the gateway has closed the connection; fails after timeoutMs.
  waitClosed(timeoutMs = 10000) {
    let timer;
    const t = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error('the connection was not closed')), timeoutMs);
    });
    return Promise.race([this.closed, t]).finally(() => clearTimeout(timer));
  }
  close() { this.sock.destroy(); }
}

// ---- a UDP device (one socket = one source address) ----

class UdpDevice {
  static async open(port, codec = json) {
    const d = new UdpDevice(port, codec);
    await new Promise((r) => d.sock.bind(0, '127.0.0.1', r));
    return d;
  }

  constructor(port, codec) {
    this.port = port;
    this.codec = codec;
    this.inbox = new Inbox();
    this.sock = dgram.createSocket('udp4');
    this.sock.on('message', (b) => this.inbox.push(this.codec.decode(b)));
  }

  sendRaw(buf) { this.sock.send(buf, this.port, '127.0.0.1'); }
  send(m) { this.sendRaw(this.codec.encode(m)); }
  next(pred, timeoutMs, what) { return this.inbox.next(pred, timeoutMs, what); }
  reply(id, method, timeoutMs = 10000) {
    return this.next((m) => m.id === id && m.method === method && m.code !== undefined,
      timeoutMs, `the UDP reply to ${method} ${id}`);
  }
  // m may be the {token, body} envelope: the reply answers the body's id and method
  async request(m, timeoutMs) {
    const inner = m.token !== undefined && m.body ? m.body : m;
    this.send(m);
    return this.reply(inner.id, inner.method, timeoutMs);
  }
  close() {
    if (this.isClosed) return;
    this.isClosed = true;
    this.sock.close();
  }
}

module.exports = { json, binary, framing, TcpDevice, UdpDevice, Inbox };
