//! `--pin-cores`: pins the benchmark's own client threads (producer loops, consumer
//! loops) to the given cores in turn, so they do not wander onto a core reserved for
//! the broker. Threads inside the client libraries are not pinned.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::bail;
use core_affinity::CoreId;

/// Deals cores out to threads in turn.
#[derive(Debug, Default)]
pub struct Pinner {
    cores: Vec<CoreId>,
    next: AtomicUsize,
}

impl Pinner {
    /// A pinner over `ids` (none: threads are left alone); every id must be a core
    /// this process may run on.
    pub fn new(ids: &[usize]) -> anyhow::Result<Self> {
        if ids.is_empty() {
            return Ok(Pinner::default());
        }
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if let Some(bad) = ids.iter().find(|id| !available.contains(id)) {
            bail!("--pin-cores: core {bad} is not available here (available: {available:?})");
        }
        Ok(Pinner {
            cores: ids.iter().map(|&id| CoreId { id }).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// Pins the calling thread to the next core; the core, or `None` when not pinning
    /// (or the OS refused).
    pub fn pin_current(&self) -> Option<usize> {
        if self.cores.is_empty() {
            return None;
        }
        let core = self.cores[self.next.fetch_add(1, Ordering::Relaxed) % self.cores.len()];
        core_affinity::set_for_current(core).then_some(core.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_in_turn_and_refuses_unknown_cores() {
        assert_eq!(Pinner::new(&[]).unwrap().pin_current(), None);
        assert!(Pinner::new(&[100_000]).is_err());
        let p = Pinner::new(&[0]).unwrap();
        let pinned = std::thread::spawn(move || {
            let first = p.pin_current();
            let second = p.pin_current();
            (first, second)
        })
        .join()
        .unwrap();
        assert_eq!(pinned, (Some(0), Some(0)));
    }
}
