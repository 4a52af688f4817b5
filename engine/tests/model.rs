//! Random sequences of append / read / truncate / roll / reopen, checked against a
//! plain in-memory model of the log. Some appends come from an idempotent producer,
//! and retries of its batches must be answered with the original offsets (or refused
//! once they are older than the five it remembers).

mod common;

use common::*;
use proptest::prelude::*;
use strata_engine::{
    run_local, AppendOptions, BatchCache, Durability, EngineError, Log, LogConfig, LogEnv,
};
use strata_schema::NativeBatchBuilder;

/// The idempotent producer of the model.
const PID: i64 = 1;

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        value_bytes: usize,
        durable: bool,
        idempotent: bool,
    },
    /// Resends one of the producer's batches still in the log, `back` from the newest.
    Retry {
        back: u8,
    },
    Read {
        at: u16,
        max_bytes: usize,
    },
    Truncate {
        at: u16,
    },
    TruncateMidBatch {
        at: u16,
    },
    Roll,
    Reopen {
        clean: bool,
    },
    TimestampLookup {
        at: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..2500, any::<bool>(), any::<bool>())
            .prop_map(|(records, value_bytes, durable, idempotent)| Op::Append { records, value_bytes, durable, idempotent }),
        2 => (0u8..8).prop_map(|back| Op::Retry { back }),
        4 => (any::<u16>(), 1usize..20_000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::TruncateMidBatch { at }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<u16>().prop_map(|at| Op::TimestampLookup { at }),
    ]
}

/// One batch of the model: offsets, the tag its values carry, and its timestamp.
#[derive(Clone, Debug, PartialEq)]
struct ModelBatch {
    base: i64,
    last: i64,
    tag: u64,
    ts: i64,
    /// First sequence, for the producer's batches.
    seq: Option<i32>,
}

/// `common::batch`, sent by the model's producer with sequences from `seq`.
fn producer_batch(tag: u64, records: usize, value_bytes: usize, ts: i64, seq: i32) -> Vec<u8> {
    let mut b = NativeBatchBuilder::new().with_producer(PID, 0, seq);
    for i in 0..records {
        let mut value = format!("{tag}:{i}:").into_bytes();
        value.resize(value_bytes.max(value.len()), b'x');
        b.push(ts + i as i64, Some(b"k"), Some(&value), &[]);
    }
    b.build()
}

