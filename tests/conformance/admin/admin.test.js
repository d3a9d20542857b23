'use strict';
// The admin HTTP API and the firmware server (DESIGN §5.2, §5.3, §5.5, §7.4; REFERENCE §1.3,
// §1.4) against the real iotgw: fetch for the JSON API, raw sockets for what fetch hides
// (Content-Length limits), curl for downloads (full, Range, resumed with -C -, HEAD), and a
// small JSON-lines TCP device of our own that logs in, takes thing.ota.upgrade, downloads
// the pushed fileUrl and reports success. One gateway serves the suite; a second one checks
// the generated admin token file. Every gateway ends with SIGTERM and exit code 0.
const { describe, before, after, it } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { Gateway, until, portOpen, devicePassword } = require('../lib/gateway');

const API = '/admin-api/iot';
const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

function curl(args) {
  return new Promise((resolve) => {
    execFile('curl', ['-s', '-S', ...args], { encoding: 'buffer', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr: stderr.toString() }));
  });
}

// HTTP status and headers of a curl run (-D -o), and the body file.
async function curlFile(url, file, extra = []) {
  const hdr = `${file}.hdr`;
  const r = await curl(['-D', hdr, '-o', file, ...extra, url]);
  const head = fs.existsSync(hdr) ? fs.readFileSync(hdr, 'latin1') : '';
  // with -C - curl may write several header blocks; the last one is the answer
  const blocks = head.split(/\r\n\r\n/).filter((b) => b.startsWith('HTTP/'));
  const last = blocks.at(-1) || '';
  const status = Number((last.match(/^HTTP\/[\d.]+ (\d+)/) || [])[1]);
  const headers = {};
  for (const line of last.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { code: r.code, status, headers, stderr: r.stderr };
}

// One raw HTTP/1.1 exchange on a socket: returns { status, body } of the first response.
function rawHttp(port, text) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number((buf.match(/content-length: *(\d+)/i) || [])[1] || 0);
      if (buf.length >= end + 4 + len) {
        s.destroy();
        resolve({ status: Number(buf.split(' ')[1]), head: buf.slice(0, end),
          body: buf.slice(end + 4, end + 4 + len) });
      }
    });
    s.on('error', reject);
    s.write(text);
  });
}

