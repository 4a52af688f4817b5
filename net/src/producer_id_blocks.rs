//! Producer ids for idempotent producers: unique per broker, never handed out twice,
//! across restarts and crashes included.
//!
//! The metadata shard hands them out. It reserves ids in blocks of
//! [`PRODUCER_ID_BLOCK`] and durably writes the end of the reserved range to
//! `data_dir/__meta/producer_ids` before it hands out any id of a new block. After
//! a restart, graceful or not, allocation starts at the stored end: ids that were
//! reserved but not handed out are skipped, none is repeated.
//!
//! File format: `strata-producer-ids v1` on the first line, `reserved_end N` on the
//! second (every id below N may have been handed out).

use std::cell::RefCell;
use std::path::Path;

use glommio::sync::Semaphore;
use strata_schema::ErrorCode;

use crate::broker::{Broker, METADATA_SHARD};
use crate::errors::WireError;
use crate::meta_file::{read_meta_file, shard_local, write_meta_file};

/// Ids reserved by one write of the file.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
/// The file under `__meta` holding the reservation.
pub const PRODUCER_IDS_FILE: &str = "producer_ids";
const FILE_HEADER: &str = "strata-producer-ids v1";

/// Where allocation stands: plain state, no I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerIdBlocks {
    /// The next id to hand out.
    next: i64,
    /// Ids below this are reserved in the file.
    reserved_end: i64,
}

/// What [`ProducerIdBlocks::take`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Hand out this id.
    Id(i64),
    /// Store this reservation end first, then call [`ProducerIdBlocks::reserved`].
    Reserve(i64),
    /// Every id up to `i64::MAX` has been handed out.
    Exhausted,
}

impl ProducerIdBlocks {
    /// The state after a start: nothing handed out yet in this run; `stored_end` is
    /// the reservation end found in the file (`None`: no file, a new broker).
    pub fn after_start(stored_end: Option<i64>) -> Self {
        let end = stored_end.unwrap_or(0).max(0);
        ProducerIdBlocks {
            next: end,
            reserved_end: end,
        }
    }

    /// The next id, or what must happen before there is one.
    pub fn take(&mut self) -> Take {
        if self.next < self.reserved_end {
            let id = self.next;
            self.next += 1;
            return Take::Id(id);
        }
        if self.next == i64::MAX {
            return Take::Exhausted;
        }
        Take::Reserve(self.next.saturating_add(PRODUCER_ID_BLOCK))
    }

    /// Notes that `reserved_end` is stored durably.
    pub fn reserved(&mut self, reserved_end: i64) {
        assert!(
            reserved_end >= self.reserved_end,
            "a reservation only grows: {reserved_end} < {}",
            self.reserved_end
        );
        self.reserved_end = reserved_end;
    }

    /// Whether `id` may have been handed out by this broker (in this run or before).
    pub fn issued(&self, id: i64) -> bool {
        (0..self.next).contains(&id) || (0..self.reserved_end).contains(&id)
    }

    /// A producer's id and epoch. With `existing` = the (id, epoch) it had and an
    /// id this broker handed out: the same id with the next epoch (KIP-360).
    /// Otherwise, or when the epoch cannot grow any more, a new id with epoch 0.
    pub fn init(&mut self, existing: Option<(i64, i16)>) -> Result<(i64, i16), Take> {
        if let Some((id, epoch)) = existing {
            if self.issued(id) && (0..EPOCH_MAX).contains(&epoch) {
                return Ok((id, epoch + 1));
            }
        }
        match self.take() {
            Take::Id(id) => Ok((id, 0)),
            other => Err(other),
        }
    }
}

/// Highest epoch handed out; past it a producer gets a new id (as in Kafka, which
/// keeps `i16::MAX` out of use).
pub const EPOCH_MAX: i16 = i16::MAX - 1;

/// The file text for a reservation end.
pub fn encode(reserved_end: i64) -> String {
    format!("{FILE_HEADER}\nreserved_end {reserved_end}\n")
}

/// Parses [`encode`] output.
pub fn decode(text: &str) -> Result<i64, String> {
    let mut lines = text.lines();
    if lines.next() != Some(FILE_HEADER) {
        return Err(format!("does not start with {FILE_HEADER:?}"));
    }
    lines
        .next()
        .and_then(|l| l.strip_prefix("reserved_end "))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|&n| n >= 0)
        .ok_or_else(|| "second line is not `reserved_end N`".to_owned())
}

