// A scripted MQTT device (MQTT.js, independent of paho and libmosquitto) for the C test of
// the MQTT adapter (test_mqtt_adapter.c). One JSON command per stdin line, one JSON event per
// stdout line:
//   {"op":"connect","port":N,"pk":..,"dn":..,"secret":..,"reconnectMs":N}
//                                     → {"ev":"connect"} | {"ev":"error","message":..}
//   {"op":"subscribe","topic":..}     → {"ev":"suback","granted":[qos...]}
//   {"op":"publish","topic":..,"payload":"text"} or {..,"hex":"7e01.."}
//                                     → {"ev":"puback","topic":..} | {"ev":"puberror",..}
//   {"op":"end"}                      → {"ev":"ended"}, then the process exits
// Unsolicited: {"ev":"message","topic":..,"qos":Q,"payload":"<utf8>"}, {"ev":"close"},
// {"ev":"reconnect"}. The password is DESIGN §4's HMAC, computed here.
'use strict';

const crypto = require('node:crypto');
const readline = require('node:readline');
const mqtt = require('mqtt');

let client = null;
const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

function password(pk, dn, secret) {
  return crypto.createHmac('sha256', secret)
    .update(`clientId${pk}.${dn}deviceName${dn}deviceSecret${secret}productKey${pk}`)
    .digest('hex');
}

function connect(c) {
  client = mqtt.connect(`mqtt://127.0.0.1:${c.port}`, {
    clientId: `${c.pk}.${c.dn}`,
    username: `${c.dn}&${c.pk}`,
    password: password(c.pk, c.dn, c.secret),
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: c.reconnectMs || 0,
    connectTimeout: 5000,
  });
  client.on('connect', () => emit({ ev: 'connect' }));
  client.on('reconnect', () => emit({ ev: 'reconnect' }));
  client.on('close', () => emit({ ev: 'close' }));
  client.on('error', (e) => emit({ ev: 'error', message: e.message }));
  client.on('message', (topic, payload, packet) =>
    emit({ ev: 'message', topic, qos: packet.qos, payload: payload.toString('utf8'),
      hex: payload.toString('hex') }));
}

function handle(c) {
  switch (c.op) {
    case 'connect':
      connect(c);
      break;
    case 'subscribe':
      client.subscribe(c.topic, { qos: 1 }, (err, granted) => {
        if (err) emit({ ev: 'error', message: err.message });
        else emit({ ev: 'suback', granted: granted.map((g) => g.qos) });
      });
      break;
    case 'publish': {
      const body = c.hex !== undefined ? Buffer.from(c.hex, 'hex') : Buffer.from(c.payload, 'utf8');
      client.publish(c.topic, body, { qos: 1 }, (err) => {
        if (err) emit({ ev: 'puberror', topic: c.topic, message: err.message });
        else emit({ ev: 'puback', topic: c.topic });
      });
      break;
    }
    case 'end':
      if (!client) {
        emit({ ev: 'ended' });
        process.exit(0);
      }
      client.end(true, () => {
        emit({ ev: 'ended' });
        process.exit(0);
      });
      break;
    default:
      emit({ ev: 'error', message: `unknown op ${c.op}` });
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  try {
    handle(JSON.parse(line));
  } catch (e) {
    emit({ ev: 'error', message: e.message });
  }
});
// The test closing our stdin (or dying) ends the device too: no orphan processes.
rl.on('close', () => process.exit(0));
