'use strict';
// Issue 7, Modbus devices of iotgw-sim (DESIGN §5.6, §7.4 "Modbus:"): the two-step flow a
// user runs. Step 1 provisions the devices through the admin API without connecting and
// writes the credentials and the modbus_tcp_server adapter block (--modbus-config); the
// gateway is restarted on the same data dir with that block in its config. Step 2 dials the
// devices in (login with function code 65), serves their property registers and the §5.6
// OTA block, and takes a full upgrade: an ok device, one whose image "fails" (STATUS 5), a
// silent one stuck verifying (failed by the upgrade timeout), one that hangs up half way
// through the transfer (the gateway must resume at NEXT_BLOCK, never CTRL=1 again) and a
// slow one. Asserted: the sim's summary, the records and devices through the admin API.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Gateway, until, portOpen } = require('../lib/gateway');
const { runSim } = require('./run_sim');

test('iotgw-sim: Modbus dial-in devices, provisioned then upgraded through §5.6',
  { timeout: 100000 }, async (t) => {
    assert.ok(process.env.GW_SIM, 'GW_SIM is not set');
    const gw = new Gateway({
      extraPorts: ['modbus'],
      adapters: (p) => [{ type: 'modbus_tcp_server', name: 'modbus',
                          listen: `127.0.0.1:${p.modbus}`, devices: [] }],
    });
    t.after(async () => { await gw.stop('SIGKILL'); gw.cleanup(); });
    await gw.start();
    const admin = ['--admin', `http://127.0.0.1:${gw.ports.admin}`, '--token', gw.token];
    const url = ['--modbus-url', `tcp://127.0.0.1:${gw.ports.modbus}`];
    const creds = path.join(gw.dir, 'creds.json');
    const block = path.join(gw.dir, 'modbus.json');
    const n = 5;

    // ---- step 1: provision, write the credentials and the adapter block ----
    let r = await runSim([...admin, ...url, '--modbus', String(n), '--no-connect',
      '--product', 'sim-modbus', '--save-creds', creds, '--modbus-config', block, '--quiet',
      '--json', path.join(gw.dir, 'step1.json')], 30000);
    assert.equal(r.code, 0, `step 1 failed (${r.code}):\n${r.err}`);
    const cfg = JSON.parse(fs.readFileSync(block, 'utf8'));
    assert.equal(cfg.type, 'modbus_tcp_server');
    assert.equal(cfg.listen, `127.0.0.1:${gw.ports.modbus}`);
    assert.equal(cfg.customFunctionCode, 65);
    assert.equal(cfg.devices.length, n);
    assert.ok(cfg.devices.every((d) => d.otaBase === 4096 && d.points.length === 2));
    const saved = JSON.parse(fs.readFileSync(creds, 'utf8'));
    assert.ok(saved.devices.every((d) => d.protocol === 'modbus'));

    // ---- the gateway restarted with the block in its config (same data dir) ----
    await gw.restartWith(() => [cfg]);
    await until('the Modbus listener', () => portOpen(gw.ports.modbus));

    // ---- step 2: dial in, serve the registers, take the upgrade ----
    const json = path.join(gw.dir, 'sim.json');
    const size = 24000; // 100 blocks of 240 bytes
    r = await runSim([...admin, ...url, '--creds', creds, '--modbus', String(n), '--task',
      '--firmware-size', String(size), '--fw-version', 'mb-2.0.0',
      '--fail', '0.2', '--silent', '0.2', '--drop', '0.2', '--slow', '0.2',
      '--slow-rate', '24000', '--prop-rate', '20', '--push-timeout', '10',
      '--upgrade-timeout', '4', '--max-retries', '0', '--duration', '1.5', '--timeout', '70',
      '--json', json, '--quiet'], 80000);
    const summary = fs.existsSync(json) ? JSON.parse(fs.readFileSync(json, 'utf8')) : null;
    assert.equal(r.code, 0, `iotgw-sim failed (${r.code} ${r.signal}):\n${r.err}\n${r.out}\n` +
      `gateway log:\n${gw.log.slice(-6000)}`);
    assert.deepEqual(summary.problems, []);
    const b = summary.behaviour;
    assert.deepEqual(b, { ok: 1, fail: 1, silent: 1, drop: 1, slow: 1 });
    const mb = summary.protocols.modbus;
    assert.equal(mb.devices, n);
    assert.equal(mb.online_max, n);
    assert.equal(mb.upgraded, 3, 'ok, drop and slow devices upgraded');
    assert.equal(mb.failed, 1, 'the fail device reported STATUS 5');
    assert.equal(summary.upgrade.silent, 1);
    assert.equal(summary.upgrade.verify_failures, 0, 'every image arrived intact');
    assert.equal(mb.restarts, 0, 'no transfer begun again with CTRL=1');
    assert.ok(mb.resumed >= 1, 'the drop device resumed at NEXT_BLOCK on its new connection');
    // every block of every device exactly once: the one the drop device stored but never
    // answered is not sent again (the gateway reads NEXT_BLOCK), a resend would be refused
    assert.equal(mb.blocks, n * 100);
    assert.ok(summary.links.lost === 0 && summary.links.connects >= n + 1);
    // the slow device: 100 answers each held back 10 ms (240 bytes at 24000 B/s)
    assert.ok(mb.slow_downloads && mb.slow_downloads.min_ms >= 1000,
      JSON.stringify(mb.slow_downloads));

    // ---- what the gateway says ----
    const final = summary.task.final;
    assert.equal(final.status, 20);
    assert.equal(final.statusCounts['30'], 3);
    assert.equal(final.statusCounts['40'], 2);
    const recs = (await gw.ok(gw.get('/admin-api/iot/ota/task/record/page',
      { taskId: summary.task.id, pageNo: 1, pageSize: 50 }))).list;
    assert.equal(recs.length, n);
    const failed = recs.filter((x) => x.status === 40).map((x) => x.description);
    assert.equal(failed.filter((d) => /status 5/.test(d)).length, 1, failed.join(' | '));
    assert.equal(failed.filter((d) => /timeout/.test(d)).length, 1, failed.join(' | '));
    let upgraded = 0;
    for (const d of saved.devices) {
      const dv = await gw.ok(gw.get('/admin-api/iot/device/get', { id: d.id }));
      if (dv.firmwareVersion === 'mb-2.0.0') upgraded++;
      // the property registers, polled by the gateway's points
      assert.equal(typeof dv.properties.temperature, 'number', JSON.stringify(dv.properties));
      assert.equal(typeof dv.properties.humidity, 'number');
    }
    assert.equal(upgraded, 3);

    const exit = await gw.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, gw.log.slice(-4000));
  });