/// The sequence the producer must send next: after its newest batch in the log.
fn next_seq(model: &[ModelBatch]) -> i32 {
    model
        .iter()
        .rev()
        .find_map(|b| Some(b.seq? + (b.last - b.base) as i32 + 1))
        .unwrap_or(0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

fn env() -> LogEnv {
    // A tiny cache, so reads go to disk too.
    LogEnv {
        cache: BatchCache::new(16 * 1024),
        ..LogEnv::default()
    }
}

async fn run_ops(path: std::path::PathBuf, ops: Vec<Op>) {
    let mut log = Log::open(&path, config(), env()).await.unwrap();
    let mut model: Vec<ModelBatch> = Vec::new();
    let mut tag = 0u64;
    let pick =
        |model: &Vec<ModelBatch>, at: u16| model.get(at as usize % model.len().max(1)).cloned();
    for op in ops {
        let end = model.last().map_or(0, |b| b.last + 1);
        match op {
            Op::Append {
                records,
                value_bytes,
                durable,
                idempotent,
            } => {
                tag += 1;
                let ts = 1_000 + tag as i64 * 10;
                let durability = if durable {
                    Durability::Durable
                } else {
                    Durability::Written
                };
                let seq = idempotent.then(|| next_seq(&model));
                let bytes = match seq {
                    Some(seq) => producer_batch(tag, records, value_bytes, ts, seq),
                    None => batch(tag, records, value_bytes, ts),
                };
                let info = log
                    .append(bytes, AppendOptions::new(durability))
                    .await
                    .unwrap();
                assert!(!info.duplicate);
                assert_eq!(info.base_offset, end);
                assert_eq!(info.last_offset, end + records as i64 - 1);
                model.push(ModelBatch {
                    base: info.base_offset,
                    last: info.last_offset,
                    tag,
                    ts,
                    seq,
                });
            }
            Op::Retry { back } => {
                let sent: Vec<&ModelBatch> = model.iter().filter(|b| b.seq.is_some()).collect();
                let Some(b) = sent
                    .len()
                    .checked_sub(1 + usize::from(back))
                    .map(|i| sent[i])
                else {
                    continue;
                };
                let records = (b.last - b.base + 1) as usize;
                let seq = b.seq.unwrap_or_default();
                let got = log
                    .append(
                        producer_batch(b.tag, records, 10, b.ts, seq),
                        AppendOptions::new(Durability::Written),
                    )
                    .await;
                if back < 5 {
                    let info = got.unwrap();
                    assert!(info.duplicate, "retry {back} back is a duplicate");
                    assert_eq!((info.base_offset, info.last_offset), (b.base, b.last));
                } else {
                    let err = got.unwrap_err();
                    assert!(
                        matches!(err, EngineError::OutOfOrderSequence { expected, .. } if expected == next_seq(&model)),
                        "a retry older than the last five is refused: {err:?}"
                    );
                }
            }
            Op::Read { at, max_bytes } => {
                let Some(first) = pick(&model, at) else {
                    continue;
                };
                let from = first.base + i64::from(at) % (first.last - first.base + 1);
                let r = log.read(from, max_bytes, Some(end)).await.unwrap();
                assert!(
                    !r.batches.is_empty(),
                    "a read below the end returns at least one batch"
                );
                let i = model.iter().position(|b| b.base == first.base).unwrap();
                let mut total = 0;
                for (k, bytes) in r.batches.iter().enumerate() {
                    let h = strata_schema::check_batch(bytes).unwrap();
                    let want = &model[i + k];
                    assert_eq!((h.base_offset, h.last_offset()), (want.base, want.last));
                    let view = strata_schema::validate_batch(bytes).unwrap();
                    let v = view
                        .records()
                        .unwrap()
                        .next()
                        .unwrap()
                        .value()
                        .unwrap()
                        .to_vec();
                    assert!(v.starts_with(format!("{}:0:", want.tag).as_bytes()));
                    total += bytes.len();
                }
                assert!(
                    r.batches.len() == 1 || total <= max_bytes,
                    "budget respected"
                );
            }
            Op::Truncate { at } => {
                let Some(b) = pick(&model, at) else { continue };
                log.truncate(b.base).await.unwrap();
                model.retain(|m| m.base < b.base);
                assert_eq!(log.log_end_offset(), b.base);
            }
            Op::TruncateMidBatch { at } => {
                let Some(b) = pick(&model, at) else { continue };
                if b.last == b.base {
                    continue;
                }
                let err = log.truncate(b.base + 1).await.unwrap_err();
                assert!(
                    matches!(err, EngineError::NotBatchBoundary { batch_base_offset, .. } if batch_base_offset == b.base),
                    "{err:?}"
                );
            }
            Op::Roll => log.roll().await.unwrap(),
            Op::Reopen { clean } => {
                if clean {
                    log.close().await.unwrap();
                }
                drop(log);
                log = Log::open(&path, config(), env()).await.unwrap();
                assert!(log.fenced_reason().is_none());
            }
            Op::TimestampLookup { at } => {
                let Some(b) = pick(&model, at) else { continue };
                let got = log.offset_for_timestamp(b.ts).await.unwrap();
                assert_eq!(got, Some((b.base, b.ts)));
            }
        }
        assert_eq!(log.log_end_offset(), model.last().map_or(0, |b| b.last + 1));
        assert_eq!(
            log.producer(PID).map(|p| p.last_seq() + 1),
            model
                .iter()
                .any(|b| b.seq.is_some())
                .then(|| next_seq(&model)),
            "producer state matches the log"
        );
    }
    // Finally everything reads back exactly, from disk after a reopen too.
    let expect: Vec<(i64, i64)> = model.iter().map(|b| (b.base, b.last)).collect();
    let got: Vec<(i64, i64)> = read_all(&log).await.iter().map(|b| (b.0, b.1)).collect();
    assert_eq!(got, expect);
    drop(log);
    let log = Log::open(&path, config(), env()).await.unwrap();
    let got: Vec<(i64, i64)> = read_all(&log).await.iter().map(|b| (b.0, b.1)).collect();
    assert_eq!(got, expect);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run_local(move || run_ops(path, ops));
    }
}
