// kafkajs (a Kafka client written in JavaScript) against strata's Kafka listener: admin,
// an idempotent producer with gzip, a consumer group that commits, topic deletion.
// Run by tests/tests/kafka_js.rs with the listener address; tools/test-all.sh
// installs kafkajs here (npm ci).
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');
const broker = process.argv[2];
const kafka = new Kafka({ clientId: 'kjs', brokers: [broker], logLevel: logLevel.ERROR });
function check(cond, what) { if (!cond) { console.error('FAILED: ' + what); process.exit(1); } }
(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'kjs', numPartitions: 3 }] });
  const md = await admin.fetchTopicMetadata({ topics: ['kjs'] });
  check(md.topics[0].partitions.length === 3, 'three partitions');
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const N = 300;
  for (let i = 0; i < N; i += 30) {
    const messages = [];
    for (let j = i; j < i + 30; j++) messages.push({ key: 'k' + (j % 7), value: 'v' + j, headers: { h: 'x' + j } });
    await producer.send({ topic: 'kjs', messages, compression: CompressionTypes.GZIP, acks: -1 });
  }
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'kjs-group', sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'kjs', fromBeginning: true });
  const seen = new Set();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('only ' + seen.size + ' of ' + N)), 30000);
    consumer.run({ eachMessage: async ({ partition, message }) => {
      check(message.headers.h.toString() === 'x' + message.value.toString().slice(1), 'headers');
      seen.add(message.value.toString());
      if (seen.size === N) { clearTimeout(timer); resolve(); }
    }});
  });
  await consumer.disconnect();
  const offsets = await admin.fetchOffsets({ groupId: 'kjs-group', topics: ['kjs'] });
  const committed = offsets[0].partitions.reduce((a, p) => a + Number(p.offset), 0);
  check(committed === N, 'committed ' + committed + ' of ' + N);
  await admin.deleteTopics({ topics: ['kjs'] });
  await admin.disconnect();
  console.log('kafkajs: all checks passed');
})().catch(e => { console.error('FAILED:', e); process.exit(1); });