// A device speaking newline-delimited JSON over the gateway's TCP adapter (DESIGN §4).
class JsonLineDevice {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const d = new JsonLineDevice();
      d.sock = net.connect(port, '127.0.0.1', () => resolve(d));
      d.sock.once('error', reject);
      d.sock.on('data', (c) => d.onData(c));
    });
  }

  constructor() { this.rest = ''; this.msgs = []; this.waiters = []; }

  onData(chunk) {
    this.rest += chunk.toString();
    let i;
    while ((i = this.rest.indexOf('\n')) >= 0) {
      const line = this.rest.slice(0, i);
      this.rest = this.rest.slice(i + 1);
      if (line.trim()) this.msgs.push(JSON.parse(line));
    }
    for (const w of this.waiters.splice(0)) w();
  }

  send(m) { this.sock.write(`${JSON.stringify(m)}\n`); }

  async next(pred, what, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.msgs.findIndex(pred);
      if (i >= 0) return this.msgs.splice(i, 1)[0];
      if (Date.now() > end) throw new Error(`device: no ${what}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 100); });
    }
  }

  async login(dev) {
    const pk = dev.productKey, dn = dev.deviceName;
    this.send({ id: 'login', method: 'auth', params: { clientId: `${pk}.${dn}`,
      username: `${dn}&${pk}`, password: devicePassword(pk, dn, dev.deviceSecret) } });
    const r = await this.next((m) => m.id === 'login' && m.code !== undefined, 'auth reply');
    assert.equal(r.code, 0, JSON.stringify(r));
  }

  close() { this.sock.destroy(); }
}

describe('admin API and firmware server', { timeout: 300000 }, () => {
  const gw = new Gateway({
    extraPorts: ['tcp', 'web'],
    adapters: (p) => [{ type: 'tcp', name: 'tcp', listen: `127.0.0.1:${p.tcp}`,
      serializer: 'json', framing: { type: 'delimiter', delimiter: '\n' } }],
  });
  let web; // a plain node HTTP server for firmware/create with an http:// fileUrl
  let prod, other, fw1, fw1Bytes;
  const devices = [];
  const tmp = (name) => path.join(gw.dir, name);
  const get = (p, q) => gw.get(`${API}/${p}`, q);
  const post = (p, b, q) => gw.post(`${API}/${p}`, b, q);
  const put = (p, b, q) => gw.req('PUT', `${API}/${p}`, { body: b, query: q });
  const status = async (method, p, opts = {}) => {
    const res = await fetch(gw.url(`${API}/${p}`, opts.query), {
      method, body: opts.body, headers: opts.headers ?? { authorization: `Bearer ${gw.token}` } });
    return { http: res.status, env: await res.json(), headers: res.headers };
  };

  before(async () => {
    await gw.start();
    await until('the TCP listener', () => portOpen(gw.ports.tcp));
    web = http.createServer((q, s) => {
      const f = tmp(q.url.slice(1));
      if (!q.url.startsWith('/fw') || !fs.existsSync(f)) { s.statusCode = 404; s.end(); return; }
      s.end(fs.readFileSync(f));
    });
    await new Promise((r) => web.listen(gw.ports.web, '127.0.0.1', r));
    prod = await gw.createProduct('admin-suite');
    other = await gw.createProduct('other-product');
    for (let i = 0; i < 4; i++) devices.push(await gw.createDevice(prod.id, `adm-${i}`));
  });

  after(async () => {
    if (web) web.close();
    const r = await gw.stop('SIGTERM');
    gw.cleanup();
    assert.deepEqual(r, { code: 0, signal: null }, `iotgw did not exit cleanly:\n${gw.log}`);
  });

  it('requires the admin token (401 with an envelope, constant-time compare)', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic abc' },
      { authorization: `Bearer ${gw.token}x` }]) {
      const r = await status('GET', 'product/page', { headers });
      assert.equal(r.http, 401);
      assert.equal(r.env.code, 401);
      assert.equal(r.env.data, null);
      assert.match(r.env.msg, /token/);
    }
    const ok = await status('GET', 'product/page');
    assert.equal(ok.http, 200);
    assert.equal(ok.env.code, 0);
    assert.equal(ok.env.msg, '');
  });

  it('answers unknown paths with 404 and wrong verbs with 405, both as envelopes', async () => {
    let r = await status('GET', 'product/nope');
    assert.equal(r.http, 404);
    assert.equal(r.env.code, 404);
    r = await status('GET', 'product/create');
    assert.equal(r.http, 405);
    assert.equal(r.env.code, 405);
    // PUT paths of the reference also take POST; GET paths take only GET
    assert.equal((await post('ota/firmware/update', { id: 999999 })).code, 1050008000);
    assert.equal((await put('ota/firmware/update', { id: 999999 })).code, 1050008000);
  });

  it('routes every path of DESIGN §7.4 (none answers 404)', async () => {
    const paths = ['product/create', 'product/get', 'product/page', 'device/create', 'device/get',
      'device/page', 'device/message/send', 'ota/firmware/upload', 'ota/firmware/create',
      'ota/firmware/update', 'ota/firmware/get', 'ota/firmware/page', 'ota/task/create',
      'ota/task/cancel', 'ota/task/get', 'ota/task/page', 'ota/task/record/get',
      'ota/task/record/page', 'ota/task/record/cancel', 'ota/task/record/get-status-statistics',
      'ota/task/record/history'];
    for (const p of paths) {
      const r = await status('GET', p);
      // GET paths: 200 (pages, statistics) or 400 (id missing); the others: 405
      assert.ok([200, 400, 405].includes(r.http), `${p}: HTTP ${r.http}`);
      assert.equal(r.env.code, r.http === 200 ? 0 : r.http, p);
    }
  });

  it('rejects malformed JSON, wrong types and missing fields with 400 naming the problem',
    async () => {
      const json = (body) => status('POST', 'device/create', { body,
        headers: { authorization: `Bearer ${gw.token}`, 'content-type': 'application/json' } });
      let r = await json('{"productId":');
      assert.equal(r.http, 400);
      assert.equal(r.env.code, 400);
      assert.match(r.env.msg, /malformed JSON/);
      r = await json('{"productId":1,"deviceName":"x"} trailing');
      assert.equal(r.env.code, 400);
      r = await json('[1,2]');
      assert.match(r.env.msg, /JSON object/);
      r = await json(JSON.stringify({ productId: 'abc', deviceName: 'x' }));
      assert.equal(r.http, 400);
      assert.match(r.env.msg, /^productId: /);
      r = await json(JSON.stringify({ productId: prod.id }));
      assert.match(r.env.msg, /^deviceName: required/);
      r = await json(JSON.stringify({ productId: prod.id, deviceName: 'a/b' }));
      assert.match(r.env.msg, /^deviceName: /);
      r = await json(JSON.stringify({ productId: prod.id, deviceName: 'x'.repeat(65) }));
      assert.match(r.env.msg, /^deviceName: longer than 64/);
      r = await status('GET', 'ota/task/record/page', { query: { status: 7 } });
      assert.match(r.env.msg, /^status: /);
    });

  it('caps request bodies before reading them (413), needs a Content-Length (411)', async () => {
    const auth = `Authorization: Bearer ${gw.token}\r\n`;
    let r = await rawHttp(gw.ports.admin, `POST ${API}/device/create HTTP/1.1\r\nHost: x\r\n${auth}` +
      'Content-Length: 70000\r\n\r\n');
    assert.equal(r.status, 413);
    assert.equal(JSON.parse(r.body).code, 413);
    r = await rawHttp(gw.ports.admin, `POST ${API}/ota/firmware/upload?productId=${prod.id}` +
      `&name=n&version=huge HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 300000000\r\n\r\n`);
    assert.equal(r.status, 413);
    r = await rawHttp(gw.ports.admin, `POST ${API}/device/create HTTP/1.1\r\nHost: x\r\n${auth}` +
      'Transfer-Encoding: chunked\r\n\r\n');
    assert.equal(r.status, 411);
    // ota/task/create takes long deviceIds lists (beyond the 64 KiB of other JSON bodies)
    const ids = Array.from({ length: 20000 }, (_, i) => 900000 + i);
    const big = await post('ota/task/create', { name: 'big', firmwareId: 987654, deviceScope: 2,
      deviceIds: ids });
    assert.ok(JSON.stringify(ids).length > 65536);
    assert.equal(big.code, 1050008000);
  });

  it('creates, gets and pages products (duplicate productKey 1050001001)', async () => {
    const p = await gw.ok(post('product/create', { name: 'keyed', productKey: 'pkAdmin01' }));
    assert.equal(p.productKey, 'pkAdmin01');
    assert.match(p.productSecret, /^[0-9a-f]{32}$/);
    assert.equal(typeof p.id, 'number');
    assert.equal((await post('product/create', { name: 'again', productKey: 'pkAdmin01' })).code,
      1050001001);
    const g = await gw.ok(get('product/get', { id: p.id }));
    assert.equal(g.name, 'keyed');
    assert.equal((await get('product/get', { id: 987654 })).data, null);
    const pg = await gw.ok(get('product/page', { pageNo: 1, pageSize: 200 }));
    assert.ok(pg.total >= 3);
    assert.ok(pg.list.some((x) => x.id === p.id));
  });

  it('creates devices, gets them with state and properties, pages them', async () => {
    const d = devices[0];
    assert.equal(d.productKey, prod.productKey);
    assert.match(d.deviceSecret, /^[0-9a-f]{32}$/);
    assert.equal((await post('device/create', { productId: prod.id, deviceName: 'adm-0' })).code,
      1050003001);
    assert.equal((await post('device/create', { productId: 987654, deviceName: 'z' })).code,
      1050001000);
    const g = await gw.ok(get('device/get', { id: d.id }));
    assert.equal(g.deviceName, 'adm-0');
    assert.equal(g.state, 0);
    assert.equal(g.firmwareId, null);
    assert.deepEqual(g.properties, {});
    assert.equal(g.deviceSecret, d.deviceSecret);
    const byKey = await gw.ok(get('device/get', { productKey: d.productKey, deviceName: 'adm-0' }));
    assert.equal(byKey.id, d.id);
  });

  it('pages with pageNo/pageSize and a total, without overlap', async () => {
    const p = await gw.ok(post('product/create', { name: 'paging' }));
    for (let i = 0; i < 23; i++)
      await gw.createDevice(p.id, `pg-${String(i).padStart(2, '0')}`);
    const seen = new Set();
    for (const [no, n] of [[1, 10], [2, 10], [3, 3], [4, 0]]) {
      const pg = await gw.ok(get('device/page', { productId: p.id, pageNo: no, pageSize: 10 }));
      assert.equal(pg.total, 23);
      assert.equal(pg.list.length, n);
      for (const d of pg.list) {
        assert.equal(d.productId, p.id);
        assert.ok(!seen.has(d.id));
        seen.add(d.id);
      }
    }
    assert.equal(seen.size, 23);
    for (const bad of [{ pageSize: 0 }, { pageSize: 201 }, { pageNo: 0 }, { pageNo: 'x' }]) {
      const r = await status('GET', 'device/page', { query: bad });
      assert.equal(r.http, 400);
      assert.match(r.env.msg, /^page(No|Size): /);
    }
  });

  it('uploads firmware: size and digests computed by the gateway, rules 1050008001/1050001000',
    async () => {
      fw1Bytes = crypto.randomBytes(3 * 1024 * 1024 + 17);
      fw1 = await gw.uploadFirmware(prod.id, '1.0.1', fw1Bytes);
      assert.equal(fw1.version, '1.0.1');
      assert.equal(fw1.fileSize, fw1Bytes.length);
      assert.equal(fw1.fileDigestAlgorithm, 'MD5');
      assert.equal(fw1.fileDigestValue, md5(fw1Bytes));
      assert.equal(fw1.sha256, sha256(fw1Bytes));
      assert.equal(fw1.fileUrl, `http://127.0.0.1:${gw.ports.admin}/ota/firmware/${fw1.id}`);
      // stored content-addressed
      assert.ok(fs.existsSync(path.join(gw.dir, 'data', 'firmware', fw1.sha256)));
      const up = (q, raw) => gw.req('POST', `${API}/ota/firmware/upload`, { query: q, raw });
      let r = await up({ productId: prod.id, name: 'dup', version: '1.0.1' }, Buffer.from('x'));
      assert.equal(r.code, 1050008001);
      r = await up({ productId: 987654, name: 'nop', version: '9' }, Buffer.from('y'));
      assert.equal(r.code, 1050001000);
      r = await up({ productId: prod.id, version: '9' }, Buffer.from('z'));
      assert.equal(r.code, 400);
      assert.match(r.msg, /^name: /);
      r = await up({ productId: prod.id, name: 'empty', version: '9' }, Buffer.alloc(0));
      assert.equal(r.code, 400);
      // a failed create leaves no file behind (only fw1's image is there)
      const files = fs.readdirSync(path.join(gw.dir, 'data', 'firmware'));
      assert.deepEqual(files, [fw1.sha256]);
    });

  it('creates firmware from a file:// or http:// fileUrl, gets, pages and updates it',
    async () => {
      const bytes = crypto.randomBytes(200000);
      fs.writeFileSync(tmp('fw-src.bin'), bytes);
      let id = await gw.ok(post('ota/firmware/create', { name: 'from file', version: '2.0.0',
        productId: prod.id, fileUrl: `file://${tmp('fw-src.bin')}` }));
      let f = await gw.ok(get('ota/firmware/get', { id }));
      assert.equal(f.fileSize, bytes.length);
      assert.equal(f.fileDigestValue, md5(bytes));
      assert.equal(f.productName, 'admin-suite');
      id = await gw.ok(post('ota/firmware/create', { name: 'from http', version: '2.0.1',
        productId: prod.id, fileUrl: `http://127.0.0.1:${gw.ports.web}/fw-src.bin` }));
      f = await gw.ok(get('ota/firmware/get', { id }));
      assert.equal(f.sha256, sha256(bytes));
      let r = await post('ota/firmware/create', { name: 'x', version: '2.0.2', productId: prod.id,
        fileUrl: `http://127.0.0.1:${gw.ports.web}/fw-missing.bin` });
      assert.equal(r.code, 400);
      assert.match(r.msg, /^fileUrl: .*404/);
      r = await post('ota/firmware/create', { name: 'x', version: '2.0.1', productId: prod.id,
        fileUrl: 'ftp://example/x' });
      assert.equal(r.code, 1050008001); // the duplicate is found before anything is fetched
      r = await post('ota/firmware/create', { name: 'x', version: '2.0.3', productId: prod.id,
        fileUrl: 'ftp://example/x' });
      assert.equal(r.code, 400);
      // update: name and description only
      assert.equal(await gw.ok(put('ota/firmware/update', { id, name: 'renamed',
        description: 'new text' })), true);
      f = await gw.ok(get('ota/firmware/get', { id }));
      assert.equal(f.name, 'renamed');
      assert.equal(f.description, 'new text');
      assert.equal(f.version, '2.0.1');
      assert.equal((await put('ota/firmware/update', { id: 987654, name: 'x' })).code, 1050008000);
      // page filtered by productId, newest first
      const pg = await gw.ok(get('ota/firmware/page', { productId: prod.id, pageSize: 10 }));
      assert.equal(pg.total, 3);
      assert.deepEqual(pg.list.map((x) => x.version), ['2.0.1', '2.0.0', '1.0.1']);
      assert.equal((await gw.ok(get('ota/firmware/page', { productId: other.id }))).total, 0);
      assert.equal((await get('ota/firmware/get', { id: 987654 })).data, null);
    });

  it('serves firmware per record: full, Range, resumed, HEAD, 416, bad token 403', async () => {
    const dev = devices[1];
    const taskId = await gw.ok(post('ota/task/create', { name: 'download', firmwareId: fw1.id,
      deviceScope: 2, deviceIds: [dev.id] }));
    const recs = await gw.ok(get('ota/task/record/page', { taskId }));
    assert.equal(recs.total, 1);
    const rec = await gw.ok(get('ota/task/record/get', { id: recs.list[0].id }));
    const url = rec.fileUrl;
    assert.match(url, new RegExp(`/ota/firmware/${fw1.id}/${rec.id}\\?token=[0-9a-f]{64}$`));
    // the token is HMAC-SHA256(download key, "fid.rid") with the key kept in download.key
    const key = Buffer.from(fs.readFileSync(path.join(gw.dir, 'data', 'download.key'), 'utf8')
      .trim(), 'hex');
    assert.equal(key.length, 32);
    const token = crypto.createHmac('sha256', key).update(`${fw1.id}.${rec.id}`).digest('hex');
    assert.ok(url.endsWith(token));
    assert.equal(fs.statSync(path.join(gw.dir, 'data', 'download.key')).mode & 0o777, 0o600);

    let r = await curlFile(url, tmp('full.bin'));
    assert.equal(r.status, 200);
    assert.equal(r.headers['accept-ranges'], 'bytes');
    let got = fs.readFileSync(tmp('full.bin'));
    assert.equal(md5(got), fw1.fileDigestValue);
    assert.equal(sha256(got), fw1.sha256);

    r = await curlFile(url, tmp('range.bin'), ['-r', '1000-1999']);
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 1000-1999/${fw1Bytes.length}`);
    assert.deepEqual(fs.readFileSync(tmp('range.bin')), fw1Bytes.subarray(1000, 2000));
    r = await curlFile(url, tmp('suffix.bin'), ['-r', '-100']);
    assert.equal(r.status, 206);
    assert.deepEqual(fs.readFileSync(tmp('suffix.bin')), fw1Bytes.subarray(-100));

    // resumed download: a partial file completed by curl -C -
    fs.writeFileSync(tmp('resume.bin'), fw1Bytes.subarray(0, 1234567));
    r = await curlFile(url, tmp('resume.bin'), ['-C', '-']);
    assert.equal(r.status, 206);
    got = fs.readFileSync(tmp('resume.bin'));
    assert.equal(md5(got), fw1.fileDigestValue);
    assert.equal(sha256(got), fw1.sha256);

    r = await curlFile(url, tmp('head.bin'), ['-I']);
    assert.equal(r.status, 200);
    assert.equal(Number(r.headers['content-length']), fw1Bytes.length);
    r = await curlFile(url, tmp('416.bin'), ['-r', `${fw1Bytes.length}-`]);
    assert.equal(r.status, 416);
    assert.equal(r.headers['content-range'], `bytes */${fw1Bytes.length}`);

    const bad = url.replace(/token=[0-9a-f]{64}$/, `token=${'0'.repeat(64)}`);
    r = await curlFile(bad, tmp('bad.bin'));
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(fs.readFileSync(tmp('bad.bin'))).code, 403);
    r = await curlFile(url.replace(/\?.*$/, ''), tmp('none.bin'));
    assert.equal(r.status, 403);
    // another record's token does not open this record's URL
    r = await curlFile(url.replace(`/${rec.id}?`, `/${rec.id + 1}?`), tmp('other.bin'));
    assert.equal(r.status, 403);
    // the operator's URL (fileUrl of the firmware) takes the admin token
    r = await curlFile(fw1.fileUrl, tmp('adm.bin'), ['-H', `Authorization: Bearer ${gw.token}`]);
    assert.equal(r.status, 200);
    assert.equal(md5(fs.readFileSync(tmp('adm.bin'))), fw1.fileDigestValue);
    r = await curlFile(fw1.fileUrl, tmp('adm401.bin'));
    assert.equal(r.status, 401);
    assert.equal(await gw.ok(post('ota/task/cancel', undefined, { id: taskId })), true);
  });

  it('applies the task rules: 1050008000/101/102/103/104/105 and 1050003000', async () => {
    const [d0, d1, d2, d3] = devices;
    const create = (body) => post('ota/task/create', { firmwareId: fw1.id, deviceScope: 2, ...body });
    assert.equal((await post('ota/task/create', { name: 'nofw', firmwareId: 987654,
      deviceScope: 1 })).code, 1050008000);
    const t1 = await gw.ok(create({ name: 'rules', deviceIds: [d2.id], maxConcurrent: 5,
      pushTimeoutS: 600, abortFailureRatio: 0.5 }));
    const task = await gw.ok(get('ota/task/get', { id: t1 }));
    assert.equal(task.status, 10);
    assert.equal(task.deviceScope, 2);
    assert.equal(task.deviceTotalCount, 1);
    assert.equal(task.deviceSuccessCount, 0);
    assert.equal(task.maxConcurrent, 5);
    assert.equal(task.pushTimeoutS, 600);
    assert.equal(task.abortFailureRatio, 0.5);
    assert.equal((await create({ name: 'rules', deviceIds: [d3.id] })).code, 1050008101);
    assert.equal((await create({ name: 'busy', deviceIds: [d2.id] })).code, 1050008105);
    assert.equal((await create({ name: 'empty', deviceIds: [] })).code, 1050008103);
    assert.equal((await create({ name: 'ghost', deviceIds: [987654] })).code, 1050003000);
    const stranger = await gw.createDevice(other.id, 'stranger');
    assert.equal((await create({ name: 'foreign', deviceIds: [stranger.id] })).code, 1050003000);
    let r = await create({ name: 'bad', deviceIds: [d3.id], abortFailureRatio: 2 });
    assert.equal(r.code, 400);
    assert.match(r.msg, /^abortFailureRatio: /);

    // 102: a device that reported success is on the firmware now
    const dev = await JsonLineDevice.connect(gw.ports.tcp);
    try {
      await dev.login(d0);
      const t2 = await gw.ok(create({ name: 'to-success', deviceIds: [d0.id] }));
      const up = await dev.next((m) => m.method === 'thing.ota.upgrade', 'thing.ota.upgrade');
      assert.equal(up.params.version, '1.0.1');
      assert.equal(up.params.fileDigestValue, fw1.fileDigestValue);
      // the pushed fileUrl downloads the image
      const dl = await curlFile(up.params.fileUrl, tmp('pushed.bin'));
      assert.equal(dl.status, 200);
      assert.equal(md5(fs.readFileSync(tmp('pushed.bin'))), fw1.fileDigestValue);
      dev.send({ id: 'p1', method: 'thing.ota.progress',
        params: { version: '1.0.1', status: 30, progress: 100, description: 'done' } });
      await until('the task to end', async () =>
        (await gw.ok(get('ota/task/get', { id: t2 }))).status === 20);
      const ended = await gw.ok(get('ota/task/get', { id: t2 }));
      assert.equal(ended.deviceSuccessCount, 1);
      assert.equal((await gw.ok(get('device/get', { id: d0.id }))).firmwareId, fw1.id);
      assert.equal((await create({ name: 'again', deviceIds: [d0.id] })).code, 1050008102);
      const st = await gw.ok(get('ota/task/record/get-status-statistics', { taskId: t2 }));
      assert.deepEqual(st, { 0: 0, 10: 0, 20: 0, 30: 1, 40: 0, 50: 0 });
      const rec = (await gw.ok(get('ota/task/record/page', { taskId: t2 }))).list[0];
      const hist = await gw.ok(get('ota/task/record/history', { id: rec.id }));
      assert.equal(hist.at(-1).toStatus, 30);
    } finally {
      dev.close();
    }

    // 104: cancel twice
    assert.equal(await gw.ok(post('ota/task/cancel', undefined, { id: t1 })), true);
    assert.equal((await gw.ok(get('ota/task/get', { id: t1 }))).status, 30);
    assert.equal((await post('ota/task/cancel', undefined, { id: t1 })).code, 1050008104);
    assert.equal((await post('ota/task/cancel', { id: 987654 })).code, 1050008100);
    // scope 1 (all devices of the product): d0 is on the firmware already and is left out
    const t3 = await gw.ok(post('ota/task/create', { name: 'all', firmwareId: fw1.id,
      deviceScope: 1 }));
    const all = await gw.ok(get('ota/task/record/page', { taskId: t3, pageSize: 200 }));
    assert.deepEqual(all.list.map((x) => x.deviceId).sort((a, b) => a - b),
      [d1.id, d2.id, d3.id]);
    assert.equal(await gw.ok(post('ota/task/cancel', { id: t3 })), true);
    // task page filtered by firmwareId, newest first
    const tp = await gw.ok(get('ota/task/page', { firmwareId: fw1.id, pageSize: 200 }));
    assert.equal(tp.list[0].id, t3);
    assert.ok(tp.list.every((t) => t.firmwareId === fw1.id));
  });

  it('cancels records (1050008200/201), ends the task, keeps the history', async () => {
    const [, d1, d2] = devices;
    const t = await gw.ok(post('ota/task/create', { name: 'records', firmwareId: fw1.id,
      deviceScope: 2, deviceIds: [d1.id, d2.id] }));
    const pg = await gw.ok(get('ota/task/record/page', { taskId: t }));
    assert.equal(pg.total, 2);
    for (const row of pg.list) {
      assert.equal(row.status, 0);
      assert.equal(row.fromFirmwareVersion, null);
      assert.ok(['adm-1', 'adm-2'].includes(row.deviceName));
    }
    const [r1, r2] = pg.list;
    assert.equal(await gw.ok(put('ota/task/record/cancel', undefined, { id: r1.id })), true);
    assert.equal((await put('ota/task/record/cancel', undefined, { id: r1.id })).code, 1050008201);
    assert.equal((await put('ota/task/record/cancel', undefined, { id: 987654 })).code,
      1050008200);
    const pending = await gw.ok(get('ota/task/record/page', { taskId: t, status: 0 }));
    assert.deepEqual(pending.list.map((x) => x.id), [r2.id]);
    assert.equal((await gw.ok(get('ota/task/get', { id: t }))).status, 10);
    assert.equal(await gw.ok(post('ota/task/record/cancel', { id: r2.id })), true);
    assert.equal((await gw.ok(get('ota/task/get', { id: t }))).status, 20);
    const hist = await gw.ok(get('ota/task/record/history', { id: r1.id }));
    assert.equal(hist.length, 1);
    assert.equal(hist[0].fromStatus, 0);
    assert.equal(hist[0].toStatus, 50);
    assert.match(hist[0].cause, /cancelled by administrator/);
    assert.equal((await get('ota/task/record/history', { id: 987654 })).code, 1050008200);
    const st = await gw.ok(get('ota/task/record/get-status-statistics', { taskId: t }));
    assert.deepEqual(st, { 0: 0, 10: 0, 20: 0, 30: 0, 40: 0, 50: 2 });
    assert.equal((await get('ota/task/record/get', { id: 987654 })).data, null);
  });

  it('sends downstream requests through device/message/send', async () => {
    const d3 = devices[3];
    let r = await post('device/message/send', { deviceId: d3.id, method: 'thing.property.set',
      params: { on: true }, timeoutMs: 1000 });
    assert.equal(r.code, 1050003007);
    r = await post('device/message/send', { deviceId: d3.id, method: 'thing.property.post',
      params: {} });
    assert.equal(r.code, 400);
    assert.match(r.msg, /^method: /);
    const dev = await JsonLineDevice.connect(gw.ports.tcp);
    try {
      await dev.login(d3);
      await until('the device online', async () =>
        (await gw.ok(get('device/get', { id: d3.id }))).online === true);
      const call = post('device/message/send', { deviceId: d3.id, method: 'thing.property.set',
        params: { on: true }, timeoutMs: 10000 });
      const m = await dev.next((x) => x.method === 'thing.property.set', 'thing.property.set');
      assert.deepEqual(m.params, { on: true });
      dev.send({ id: m.id, method: 'thing.property.set', code: 0, data: { on: true } });
      r = await call;
      assert.equal(r.code, 0, JSON.stringify(r));
      assert.equal(r.data.code, 0);
      assert.deepEqual(r.data.data, { on: true });
      // no answer: a timeout code, HTTP 504
      const t0 = Date.now();
      const to = await status('POST', 'device/message/send', { body: JSON.stringify({
        deviceId: d3.id, method: 'thing.service.invoke', params: { identifier: 'x' },
        timeoutMs: 300 }) });
      assert.equal(to.http, 504);
      assert.equal(to.env.code, 500);
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      dev.close();
    }
  });
});

describe('generated admin token and firmware signing', { timeout: 120000 }, () => {
  // token "" in the config: generated into <data_dir>/admin.token (0600) and kept on restart;
  // firmware.sign_key: uploads are signed (ECDSA P-256 over the SHA-256, base64 DER)
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  class SigningGateway extends Gateway {
    async spawn() {
      const cfg = JSON.parse(fs.readFileSync(this.configPath, 'utf8'));
      this.keyPath = path.join(this.dir, 'sign.pem');
      fs.writeFileSync(this.keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      cfg.firmware = { sign_key: this.signKey ?? this.keyPath };
      fs.writeFileSync(this.configPath, JSON.stringify(cfg, null, 2));
      return super.spawn();
    }

    async req(...args) {
      if (!this.token) {
        try {
          this.token = fs.readFileSync(path.join(this.dir, 'data', 'admin.token'), 'utf8').trim();
        } catch (e) { /* not written yet */ }
      }
      return super.req(...args);
    }
  }
  const gw = new SigningGateway({ adapters: () => [] });
  gw.token = '';

  after(() => gw.cleanup());

  it('generates the token once (0600), logs where it is, reuses it after a restart',
    async () => {
      await gw.start();
      const file = path.join(gw.dir, 'data', 'admin.token');
      const first = fs.readFileSync(file, 'utf8').trim();
      assert.match(first, /^[0-9a-f]{64}$/);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.ok(gw.log.includes(`admin token (Authorization: Bearer) is in ${file}`), gw.log);
      assert.equal((await gw.ok(gw.get(`${API}/product/page`))).total, 0);

      // signing: the signature verifies with the public key over the image's SHA-256
      const p = await gw.createProduct('signed');
      const bytes = crypto.randomBytes(100000);
      const fw = await gw.uploadFirmware(p.id, '1.0.0', bytes);
      assert.equal(typeof fw.sign, 'string');
      assert.ok(crypto.verify('sha256', bytes, publicKey, Buffer.from(fw.sign, 'base64')));
      assert.ok(!crypto.verify('sha256', Buffer.concat([bytes, Buffer.from('x')]), publicKey,
        Buffer.from(fw.sign, 'base64')));

      assert.deepEqual(await gw.stop(), { code: 0, signal: null });
      await gw.spawn();
      assert.equal(fs.readFileSync(file, 'utf8').trim(), first);
      assert.equal((await gw.get(`${API}/product/page`)).code, 0);
      assert.deepEqual(await gw.stop(), { code: 0, signal: null });
    });

  it('refuses to start with an unusable firmware.sign_key, naming it', async () => {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const keys = {
      'missing.pem': null,
      'garbage.pem': 'not a key\n',
      'rsa.pem': rsa.export({ type: 'pkcs8', format: 'pem' }),
      'p384.pem': crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey
        .export({ type: 'sec1', format: 'pem' }),
    };
    for (const [name, text] of Object.entries(keys)) {
      const keyPath = path.join(gw.dir, name);
      if (text !== null) fs.writeFileSync(keyPath, text);
      const cfg = JSON.parse(fs.readFileSync(gw.configPath, 'utf8'));
      cfg.firmware = { sign_key: keyPath };
      const bad = path.join(gw.dir, 'bad-key.json');
      fs.writeFileSync(bad, JSON.stringify(cfg));
      const r = await new Promise((resolve) => execFile(gw.bin, ['-c', bad], { timeout: 20000 },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr })));
      assert.ok(typeof r.code === 'number' && r.code !== 0, `${name}: ${JSON.stringify(r)}`);
      assert.match(r.out, new RegExp(`firmware\\.sign_key: .*${name}`), name);
    }
  });
});
