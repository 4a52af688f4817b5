//! SplitMix64: the tiny seeded generator behind randomised election timeouts and the
//! simulation's schedules. Not cryptographic; the same seed gives the same sequence on
//! every machine, which is what makes a simulation seed replayable.

/// A SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// An independent generator for `stream` (a node, a group), without advancing `self`.
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

    /// A value in `[lo, hi)`; an empty range yields `lo`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        // The modulo bias is irrelevant for timeouts and test schedules.
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.range(0, 1000) < per_mille
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_forks_differ() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let root = SplitMix64::new(7);
        assert_ne!(root.fork(1).next_u64(), root.fork(2).next_u64());
        let mut r = SplitMix64::new(3);
        for _ in 0..100 {
            let v = r.range(5, 9);
            assert!((5..9).contains(&v));
        }
        assert_eq!(r.range(4, 4), 4);
    }
}
