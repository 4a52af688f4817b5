//! Which partition a record goes to: Kafka's default partitioner for keyed records
//! (murmur2, so a key lands on the same partition number as with Kafka clients) and a
//! sticky choice for unkeyed ones (stay on one partition until its batch is sealed,
//! then move to the next, so unkeyed records fill whole batches).

use std::collections::HashMap;

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): 32-bit MurmurHash2
/// with seed `0x9747b28c`, little-endian 4-byte blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        for (i, byte) in rest.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `toPositive`: clears the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(n: i32) -> u32 {
    (n & 0x7fff_ffff) as u32
}

/// The partition Kafka's default partitioner gives `key` among `num_partitions`.
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> u32 {
    assert!(num_partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % num_partitions
}

/// Chooses partitions for records without one: keyed by murmur2, unkeyed sticky.
#[derive(Debug, Default)]
pub struct Partitioner {
    /// Current sticky partition per topic for unkeyed records.
    sticky: HashMap<String, u32>,
}

impl Partitioner {
    pub fn new() -> Partitioner {
        Partitioner::default()
    }

    /// The partition for a record of `topic` with `key`.
    pub fn partition(&mut self, topic: &str, key: Option<&[u8]>, num_partitions: u32) -> u32 {
        assert!(num_partitions > 0, "a topic has at least one partition");
        match key {
            Some(key) => partition_for_key(key, num_partitions),
            None => match self.sticky.get(topic) {
                Some(&p) if p < num_partitions => p,
                _ => {
                    // Spread producers that start together over the partitions.
                    let start = std::process::id() % num_partitions;
                    self.sticky.insert(topic.to_owned(), start);
                    start
                }
            },
        }
    }

    /// The batch of `topic`/`partition` was sealed: unkeyed records move on if they
    /// were sticking to it.
    pub fn batch_sealed(&mut self, topic: &str, partition: u32, num_partitions: u32) {
        if let Some(p) = self.sticky.get_mut(topic) {
            if *p == partition && num_partitions > 0 {
                *p = (partition + 1) % num_partitions;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From Kafka's own test of `Utils.murmur2` (UtilsTest.testMurmur2).
    #[test]
    fn murmur2_matches_kafka_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    /// A literal transcription of the Java code (signed ints, `>>>`, fall-through
    /// switch), to compare against the idiomatic version on every tail length.
    fn reference_murmur2(data: &[u8]) -> i32 {
        let length = data.len() as i32;
        let seed = 0x9747b28c_u32 as i32;
        let m: i32 = 0x5bd1e995;
        let r = 24;
        let mut h = seed ^ length;
        let length4 = length / 4;
        for i in 0..length4 {
            let i4 = (i * 4) as usize;
            let mut k = (data[i4] as i32 & 0xff)
                + ((data[i4 + 1] as i32 & 0xff) << 8)
                + ((data[i4 + 2] as i32 & 0xff) << 16)
                + ((data[i4 + 3] as i32 & 0xff) << 24);
            k = k.wrapping_mul(m);
            k ^= ((k as u32) >> r) as i32;
            k = k.wrapping_mul(m);
            h = h.wrapping_mul(m);
            h ^= k;
        }
        let base = (length & !3) as usize;
        let rem = length % 4;
        if rem >= 3 {
            h ^= (data[base + 2] as i32 & 0xff) << 16;
        }
        if rem >= 2 {
            h ^= (data[base + 1] as i32 & 0xff) << 8;
        }
        if rem >= 1 {
            h ^= data[base] as i32 & 0xff;
            h = h.wrapping_mul(m);
        }
        h ^= ((h as u32) >> 13) as i32;
        h = h.wrapping_mul(m);
        h ^= ((h as u32) >> 15) as i32;
        h
    }

    #[test]
    fn murmur2_matches_reference_on_all_tail_lengths() {
        let mut data = Vec::new();
        let mut x: u32 = 12345;
        for len in 0..200 {
            assert_eq!(murmur2(&data), reference_murmur2(&data), "len {len}");
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push((x >> 16) as u8); // high bytes too: sign extension must not leak
        }
    }

    #[test]
    fn keyed_partition_uses_to_positive_not_abs() {
        // murmur2("21") is negative: toPositive(-973932308) = 1173551340.
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
        assert_eq!(partition_for_key(b"21", 7), 1_173_551_340 % 7);
        assert_eq!(to_positive(i32::MIN), 0);
        let mut p = Partitioner::new();
        for n in 1..20 {
            assert_eq!(
                p.partition("t", Some(b"foobar"), n),
                partition_for_key(b"foobar", n)
            );
        }
    }

    #[test]
    fn unkeyed_sticks_until_the_batch_is_sealed() {
        let mut p = Partitioner::new();
        let first = p.partition("t", None, 3);
        assert_eq!(p.partition("t", None, 3), first);
        p.batch_sealed("t", (first + 1) % 3, 3); // another partition: no move
        assert_eq!(p.partition("t", None, 3), first);
        p.batch_sealed("t", first, 3);
        assert_eq!(p.partition("t", None, 3), (first + 1) % 3);
    }
}
