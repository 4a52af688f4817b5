//! A shard whose executor cannot be created fails `run_shards` with an error that
//! says why, instead of leaving the other shards waiting for it. Its own test binary:
//! it lowers this process's locked-memory limit, which glommio checks per executor.

use std::{sync::mpsc, thread, time::Duration};

use strata_engine::shard::{run_shards, ShardConfig, ShardError};

/// glommio refuses to start an executor below 512 KiB of lockable memory.
const MEMLOCK_TOO_LOW_BYTES: libc::rlim_t = 64 << 10;

#[test]
fn an_executor_that_cannot_start_is_a_spawn_error_not_a_hang() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit), 0);
        limit.rlim_cur = MEMLOCK_TOO_LOW_BYTES.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit), 0);
    }

    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let config = ShardConfig {
            shard_count: 3,
            pin_to_cores: false,
            name: "doomed".to_owned(),
            ..ShardConfig::default()
        };
        let _ = done.send(run_shards(config, |shard| async move { shard.id() }));
    });
    let result = result
        .recv_timeout(Duration::from_secs(60))
        .expect("run_shards returned instead of hanging");
    match result {
        Err(error @ ShardError::Spawn { .. }) => {
            let message = error.to_string();
            assert!(message.contains("could not start"), "{message}");
            assert!(message.contains("RLIMIT_MEMLOCK"), "{message}");
        }
        other => panic!("expected a Spawn error, got {other:?}"),
    }
}
