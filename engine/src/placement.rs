//! Which shard of this broker owns a partition.
//!
//! Placement is a pure function of (topic, partition, shard count): every shard
//! computes the same answer without asking anyone, so a request can be routed to its
//! owner with no shared state. A topic's partitions go round-robin over the shards,
//! starting from a shard picked by a fixed hash of the topic name, so that many
//! single-partition topics do not all land on shard 0.

/// Index of a shard (one glommio executor, one core) inside this broker: `0..shard_count`.
pub type ShardId = usize;

/// 64-bit FNV-1a offset basis.
const FNV1A_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// 64-bit FNV-1a prime.
const FNV1A_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Which shard owns a partition: deterministic and stable for a given shard count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    shard_count: usize,
}

impl Placement {
    /// A placement over `shard_count` shards.
    ///
    /// # Panics
    /// If `shard_count` is 0: a broker always has at least one shard.
    pub fn new(shard_count: usize) -> Self {
        assert!(shard_count > 0, "a placement needs at least one shard");
        Self { shard_count }
    }

    /// Number of shards partitions are spread over.
    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// The shard that owns `partition` of `topic`.
    pub fn shard_for(&self, topic: &str, partition: u32) -> ShardId {
        let shard_count = self.shard_count as u64;
        let first = topic_hash(topic) % shard_count;
        let offset = u64::from(partition) % shard_count;
        let shard = (first + offset) % shard_count;
        debug_assert!(shard < shard_count);
        // `shard < shard_count`, which came from a usize: the cast cannot truncate.
        shard as ShardId
    }
}

/// FNV-1a over the topic name's bytes. Fixed on purpose: std's hasher is seeded per
/// process, and placement must agree across shards, restarts and brokers.
fn topic_hash(topic: &str) -> u64 {
    topic.bytes().fold(FNV1A_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV1A_PRIME)
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topic_hash_is_fnv1a_64() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(topic_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(topic_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(topic_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn placement_is_pinned() {
        // Changing these moves partitions between shards on upgrade: don't.
        assert_eq!(Placement::new(4).shard_for("orders", 0), 0);
        assert_eq!(Placement::new(4).shard_for("orders", 3), 3);
        assert_eq!(Placement::new(4).shard_for("orders", 5), 1);
        assert_eq!(Placement::new(3).shard_for("orders", 0), 1);
        assert_eq!(Placement::new(8).shard_for("__consumer_offsets", 0), 4);
        assert_eq!(Placement::new(8).shard_for("__consumer_offsets", 6), 2);
    }

    #[test]
    fn one_shard_owns_everything() {
        let placement = Placement::new(1);
        for partition in [0, 1, 7, u32::MAX] {
            assert_eq!(placement.shard_for("t", partition), 0);
        }
    }

    #[test]
    fn a_topics_partitions_spread_evenly() {
        for shard_count in 1..=16 {
            let placement = Placement::new(shard_count);
            let rounds = 5;
            let partitions = (shard_count * rounds) as u32;
            let mut owned = vec![0usize; shard_count];
            for partition in 0..partitions {
                owned[placement.shard_for("events", partition)] += 1;
            }
            assert!(owned.iter().all(|&count| count == rounds), "{owned:?}");
        }
    }

    #[test]
    fn single_partition_topics_spread_over_shards() {
        let shard_count = 4;
        let placement = Placement::new(shard_count);
        let mut owned = vec![0usize; shard_count];
        for topic in 0..400 {
            owned[placement.shard_for(&format!("topic-{topic}"), 0)] += 1;
        }
        // 100 expected per shard; a fixed hash of distinct names is close to uniform.
        assert!(
            owned.iter().all(|&count| (60..=140).contains(&count)),
            "{owned:?}"
        );
    }

    #[test]
    #[should_panic(expected = "at least one shard")]
    fn zero_shards_is_rejected() {
        let _ = Placement::new(0);
    }

    proptest! {
        #[test]
        fn shard_is_in_range_and_deterministic(
            topic in ".{0,64}",
            partition in any::<u32>(),
            shard_count in 1usize..=256,
        ) {
            let placement = Placement::new(shard_count);
            let shard = placement.shard_for(&topic, partition);
            prop_assert!(shard < shard_count);
            prop_assert_eq!(shard, Placement::new(shard_count).shard_for(&topic, partition));
        }

        #[test]
        fn consecutive_partitions_go_to_consecutive_shards(
            topic in "[a-z.-]{1,32}",
            partition in 0u32..u32::MAX,
            shard_count in 1usize..=64,
        ) {
            let placement = Placement::new(shard_count);
            let here = placement.shard_for(&topic, partition);
            let next = placement.shard_for(&topic, partition + 1);
            prop_assert_eq!(next, (here + 1) % shard_count);
        }
    }
}
