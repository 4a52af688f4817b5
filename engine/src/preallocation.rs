//! How much disk a segment reserves ahead of its writes (fallocate, KEEP_SIZE).
//!
//! A reservation keeps a hot segment's blocks contiguous and takes block allocation
//! off the write path, but every byte reserved and not yet written is disk a light
//! partition pays for nothing. So the reservation grows with the partition's write
//! rate: the first step is a few blocks, and each time the writes catch up with the
//! reservation the next step doubles, up to `PREALLOCATE_STEP_BYTES_MAX`. A partition
//! that wrote one small batch holds a few KiB; one that streams reaches the cap after
//! a dozen steps (a few MiB written) and then reserves at most one step ahead.

/// First reservation step of a segment (a few blocks), unless the config says otherwise.
pub const PREALLOCATE_STEP_BYTES_MIN_DEFAULT: u64 = 8 * 1024;
/// Largest reservation step: what a streaming partition reserves ahead at most.
pub const PREALLOCATE_STEP_BYTES_MAX: u64 = 32 * 1024 * 1024;

/// The growing reservation of the segment being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Bytes of the file reserved so far (0 = nothing yet).
    pub reserved_bytes: u64,
    /// The step the next extension adds.
    pub step_bytes: u64,
}

impl Reservation {
    /// A segment that reserved nothing yet; the first step is `step_bytes_min`
    /// (clamped to a block and to the cap).
    pub fn new(step_bytes_min: u64) -> Self {
        Reservation {
            reserved_bytes: 0,
            step_bytes: step_bytes_min
                .clamp(crate::file::DMA_ALIGN_BYTES, PREALLOCATE_STEP_BYTES_MAX),
        }
    }

    /// The size to reserve the file to before a write that makes it `needed_bytes`
    /// long, or `None` when the reservation already covers it. Never reserves past
    /// `segment_bytes` (a segment rolls there) unless the write itself goes past it.
    pub fn extend_for(&mut self, needed_bytes: u64, segment_bytes: u64) -> Option<u64> {
        if needed_bytes <= self.reserved_bytes {
            return None;
        }
        let target = needed_bytes
            .saturating_add(self.step_bytes)
            .min(segment_bytes.max(needed_bytes));
        let target = crate::file::align_up(target);
        self.reserved_bytes = target;
        self.step_bytes = (self.step_bytes * 2).min(PREALLOCATE_STEP_BYTES_MAX);
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_light_segment_reserves_a_few_blocks() {
        let mut r = Reservation::new(PREALLOCATE_STEP_BYTES_MIN_DEFAULT);
        // One 100-byte batch (a 4 KiB block on disk).
        assert_eq!(r.extend_for(100, GIB), Some(12 * 1024));
        // More small batches fit in what is reserved: no new reservation.
        assert_eq!(r.extend_for(8 * 1024, GIB), None);
        assert!(r.reserved_bytes <= 16 * 1024);
    }

    #[test]
    fn steps_double_with_the_write_rate_up_to_the_cap() {
        let mut r = Reservation::new(PREALLOCATE_STEP_BYTES_MIN_DEFAULT);
        let mut written = 0u64;
        let mut steps = Vec::new();
        // A streaming writer: 64 KiB per write, 256 MiB in all.
        while written < 256 << 20 {
            written += 64 * 1024;
            let before = r.reserved_bytes;
            if let Some(target) = r.extend_for(written, GIB) {
                assert!(target >= written, "the reservation covers the write");
                steps.push(target - before);
            }
        }
        assert!(
            steps.windows(2).all(|w| w[1] >= w[0]),
            "steps only grow: {steps:?}"
        );
        let largest = *steps.iter().max().unwrap_or(&0);
        assert!(largest <= PREALLOCATE_STEP_BYTES_MAX + 64 * 1024);
        assert!(
            largest >= PREALLOCATE_STEP_BYTES_MAX,
            "a streaming partition reaches the cap"
        );
        // Reserved ahead of what is written: at most one step.
        assert!(r.reserved_bytes - written <= PREALLOCATE_STEP_BYTES_MAX);
        // Few fallocate calls: the doubling reaches the cap quickly.
        assert!(steps.len() < 24, "{} reservations", steps.len());
    }

    #[test]
    fn never_reserves_past_the_segment_size() {
        let mut r = Reservation::new(PREALLOCATE_STEP_BYTES_MAX);
        assert_eq!(r.extend_for(4096, 1 << 20), Some(1 << 20));
        assert_eq!(r.extend_for(1 << 20, 1 << 20), None);
        // A batch larger than the segment size still gets room for itself.
        let mut r = Reservation::new(PREALLOCATE_STEP_BYTES_MIN_DEFAULT);
        assert_eq!(r.extend_for(3 << 20, 1 << 20), Some(3 << 20));
    }

    #[test]
    fn the_old_policy_is_one_fixed_step() {
        // A minimum step at the cap is the fixed 32 MiB step the engine used before.
        let mut r = Reservation::new(PREALLOCATE_STEP_BYTES_MAX);
        assert_eq!(
            r.extend_for(100, GIB),
            Some(align(100 + PREALLOCATE_STEP_BYTES_MAX))
        );
    }

    fn align(v: u64) -> u64 {
        crate::file::align_up(v)
    }
}
