//! The flags that shard threads share: the start gate, the stop request and each
//! shard's liveness.
//!
//! Both are single atomics that carry a decision and nothing else; the data that
//! travels with a decision (channel ends, the stop message) moves by ownership or over
//! the mesh, which has its own ordering. They take their atomics from the engine's
//! loom shim and are model-checked below.

use crate::snapshot::sync::{AtomicBool, AtomicU8, Ordering};

const GATE_PENDING: u8 = 0;
const GATE_OPEN: u8 = 1;
const GATE_ABORTED: u8 = 2;

/// What the launching thread decided about startup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GateState {
    /// Not every shard has reported in yet.
    Pending,
    /// Every shard's executor is up: connect the mesh.
    Open,
    /// Some shard failed to start: give up without waiting for it.
    Aborted,
}

/// Startup barrier: shards join the mesh only once every shard's executor exists,
/// because joining waits for all peers and a peer that never started would hang it.
/// Decided once by the launching thread; shards poll it with a timer (startup only).
#[derive(Debug)]
pub(crate) struct StartGate {
    state: AtomicU8,
}

impl StartGate {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(GATE_PENDING),
        }
    }

    /// Records the decision; the first one wins. Returns whether this call decided.
    pub(crate) fn decide(&self, open: bool) -> bool {
        let decision = if open { GATE_OPEN } else { GATE_ABORTED };
        self.state
            .compare_exchange(GATE_PENDING, decision, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn state(&self) -> GateState {
        match self.state.load(Ordering::Acquire) {
            GATE_PENDING => GateState::Pending,
            GATE_OPEN => GateState::Open,
            _ => GateState::Aborted,
        }
    }
}

/// "Stop was requested", shared by all shards of one runtime.
///
/// Only the first requester broadcasts the stop message over the mesh (so a stop costs
/// one message per peer however often it is asked for); every shard may read the flag
/// directly for `is_stopping`. A single atomic swap is enough: the flag guards no
/// other data, and wake-ups travel as mesh messages, never by waking a task of another
/// thread.
#[derive(Debug)]
pub(crate) struct StopFlag {
    requested: AtomicBool,
}

impl StopFlag {
    pub(crate) fn new() -> Self {
        Self {
            requested: AtomicBool::new(false),
        }
    }

    /// Marks stop as requested; true only for the first caller across all threads.
    pub(crate) fn request(&self) -> bool {
        !self.requested.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

const SHARD_RUNNING: u8 = 0;
const SHARD_EXITED: u8 = 1;
const SHARD_DIED: u8 = 2;

/// Whether each shard's thread is still there. A shard that exits normally closes its
/// rings first, so its peers learn it from the rings; a thread killed by a panic
/// outside any job leaves its ring ends behind in a half-torn-down executor, and its
/// peers learn it only from this flag (set by a thread-exit guard), which they poll.
#[derive(Debug)]
pub(crate) struct Liveness {
    shards: Box<[AtomicU8]>,
}

impl Liveness {
    pub(crate) fn new(shard_count: usize) -> Self {
        Self {
            shards: (0..shard_count)
                .map(|_| AtomicU8::new(SHARD_RUNNING))
                .collect(),
        }
    }

    /// The shard finished normally (its rings are closed). Final.
    pub(crate) fn mark_exited(&self, shard: usize) {
        let _ = self.shards[shard].compare_exchange(
            SHARD_RUNNING,
            SHARD_EXITED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The shard's thread ended without finishing normally. Ignored after
    /// `mark_exited`.
    pub(crate) fn mark_died(&self, shard: usize) {
        let _ = self.shards[shard].compare_exchange(
            SHARD_RUNNING,
            SHARD_DIED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    pub(crate) fn has_died(&self, shard: usize) -> bool {
        self.shards[shard].load(Ordering::Acquire) == SHARD_DIED
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn gate_keeps_its_first_decision() {
        let gate = StartGate::new();
        assert_eq!(gate.state(), GateState::Pending);
        assert!(gate.decide(false));
        assert!(!gate.decide(true));
        assert_eq!(gate.state(), GateState::Aborted);
    }

    #[test]
    fn only_the_first_stop_request_wins() {
        let stop = StopFlag::new();
        assert!(!stop.is_requested());
        assert!(stop.request());
        assert!(!stop.request());
        assert!(stop.is_requested());
    }

    #[test]
    fn a_clean_exit_is_never_reported_as_a_death() {
        let liveness = Liveness::new(2);
        liveness.mark_exited(0);
        liveness.mark_died(0);
        liveness.mark_died(1);
        liveness.mark_exited(1);
        assert!(!liveness.has_died(0));
        assert!(liveness.has_died(1));
    }
}

/// Loom models: `RUSTFLAGS="--cfg loom" cargo test -p strata-engine --release --lib flags`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::snapshot::sync::Arc;
    use loom::thread;

    #[test]
    fn exactly_one_concurrent_stop_request_broadcasts() {
        loom::model(|| {
            let stop = Arc::new(StopFlag::new());
            let requesters: Vec<_> = (0..2)
                .map(|_| {
                    let stop = Arc::clone(&stop);
                    thread::spawn(move || stop.request())
                })
                .collect();
            let here = stop.request();
            let winners = requesters
                .into_iter()
                .map(|requester| requester.join().expect("requester panicked"))
                .chain([here])
                .filter(|&won| won)
                .count();
            assert_eq!(winners, 1);
            assert!(stop.is_requested());
        });
    }

    #[test]
    fn a_shard_that_saw_the_stop_keeps_seeing_it() {
        loom::model(|| {
            let stop = Arc::new(StopFlag::new());
            let observer = {
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let first = stop.is_requested();
                    let second = stop.is_requested();
                    assert!(!first || second, "stop request seen, then lost");
                })
            };
            stop.request();
            observer.join().expect("observer panicked");
        });
    }

    #[test]
    fn exit_and_death_race_to_a_single_final_state() {
        loom::model(|| {
            let liveness = Arc::new(Liveness::new(1));
            let exit_guard = {
                let liveness = Arc::clone(&liveness);
                thread::spawn(move || liveness.mark_died(0))
            };
            liveness.mark_exited(0);
            let seen = liveness.has_died(0);
            exit_guard.join().expect("guard panicked");
            // Whichever came first stays: observations never change after that.
            assert_eq!(liveness.has_died(0), seen);
        });
    }

    #[test]
    fn gate_decision_is_final_and_the_first_one_wins() {
        loom::model(|| {
            let gate = Arc::new(StartGate::new());
            let opener = {
                let gate = Arc::clone(&gate);
                thread::spawn(move || gate.decide(true))
            };
            let aborted_here = gate.decide(false);
            let seen = gate.state();
            let opened_there = opener.join().expect("opener panicked");
            assert!(aborted_here ^ opened_there, "exactly one decision is taken");
            let expected = if opened_there {
                GateState::Open
            } else {
                GateState::Aborted
            };
            assert_eq!(seen, expected);
            assert_eq!(gate.state(), expected);
        });
    }
}
