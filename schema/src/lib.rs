//! strata-schema: the wire and disk formats of strata's record batches.
//!
//! A batch is a fixed 80-byte [`BatchHeader`] followed by a payload: either `native`
//! (an rkyv archive of records that consumers read in place) or `kafka` (a Kafka
//! RecordBatch v2 exactly as a Kafka client sent it). This crate encodes, checks,
//! validates, iterates and stamps batches held in byte slices. It owns the formats and
//! nothing else: it never does I/O, reads native records in place without allocating,
//! and never panics on untrusted bytes.
//!
//! Everything is little endian with alignment 1 (rkyv's `unaligned` feature), so a
//! batch can be read at any byte position of a segment or socket buffer.
//!
//! Which check to use:
//! - [`validate_batch`] (and [`validate_produced_batch`]) on the produce path: header,
//!   CRC and full payload structure of exactly one batch.
//! - [`check_batch`] / [`batches`] on recovery and reads: header, length and CRC only.
//! - [`stamp_base_offset`], [`stamp_leader_epoch`], [`stamp_log_append_time`] write the
//!   broker-owned fields, which sit outside every CRC.

mod api;
mod attributes;
mod batch;
mod control;
mod convert;
mod crc;
mod error;
mod error_code;
mod frame;
mod header;
mod kafka;
pub mod kafka_compression;
mod kafka_retain;
mod native;
pub mod protocol;
pub mod replication;

pub use api::{
    ApiKey, ReplicationApi, REPAIR_PARTITIONS_KEY, REPLICATION_API_MAX, REPLICATION_API_MIN,
};
pub use attributes::{Attributes, Compression, TimestampType};
pub use batch::{
    batches, check_batch, stamp_base_offset, stamp_leader_epoch, stamp_log_append_time,
    validate_batch, validate_produced_batch, validate_produced_batch_with, BatchIter, BatchView,
    ProduceRules, ValidatedBatch,
};
pub use control::{
    is_control_batch, leader_change_batch, membership_batch, membership_of_batch,
    CONTROL_TYPE_LEADER_CHANGE, CONTROL_TYPE_MEMBERSHIP,
};
pub use convert::{
    kafka_payload, log_append_time_kafka_header, native_to_kafka, native_to_kafka_into,
    stamp_kafka_log_append_time,
};
pub use crc::compute_batch_crc;
pub use error::BatchError;
pub use error_code::ErrorCode;
pub use frame::{
    encode_frame, frame_header, split_frame, Frame, FrameError, FrameHeader, FRAME_BYTES_MAX,
    FRAME_HEADER_BYTES,
};
pub use header::{
    layout, peek_batch_len, BatchHeader, PayloadFormat, BATCH_BYTES_MAX, BATCH_HEADER_BYTES,
    BATCH_MAGIC, BATCH_VERSION,
};
pub use kafka::{
    check_kafka_batch, decode_kafka_records, kafka_records, validate_kafka_batch, wrap_kafka_batch,
    wrap_kafka_batch_produced, KafkaBatchBuilder, KafkaBatchHeader, KafkaBatchRecords, KafkaHeader,
    KafkaHeaders, KafkaRecord, KafkaRecordView, KafkaRecords, KAFKA_HEADER_BYTES, KAFKA_MAGIC,
};
pub use kafka_compression::KAFKA_RECORDS_BYTES_MAX;
pub use kafka_retain::retain_kafka_records;
pub use native::{
    retain_native_records, NativeBatchBuilder, NativeHeader, NativeRecord, NativeRecords,
    RecordView,
};
