'use strict';
// Issue 5 failure cases on one gateway running every device protocol at once: garbage bytes
// and half-open connections on each listener are a problem for that session only. After
// each attack a well-behaved device of the same protocol still logs in and is answered, and
// the gateway ends with a clean SIGTERM (exit code 0; under ASan: no leak, no error).
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const dgram = require('node:dgram');
const net = require('node:net');
const mqtt = require('mqtt');
const WebSocket = require('ws');
const { Gateway, until, portOpen, devicePassword } = require('../lib/gateway');
const { TcpDevice, UdpDevice } = require('../tcp_udp/wire');
const { freeUdpPort, request } = require('../coap/coap_device');

const garbage = (n) => {
  const b = crypto.randomBytes(n);
  for (let i = 0; i < n; i += 97) b[i] = 0x0a; // some newlines, so a delimiter framer cuts it
  return b;
};

// Writes bytes on a raw TCP connection and resolves when the peer closes it or after ms.
function rawTcp(port, bytes, ms = 3000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const done = (how) => { clearTimeout(t); s.destroy(); resolve(how); };
    const t = setTimeout(() => done('open'), ms);
    s.on('close', () => done('closed'));
    // a reset is the peer closing on unread bytes; only a refused connection is an error
    s.on('error', (e) => done(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'closed' : 'error'));
    s.on('data', () => {});
  });
}

function sendUdp(port, bytes) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.send(bytes, port, '127.0.0.1', () => { s.close(); resolve(); });
  });
}

test('garbage and half-open connections on every protocol disturb nobody else',
  { timeout: 120000 }, async (t) => {
    const coapPort = await freeUdpPort();
    const udpPort = await freeUdpPort();
    const gw = new Gateway({
      extraPorts: ['tcp', 'ws', 'http'], waitMqtt: true,
      adapters: (p) => [
        { type: 'mqtt', name: 'mqtt', listen: `127.0.0.1:${p.mqtt}` },
        { type: 'tcp', name: 'tcp', listen: `127.0.0.1:${p.tcp}`, idle_timeout_s: 2 },
        { type: 'udp', name: 'udp', listen: `127.0.0.1:${udpPort}` },
        { type: 'websocket', name: 'ws', listen: `127.0.0.1:${p.ws}` },
        { type: 'http', name: 'http', listen: `127.0.0.1:${p.http}` },
        { type: 'coap', name: 'coap', listen: `127.0.0.1:${coapPort}` },
      ],
    });
    t.after(async () => { await gw.stop('SIGKILL'); gw.cleanup(); });
    await gw.start();
    for (const name of ['tcp', 'ws', 'http']) await until(name, () => portOpen(gw.ports[name]));
    const prod = await gw.createProduct('robust');
    const dev = await gw.createDevice(prod.id, 'good');
    const pk = dev.productKey, dn = 'good';
    const auth = { clientId: `${pk}.${dn}`, username: `${dn}&${pk}`,
      password: devicePassword(pk, dn, dev.deviceSecret) };
    const post = (id) => ({ id, method: 'thing.property.post', params: { v: Number(id) } });

    // TCP: a half-open connection (a frame never finished) and a stream of garbage.
    const halfOpen = await TcpDevice.connect(gw.ports.tcp);
    halfOpen.sendRaw(Buffer.from('{"id":"1","method":"auth","params":{"user'));
    assert.notEqual(await rawTcp(gw.ports.tcp, garbage(8192)), 'error');
    const tcp = await TcpDevice.connect(gw.ports.tcp);
    assert.equal((await tcp.request({ id: '1', method: 'auth', params: auth })).code, 0);
    assert.equal((await tcp.request(post('2'))).code, 0);
    await halfOpen.waitClosed(15000); // the idle timeout ends the half-open one
    tcp.close();

    // UDP: garbage datagrams, then a normal login and post.
    for (let i = 0; i < 20; i++) await sendUdp(udpPort, garbage(1 + (i * 37) % 1400));
    const udp = await UdpDevice.open(udpPort);
    const login = await udp.request({ id: '1', method: 'auth', params: auth });
    assert.equal(login.code, 0);
    const r = await udp.request({ token: login.data.token, body: post('3') });
    assert.equal(r.code, 0);
    udp.close();

    // WebSocket: raw garbage instead of an HTTP upgrade, and a client sending garbage frames.
    assert.notEqual(await rawTcp(gw.ports.ws, garbage(4096)), 'error');
    const bad = new WebSocket(`ws://127.0.0.1:${gw.ports.ws}/ws`);
    await new Promise((res, rej) => { bad.once('open', res); bad.once('error', rej); });
    bad.send(garbage(3000));
    // The gateway answers (401, bad frame) or closes; either way only this session is hit.
    await new Promise((res) => {
      const timer = setTimeout(res, 3000);
      bad.once('close', () => { clearTimeout(timer); res(); });
      bad.once('message', () => { clearTimeout(timer); res(); });
    });
    bad.terminate();
    const ws = new WebSocket(`ws://127.0.0.1:${gw.ports.ws}/ws`);
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    const wsReply = (id) => new Promise((res) => ws.on('message', (m) => {
      const j = JSON.parse(m.toString());
      if (j.id === id) res(j);
    }));
    let pending = wsReply('1');
    ws.send(JSON.stringify({ id: '1', method: 'auth', params: auth }));
    assert.equal((await pending).code, 0);
    pending = wsReply('4');
    ws.send(JSON.stringify(post('4')));
    assert.equal((await pending).code, 0);
    ws.close();

    // HTTP devices: garbage instead of a request, a request that stops half way.
    assert.notEqual(await rawTcp(gw.ports.http, garbage(4096)), 'error');
    const partial = net.connect(gw.ports.http, '127.0.0.1',
      () => partial.write('POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"cli'));
    partial.on('error', () => {});
    const res = await fetch(`http://127.0.0.1:${gw.ports.http}/auth`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(auth) });
    const tok = (await res.json()).data.token;
    const res2 = await fetch(`http://127.0.0.1:${gw.ports.http}/topic/sys/${pk}/${dn}/thing/property/post`,
      { method: 'POST', headers: { authorization: tok }, body: JSON.stringify(post('5')) });
    assert.equal((await res2.json()).code, 0);
    partial.destroy();

    // CoAP: garbage datagrams, then a normal auth.
    for (let i = 0; i < 20; i++) await sendUdp(coapPort, garbage(1 + (i * 53) % 1000));
    const cres = await request(coapPort, { method: 'POST', path: '/auth', body: auth });
    assert.equal(cres.code, '2.05');
    assert.equal(JSON.parse(cres.payload.toString()).code, 0);

    // MQTT: garbage on the broker port, then a real device publishes and is answered.
    assert.notEqual(await rawTcp(gw.ports.mqtt, garbage(4096)), 'error');
    const m = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`,
      { clientId: auth.clientId, username: auth.username, password: auth.password, reconnectPeriod: 0 });
    const got = new Promise((res) => m.on('message', (tp, pl) => res(JSON.parse(pl.toString()))));
    await m.subscribeAsync(`/sys/${pk}/${dn}/thing/property/post_reply`, { qos: 1 });
    await m.publishAsync(`/sys/${pk}/${dn}/thing/property/post`, JSON.stringify(post('6')), { qos: 1 });
    assert.equal((await got).code, 0);
    m.end(true);

    // Every post landed, in order of arrival.
    const info = await gw.ok(gw.get('/admin-api/iot/device/get', { id: dev.id }));
    assert.equal(info.properties.v, 6);
    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log);
  });
