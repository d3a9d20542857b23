'use strict';
// Issue 7 smoke run: the real iotgw with its device adapters (MQTT through the spawned
// broker, TCP, UDP, WebSocket, HTTP, CoAP) and iotgw-sim driving a few devices per protocol
// through a full upgrade (provisioning through the admin API, login, properties, push,
// download over HTTP or CoAP Block2 with size, MD5 and SHA-256 checks, progress, success or
// failure as the behaviour mix says, mid-download drops resumed with Range or Block2, a
// silent device failed by the push timeout). The simulator's own checks (nothing lost, nothing left
// active, counts as the mix says) decide its exit code; this test reads its JSON summary too.
// A second run on the same gateway loses 30 % of the UDP devices' datagrams on purpose
// (--udp-loss: their login and progress reports must be retransmitted for every upgrade to
// end) and makes the CoAP devices slow (Block2 requests paced to --slow-rate).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Gateway, until, portOpen } = require('../lib/gateway');
const { runSim } = require('./run_sim');

const SIM = process.env.GW_SIM;

test('iotgw-sim: a few devices per protocol through a full upgrade', { timeout: 110000 },
  async (t) => {
    assert.ok(SIM, 'GW_SIM is not set');
    const protos = ['tcp', 'udp', 'ws', 'http', 'coap'];
    const gw = new Gateway({
      extraPorts: protos,
      waitMqtt: true,
      ota: { push_timeout_s: 3, max_retries: 0 },
      adapters: (p) => [
        { type: 'mqtt', name: 'mqtt', broker: 'spawn', listen: `127.0.0.1:${p.mqtt}` },
        { type: 'tcp', name: 'tcp', listen: `127.0.0.1:${p.tcp}` },
        { type: 'udp', name: 'udp', listen: `127.0.0.1:${p.udp}` },
        { type: 'websocket', name: 'websocket', listen: `127.0.0.1:${p.ws}` },
        { type: 'http', name: 'http', listen: `127.0.0.1:${p.http}` },
        { type: 'coap', name: 'coap', listen: `127.0.0.1:${p.coap}` },
      ],
    });
    t.after(async () => { await gw.stop('SIGKILL'); gw.cleanup(); });
    await gw.start();
    for (const name of ['tcp', 'ws', 'http'])
      await until(`the ${name} listener`, () => portOpen(gw.ports[name]));

    const json = path.join(gw.dir, 'sim.json');
    const creds = path.join(gw.dir, 'creds.json');
    const n = 3;
    const r = await runSim([
      '--admin', `http://127.0.0.1:${gw.ports.admin}`, '--token', gw.token,
      '--mqtt', String(n), '--mqtt-url', `tcp://127.0.0.1:${gw.ports.mqtt}`,
      '--tcp', String(n), '--tcp-url', `tcp://127.0.0.1:${gw.ports.tcp}`,
      '--udp', String(n), '--udp-url', `udp://127.0.0.1:${gw.ports.udp}`,
      '--ws', String(n), '--ws-url', `ws://127.0.0.1:${gw.ports.ws}/ws`,
      '--http', String(n), '--http-url', `http://127.0.0.1:${gw.ports.http}`,
      '--coap', String(n), '--coap-url', `coap://127.0.0.1:${gw.ports.coap}`,
      '--task', '--firmware-size', '300001', '--fail', '0.1', '--silent', '0.1',
      '--drop', '0.2', '--slow', '0.1', '--slow-rate', '400000', '--prop-rate', '50',
      '--push-timeout', '3', '--max-retries', '0', '--duration', '1', '--timeout', '80',
      '--json', json, '--save-creds', creds, '--quiet',
    ], 100000);
    const summary = fs.existsSync(json) ? JSON.parse(fs.readFileSync(json, 'utf8')) : null;
    assert.equal(r.code, 0, `iotgw-sim failed (${r.code} ${r.signal}):\n${r.err}\n${r.out}\n` +
      `gateway log:\n${gw.log.slice(-6000)}`);
    assert.ok(summary, 'the JSON summary was written');
    assert.equal(summary.ok, true);
    assert.deepEqual(summary.problems, []);
    const devices = n * protos.length + n;
    assert.equal(summary.devices, devices);
    // the mix: 10 % fail, 10 % silent, the rest succeed (drop and slow devices too)
    const b = summary.behaviour;
    assert.equal(b.fail + b.silent + b.drop + b.slow + b.ok, devices);
    assert.ok(b.drop >= 1 && b.fail >= 1 && b.silent >= 1);
    assert.equal(summary.upgrade.upgraded, b.ok + b.drop + b.slow);
    assert.equal(summary.upgrade.failed, b.fail);
    assert.equal(summary.upgrade.silent, b.silent);
    assert.equal(summary.upgrade.verify_failures, 0);
    assert.ok(summary.download.resumed >= b.drop, 'drop devices resumed with Range');
    const counts = summary.task.final.statusCounts;
    assert.equal(counts['30'], b.ok + b.drop + b.slow);
    assert.equal(counts['40'], b.fail + b.silent, 'silent devices end in timeout failure');
    assert.equal(summary.task.final.status, 20);
    for (const p of ['mqtt', ...protos])
      assert.equal(summary.protocols[p].devices, n, `${p} devices`);
    assert.ok(summary.messages.sent > 0 && summary.messages.received > 0);
    const saved = JSON.parse(fs.readFileSync(creds, 'utf8'));
    assert.equal(saved.devices.length, devices);

    // ---- lossy UDP, slow CoAP ----
    const json2 = path.join(gw.dir, 'sim2.json');
    const size = 60000, rate = 100000;
    const r2 = await runSim([
      '--admin', `http://127.0.0.1:${gw.ports.admin}`, '--token', gw.token,
      '--udp', '4', '--udp-url', `udp://127.0.0.1:${gw.ports.udp}`,
      '--coap', '2', '--coap-url', `coap://127.0.0.1:${gw.ports.coap}`,
      '--task', '--firmware-size', String(size), '--slow', '1', '--slow-rate', String(rate),
      '--udp-loss', '0.3', '--seed', '7', '--push-timeout', '30', '--timeout', '60',
      '--json', json2, '--quiet',
    ], 70000);
    const s2 = fs.existsSync(json2) ? JSON.parse(fs.readFileSync(json2, 'utf8')) : null;
    assert.equal(r2.code, 0, `iotgw-sim (lossy UDP, slow CoAP) failed (${r2.code} ${r2.signal}):\n` +
      `${r2.err}\n${r2.out}\ngateway log:\n${gw.log.slice(-6000)}`);
    assert.deepEqual(s2.problems, []);
    const udp = s2.protocols.udp;
    assert.equal(udp.upgraded, 4, 'every UDP device upgraded despite the losses');
    assert.ok(udp.dropped_on_purpose > 0, 'datagrams were dropped');
    // logins lost with --seed 7 are sent again until answered; reports that move the
    // record are repeated (the gateway only answers a report it rejects)
    assert.ok(udp.retransmissions > 0, `${udp.retransmissions} login retransmissions`);
    assert.ok(udp.report_copies > 0);
    assert.equal(udp.unanswered, 0);
    const coap = s2.protocols.coap;
    assert.equal(coap.upgraded, 2);
    assert.equal(coap.slow_downloads.n, 2);
    assert.ok(coap.slow_downloads.min_ms >= size * 1000 / rate,
      `a slow CoAP download took ${coap.slow_downloads.min_ms} ms, less than size/rate`);
    assert.equal(s2.task.final.statusCounts['30'], 6);

    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log.slice(-4000));
  });
