//! SplitMix64: a tiny, fast, seedable PRNG for test schedules. Not cryptographic.

/// A SplitMix64 generator; the same seed yields the same sequence everywhere.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// An independent generator derived from this seed and `stream` (e.g. a task or
    /// iteration number), without advancing `self`.
    pub fn fork(&self, stream: u64) -> Self {
        let mut g = SplitMix64::new(self.state ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        SplitMix64::new(g.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[lo, hi)`; `hi` must be above `lo`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(hi > lo, "empty range {lo}..{hi}");
        // The modulo bias is irrelevant for test schedules.
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability 1 / `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.range(0, n) == 0
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_forks_differ() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        assert_eq!((a.next_u64(), a.next_u64()), (b.next_u64(), b.next_u64()));
        let root = SplitMix64::new(7);
        assert_ne!(root.fork(0).next_u64(), root.fork(1).next_u64());
        let mut r = SplitMix64::new(1);
        assert!((0..1000)
            .map(|_| r.range(5, 80))
            .all(|v| (5..80).contains(&v)));
        let mut buf = [0u8; 13];
        r.fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }
}
