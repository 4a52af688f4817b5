//! [`Records`]: what one `poll` returned. It owns the fetched batch bytes (one shared
//! buffer, as read from the socket) and hands out [`ConsumerRecord`]s that borrow
//! key, value and headers from them in place — no record is copied or deserialised.
//!
//! Batches come in either payload format. Native and uncompressed Kafka batches are
//! read in place; a compressed Kafka batch is decompressed once, when the fetch is
//! parsed, and its records borrow from that buffer, which `Records` keeps.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use strata_schema::{
    kafka_records, validate_batch, validate_kafka_batch, BatchError, BatchHeader,
    KafkaBatchRecords, KafkaHeaders, KafkaRecordView, KafkaRecords, NativeRecords, PayloadFormat,
    RecordView, TimestampType, BATCH_HEADER_BYTES,
};

use crate::error::{ClientError, Result};

/// One whole, validated batch of a fetch.
#[derive(Clone, Debug)]
pub(crate) struct FetchedBatch {
    /// The batch, as a range of the buffer.
    pub range: Range<usize>,
    /// A compressed Kafka-format batch's records, decompressed once by `parse`.
    pub decompressed: Option<Arc<KafkaBatchRecords<'static>>>,
}

/// One partition's share of a fetch.
#[derive(Clone, Debug)]
pub(crate) struct PartitionBatches {
    pub topic: Arc<str>,
    pub partition: u32,
    /// Each whole, validated batch, in offset order.
    pub batches: Vec<FetchedBatch>,
    /// Records below this offset (the fetch offset) are skipped.
    pub skip_below: i64,
    /// Records handed out.
    pub count: usize,
    /// The offset after the last record of the last batch.
    pub next_offset: i64,
    /// Which of the [`Records`]' buffers the batch ranges are in.
    pub buf: usize,
}

impl PartitionBatches {
    /// Validates the batches in `buf[range]` (every batch fully: CRC and record
    /// structure, compressed records decompressed) and counts the records at or above
    /// `skip_below`. A truncated last batch (the broker cut the response at
    /// `max_bytes`) is left for the next fetch.
    pub fn parse(
        topic: Arc<str>,
        partition: u32,
        buf: &[u8],
        range: Range<usize>,
        skip_below: i64,
    ) -> Result<PartitionBatches> {
        let mut out = PartitionBatches {
            topic,
            partition,
            batches: Vec::new(),
            skip_below,
            count: 0,
            next_offset: skip_below,
            buf: 0,
        };
        let mut at = range.start;
        while at < range.end {
            let rest = &buf[at..range.end];
            if rest.len() < BATCH_HEADER_BYTES {
                break;
            }
            let header = BatchHeader::decode(rest)?;
            let Some(bytes) = rest.get(..header.batch_len_bytes()) else {
                break;
            };
            let corrupt = |e: BatchError| {
                ClientError::Protocol(format!(
                    "fetched batch at offset {} of {}/{} is corrupt: {e}",
                    header.base_offset, out.topic, out.partition
                ))
            };
            if header.attributes.is_control() {
                // The broker's own records (a new leader's leader-change batch,
                // transaction markers) hold no application data: checked and skipped,
                // their offsets passed over.
                strata_schema::check_batch(bytes).map_err(corrupt)?;
                out.next_offset = out.next_offset.max(header.last_offset() + 1);
                at += bytes.len();
                continue;
            }
            let decompressed = match header.payload_format {
                PayloadFormat::Native => {
                    let view = validate_batch(bytes).map_err(corrupt)?;
                    out.count += view.records()?.filter(|r| r.offset() >= skip_below).count();
                    None
                }
                PayloadFormat::Kafka => {
                    let (_, decoded) = validate_kafka_batch(bytes).map_err(corrupt)?;
                    let mut records = decoded.iter();
                    while let Some(record) = records.next_view() {
                        let offset = header
                            .base_offset
                            .wrapping_add(i64::from(record?.offset_delta));
                        out.count += usize::from(offset >= skip_below);
                    }
                    decoded
                        .is_decompressed()
                        .then(|| Arc::new(decoded.into_owned()))
                }
            };
            out.next_offset = out.next_offset.max(header.last_offset() + 1);
            out.batches.push(FetchedBatch {
                range: at..at + bytes.len(),
                decompressed,
            });
            at += bytes.len();
        }
        Ok(out)
    }
}

