//! The deterministic simulation, over many seeds. `STRATA_SIM_SEED=N` replays one seed;
//! `STRATA_SIM_SEEDS=N` runs N seeds (default 200 per cluster size).

use strata_raft::sim::run_seed;

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("STRATA_SIM_SEED") {
        return vec![s.parse().expect("STRATA_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("STRATA_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    (0..n).collect()
}

fn run_all(nodes: usize) {
    let mut failed = Vec::new();
    let mut acks = 0;
    for seed in seeds() {
        match run_seed(seed, nodes) {
            Ok(r) => acks += r.acks,
            Err(e) => {
                eprintln!("seed {seed} ({nodes} nodes) FAILED: {e}\n  replay: STRATA_SIM_SEED={seed} cargo test -p strata-raft --test sim");
                failed.push(seed);
            }
        }
    }
    eprintln!("{nodes} nodes: {acks} acknowledged entries checked");
    assert!(failed.is_empty(), "failing seeds ({nodes} nodes): {failed:?}");
}

#[test]
fn three_nodes() {
    run_all(3);
}

#[test]
fn five_nodes() {
    run_all(5);
}
