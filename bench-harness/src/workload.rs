//! What the benchmarks append: native batches of fixed-size records, and the flush
//! policies named on the command line.

use std::fmt;
use std::str::FromStr;

use strata_engine::FlushPolicy;
use strata_schema::NativeBatchBuilder;

/// A native batch of as many `record_bytes`-value records as fit in `batch_bytes`
/// (at least one). Values are non-zero bytes so no layer can treat them as holes.
pub fn build_batch(record_bytes: usize, batch_bytes: usize) -> Vec<u8> {
    let value: Vec<u8> = (0..record_bytes).map(|i| b'a' + (i % 26) as u8).collect();
    let build = |records: usize| {
        let mut b = NativeBatchBuilder::new();
        for i in 0..records {
            let key = format!("key-{i:06}");
            b.push(
                1_700_000_000_000 + i as i64,
                Some(key.as_bytes()),
                Some(&value),
                &[],
            );
        }
        b.build()
    };
    let per_record = record_bytes + 32;
    let mut records = (batch_bytes / per_record).max(1);
    let mut batch = build(records);
    while batch.len() < batch_bytes {
        let next = build(records + 1);
        if next.len() > batch_bytes {
            break;
        }
        records += 1;
        batch = next;
    }
    while batch.len() > batch_bytes && records > 1 {
        records -= 1;
        batch = build(records);
    }
    batch
}

/// A native batch of exactly `records` records with `value_bytes`-long values.
pub fn batch_of(records: usize, value_bytes: usize) -> Vec<u8> {
    let value = vec![b'v'; value_bytes];
    let mut b = NativeBatchBuilder::new();
    for i in 0..records {
        let key = format!("key-{i:06}");
        b.push(
            1_700_000_000_000 + i as i64,
            Some(key.as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build()
}

/// Number of records in a batch built by `build_batch`.
pub fn record_count(batch: &[u8]) -> usize {
    strata_schema::check_batch(batch).map_or(0, |h| h.record_count as usize)
}

/// A flush policy as written on the command line: `every`, `<N>ms`, or `os`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushArg(pub FlushPolicy);

impl FlushArg {
    /// Whether durability comes from a timer rather than from each write cycle.
    pub fn is_interval(&self) -> bool {
        !matches!(self.0, FlushPolicy::EveryBatch)
    }
}

impl FromStr for FlushArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "every" => Ok(FlushArg(FlushPolicy::EveryBatch)),
            "os" => Ok(FlushArg(FlushPolicy::Os)),
            _ => s
                .strip_suffix("ms")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|&n| n > 0)
                .map(|n| FlushArg(FlushPolicy::IntervalMs(n)))
                .ok_or_else(|| format!("flush policy {s:?}: expected every, os, or <N>ms")),
        }
    }
}

impl fmt::Display for FlushArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            FlushPolicy::EveryBatch => write!(f, "every"),
            FlushPolicy::IntervalMs(n) => write!(f, "{n}ms"),
            FlushPolicy::Os => write!(f, "os"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_fills_but_does_not_exceed_target() {
        let b = build_batch(1024, 65536);
        assert!(b.len() <= 65536, "{}", b.len());
        assert!(b.len() > 65536 - 1200, "{}", b.len());
        assert!(record_count(&b) >= 60);
        strata_schema::validate_batch(&b).expect("valid batch");
    }

    #[test]
    fn flush_args_parse_and_print() {
        for s in ["every", "10ms", "os"] {
            assert_eq!(s.parse::<FlushArg>().unwrap().to_string(), s);
        }
        assert!("0ms".parse::<FlushArg>().is_err());
        assert!("sometimes".parse::<FlushArg>().is_err());
    }
}
