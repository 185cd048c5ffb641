// MQTT.js against the broker (tests/mqtt/clients/test_mqtt_client_mqttjs.py): connects to
// the URL (mqtt:// for TCP, ws:// for WebSocket), subscribes to a topic, publishes QoS 0,
// 1 and 2 messages with MQTT 5.0 properties (or plain ones with 3.1.1) and prints what it
// receives as one JSON line; anything else exits non-zero with the reason.
//
//   node mqtt_round_trip.js <url> <topic> <client id> <protocol version 4|5> [user] [password]
'use strict';

const mqtt = require('mqtt');

const [url, topic, clientId, version, username, password] = process.argv.slice(2);
const v5 = version === '5';

function fail(what, err) {
  console.error(`${what}: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
}

const timer = setTimeout(() => fail('timeout', 'not all messages came back'), 15000);

const client = mqtt.connect(url, {
  clientId,
  protocolVersion: v5 ? 5 : 4,
  clean: true,
  reconnectPeriod: 0,
  username,
  password,
});
const received = [];
let ending = false;
// Once DISCONNECT is sent the broker may close the socket at once (a reset): not an error.
client.on('error', (err) => ending || fail('client error', err));
client.on('message', (t, payload, packet) => {
  received.push({
    topic: t,
    payload: payload.toString(),
    qos: packet.qos,
    retain: packet.retain,
    userProperties: (packet.properties && packet.properties.userProperties) || null,
    contentType: (packet.properties && packet.properties.contentType) || null,
  });
  if (received.length === 3) {
    clearTimeout(timer);
    ending = true;
    client.end(false, () => {
      console.log(JSON.stringify({ connack: connackInfo, received }));
    });
  }
});
let connackInfo = null;
client.on('connect', (connack) => {
  connackInfo = { reasonCode: connack.reasonCode || connack.returnCode || 0, sessionPresent: connack.sessionPresent };
  client.subscribe(topic, { qos: 2 }, (err, granted) => {
    if (err) return fail('subscribe', err);
    if (granted[0].qos !== 2) return fail('subscribe', `granted ${JSON.stringify(granted)}`);
    for (const qos of [0, 1, 2]) {
      const properties = v5 ? { userProperties: { qos: String(qos) }, contentType: 'text/plain' } : undefined;
      client.publish(topic, `q${qos}`, { qos, properties }, (err) => {
        if (err) fail('publish', err);
      });
    }
  });
});
