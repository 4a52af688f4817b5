//! The deterministic simulation: N brokers running several Raft groups over a network
//! that drops, delays, duplicates, reorders and partitions messages, on disks where a
//! crash loses unsynced writes, with crashes, restarts, client proposals, membership
//! changes, leadership transfers and log compaction — all from one seed, so a failing
//! seed replays exactly. [`run_seed`] runs one seed and checks the history
//! ([`checker`]).

pub mod checker;
pub mod disk;
pub mod network;
pub mod world;

pub use world::{SimParams, SimReport, World};

/// Runs seed `seed` on `nodes` brokers with the default shape.
pub fn run_seed(seed: u64, nodes: usize) -> Result<SimReport, String> {
    World::new(seed, SimParams::new(nodes)).run()
}
