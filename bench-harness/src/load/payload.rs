//! What a load run sends: record values that carry their intended send time in their
//! first bytes (so any consumer, through any driver, can measure end-to-end latency
//! from it), value sizes fixed or drawn from a range, and keys by distribution.
//! Everything random comes from one seeded generator, so a run can be repeated.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::ValueEnum;

/// Bytes at the start of each value: the intended send time, µs since the epoch, LE.
pub const STAMP_BYTES: usize = 8;
/// Distinct keys of the round-robin distribution.
pub const ROUND_ROBIN_KEYS: u64 = 1024;

/// Microseconds since the Unix epoch (the clock the stamps use; producers and
/// consumers of one run share a host, so their clocks agree).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Writes the intended send time into the start of `value` (at least
/// [`STAMP_BYTES`] long).
pub fn stamp(value: &mut [u8], intended_us: u64) {
    value[..STAMP_BYTES].copy_from_slice(&intended_us.to_le_bytes());
}

/// The intended send time stamped into `value`; `None` when it is too short to hold
/// one (a record this run did not write).
pub fn read_stamp(value: &[u8]) -> Option<u64> {
    let bytes: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A value size: fixed (`1024`) or drawn uniformly from a range (`100..2000`,
/// inclusive; `100-2000` works too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeRange {
    pub min_bytes: usize,
    pub max_bytes: usize,
}

impl SizeRange {
    /// A fixed size.
    pub fn fixed(bytes: usize) -> Self {
        SizeRange {
            min_bytes: bytes,
            max_bytes: bytes,
        }
    }

    /// The mean size, for turning MB/s into messages per second.
    pub fn mean_bytes(&self) -> f64 {
        (self.min_bytes as f64 + self.max_bytes as f64) / 2.0
    }
}

impl FromStr for SizeRange {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        let parse = |n: &str| {
            n.trim()
                .parse::<usize>()
                .with_context(|| format!("--record-bytes {s}: expected N or MIN..MAX bytes"))
        };
        let range = s.split_once("..").or_else(|| s.split_once('-'));
        let r = match range {
            Some((lo, hi)) => SizeRange {
                min_bytes: parse(lo)?,
                max_bytes: parse(hi)?,
            },
            None => SizeRange::fixed(parse(s)?),
        };
        if r.min_bytes > r.max_bytes {
            bail!("--record-bytes {s}: the minimum is larger than the maximum");
        }
        Ok(r)
    }
}

impl fmt::Display for SizeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min_bytes == self.max_bytes {
            write!(f, "{}", self.min_bytes)
        } else {
            write!(f, "{}..{}", self.min_bytes, self.max_bytes)
        }
    }
}

/// How records are keyed (and so, through the client's partitioner, spread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyDistribution {
    /// No key: the client's partitioner spreads records (sticky batches).
    None,
    /// Keys taken in turn from a fixed set of [`ROUND_ROBIN_KEYS`].
    RoundRobin,
    /// A fresh random 8-byte key per record.
    Random,
}

impl KeyDistribution {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            KeyDistribution::None => "none",
            KeyDistribution::RoundRobin => "round-robin",
            KeyDistribution::Random => "random",
        }
    }
}

/// xorshift64*: small, fast and seeded; not for anything but load generation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(lo <= hi);
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as usize
    }
}

/// Produces the values of one producer: a stamp, then filler up to the drawn size.
#[derive(Debug)]
pub struct ValueGen {
    sizes: SizeRange,
    rng: Rng,
    buf: Vec<u8>,
}

impl ValueGen {
    /// Values of `sizes` (each at least [`STAMP_BYTES`]), sizes drawn from `seed`.
    pub fn new(sizes: SizeRange, seed: u64) -> Self {
        assert!(
            sizes.min_bytes >= STAMP_BYTES,
            "values must hold the {STAMP_BYTES}-byte stamp"
        );
        // Non-zero filler, so no layer can treat values as holes.
        let buf = (0..sizes.max_bytes)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        ValueGen {
            sizes,
            rng: Rng::new(seed),
            buf,
        }
    }

    /// The next value, stamped with `intended_us`.
    pub fn next_value(&mut self, intended_us: u64) -> &[u8] {
        let len = self.rng.between(self.sizes.min_bytes, self.sizes.max_bytes);
        let value = &mut self.buf[..len];
        stamp(value, intended_us);
        value
    }
}

/// Produces the keys of one producer.
#[derive(Debug)]
pub struct KeyGen {
    distribution: KeyDistribution,
    rng: Rng,
    next: u64,
    buf: [u8; 8],
}

impl KeyGen {
    /// Keys of `distribution`; round-robin starts at `start` (so producers differ).
    pub fn new(distribution: KeyDistribution, seed: u64, start: u64) -> Self {
        KeyGen {
            distribution,
            rng: Rng::new(seed),
            next: start,
            buf: [0; 8],
        }
    }

    /// The next key; `None` for [`KeyDistribution::None`].
    pub fn next_key(&mut self) -> Option<&[u8]> {
        let k = match self.distribution {
            KeyDistribution::None => return None,
            KeyDistribution::RoundRobin => {
                let k = self.next % ROUND_ROBIN_KEYS;
                self.next = self.next.wrapping_add(1);
                k
            }
            KeyDistribution::Random => self.rng.next_u64(),
        };
        self.buf = k.to_le_bytes();
        Some(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_fixed_and_ranges() {
        assert_eq!("1024".parse::<SizeRange>().unwrap(), SizeRange::fixed(1024));
        let r = "100..2000".parse::<SizeRange>().unwrap();
        assert_eq!((r.min_bytes, r.max_bytes), (100, 2000));
        assert_eq!("100-2000".parse::<SizeRange>().unwrap(), r);
        assert_eq!(r.to_string(), "100..2000");
        assert_eq!(r.mean_bytes(), 1050.0);
        assert!("2000..100".parse::<SizeRange>().is_err());
        assert!("big".parse::<SizeRange>().is_err());
    }

    #[test]
    fn values_carry_their_stamp_and_stay_in_range() {
        let mut g = ValueGen::new("16..64".parse().unwrap(), 7);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..2000u64 {
            let v = g.next_value(1_000_000 + i);
            assert!((16..=64).contains(&v.len()));
            assert_eq!(read_stamp(v), Some(1_000_000 + i));
            seen.insert(v.len());
        }
        assert_eq!(seen.first(), Some(&16));
        assert_eq!(seen.last(), Some(&64));
        assert_eq!(read_stamp(&[1, 2, 3]), None);
    }

    #[test]
    fn keys_follow_their_distribution() {
        assert_eq!(KeyGen::new(KeyDistribution::None, 1, 0).next_key(), None);
        let mut rr = KeyGen::new(KeyDistribution::RoundRobin, 1, ROUND_ROBIN_KEYS - 1);
        let first = rr.next_key().unwrap().to_vec();
        assert_eq!(first, (ROUND_ROBIN_KEYS - 1).to_le_bytes());
        assert_eq!(rr.next_key().unwrap(), 0u64.to_le_bytes());
        let mut random = KeyGen::new(KeyDistribution::Random, 3, 0);
        let a = random.next_key().unwrap().to_vec();
        let b = random.next_key().unwrap().to_vec();
        assert_ne!(a, b);
        // Same seed, same keys.
        let mut again = KeyGen::new(KeyDistribution::Random, 3, 0);
        assert_eq!(again.next_key().unwrap(), &a[..]);
    }
}
