//! Unit tests of the state machine, fed messages and ticks through a tiny in-memory
//! cluster (`harness`) that delivers exactly what a test lets through.

mod election;
mod harness;
mod membership;
mod observers;
mod quiescence;
mod replication;
