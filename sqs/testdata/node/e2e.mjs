// End-to-end run of Node SQS clients against spool's SQS front (started by sqs/node_test.go):
// sqs-producer sends 1,000 messages, sqs-consumer works them with heartbeats that extend
// the visibility of slow ones, failing messages reach the dead-letter queue through the
// redrive policy (maxReceiveCount 3). Prints a JSON summary; exits non-zero on a failed check.
import {
  SQSClient, CreateQueueCommand, ReceiveMessageCommand, DeleteMessageCommand,
  GetQueueAttributesCommand, SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { Consumer } from 'sqs-consumer';
import { Producer } from 'sqs-producer';

const endpoint = process.argv[2];
const total = 1000;
const failing = new Set(['m-13', 'm-257', 'm-501', 'm-777', 'm-999']);
const slow = new Set(['m-100', 'm-600']);

const sqs = new SQSClient({
  endpoint, region: 'us-east-1',
  credentials: { accessKeyId: 'node', secretAccessKey: 'node' },
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fail = (msg) => { console.error(msg); process.exit(1); };

const { QueueUrl: dlqUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'node-dlq' }));
const { QueueUrl: queueUrl } = await sqs.send(new CreateQueueCommand({
  QueueName: 'node-work',
  Attributes: {
    VisibilityTimeout: '5',
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:node-dlq', maxReceiveCount: 3 }),
  },
}));

// @aws-sdk/client-sqs alone: one message with attributes, checked by the SDK's MD5 checks.
const one = await sqs.send(new SendMessageCommand({
  QueueUrl: dlqUrl, MessageBody: 'plain sdk',
  MessageAttributes: { origin: { DataType: 'String', StringValue: 'node' } },
}));
if (!one.MessageId || !one.MD5OfMessageAttributes) fail(`send: ${JSON.stringify(one)}`);

const producer = Producer.create({ queueUrl, sqs, batchSize: 10 });
const msgs = [];
for (let i = 0; i < total; i++) {
  msgs.push({ id: `m-${i}`, body: JSON.stringify({ n: i, id: `m-${i}` }),
    messageAttributes: { kind: { DataType: 'String', StringValue: failing.has(`m-${i}`) ? 'fail' : 'ok' } } });
}
const sent = await producer.send(msgs);
if (sent.length !== total) fail(`producer sent ${sent.length} of ${total}`);

const done = new Map(); // id -> times handled successfully
let failures = 0;
let heartbeats = 0;
const consumer = Consumer.create({
  queueUrl, sqs, batchSize: 10, waitTimeSeconds: 1, visibilityTimeout: 5, heartbeatInterval: 1,
  terminateVisibilityTimeout: true, messageAttributeNames: ['All'],
  handleMessage: async (m) => {
    const { id } = JSON.parse(m.Body);
    if (m.MessageAttributes?.kind?.StringValue === 'fail') {
      failures++;
      throw new Error(`${id} fails`);
    }
    if (slow.has(id)) await sleep(7000); // past the 5 s visibility: the heartbeats keep it
    done.set(id, (done.get(id) || 0) + 1);
    return m;
  },
});
consumer.on('error', (err) => { console.error('consumer error', err.message); });
consumer.on('processing_error', () => {});
consumer.on('message_processed', () => {});
const origSend = sqs.send.bind(sqs);
sqs.send = (cmd, ...rest) => {
  if (cmd.constructor.name === 'ChangeMessageVisibilityCommand' && cmd.input.VisibilityTimeout > 0) heartbeats++;
  return origSend(cmd, ...rest);
};
consumer.start();

// Dead letters: received from the DLQ with the plain client.
const dead = new Set();
const deadline = Date.now() + 90_000;
while ((done.size < total - failing.size || dead.size < failing.size) && Date.now() < deadline) {
  const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ['All'] }));
  for (const m of r.Messages || []) {
    if (m.Body !== 'plain sdk') dead.add(JSON.parse(m.Body).id);
    await sqs.send(new DeleteMessageCommand({ QueueUrl: dlqUrl, ReceiptHandle: m.ReceiptHandle }));
  }
}
consumer.stop({ abort: false });
await sleep(200);

const dupes = [...done.values()].filter((n) => n > 1).length;
const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }));
const summary = {
  processed: done.size, duplicates: dupes, failures, heartbeats,
  dead: [...dead].sort(), left: Number(attrs.Attributes.ApproximateNumberOfMessages),
};
console.log(JSON.stringify(summary));
if (done.size !== total - failing.size) fail(`processed ${done.size}, want ${total - failing.size}`);
if (dupes !== 0) fail(`${dupes} messages were handled twice: a heartbeat did not keep a lease`);
if ([...failing].sort().join() !== summary.dead.join()) fail(`dead letters ${summary.dead}, want ${[...failing].sort()}`);
if (heartbeats === 0) fail('no heartbeat was sent');
process.exit(0);
