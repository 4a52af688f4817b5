//! [`Records`]: what one `poll` returned. It owns the fetched batch bytes (one shared
//! buffer, as read from the socket) and hands out [`ConsumerRecord`]s that borrow
//! key, value and headers from them in place — no record is copied or deserialised.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use strata_schema::{validate_batch, BatchHeader, RecordView, BATCH_HEADER_BYTES};

use crate::error::{ClientError, Result};

/// One partition's share of a fetch.
#[derive(Clone, Debug)]
pub(crate) struct PartitionBatches {
    pub topic: Arc<str>,
    pub partition: u32,
    /// Each whole, validated batch, as a range of the buffer.
    pub batches: Vec<Range<usize>>,
    /// Records below this offset (the fetch offset) are skipped.
    pub skip_below: i64,
    /// Records handed out.
    pub count: usize,
    /// The offset after the last record of the last batch.
    pub next_offset: i64,
}

impl PartitionBatches {
    /// Validates the batches in `buf[range]` (every batch fully: CRC and record
    /// structure) and counts the records at or above `skip_below`. A truncated last
    /// batch (the broker cut the response at `max_bytes`) is left for the next fetch.
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
            let view = validate_batch(bytes).map_err(|e| {
                ClientError::Protocol(format!(
                    "fetched batch at offset {} of {}/{} is corrupt: {e}",
                    header.base_offset, out.topic, out.partition
                ))
            })?;
            out.count += view.records()?.filter(|r| r.offset() >= skip_below).count();
            out.next_offset = out.next_offset.max(header.last_offset() + 1);
            out.batches.push(at..at + bytes.len());
            at += bytes.len();
        }
        Ok(out)
    }
}

/// The records of one `poll`, in partition order and offset order within a partition.
#[derive(Clone, Debug, Default)]
pub struct Records {
    buf: Bytes,
    parts: Vec<PartitionBatches>,
}

impl Records {
    pub(crate) fn new(buf: Bytes, parts: Vec<PartitionBatches>) -> Records {
        Records { buf, parts }
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
            buf: &self.buf,
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

    /// The fetched bytes all records borrow from.
    pub fn bytes(&self) -> &Bytes {
        &self.buf
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
    buf: &'a [u8],
    parts: std::slice::Iter<'a, PartitionBatches>,
    part: Option<&'a PartitionBatches>,
    batches: std::slice::Iter<'a, Range<usize>>,
    records: Option<strata_schema::NativeRecords<'a>>,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = ConsumerRecord<'a>;

    fn next(&mut self) -> Option<ConsumerRecord<'a>> {
        loop {
            if let (Some(part), Some(records)) = (self.part, self.records.as_mut()) {
                for view in records.by_ref() {
                    if view.offset() >= part.skip_below {
                        return Some(ConsumerRecord {
                            topic: &part.topic,
                            partition: part.partition,
                            view,
                        });
                    }
                }
                self.records = None;
            }
            if let Some(range) = self.batches.next() {
                // Validated in `parse`, and the bytes are immutable since: this cannot
                // fail. (It does repeat the CRC and archive check: the schema crate
                // exposes no unchecked view.)
                match validate_batch(&self.buf[range.clone()]).and_then(|v| v.records()) {
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

/// One fetched record; key, value and headers borrow from the fetched bytes.
#[derive(Clone, Copy)]
pub struct ConsumerRecord<'a> {
    topic: &'a str,
    partition: u32,
    view: RecordView<'a>,
}

impl<'a> ConsumerRecord<'a> {
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn offset(&self) -> i64 {
        self.view.offset()
    }

    /// Create time (or log-append time on such topics), ms since the epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.view.timestamp_ms()
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        self.view.key()
    }

    pub fn value(&self) -> Option<&'a [u8]> {
        self.view.value()
    }

    /// Headers in order: `(key, value)`.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        self.view.headers()
    }
}

impl std::fmt::Debug for ConsumerRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("record", &self.view)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_schema::{stamp_base_offset, NativeBatchBuilder};

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
        assert_eq!(part.batches.last().unwrap().end, full);
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
    fn corrupt_batch_is_an_error() {
        let mut buf = batch(0, &["a"]);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let e = PartitionBatches::parse(Arc::from("t"), 0, &buf, 0..buf.len(), 0).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
    }
}
