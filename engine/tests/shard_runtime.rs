//! The shard runtime as the partition code uses it: start shards, call across them,
//! keep per-shard state, stop them.

use std::{
    cell::Cell,
    rc::Rc,
    sync::mpsc,
    thread::{self, ThreadId},
    time::Duration,
};

use glommio::channels::local_channel;
use strata_engine::shard::{run_shards, Shard, ShardConfig, ShardError};

/// A test that hangs is a failure: every runtime runs under this deadline.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

fn unpinned(shard_count: usize) -> ShardConfig {
    ShardConfig {
        shard_count,
        pin_to_cores: false,
        name: "test-shard".to_owned(),
        io_memory_bytes: 1 << 20,
        ..ShardConfig::default()
    }
}

/// Runs the shards on a helper thread and fails the test if they have not all
/// returned by the deadline.
fn run<F, Fut, R>(config: ShardConfig, main: F) -> Result<Vec<R>, ShardError>
where
    F: Fn(Shard) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = R> + 'static,
    R: Send + 'static,
{
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(run_shards(config, main));
    });
    result
        .recv_timeout(TEST_DEADLINE)
        .expect("shards did not finish before the deadline")
}

fn cores() -> usize {
    core_affinity::get_core_ids().map_or(0, |cores| cores.len())
}

#[test]
fn two_pinned_shards_return_results_in_shard_order() {
    let config = ShardConfig {
        shard_count: 2.min(cores()),
        pin_to_cores: true,
        ..unpinned(0)
    };
    let shard_count = config.shard_count;
    let results = run(
        config,
        |shard| async move { (shard.id(), shard.shard_count()) },
    )
    .expect("shards run");
    let expected: Vec<_> = (0..shard_count).map(|id| (id, shard_count)).collect();
    assert_eq!(results, expected);
}

#[test]
fn zero_shards_means_one_per_core() {
    let results = run(
        ShardConfig {
            shard_count: 0,
            ..unpinned(0)
        },
        |shard| async move { shard.id() },
    )
    .expect("shards run");
    assert_eq!(results.len(), cores());
}

#[test]
fn more_shards_than_cores_run_when_not_pinned() {
    let shard_count = cores() + 2;
    let results = run(
        unpinned(shard_count),
        |shard| async move { shard.shard_count() },
    )
    .expect("run");
    assert_eq!(results, vec![shard_count; shard_count]);
}

#[test]
fn pinning_more_shards_than_cores_is_refused() {
    let config = ShardConfig {
        shard_count: cores() + 1,
        pin_to_cores: true,
        ..unpinned(0)
    };
    match run(config, |_shard| async {}) {
        Err(ShardError::TooManyShards {
            requested,
            cores: available,
        }) => {
            assert_eq!(requested, cores() + 1);
            assert_eq!(available, cores());
        }
        other => panic!("expected TooManyShards, got {other:?}"),
    }
}

