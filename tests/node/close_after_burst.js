// A publisher that fills its channel and closes at once (issue 11): amqplib's
// callback API, as applications use it. Prints "closed" when connection.close's
// callback fires without an error; anything else exits non-zero with the reason.
//
//   node close_after_burst.js <amqp url> <queue>
'use strict';

const amqp = require('amqplib/callback_api');

const [url, queue] = process.argv.slice(2);
const body = Buffer.alloc(4096, 'x');

function fail(what, err) {
  console.error(`${what}: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
}

// A close that never calls back is the failure this script exists to catch.
const timer = setTimeout(() => fail('timeout', 'connection.close never called back'), 20000);

amqp.connect(url, (err, connection) => {
  if (err) return fail('connect', err);
  connection.on('error', (e) => fail('connection error', e));
  connection.createChannel((err, channel) => {
    if (err) return fail('channel', err);
    channel.assertQueue(queue, { exclusive: true }, (err) => {
      if (err) return fail('declare', err);
      let sent = 0;
      // sendToQueue returns false once amqplib's write buffer is full.
      while (channel.sendToQueue(queue, body)) sent += 1;
      connection.close((err) => {
        if (err) return fail('close', err);
        clearTimeout(timer);
        console.log(`closed after ${sent + 1} messages`);
      });
    });
  });
});