/// The stored reservation end (`None`: no file). Blocking.
pub fn load(data_dir: &Path) -> Result<Option<i64>, String> {
    let shown = || {
        crate::meta_file::meta_path(data_dir, PRODUCER_IDS_FILE)
            .display()
            .to_string()
    };
    match read_meta_file(data_dir, PRODUCER_IDS_FILE) {
        Ok(Some(text)) => decode(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", shown())),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", shown())),
    }
}

/// Stores a reservation end durably. Blocking.
pub fn store(data_dir: &Path, reserved_end: i64) -> std::io::Result<()> {
    write_meta_file(data_dir, PRODUCER_IDS_FILE, &encode(reserved_end))
}

/// The metadata shard's allocation state; `None` until the file was read.
struct Allocator {
    blocks: RefCell<Option<ProducerIdBlocks>>,
    /// Held while the file is read or written.
    lock: Semaphore,
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator {
            blocks: RefCell::new(None),
            lock: Semaphore::new(1),
        }
    }
}

fn storage_error(what: &str, e: impl std::fmt::Display) -> WireError {
    WireError::new(ErrorCode::StorageError, format!("{what}: {e}"))
}

/// A producer id and epoch for an idempotent producer (see
/// [`ProducerIdBlocks::init`]), from any shard.
pub async fn init_producer(
    broker: &Broker,
    existing: Option<(i64, i16)>,
) -> Result<(i64, i16), WireError> {
    broker
        .shard
        .invoke_on(METADATA_SHARD, move |shard| async move {
            init_on_metadata_shard(&Broker::of(&shard), existing).await
        })
        .await?
}

async fn init_on_metadata_shard(
    broker: &Broker,
    existing: Option<(i64, i16)>,
) -> Result<(i64, i16), WireError> {
    debug_assert_eq!(broker.shard.id(), METADATA_SHARD);
    if broker.config.cluster.is_some() {
        return init_in_cluster(broker, existing).await;
    }
    let alloc = shard_local::<Allocator>(&broker.shard);
    // Fast path: the current block has room, no waiting.
    if let Some(blocks) = alloc.blocks.borrow_mut().as_mut() {
        if let Ok(out) = blocks.init(existing) {
            return Ok(out);
        }
    }
    let _permit = alloc.lock.acquire_permit(1).await.map_err(|_| {
        WireError::new(ErrorCode::BrokerShuttingDown, "the broker is shutting down")
    })?;
    if alloc.blocks.borrow().is_none() {
        let data_dir = broker.config.data_dir.clone();
        let stored = glommio::executor()
            .spawn_blocking(move || load(&data_dir))
            .await
            .map_err(|e| storage_error("cannot read the producer id reservation", e))?;
        *alloc.blocks.borrow_mut() = Some(ProducerIdBlocks::after_start(stored));
    }
    loop {
        let step = alloc
            .blocks
            .borrow_mut()
            .as_mut()
            .expect("loaded above")
            .init(existing);
        match step {
            Ok(out) => return Ok(out),
            Err(Take::Reserve(end)) => {
                let data_dir = broker.config.data_dir.clone();
                glommio::executor()
                    .spawn_blocking(move || store(&data_dir, end))
                    .await
                    .map_err(|e| storage_error("cannot store the producer id reservation", e))?;
                alloc
                    .blocks
                    .borrow_mut()
                    .as_mut()
                    .expect("loaded above")
                    .reserved(end);
            }
            Err(_) => {
                return Err(WireError::new(
                    ErrorCode::Unknown,
                    "this broker has handed out every producer id",
                ))
            }
        }
    }
}

/// The block of ids the controller gave this broker: `[next, end)`.
#[derive(Default)]
struct ClusterBlock {
    next: std::cell::Cell<i64>,
    end: std::cell::Cell<i64>,
    lock: ClusterLock,
}

struct ClusterLock(Semaphore);

impl Default for ClusterLock {
    fn default() -> Self {
        ClusterLock(Semaphore::new(1))
    }
}