#[test]
fn zero_channel_capacity_is_refused() {
    let config = ShardConfig {
        channel_capacity: 0,
        ..unpinned(2)
    };
    let error = run(config, |_shard| async {}).expect_err("capacity 0 is invalid");
    assert!(
        matches!(error, ShardError::InvalidConfig { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("channel_capacity"), "{error}");
}

#[test]
fn invoke_on_runs_the_job_on_the_target_shard() {
    let results = run(unpinned(4), |shard| async move {
        let here = thread::current().id();
        let mut answers = Vec::new();
        for target in 0..shard.shard_count() {
            let (ran_on, thread) = shard
                .invoke_on(target, move |target_shard| async move {
                    (target_shard.id(), thread::current().id())
                })
                .await
                .expect("invoke_on");
            assert_eq!(ran_on, target);
            // Local calls stay on this thread; remote ones run on the target's.
            assert_eq!(thread == here, target == shard.id());
            answers.push(ran_on);
        }
        answers
    })
    .expect("run");
    for answers in results {
        assert_eq!(answers, vec![0, 1, 2, 3]);
    }
}

#[test]
fn buffers_move_to_the_other_shard_without_copying() {
    const BUFFER_BYTES: usize = 16 << 20;
    let results = run(unpinned(2), |shard| async move {
        let peer = 1 - shard.id();
        let buffer = vec![shard.id() as u8; BUFFER_BYTES];
        let sent_at = buffer.as_ptr() as usize;
        let (seen_at, buffer, thread): (usize, Vec<u8>, ThreadId) = shard
            .invoke_on(peer, move |_| async move {
                (buffer.as_ptr() as usize, buffer, thread::current().id())
            })
            .await
            .expect("invoke_on");
        assert_ne!(
            thread,
            thread::current().id(),
            "the job ran on the other thread"
        );
        assert_eq!(seen_at, sent_at, "the job saw a copy of the buffer");
        assert_eq!(
            buffer.as_ptr() as usize,
            sent_at,
            "the reply carried a copy"
        );
        assert_eq!(buffer.len(), BUFFER_BYTES);
        assert!(buffer.iter().all(|&byte| byte == shard.id() as u8));

        let bytes = bytes::Bytes::from(vec![9u8; BUFFER_BYTES]);
        let bytes_at = bytes.as_ptr() as usize;
        let seen_at = shard
            .invoke_on(peer, move |_| async move { bytes.as_ptr() as usize })
            .await
            .expect("invoke_on");
        assert_eq!(seen_at, bytes_at);
    })
    .expect("run");
    assert_eq!(results.len(), 2);
}

/// Per-shard gauge of jobs running at once, kept in shard-local state.
#[derive(Default)]
struct InFlight {
    now: Cell<usize>,
    max: Cell<usize>,
}

fn in_flight(shard: &Shard) -> Rc<InFlight> {
    shard.local::<InFlight>().unwrap_or_else(|| {
        let gauge = Rc::new(InFlight::default());
        shard.insert_local(Rc::clone(&gauge));
        gauge
    })
}

#[test]
fn ten_thousand_concurrent_invokes_complete_within_the_in_flight_bound() {
    const CALLS: u64 = 10_000;
    const CAPACITY: usize = 16;
    let config = ShardConfig {
        channel_capacity: CAPACITY,
        ..unpinned(2)
    };
    let results = run(config, |shard| async move {
        let peer = 1 - shard.id();
        let calls: Vec<_> = (0..CALLS)
            .map(|n| {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    shard
                        .invoke_on(peer, move |target: Shard| async move {
                            let gauge = in_flight(&target);
                            gauge.now.set(gauge.now.get() + 1);
                            gauge.max.set(gauge.max.get().max(gauge.now.get()));
                            // Let other jobs start before this one ends.
                            futures_lite::future::yield_now().await;
                            futures_lite::future::yield_now().await;
                            gauge.now.set(gauge.now.get() - 1);
                            n * 3
                        })
                        .await
                })
            })
            .collect();
        let mut sum = 0;
        for (n, call) in (0..CALLS).zip(calls) {
            let tripled = call.await.expect("invoke_on");
            assert_eq!(tripled, n * 3);
            sum += tripled;
        }
        // Only this shard calls the peer, and all its calls are done.
        let max_in_flight = shard
            .invoke_on(peer, |target| async move { in_flight(&target).max.get() })
            .await
            .expect("invoke_on");
        (sum, max_in_flight)
    })
    .expect("run");
    for (sum, max_in_flight) in results {
        assert_eq!(sum, 3 * CALLS * (CALLS - 1) / 2);
        assert!(max_in_flight > 1, "jobs never overlapped");
        assert!(
            max_in_flight <= CAPACITY,
            "{max_in_flight} jobs ran at once, bound is {CAPACITY}"
        );
    }
}

#[test]
fn a_panicking_job_is_an_error_and_the_shard_keeps_serving() {
    let results = run(unpinned(2), |shard| async move {
        if shard.id() != 0 {
            return;
        }
        let error = shard
            .invoke_on(1, |_| async move {
                if true {
                    panic!("job exploded");
                }
            })
            .await
            .expect_err("the job panicked");
        match &error {
            ShardError::JobPanicked { shard, message } => {
                assert_eq!(*shard, 1);
                assert!(message.contains("job exploded"), "{message}");
            }
            other => panic!("expected JobPanicked, got {other:?}"),
        }
        assert!(error.to_string().contains("shard 1"), "{error}");

        let formatted = shard
            .invoke_on(1, |_| async move {
                let n: u32 = 7;
                panic!("formatted {n}");
            })
            .await;
        assert!(
            matches!(&formatted, Err(ShardError::JobPanicked { message, .. }) if message == "formatted 7"),
            "{formatted:?}"
        );

        // The same shard still answers, and so does a panicking job run locally.
        let answer = shard.invoke_on(1, |s| async move { s.id() * 10 }).await;
        assert_eq!(answer.expect("shard 1 still serves"), 10);
        let local = shard
            .invoke_on(0, |_| async move {
                if true {
                    panic!("local job exploded");
                }
            })
            .await;
        assert!(
            matches!(local, Err(ShardError::JobPanicked { shard: 0, .. })),
            "{local:?}"
        );
    })
    .expect("run");
    assert_eq!(results.len(), 2);
}

#[test]
fn an_unknown_shard_id_is_an_error() {
    run(unpinned(2), |shard| async move {
        let error = shard
            .invoke_on(2, |_| async move {})
            .await
            .expect_err("shard 2 does not exist");
        assert!(
            matches!(
                error,
                ShardError::BadShardId {
                    shard: 2,
                    shard_count: 2
                }
            ),
            "{error:?}"
        );
    })
    .expect("run");
}

#[derive(Debug, PartialEq)]
struct Registry {
    owner: usize,
}

