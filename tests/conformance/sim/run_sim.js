'use strict';
// Runs iotgw-sim (GW_SIM) with args; resolves with its exit and output (killed after
// timeoutMs). Shared by the simulator's conformance tests.
const { spawn } = require('node:child_process');

function runSim(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.env.GW_SIM, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); }, timeoutMs);
    p.once('error', reject);
    p.once('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err }); });
  });
}

module.exports = { runSim };