/// In a cluster the controller quorum hands out blocks of ids (its metadata log
/// records each block, so no two brokers get the same id). A producer that asks to
/// keep its id (KIP-360) gets the next epoch: the partitions' producer state fences
/// the old one.
async fn init_in_cluster(
    broker: &Broker,
    existing: Option<(i64, i16)>,
) -> Result<(i64, i16), WireError> {
    if let Some((id, epoch)) = existing {
        if id >= 0 && (0..EPOCH_MAX).contains(&epoch) {
            return Ok((id, epoch + 1));
        }
    }
    let block = shard_local::<ClusterBlock>(&broker.shard);
    let _permit = block.lock.0.acquire_permit(1).await.map_err(|_| {
        WireError::new(ErrorCode::BrokerShuttingDown, "the broker is shutting down")
    })?;
    if block.next.get() >= block.end.get() {
        let payload = crate::cluster::node::submit(
            &broker.shard,
            crate::controller::ControllerCommand::AllocateProducerIds {
                count: PRODUCER_ID_BLOCK,
            },
        )
        .await?;
        let crate::controller::ReplyPayload::ProducerIds { first, count } = payload else {
            return Err(WireError::new(
                ErrorCode::Unknown,
                "the controller answered a producer id request without ids",
            ));
        };
        block.next.set(first);
        block.end.set(first.saturating_add(count));
    }
    let id = block.next.get();
    block.next.set(id + 1);
    Ok((id, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `n` ids, storing reservations in `dir` as the broker does.
    fn hand_out(dir: &Path, blocks: &mut ProducerIdBlocks, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < n {
            match blocks.take() {
                Take::Id(id) => out.push(id),
                Take::Reserve(end) => {
                    store(dir, end).unwrap();
                    blocks.reserved(end);
                }
                Take::Exhausted => panic!("exhausted"),
            }
        }
        out
    }

    #[test]
    fn ids_never_repeat_across_restarts_and_crashes() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        // Each run is a restart (graceful or SIGKILL: nothing is written at stop).
        for (run, n) in [(0, 5), (1, 1), (2, 1000), (3, 1), (4, 2500)] {
            let mut blocks = ProducerIdBlocks::after_start(load(dir.path()).unwrap());
            let ids = hand_out(dir.path(), &mut blocks, n);
            for id in ids {
                assert!(seen.insert(id), "run {run} handed out {id} again");
            }
        }
        assert_eq!(seen.iter().next(), Some(&0), "a new broker starts at 0");
    }

    #[test]
    fn a_block_is_stored_before_any_of_its_ids_is_handed_out() {
        let mut blocks = ProducerIdBlocks::after_start(None);
        assert_eq!(blocks.take(), Take::Reserve(PRODUCER_ID_BLOCK));
        assert_eq!(
            blocks.take(),
            Take::Reserve(PRODUCER_ID_BLOCK),
            "nothing until stored"
        );
        blocks.reserved(PRODUCER_ID_BLOCK);
        for want in 0..PRODUCER_ID_BLOCK {
            assert_eq!(blocks.take(), Take::Id(want));
        }
        assert_eq!(blocks.take(), Take::Reserve(2 * PRODUCER_ID_BLOCK));
        let mut near_end = ProducerIdBlocks::after_start(Some(i64::MAX - 1));
        assert_eq!(near_end.take(), Take::Reserve(i64::MAX));
        near_end.reserved(i64::MAX);
        assert_eq!(near_end.take(), Take::Id(i64::MAX - 1));
        assert_eq!(near_end.take(), Take::Exhausted);
    }

    #[test]
    fn reinit_bumps_the_epoch_of_an_issued_id_only() {
        let mut blocks = ProducerIdBlocks::after_start(Some(2000));
        assert_eq!(blocks.init(Some((1500, 3))), Ok((1500, 4)));
        assert_eq!(
            blocks.init(Some((1500, EPOCH_MAX - 1))),
            Ok((1500, EPOCH_MAX))
        );
        // Exhausted epoch, unknown id, or a first init: a new id.
        assert_eq!(
            blocks.init(Some((1500, EPOCH_MAX))),
            Err(Take::Reserve(3000))
        );
        blocks.reserved(3000);
        assert_eq!(blocks.init(Some((1500, EPOCH_MAX))), Ok((2000, 0)));
        assert_eq!(blocks.init(Some((9999, 0))), Ok((2001, 0)));
        assert_eq!(blocks.init(None), Ok((2002, 0)));
    }

    #[test]
    fn issued_covers_this_run_and_earlier_ones() {
        let blocks = ProducerIdBlocks::after_start(Some(3000));
        assert!(blocks.issued(0) && blocks.issued(2999));
        assert!(!blocks.issued(3000) && !blocks.issued(-1));
    }

    #[test]
    fn file_text_round_trips_and_damage_is_an_error() {
        assert_eq!(decode(&encode(12_000)), Ok(12_000));
        assert!(decode("").is_err());
        assert!(decode("strata-producer-ids v1\nreserved_end x\n").is_err());
        assert!(decode("strata-producer-ids v1\nreserved_end -5\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        write_meta_file(dir.path(), PRODUCER_IDS_FILE, "junk").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.contains("producer_ids"), "{e}");
    }
}