/// The records of one `poll`, in partition order and offset order within a partition.
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// The fetch responses' buffers (one per broker fetched from).
    bufs: Vec<Bytes>,
    parts: Vec<PartitionBatches>,
}

/// What [`Records::bytes`] gives when nothing was fetched.
static NO_BYTES: Bytes = Bytes::new();

impl Records {
    pub(crate) fn new(buf: Bytes, parts: Vec<PartitionBatches>) -> Records {
        Records::from_responses(vec![(buf, parts)])
    }

    /// The records of several fetch responses (from several leaders).
    pub(crate) fn from_responses(responses: Vec<(Bytes, Vec<PartitionBatches>)>) -> Records {
        let mut out = Records::default();
        for (i, (buf, parts)) in responses.into_iter().enumerate() {
            out.bufs.push(buf);
            out.parts.extend(parts.into_iter().map(|mut p| {
                p.buf = i;
                p
            }));
        }
        out
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every record, borrowed from the fetched bytes.
    pub fn iter(&self) -> RecordsIter<'_> {
        RecordsIter {
            bufs: &self.bufs,
            parts: self.parts.iter(),
            part: None,
            batches: [].iter(),
            records: None,
        }
    }

    /// The partitions that returned records.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.parts
            .iter()
            .filter(|p| p.count > 0)
            .map(|p| (&*p.topic, p.partition))
    }

    /// The fetched bytes the records borrow from (the first broker's, when the
    /// partitions were fetched from several leaders).
    pub fn bytes(&self) -> &Bytes {
        self.bufs.first().unwrap_or(&NO_BYTES)
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = ConsumerRecord<'a>;
    type IntoIter = RecordsIter<'a>;

    fn into_iter(self) -> RecordsIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Records`].
pub struct RecordsIter<'a> {
    bufs: &'a [Bytes],
    parts: std::slice::Iter<'a, PartitionBatches>,
    part: Option<&'a PartitionBatches>,
    batches: std::slice::Iter<'a, FetchedBatch>,
    records: Option<BatchRecords<'a>>,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = ConsumerRecord<'a>;

    fn next(&mut self) -> Option<ConsumerRecord<'a>> {
        loop {
            if let (Some(part), Some(records)) = (self.part, self.records.as_mut()) {
                if let Some(record) = records.next_at_or_above(part.skip_below) {
                    return Some(ConsumerRecord {
                        topic: &part.topic,
                        partition: part.partition,
                        record,
                    });
                }
                self.records = None;
            }
            if let (Some(part), Some(batch)) = (self.part, self.batches.next()) {
                // Validated in `parse`, and the bytes are immutable since: this cannot
                // fail.
                let buf = self.bufs.get(part.buf).map_or(&[][..], |b| &b[..]);
                match BatchRecords::open(buf, batch) {
                    Ok(records) => self.records = Some(records),
                    Err(e) => debug_assert!(false, "validated batch fails: {e}"),
                }
                continue;
            }
            let part = self.parts.next()?;
            self.part = Some(part);
            self.batches = part.batches.iter();
        }
    }
}

/// The records of the batch being iterated.
struct BatchRecords<'a> {
    records: FormatRecords<'a>,
    base_offset: i64,
    first_timestamp_ms: i64,
    /// Set when the batch says LogAppendTime (and was stamped): every record's time.
    log_append_time_ms: Option<i64>,
}

enum FormatRecords<'a> {
    Native(NativeRecords<'a>),
    Kafka(KafkaRecords<'a>),
}

impl<'a> BatchRecords<'a> {
    fn open(buf: &'a [u8], batch: &'a FetchedBatch) -> Result<BatchRecords<'a>, BatchError> {
        let bytes = &buf[batch.range.clone()];
        let header = BatchHeader::decode(bytes)?;
        let records = match (&batch.decompressed, header.payload_format) {
            (Some(decoded), _) => FormatRecords::Kafka(decoded.iter()),
            // Uncompressed Kafka: records in place, only the Kafka header is re-read.
            (None, PayloadFormat::Kafka) => {
                FormatRecords::Kafka(kafka_records(&bytes[BATCH_HEADER_BYTES..])?)
            }
            // This repeats the CRC and archive check: the schema crate exposes no
            // unchecked view.
            (None, PayloadFormat::Native) => {
                FormatRecords::Native(validate_batch(bytes)?.records()?)
            }
        };
        let log_append_time = header.attributes.timestamp_type() == TimestampType::LogAppendTime
            && header.log_append_time_ms >= 0;
        Ok(BatchRecords {
            records,
            base_offset: header.base_offset,
            first_timestamp_ms: header.first_timestamp_ms,
            log_append_time_ms: log_append_time.then_some(header.log_append_time_ms),
        })
    }

    fn next_at_or_above(&mut self, skip_below: i64) -> Option<Record<'a>> {
        loop {
            let (offset, create_time_ms, fields) = match &mut self.records {
                FormatRecords::Native(records) => {
                    let view = records.next()?;
                    (view.offset(), view.timestamp_ms(), Fields::Native(view))
                }
                FormatRecords::Kafka(records) => {
                    let view = match records.next_view()? {
                        Ok(view) => view,
                        Err(e) => {
                            debug_assert!(false, "validated kafka batch fails: {e}");
                            return None;
                        }
                    };
                    (
                        self.base_offset.wrapping_add(i64::from(view.offset_delta)),
                        self.first_timestamp_ms
                            .wrapping_add(view.timestamp_delta_ms),
                        Fields::Kafka(view),
                    )
                }
            };
            if offset >= skip_below {
                return Some(Record {
                    offset,
                    timestamp_ms: self.log_append_time_ms.unwrap_or(create_time_ms),
                    fields,
                });
            }
        }
    }
}

/// A record of either payload format.
#[derive(Clone, Copy)]
struct Record<'a> {
    offset: i64,
    timestamp_ms: i64,
    fields: Fields<'a>,
}

#[derive(Clone, Copy)]
enum Fields<'a> {
    Native(RecordView<'a>),
    Kafka(KafkaRecordView<'a>),
}

/// Headers of either payload format.
enum Headers<'a, N> {
    Native(N),
    Kafka(KafkaHeaders<'a>),
}

impl<'a, N> Iterator for Headers<'a, N>
where
    N: Iterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Headers::Native(headers) => headers.next(),
            Headers::Kafka(headers) => headers.next().map(|h| (h.key, h.value)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Headers::Native(headers) => headers.size_hint(),
            Headers::Kafka(headers) => headers.size_hint(),
        }
    }
}

impl<'a, N> ExactSizeIterator for Headers<'a, N> where
    N: ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)>
{
}

/// One fetched record; key, value and headers borrow from the fetched bytes (or, for
/// a compressed Kafka batch, from its records decompressed once per fetch).
#[derive(Clone, Copy)]
pub struct ConsumerRecord<'a> {
    topic: &'a str,
    partition: u32,
    record: Record<'a>,
}

impl<'a> ConsumerRecord<'a> {
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn offset(&self) -> i64 {
        self.record.offset
    }

    /// Create time, or the broker's append time when the batch says LogAppendTime;
    /// ms since the epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.record.timestamp_ms
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        match self.record.fields {
            Fields::Native(view) => view.key(),
            Fields::Kafka(view) => view.key,
        }
    }

    pub fn value(&self) -> Option<&'a [u8]> {
        match self.record.fields {
            Fields::Native(view) => view.value(),
            Fields::Kafka(view) => view.value,
        }
    }

    /// Headers in order: `(key, value)`.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        match self.record.fields {
            Fields::Native(view) => Headers::Native(view.headers()),
            Fields::Kafka(view) => Headers::Kafka(view.headers()),
        }
    }
}

impl std::fmt::Debug for ConsumerRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset())
            .field("timestamp_ms", &self.timestamp_ms())
            .field("key", &self.key())
            .field("value", &self.value())
            .field("headers", &self.headers().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_schema::{
        stamp_base_offset, stamp_log_append_time, wrap_kafka_batch, Attributes, Compression,
        KafkaBatchBuilder, NativeBatchBuilder,
    };

    fn batch(base_offset: i64, values: &[&str]) -> Vec<u8> {
        let mut b = NativeBatchBuilder::new();
        for (i, v) in values.iter().enumerate() {
            b.push(
                100 + i as i64,
                Some(b"k"),
                Some(v.as_bytes()),
                &[("h", Some(b"x"))],
            );
        }
        let mut bytes = b.build();
        stamp_base_offset(&mut bytes, base_offset);
        bytes
    }

    #[test]
    fn skips_below_fetch_offset_and_borrows_in_place() {
        let mut buf = batch(10, &["a", "b", "c"]);
        buf.extend_from_slice(&batch(13, &["d"]));
        let full = buf.len();
        // A truncated third batch is ignored.
        let third = batch(14, &["e"]);
        buf.extend_from_slice(&third[..third.len() - 3]);
        let part = PartitionBatches::parse(Arc::from("t"), 2, &buf, 0..buf.len(), 11).unwrap();
        assert_eq!(part.count, 3);
        assert_eq!(part.next_offset, 14);
        assert_eq!(part.batches.last().unwrap().range.end, full);
        let records = Records::new(Bytes::from(buf), vec![part]);
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.offset(), r.value().unwrap().to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (11, b"b".to_vec()),
                (12, b"c".to_vec()),
                (13, b"d".to_vec())
            ]
        );
        let r = records.iter().next().unwrap();
        let base = records.bytes().as_ptr() as usize;
        let value = r.value().unwrap().as_ptr() as usize;
        assert!(
            value >= base && value < base + records.bytes().len(),
            "value is borrowed"
        );
        assert_eq!(
            r.headers().collect::<Vec<_>>(),
            vec![("h", Some(&b"x"[..]))]
        );
        assert_eq!((r.topic(), r.partition(), r.timestamp_ms()), ("t", 2, 101));
    }

    #[test]
    fn control_batches_are_skipped() {
        let mut buf = batch(0, &["a", "b"]);
        let mut control = strata_schema::leader_change_batch(3, 1, 50).into_bytes();
        stamp_base_offset(&mut control, 2);
        buf.extend_from_slice(&control);
        buf.extend_from_slice(&batch(3, &["c"]));
        let part = PartitionBatches::parse(Arc::from("t"), 0, &buf, 0..buf.len(), 0).unwrap();
        assert_eq!(part.count, 3);
        assert_eq!(part.next_offset, 4);
        // A fetch that ends on the control batch still moves past it.
        let end = buf.len() - batch(3, &["c"]).len();
        let tail = PartitionBatches::parse(Arc::from("t"), 0, &buf, 0..end, 2).unwrap();
        assert_eq!((tail.count, tail.next_offset), (0, 3));
        let records = Records::new(Bytes::from(buf), vec![part]);
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.offset(), r.value().unwrap().to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (3, b"c".to_vec())]
        );
        // A damaged control batch is still an error.
        let mut bad = control.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(PartitionBatches::parse(Arc::from("t"), 0, &bad, 0..bad.len(), 0).is_err());
    }

    #[test]
    fn corrupt_batch_is_an_error() {
        let mut buf = batch(0, &["a"]);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let e = PartitionBatches::parse(Arc::from("t"), 0, &buf, 0..buf.len(), 0).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
    }

    /// A stored Kafka-format batch of `values`, compressed with `compression`: record
    /// `i` has key `k{i}` (none for odd `i`), timestamp `1000 + 10 i` and, for even
    /// `i`, two headers.
    fn kafka_batch(base_offset: i64, values: &[&str], compression: Compression) -> Vec<u8> {
        let mut b = KafkaBatchBuilder::new().with_compression(compression);
        for (i, v) in values.iter().enumerate() {
            let key = format!("k{i}");
            let headers: &[(&str, Option<&[u8]>)] = if i % 2 == 0 {
                &[("trace", Some(b"t")), ("null", None)]
            } else {
                &[]
            };
            b.push(
                1_000 + 10 * i as i64,
                (i % 2 == 0).then_some(key.as_bytes()),
                Some(v.as_bytes()),
                headers,
            );
        }
        let mut bytes = wrap_kafka_batch(&b.build()).unwrap();
        stamp_base_offset(&mut bytes, base_offset);
        bytes
    }

    type Seen = (
        i64,
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn seen(records: &Records) -> Vec<Seen> {
        records
            .iter()
            .map(|r| {
                (
                    r.offset(),
                    r.timestamp_ms(),
                    r.key().map(<[u8]>::to_vec),
                    r.value().map(<[u8]>::to_vec),
                    r.headers()
                        .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                        .collect(),
                )
            })
            .collect()
    }

    /// A native batch, then a Kafka batch compressed with `compression`, fetched from
    /// inside the Kafka batch: every field of every record at or past the fetch offset.
    fn kafka_records_read_back(compression: Compression) {
        let mut buf = batch(0, &["n0", "n1"]);
        let kafka = kafka_batch(2, &["a", "b", "c", "d"], compression);
        let kafka_at = buf.len();
        buf.extend_from_slice(&kafka);
        let part = PartitionBatches::parse(Arc::from("t"), 1, &buf, 0..buf.len(), 3).unwrap();
        assert_eq!(part.count, 3);
        assert_eq!(part.next_offset, 6);
        assert_eq!(
            part.batches[1].decompressed.is_some(),
            compression != Compression::None
        );
        let records = Records::new(Bytes::from(buf), vec![part]);
        assert_eq!(records.len(), 3);
        let headers = vec![
            ("trace".to_owned(), Some(b"t".to_vec())),
            ("null".to_owned(), None),
        ];
        assert_eq!(
            seen(&records),
            vec![
                (3, 1_010, None, Some(b"b".to_vec()), vec![]),
                (4, 1_020, Some(b"k2".to_vec()), Some(b"c".to_vec()), headers),
                (5, 1_030, None, Some(b"d".to_vec()), vec![]),
            ]
        );
        // Uncompressed Kafka records borrow the fetched bytes in place.
        let value = records.iter().next().unwrap().value().unwrap().as_ptr() as usize;
        let kafka_in_buf = records.bytes().as_ptr() as usize + kafka_at;
        let in_place = (kafka_in_buf..kafka_in_buf + kafka.len()).contains(&value);
        assert_eq!(
            in_place,
            compression == Compression::None,
            "{compression:?}"
        );
        let r = records.iter().nth(1).unwrap();
        assert_eq!((r.topic(), r.partition()), ("t", 1));
        assert!(format!("{r:?}").contains("trace"));
    }

    #[test]
    fn uncompressed_kafka_batches_read_in_place() {
        kafka_records_read_back(Compression::None);
    }

    #[test]
    fn gzip_kafka_batches_read_back() {
        kafka_records_read_back(Compression::Gzip);
    }

    #[test]
    fn snappy_kafka_batches_read_back() {
        kafka_records_read_back(Compression::Snappy);
    }

    #[test]
    fn lz4_kafka_batches_read_back() {
        kafka_records_read_back(Compression::Lz4);
    }

    #[test]
    fn zstd_kafka_batches_read_back() {
        kafka_records_read_back(Compression::Zstd);
    }

    #[test]
    fn skipping_a_whole_compressed_batch_yields_nothing_from_it() {
        let mut buf = kafka_batch(0, &["a", "b"], Compression::Zstd);
        buf.extend_from_slice(&batch(2, &["c"]));
        let part = PartitionBatches::parse(Arc::from("t"), 0, &buf, 0..buf.len(), 2).unwrap();
        assert_eq!(part.count, 1);
        let records = Records::new(Bytes::from(buf), vec![part]);
        let offsets: Vec<_> = records.iter().map(|r| r.offset()).collect();
        assert_eq!(offsets, [2]);
    }

    #[test]
    fn corrupt_compressed_kafka_batch_is_an_error() {
        let mut b = KafkaBatchBuilder::new();
        b.push(0, None, Some(b"not really gzip"), &[]);
        let mut kafka = b.build();
        kafka[22] = Compression::Gzip.code();
        let crc = crc32c::crc32c(&kafka[21..]);
        kafka[17..21].copy_from_slice(&crc.to_be_bytes());
        let buf = wrap_kafka_batch(&kafka).unwrap();
        let e = PartitionBatches::parse(Arc::from("t"), 0, &buf, 0..buf.len(), 0).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        assert!(e.to_string().contains("Gzip"), "{e}");
    }

    #[test]
    fn log_append_time_batches_report_the_append_time() {
        let mut k = KafkaBatchBuilder::new().with_attributes(
            Attributes::default()
                .with_timestamp_type(strata_schema::TimestampType::LogAppendTime)
                .with_compression(Compression::Lz4),
        );
        k.push(5, None, Some(b"v"), &[]);
        let mut buf = wrap_kafka_batch(&k.build()).unwrap();
        stamp_log_append_time(&mut buf, 1_700_000_000_000);
        let part = PartitionBatches::parse(Arc::from("t"), 0, &buf, 0..buf.len(), 0).unwrap();
        let records = Records::new(Bytes::from(buf), vec![part]);
        let r = records.iter().next().unwrap();
        assert_eq!(r.timestamp_ms(), 1_700_000_000_000);
    }
}
