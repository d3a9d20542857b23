'use strict';
// Starts the real iotgw for a conformance test: a temp data dir, a config with free loopback
// ports, readiness by polling (never a fixed sleep), an admin client, and a clean stop that
// checks the exit code. Shared by the suites under tests/conformance/.
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// A free TCP port on 127.0.0.1 (bound then released; the gateway binds it right after).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function until(what, fn, timeoutMs = 15000, stepMs = 50) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// The device password of DESIGN §4, computed independently of the gateway's C code.
function devicePassword(pk, dn, secret) {
  return crypto.createHmac('sha256', secret)
    .update(`clientId${pk}.${dn}deviceName${dn}deviceSecret${secret}productKey${pk}`)
    .digest('hex');
}

class Gateway {
  constructor(opts = {}) {
    this.bin = process.env.GW_IOTGW;
    if (!this.bin) throw new Error('GW_IOTGW is not set');
    this.opts = opts;
    this.token = 'conformance-admin-token';
    this.log = '';
  }

  // adapters: a function (ports) => [adapter configs]; ports has admin, mqtt, ... allocated.
  async start() {
    const base = process.env.GW_TEST_TMP || os.tmpdir();
    fs.mkdirSync(base, { recursive: true });
    this.dir = fs.mkdtempSync(path.join(base, 'gw-'));
    // mkdtemp makes it 0700; a broker that dropped to user mosquitto must traverse it.
    fs.chmodSync(this.dir, 0o755);
    this.ports = { admin: await freePort(), mqtt: await freePort() };
    for (const name of this.opts.extraPorts || []) this.ports[name] = await freePort();
    const adapters = this.opts.adapters ? this.opts.adapters(this.ports) : [
      { type: 'mqtt', name: 'mqtt', broker: 'spawn', listen: `127.0.0.1:${this.ports.mqtt}` },
    ];
    const config = {
      data_dir: path.join(this.dir, 'data'),
      log_level: 'info',
      admin: { listen: `127.0.0.1:${this.ports.admin}`, token: this.token },
      ota: Object.assign({ tick_ms: 100 }, this.opts.ota || {}),
      firmware: this.opts.firmware || {},
      adapters,
    };
    this.configPath = path.join(this.dir, 'iotgw.json');
    fs.writeFileSync(this.configPath, JSON.stringify(config, null, 2));
    await this.spawn();
  }

  async spawn() {
    this.exited = null;
    this.proc = spawn(this.bin, ['-c', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d) => { this.log += d.toString(); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    this.exitPromise = new Promise((resolve) => this.proc.once('exit', (code, signal) => {
      this.exited = { code, signal };
      resolve(this.exited);
    }));
    await until('the admin API', async () => {
      if (this.exited) throw new Error(`iotgw exited early (${JSON.stringify(this.exited)}):\n${this.log}`);
      if (!(await portOpen(this.ports.admin))) return false;
      const r = await this.get('/admin-api/iot/product/page', { pageNo: 1, pageSize: 1 });
      return r.code === 0;
    });
    if (!this.opts.adapters || this.opts.waitMqtt)
      await until('the MQTT broker', () => portOpen(this.ports.mqtt));
  }

  url(p, query) {
    const u = new URL(`http://127.0.0.1:${this.ports.admin}${p}`);
    for (const [k, v] of Object.entries(query || {})) u.searchParams.set(k, String(v));
    return u;
  }

  async req(method, p, { query, body, raw } = {}) {
    const headers = { authorization: `Bearer ${this.token}` };
    let payload;
    if (raw !== undefined) {
      payload = raw;
      headers['content-type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(this.url(p, query), { method, headers, body: payload });
    const text = await res.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`${method} ${p}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
    }
  }

  get(p, query) { return this.req('GET', p, { query }); }
  post(p, body, query) { return this.req('POST', p, { body, query }); }

  // Admin helpers that fail loudly when the envelope says so.
  async ok(promise) {
    const r = await promise;
    if (r.code !== 0) throw new Error(`admin error ${r.code}: ${r.msg}`);
    return r.data;
  }

  async createProduct(name) {
    return this.ok(this.post('/admin-api/iot/product/create', { name }));
  }

  async createDevice(productId, deviceName) {
    return this.ok(this.post('/admin-api/iot/device/create', { productId, deviceName }));
  }

  async uploadFirmware(productId, version, bytes) {
    return this.ok(this.req('POST', '/admin-api/iot/ota/firmware/upload', {
      query: { productId, name: `fw ${version}`, version, description: 'conformance' },
      raw: bytes,
    }));
  }

  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.exited) return this.exited;
    this.proc.kill(signal);
    const killer = setTimeout(() => this.proc.kill('SIGKILL'), 20000);
    const r = await this.exitPromise;
    clearTimeout(killer);
    return r;
  }

  // Stops the gateway cleanly, rewrites its config with adapters(ports) (same data dir and
  // ports; names in opts.extraPorts keep theirs) and starts it again. For adapters whose
  // config names devices that must be provisioned through the admin API first (Modbus).
  async restartWith(adapters) {
    const r = await this.stop();
    const config = JSON.parse(fs.readFileSync(this.configPath, 'utf8'));
    config.adapters = adapters(this.ports);
    fs.writeFileSync(this.configPath, JSON.stringify(config, null, 2));
    await this.spawn();
    return r;
  }

  cleanup() {
    if (this.dir && !process.env.GW_KEEP_TMP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { Gateway, freePort, until, portOpen, devicePassword };
