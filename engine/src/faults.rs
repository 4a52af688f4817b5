//! The one seam through which tests inject storage faults: short writes, EIO on write
//! or fdatasync, a full disk, and running out of descriptors when a file opens. Every
//! data file open, write and sync of the engine passes through `StorageFile`, which
//! asks this injector before doing the real operation.

use std::cell::RefCell;
use std::rc::Rc;

/// A storage fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The write stores only part of its buffer, as a failing device would.
    ShortWrite,
    /// The write fails with EIO.
    WriteError,
    /// fdatasync fails with EIO.
    SyncError,
    /// The write fails with ENOSPC.
    NoSpace,
    /// Opening a file fails with EMFILE (the process is out of descriptors).
    TooManyOpenFiles,
}

/// The kind of operation a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Write,
    Sync,
    Open,
}

impl Fault {
    fn hits(self) -> Op {
        match self {
            Fault::SyncError => Op::Sync,
            Fault::TooManyOpenFiles => Op::Open,
            Fault::ShortWrite | Fault::WriteError | Fault::NoSpace => Op::Write,
        }
    }
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    skip_ops: u32,
    remaining: u32,
}

/// Shard-local fault plan shared by every file of the logs it was given to.
/// Clones share the plan. The default injector never fires.
#[derive(Clone, Default, Debug)]
pub struct FaultInjector {
    armed: Rc<RefCell<Vec<Armed>>>,
    fired: Rc<RefCell<u64>>,
}

impl FaultInjector {
    /// A plan with nothing armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `fault`: the matching operations after the next `skip_ops` ones fail,
    /// `times` times in a row.
    pub fn arm(&self, fault: Fault, skip_ops: u32, times: u32) {
        self.armed.borrow_mut().push(Armed {
            fault,
            skip_ops,
            remaining: times,
        });
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.armed.borrow_mut().clear();
    }

    /// How many faults have fired so far.
    pub fn fired_count(&self) -> u64 {
        *self.fired.borrow()
    }

    pub(crate) fn on_write(&self) -> Option<Fault> {
        self.take(|f| f.hits() == Op::Write)
    }

    pub(crate) fn on_sync(&self) -> Option<Fault> {
        self.take(|f| f.hits() == Op::Sync)
    }

    pub(crate) fn on_open(&self) -> Option<Fault> {
        self.take(|f| f.hits() == Op::Open)
    }

    fn take(&self, matches: impl Fn(Fault) -> bool) -> Option<Fault> {
        let mut armed = self.armed.borrow_mut();
        let slot = armed
            .iter_mut()
            .find(|a| matches(a.fault) && a.remaining > 0)?;
        if slot.skip_ops > 0 {
            slot.skip_ops -= 1;
            return None;
        }
        slot.remaining -= 1;
        let fault = slot.fault;
        armed.retain(|a| a.remaining > 0);
        *self.fired.borrow_mut() += 1;
        Some(fault)
    }
}
