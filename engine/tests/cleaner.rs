//! Retention runs by itself as low-priority background work on the owning shard.

mod common;

use std::time::{Duration, Instant};

use common::*;
use strata_engine::shard::{run_shards, ShardConfig};
use strata_engine::{Cleaner, Log, LogConfig, LogEnv};

#[test]
fn background_cleaner_applies_retention_on_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let config = ShardConfig {
        shard_count: 1,
        pin_to_cores: false,
        ..ShardConfig::default()
    };
    let results = run_shards(config, move |shard| {
        let path = path.clone();
        async move {
            let cfg = LogConfig {
                segment_bytes: 8 * 1024,
                retention_bytes: Some(16 * 1024),
                ..LogConfig::default()
            };
            let log = Log::open(&path, cfg, LogEnv::default()).await.unwrap();
            for i in 0..100u64 {
                log.append(batch(i, 1, 1000, 0), durable()).await.unwrap();
            }
            // Retention deletes only below the high watermark, which the owner sets.
            log.set_high_watermark(log.log_end_offset());
            let before = log.segment_count();
            let cleaner = Cleaner::new();
            cleaner.register(&log);
            cleaner.start(&shard, 20);
            let deadline = Instant::now() + Duration::from_secs(10);
            while log.size_bytes() > 24 * 1024 && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            let after = log.segment_count();
            shard.request_stop();
            (before, after, log.log_start_offset(), log.size_bytes())
        }
    })
    .unwrap();
    let (before, after, start, size) = results[0];
    assert!(after < before, "segments {before} -> {after}");
    assert!(start > 0);
    assert!(size <= 24 * 1024, "{size}");
}
