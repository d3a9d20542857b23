'use strict';
// A CoAP device built on node-coap (independent of libcoap, which the gateway uses), plus a
// raw-datagram peer (coap-packet) for what node-coap does not expose: RST answers and exact
// Block2 options. Used by coap.test.js.
const coap = require('coap');
const packet = require('coap-packet');
const crypto = require('node:crypto');
const dgram = require('node:dgram');
const { devicePassword } = require('../lib/gateway');

const TOKEN_OPTION = '2088'; // the reference's custom option carrying the device token

// A free UDP port on 127.0.0.1 (bound then released; the gateway binds it right after).
function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.on('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// One request; resolves with the node-coap response (code, payload, headers).
function request(port, { method = 'GET', path, token, body, observe, query, block2, agent,
  timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const req = coap.request({
      hostname: '127.0.0.1', port, method, pathname: path, query, observe,
      confirmable: true, agent: agent || coap.globalAgent,
    });
    if (token) req.setOption(TOKEN_OPTION, Buffer.from(token));
    if (block2) req.setOption('Block2', block2);
    const timer = setTimeout(() => reject(new Error(`${method} ${path}: no response`)), timeoutMs);
    req.on('response', (res) => { clearTimeout(timer); resolve(res); });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

const json = (res) => JSON.parse(res.payload.toString());

// Block2 option value for block num of 2^(szx+4) bytes (RFC 7959 §2.2).
function block2Option(num, szx, more = 0) {
  const v = (num << 4) | (more << 3) | szx;
  if (v < 0x100) return Buffer.from([v]);
  if (v < 0x10000) return Buffer.from([v >> 8, v & 0xff]);
  return Buffer.from([v >> 16, (v >> 8) & 0xff, v & 0xff]);
}

class CoapDevice {
  constructor(port, dev) {
    this.port = port;
    this.pk = dev.productKey;
    this.dn = dev.deviceName;
    this.secret = dev.deviceSecret;
    this.base = `/topic/sys/${this.pk}/${this.dn}`;
    // Its own socket, one CoAP endpoint. Passed in, so node-coap does not close it when no
    // request is in flight (it would, before sending an Observe deregistration).
    this.sock = dgram.createSocket('udp4');
    this.agent = new coap.Agent({ socket: this.sock });
    this.streams = [];
  }

  async auth(password = devicePassword(this.pk, this.dn, this.secret)) {
    const res = await request(this.port, {
      method: 'POST', path: '/auth', agent: this.agent,
      body: { clientId: `${this.pk}.${this.dn}`, username: `${this.dn}&${this.pk}`, password },
    });
    const env = json(res);
    if (env.code === 0) this.token = env.data.token;
    return { code: res.code, env };
  }

  async post(methodPath, msg, token = this.token) {
    const res = await request(this.port, {
      method: 'POST', path: `${this.base}/${methodPath}`, token, body: msg, agent: this.agent,
    });
    return { code: res.code, env: json(res) };
  }

  // Registers an Observe on resource ('thing/ota/upgrade' or 'downstream'); every
  // notification's JSON goes to onMessage. Resolves with { code, env, stream }.
  async observe(resource, onMessage) {
    const res = await request(this.port, {
      path: `${this.base}/${resource}`, token: this.token, observe: true, agent: this.agent,
    });
    const first = { code: res.code, env: null, stream: res };
    let firstSeen = false;
    res.on('data', (chunk) => {
      const m = JSON.parse(chunk.toString());
      if (!firstSeen) { firstSeen = true; first.env = m; return; } // the registration answer
      onMessage(m);
    });
    this.streams.push(res);
    await new Promise((r) => setImmediate(r));
    return first;
  }

  close() {
    for (const s of this.streams) s.close();
    this.agent.close();
    try { this.sock.close(); } catch (e) { /* already closed */ }
  }
}

// A raw CoAP endpoint on its own socket: send packets, see every datagram, answer CONs.
class RawPeer {
  constructor(port) {
    this.port = port;
    this.sock = dgram.createSocket('udp4');
    this.inbox = [];
    this.waiters = [];
    this.mid = crypto.randomInt(1, 60000);
    this.sock.on('message', (buf) => {
      const p = packet.parse(buf);
      this.inbox.push(p);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  bind() {
    return new Promise((r) => this.sock.bind(0, '127.0.0.1', r));
  }

  send(p) {
    const buf = packet.generate(Object.assign({ messageId: this.mid++ }, p));
    return new Promise((r, j) => this.sock.send(buf, this.port, '127.0.0.1', (e) => (e ? j(e) : r())));
  }

  // The next received packet matching pred (already received ones included).
  async next(pred, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      const left = end - Date.now();
      if (left <= 0) throw new Error('raw peer: timed out waiting for a packet');
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  close() { this.sock.close(); }
}

const option = (p, name) => (p.options.find((o) => o.name === name) || {}).value;

// A DTLS-PSK CoAP peer: the openssl command-line client carries raw CoAP datagrams (from
// coap-packet) over DTLS 1.2; each datagram is one record. null when openssl is missing.
function haveOpenssl() {
  return require('node:child_process').spawnSync('openssl', ['version']).status === 0;
}

class DtlsPeer {
  constructor(port, identity, key) {
    const { spawn } = require('node:child_process');
    this.inbox = [];
    this.waiters = [];
    this.mid = crypto.randomInt(1, 60000);
    this.proc = spawn('openssl', ['s_client', '-dtls1_2', '-quiet', '-connect', `127.0.0.1:${port}`,
      '-psk_identity', identity, '-psk', Buffer.from(key).toString('hex'),
      '-cipher', 'PSK-AES128-GCM-SHA256:PSK-AES128-CCM8:PSK-AES128-CBC-SHA256'],
    { stdio: ['pipe', 'pipe', 'ignore'] });
    this.exited = new Promise((r) => this.proc.once('exit', (code) => {
      this.done = true;
      for (const w of this.waiters.splice(0)) w();
      r(code);
    }));
    this.proc.stdout.on('data', (buf) => {
      let p;
      try { p = packet.parse(buf); } catch (e) { return; }
      if (p.confirmable) // acknowledge separate responses, as a CoAP client must
        this.write(packet.generate({ ack: true, code: '0.00', messageId: p.messageId }));
      this.inbox.push(p);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  // openssl sends whatever one read() of its stdin returns as one DTLS record: two datagrams
  // written back to back could be read together and arrive as one (the second lost). Writes
  // are therefore queued and spaced so each is read alone.
  write(buf) {
    this.chain = (this.chain || Promise.resolve()).then(() => new Promise((r) => {
      if (this.done) return r();
      this.proc.stdin.write(buf, () => setTimeout(r, 30));
    }));
  }

  send(p) {
    this.write(packet.generate(Object.assign({ messageId: this.mid++ }, p)));
  }

  // The next non-empty packet matching pred, or null when the client exits first.
  async next(pred, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((p) => p.code !== '0.00' && pred(p));
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      if (this.done) return null;
      const left = end - Date.now();
      if (left <= 0) throw new Error('dtls peer: timed out waiting for a packet');
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  close() { if (!this.done) this.proc.kill(); }
}

module.exports = { freeUdpPort, request, json, block2Option, CoapDevice, RawPeer, DtlsPeer,
  haveOpenssl, option, TOKEN_OPTION };
