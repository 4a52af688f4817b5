//! The two appends of a replicated partition: the leader's, whose leader epoch the
//! partition's Raft group decides as the offsets are assigned (`append_proposed`), and
//! the follower's, which writes the leader's stored batch byte for byte
//! (`append_replicated`).
//!
//! Both share the log's single append path (offsets, roll, index, write queue, group
//! commit); they differ only in who decides the fields the broker stamps. On a
//! follower nothing is stamped: base offset, leader epoch and log-append time are the
//! leader's, so every replica holds the same bytes (Raft's log matching, and the CRC
//! the client computed still covers what it covered).

use strata_raft::ProposeError;
use strata_schema::{check_batch, BatchError, BatchHeader, ValidatedBatch};

use crate::error::{EngineError, Result};
use crate::log::{fenced_error, now_ms, AppendInfo, AppendOptions, Durability, Log, QueuedBatch};
use crate::producer_state::ProducerBatch;

impl Log {
    /// Appends a client batch on the partition's leader. Producer-state checks come
    /// first (a retry of a recent batch is answered with the original's offsets and
    /// never reaches `propose`); then `propose(base_offset, offsets)` — the Raft
    /// group's proposal — decides the leader epoch stamped into the batch, in the same
    /// synchronous step that assigns the offsets. If it refuses, nothing is written,
    /// producer state is unchanged and `EngineError::Propose` comes back. Resolves as
    /// `options.durability` asks (`options.leader_epoch` is ignored: `propose` decides).
    pub async fn append_proposed(
        &self,
        batch: ValidatedBatch,
        options: AppendOptions,
        propose: impl FnOnce(i64, u64) -> std::result::Result<i32, ProposeError>,
    ) -> Result<AppendInfo> {
        self.append_deciding_epoch(batch, options.durability, |base_offset, offsets| {
            propose(base_offset, offsets).map_err(EngineError::Propose)
        })
        .await
    }

    /// Appends a batch exactly as the leader stored it (base offset, leader epoch and
    /// log-append time already stamped) on a follower. Checks the header, the CRC and
    /// that `batch` is one whole batch starting at this log's end
    /// (`EngineError::ReplicaOffsetMismatch` otherwise); writes the bytes unchanged;
    /// updates producer state as recovery replays batch headers (no sequence checks:
    /// the leader decided) and the leader epochs. Resolves once written (not synced:
    /// the replica driver syncs before it acknowledges).
    pub async fn append_replicated(&self, batch: Vec<u8>) -> Result<AppendInfo> {
        let header = check_replicated(&batch)?;
        self.wait_for_room().await?;
        let info = self.assign_replicated(batch, &header)?;
        self.inner.kick_flusher();
        self.inner
            .wait_until(info.last_offset + 1, Durability::Written)
            .await?;
        Ok(info)
    }

    /// Queues a checked replicated batch at the log end, or refuses it.
    fn assign_replicated(&self, batch: Vec<u8>, h: &BatchHeader) -> Result<AppendInfo> {
        let inner = &self.inner;
        let now = now_ms();
        let mut st = inner.state.borrow_mut();
        if let Some(f) = &st.fence {
            return Err(fenced_error(&inner.dir, f));
        }
        let log_end_offset = st.log_end_offset();
        if h.base_offset != log_end_offset {
            return Err(EngineError::ReplicaOffsetMismatch {
                base_offset: h.base_offset,
                log_end_offset,
            });
        }
        let len = batch.len() as u64;
        let delta = i64::from(h.last_offset_delta);
        inner.roll_if_due(&mut st, len, delta, now);
        let (base_offset, last_offset) = (h.base_offset, h.last_offset());
        let batch_time_ms = st.config.batch_time_ms(h);
        // As recovery replays it: the leader's append time, so expiry agrees.
        let producer = ProducerBatch::from_header(h).map(|p| (p, h.log_append_time_ms));
        inner.queue_batch(
            st,
            batch,
            QueuedBatch {
                base_offset,
                last_offset,
                leader_epoch: h.leader_epoch,
                batch_time_ms,
                producer,
            },
            now,
        );
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: h.log_append_time_ms,
            duplicate: false,
        })
    }
}

/// Header and CRC of a replicated batch, which must be exactly one whole batch.
fn check_replicated(batch: &[u8]) -> Result<BatchHeader> {
    let h = check_batch(batch)?;
    if batch.len() != h.batch_len_bytes() {
        return Err(EngineError::InvalidBatch(BatchError::LengthMismatch {
            declared_bytes: h.batch_len_bytes(),
            actual_bytes: batch.len(),
        }));
    }
    Ok(h)
}