#[test]
fn local_state_is_per_shard_and_typed() {
    let results = run(unpinned(3), |shard| async move {
        assert!(shard.local::<Registry>().is_none());
        let registry = Rc::new(Registry { owner: shard.id() });
        shard.insert_local(Rc::clone(&registry));
        shard.insert_local(Rc::new(String::from("other type")));
        let found = shard.local::<Registry>().expect("inserted");
        assert!(Rc::ptr_eq(&found, &registry));
        assert_eq!(*shard.local::<String>().expect("inserted"), "other type");

        // Every shard sees its own value, not the caller's.
        let mut owners = Vec::new();
        for target in 0..shard.shard_count() {
            let owner = shard
                .invoke_on(target, |target_shard| async move {
                    target_shard
                        .local::<Registry>()
                        .map(|registry| registry.owner)
                })
                .await
                .expect("invoke_on");
            owners.push(owner);
        }
        // A later insert replaces the value.
        shard.insert_local(Rc::new(Registry { owner: 100 }));
        assert_eq!(shard.local::<Registry>().expect("replaced").owner, 100);
        owners
    });
    for owners in results.expect("run") {
        // Other shards may not have inserted yet when asked: None is fine, a wrong
        // owner is not.
        for (target, owner) in owners.into_iter().enumerate() {
            assert!(
                owner.is_none() || owner == Some(target) || owner == Some(100),
                "shard {target} answered {owner:?}"
            );
        }
    }
}

#[test]
fn request_stop_ends_every_shards_main() {
    let results = run(unpinned(4), |shard| async move {
        assert!(!shard.is_stopping() || shard.id() != 2);
        if shard.id() == 2 {
            glommio::timer::sleep(Duration::from_millis(20)).await;
            shard.request_stop();
            shard.request_stop(); // asking twice is harmless
        }
        shard.stopped().await;
        assert!(shard.is_stopping());
        shard.stopped().await; // resolves again immediately
        shard.id()
    })
    .expect("run");
    assert_eq!(results, vec![0, 1, 2, 3]);
}

#[test]
fn a_shard_whose_main_returned_keeps_serving_the_others() {
    let results = run(unpinned(3), |shard| async move {
        if shard.id() != 0 {
            return 0;
        }
        glommio::timer::sleep(Duration::from_millis(30)).await;
        let mut sum = 0;
        for target in 1..3 {
            sum += shard
                .invoke_on(target, |s| async move { s.id() })
                .await
                .expect("finished shards still serve");
        }
        sum
    })
    .expect("run");
    assert_eq!(results, vec![3, 0, 0]);
}

#[test]
fn a_panicking_main_is_reported_and_stops_the_others() {
    let result = run(unpinned(3), |shard| async move {
        if shard.id() == 1 {
            panic!("main of one shard failed");
        }
        shard.stopped().await;
    });
    match result {
        Err(ShardError::MainPanicked { shard, message }) => {
            assert_eq!(shard, 1);
            assert!(message.contains("main of one shard failed"), "{message}");
        }
        other => panic!("expected MainPanicked, got {other:?}"),
    }
}

#[test]
fn background_work_runs_and_its_panics_are_contained() {
    let results = run(unpinned(2), |shard| async move {
        shard.spawn_background(async {
            panic!("background task failed");
        });
        let (done, finished) = local_channel::new_bounded(1);
        let queue = Rc::new(Cell::new(None));
        let seen = Rc::clone(&queue);
        shard.spawn_background(async move {
            seen.set(Some(glommio::executor().current_task_queue()));
            done.send(()).await.expect("main is waiting");
        });
        finished.recv().await.expect("background task ran");
        let background_queue = queue.get().expect("recorded");
        assert_ne!(background_queue, glommio::executor().current_task_queue());
        // The shard survived the panicking task and still answers its peer.
        shard
            .invoke_on(1 - shard.id(), |s| async move { s.id() })
            .await
            .expect("peer serves")
    })
    .expect("run");
    assert_eq!(results, vec![1, 0]);
}

#[test]
fn a_shard_killed_by_a_stray_panic_fails_the_run_instead_of_hanging_it() {
    let (report, reports) = mpsc::channel();
    let result = run(unpinned(2), move |shard| {
        let report = report.clone();
        async move {
            if shard.id() == 1 {
                // A task the application spawned itself, outside any job: glommio lets
                // its panic take the whole thread down. (glommio polls a new task once
                // inside `spawn_local`; yield so the panic happens in the executor loop.)
                glommio::spawn_local(async {
                    futures_lite::future::yield_now().await;
                    panic!("stray task failed");
                })
                .detach();
                glommio::timer::sleep(Duration::from_secs(30)).await;
                return;
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
            let outcome = shard.invoke_on(1, |_| async {}).await;
            let _ = report.send(format!("{outcome:?}"));
        }
    });
    // The caller got an error, not a hang.
    assert_eq!(
        reports
            .recv_timeout(TEST_DEADLINE)
            .expect("shard 0 reported"),
        "Err(ShardClosed { shard: 1 })"
    );
    match result {
        Err(ShardError::ShardPanicked { shard, message }) => {
            assert_eq!(shard, 1);
            assert!(message.contains("stray task failed"), "{message}");
        }
        other => panic!("expected ShardPanicked, got {other:?}"),
    }
}
