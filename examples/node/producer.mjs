// An otp.send through pasarela, its result event, then the code verified by RPC (Node, amqplib).
//
// AMQP_URL (default the local broker); PASARELA_NAMESPACE prefixes every name when set; VENDOR_SIM_URL
// reads the code from the vendor simulator's inbox, where a real user would type it. Exits 0 only when
// the code is verified. Publishing rules: docs/CONTRACT.md.
import { randomBytes, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline/promises';
import amqp from 'amqplib';

const ns = process.env.PASARELA_NAMESPACE ?? '';
const name = (n) => (ns ? `${ns}.${n}` : n);
const conn = await amqp.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672/%2f');
const ch = await conn.createConfirmChannel(); // publishes wait for the broker's confirm
const got = [];
// Results: a queue of our own bound to pasarela.events (pasarela's own queues are never declared here).
const { queue: events } = await ch.assertQueue('', { exclusive: true });
await ch.bindQueue(events, name('pasarela.events'), 'otp.send.completed');
await ch.consume(events, (m) => got.push(JSON.parse(m.content)), { noAck: true });
// RPC replies come on direct reply-to, consumed before anything is published to it.
await ch.consume('amq.rabbitmq.reply-to', (m) => got.push([m.properties.correlationId, JSON.parse(m.content)]), { noAck: true });

async function publish(queue, messageId, body, extra = {}) {
  const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
  ch.publish(name('pasarela'), queue, Buffer.from(JSON.stringify(body)), {
    messageId, contentType: 'application/json', persistent: true, mandatory: true, headers: { traceparent }, ...extra,
  });
  await ch.waitForConfirms();
  return traceparent;
}

async function waitFor(match, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const found = got.find(match);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no answer in time');
}

const requestId = randomUUID();
const mobile = `+57300${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
const traceparent = await publish('otp.send', requestId, { // messageId = request_id: publishing twice is safe
  request_id: requestId, tenant: 'acme', provider: 'danaconnect', channel: 'sms', destination: { mobile },
  code: { type: 'numeric', length: 6, expires_in_s: 300 },
  danaconnect: { id_conversation: 824541, values: [{ key: 'COD1_MOBILE', value: mobile }] },
});
console.log('published otp.send', requestId, 'traceparent', traceparent);
const sent = await waitFor((e) => !Array.isArray(e) && e.request_id === requestId);
console.log('otp.send.completed', JSON.stringify(sent));
if (sent.status !== 'sent') process.exit(1);

let code;
if (process.env.VENDOR_SIM_URL) {
  const inbox = await (await fetch(`${process.env.VENDOR_SIM_URL}/sim/inbox?to=${encodeURIComponent(mobile)}`)).json();
  code = inbox.at(-1).code;
} else {
  code = (await createInterface({ input: process.stdin, output: process.stdout }).question('code: ')).trim();
}
const verificationId = randomUUID();
await publish('otp.verify', verificationId, { verification_id: verificationId, request_id: requestId, code },
  { replyTo: 'amq.rabbitmq.reply-to', correlationId: verificationId });
const [, reply] = await waitFor((r) => Array.isArray(r) && r[0] === verificationId);
console.log('otp.verify reply', JSON.stringify(reply));
await conn.close();
process.exit(reply.outcome === 'verified' ? 0 : 1);
