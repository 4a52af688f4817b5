//! `run_broker`: start the shards, listen, serve, and shut down cleanly.
//!
//! Every shard binds the listen address itself: glommio's `TcpListener::bind` sets
//! SO_REUSEPORT, so the kernel spreads new connections over the shards' accept
//! queues and no shard hands connections to another. We chose that over one
//! acceptor shard because it keeps accepting shared-nothing (no cross-shard hop per
//! connection, no acceptor hot spot) and because a connection's requests are
//! routed by partition owner anyway: which shard holds the socket only decides where
//! the framing and the gathering of replies run.
//!
//! Shutdown, when the flag flips (polled by shard 0): every shard stops accepting
//! and reading, finishes and answers the requests it has in flight, waits until all
//! shards got that far (so no request can still reach a log), then closes its logs,
//! which writes their clean markers. Long polls and held joins end when the shard
//! stops; a connection whose client does not read its replies (or that is still
//! busy) `SHUTDOWN_DRAIN_MS` after the stop is closed with whatever it holds, so a
//! shutdown takes at most that plus the logs' last flush, whatever clients do.

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use strata_engine::shard::{run_shards, Shard, ShardConfig};
use strata_engine::snapshot::SnapshotCell;

use crate::accept_backoff::AcceptBackoff;
use crate::broker::{Broker, METADATA_SHARD};
use crate::cluster_view::ClusterView;
use crate::config::{BrokerConfig, BrokerError};
use crate::connection::{self, NativeProtocol, Protocol};
use crate::connection_table::{ConnectionTable, SWEEP_INTERVAL_MS};
use crate::kafka::KafkaProtocol;
use crate::metadata::{load_topics, Topics};
use crate::topic_config::TopicConfig;

/// How often shard 0 looks at the shutdown flag.
const SHUTDOWN_POLL_MS: u64 = 20;
/// How often a stopping shard checks whether its connections and its peers are done.
const DRAIN_POLL_MS: u64 = 5;
/// How long a stopping shard lets its connections finish their requests and write
/// their replies before it closes them.
const SHUTDOWN_DRAIN_MS: u64 = 3_000;
/// How long a stopping shard then waits for the closed connections to go (their
/// close is seen by the next sweep; this only bounds a bug).
const SHUTDOWN_CLOSE_WAIT_MS: u64 = 1_000;
/// Connections one shard serves at once; more are closed as they arrive.
pub const CONNECTIONS_PER_SHARD_MAX: usize = 10_000;

/// What every shard shares, read-only (plus the drain counter).
struct Shared {
    config: Arc<BrokerConfig>,
    topics: Arc<SnapshotCell<Topics>>,
    cluster_view: Arc<SnapshotCell<ClusterView>>,
    shutdown: Arc<AtomicBool>,
    /// Shards that stored their `Broker` and opened their partitions.
    ready: AtomicUsize,
    /// Shards that finished serving their connections.
    drained: AtomicUsize,
}

/// Runs a broker until `shutdown` becomes true, then shuts it down gracefully.
/// Blocks the calling thread.
pub fn run_broker(config: BrokerConfig, shutdown: Arc<AtomicBool>) -> Result<(), BrokerError> {
    TopicConfig::resolve(&config.topic_defaults, &Default::default())
        .map_err(|e| BrokerError::Config(format!("topic default: {e}")))?;
    crate::broker_settings::check_static(&config)
        .map_err(|e| BrokerError::Config(e.to_string()))?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        BrokerError::DataDir(format!("cannot create {}: {e}", config.data_dir.display()))
    })?;
    // Held until run_broker returns: one broker per data dir and per port.
    let listens: Vec<_> = std::iter::once(config.listen)
        .chain(config.kafka_listen)
        .collect();
    let _exclusive = crate::exclusive::claim(&config.data_dir, &listens)?;
    let dynamic =
        crate::broker_settings::load_dynamic(&config.data_dir).map_err(BrokerError::DataDir)?;
    let defaults = dynamic.topic_defaults(&config.topic_defaults);
    let topics = if config.cluster.is_some() {
        // A cluster's topics come from the controller quorum's metadata log, applied
        // once the broker has joined (`cluster::node`); none are opened before that.
        Topics {
            dynamic: Arc::new(dynamic),
            ..Topics::default()
        }
    } else {
        let mut topics = load_topics(&config.data_dir, &defaults).map_err(BrokerError::DataDir)?;
        topics.dynamic = Arc::new(dynamic);
        crate::group_host::ensure_offsets_topic(
            &config.data_dir,
            &defaults,
            config.offsets_topic_num_partitions,
            topics,
        )
        .map_err(BrokerError::DataDir)?
    };
    let shard_config = ShardConfig {
        shard_count: config.cores,
        pin_to_cores: config.pin_to_cores,
        name: "strata-shard".to_owned(),
        ..ShardConfig::default()
    };
    // A cluster member's view comes from the controller; until it does, and on a
    // single-node broker for good, the view is this broker alone.
    // (`cores` 0 = every core: a count not known before the shards start, and not
    // needed, as handlers take their own shard count.)
    let cluster_view =
        ClusterView::of_single_node(&config, u32::try_from(config.cores).unwrap_or(0));
    let shared = Arc::new(Shared {
        cluster_view: Arc::new(SnapshotCell::new(Arc::new(cluster_view))),
        config: Arc::new(config),
        topics: Arc::new(SnapshotCell::new(Arc::new(topics))),
        shutdown,
        ready: AtomicUsize::new(0),
        drained: AtomicUsize::new(0),
    });
    let results = run_shards(shard_config, move |shard| {
        let shared = Arc::clone(&shared);
        async move { shard_main(shard, shared).await }
    })?;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

async fn shard_main(shard: Shard, shared: Arc<Shared>) -> Result<(), BrokerError> {
    let broker = Rc::new(Broker::new(
        shard.clone(),
        Arc::clone(&shared.config),
        Arc::clone(&shared.topics),
        Arc::clone(&shared.cluster_view),
    ));
    shard.insert_local(Rc::clone(&broker));
    if shard.id() == METADATA_SHARD {
        let (flag, s) = (Arc::clone(&shared.shutdown), shard.clone());
        glommio::spawn_local(async move {
            while !s.is_stopping() {
                if flag.load(Ordering::Acquire) {
                    s.request_stop();
                    break;
                }
                let tick = glommio::timer::sleep(Duration::from_millis(SHUTDOWN_POLL_MS));
                futures_lite::future::or(tick, s.stopped()).await;
            }
        })
        .detach();
    }
    let result = serve(&shard, &broker, &shared).await;
    if result.is_err() {
        shard.request_stop();
    }
    // Wait for every shard to stop serving before closing logs: a peer's in-flight
    // request may still append here.
    shared.drained.fetch_add(1, Ordering::AcqRel);
    while shared.drained.load(Ordering::Acquire) < shard.shard_count() {
        glommio::timer::sleep(Duration::from_millis(DRAIN_POLL_MS)).await;
    }
    broker.close_all().await;
    if shard.id() == METADATA_SHARD {
        crate::cluster::node::stop(&shard).await;
    }
    result
}

/// Opens this shard's partitions, then accepts and serves connections until the
/// shard stops, and waits for them to finish.
async fn serve(shard: &Shard, broker: &Rc<Broker>, shared: &Shared) -> Result<(), BrokerError> {
    // Before the start barrier: every shard's accepts may ask the counting shard.
    crate::connection_limits::install(shard, &broker.config.connections);
    broker
        .open_owned()
        .await
        .map_err(|(topic, partition, e)| BrokerError::OpenPartition {
            topic,
            partition,
            reason: e.message,
        })?;
    broker.start_cleaner();
    broker.start_healer();
    broker.disk.refresh().await;
    broker.disk.start(shard);
    crate::group_host::start(broker)
        .await
        .map_err(|e| BrokerError::OpenPartition {
            topic: crate::metadata::CONSUMER_OFFSETS_TOPIC.to_owned(),
            partition: 0,
            reason: format!("loading the group coordinators: {}", e.message),
        })?;
    // No shard accepts before every shard can take requests from the others.
    shared.ready.fetch_add(1, Ordering::AcqRel);
    while shared.ready.load(Ordering::Acquire) < shard.shard_count() {
        if shard.is_stopping() {
            return Ok(());
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    if shard.id() == METADATA_SHARD {
        crate::cluster::node::start(broker)
            .await
            .map_err(|e| BrokerError::Config(format!("cannot join the cluster: {}", e.message)))?;
    }
    let bind = |addr| {
        let listener = TcpListener::bind(addr).map_err(|e| BrokerError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        tracing::info!(shard = shard.id(), %addr, "listening");
        Ok::<_, BrokerError>(listener)
    };
    let listener = bind(broker.config.listen)?;
    let kafka_listener = broker.config.kafka_listen.map(bind).transpose()?;
    if let (METADATA_SHARD, Some(maddr)) = (shard.id(), broker.config.metrics_addr) {
        let metrics_listener = crate::metrics::bind(maddr).map_err(|reason| BrokerError::Bind {
            addr: maddr,
            reason,
        })?;
        glommio::spawn_local(crate::metrics::serve(Rc::clone(broker), metrics_listener)).detach();
    }
    let table = ConnectionTable::new(&broker.config.connections);
    let sweep = glommio::spawn_local(Rc::clone(&table).sweep_forever());
    let kafka_accepting = kafka_listener.map(|l| {
        glommio::spawn_local(accept::<KafkaProtocol>(
            shard.clone(),
            Rc::clone(broker),
            l,
            Rc::clone(&table),
        ))
    });
    accept::<NativeProtocol>(
        shard.clone(),
        Rc::clone(broker),
        listener,
        Rc::clone(&table),
    )
    .await;
    if let Some(task) = kafka_accepting {
        task.await;
    }
    let closed_by = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
    table.close_all_by(closed_by);
    let gone_by = closed_by + Duration::from_millis(SWEEP_INTERVAL_MS + SHUTDOWN_CLOSE_WAIT_MS);
    while table.len() > 0 && Instant::now() < gone_by {
        glommio::timer::sleep(Duration::from_millis(DRAIN_POLL_MS)).await;
    }
    if table.len() > 0 {
        tracing::warn!(
            connections = table.len(),
            "connections still open after the shutdown deadline; stopping anyway"
        );
    }
    drop(sweep);
    crate::cluster::replicas::hand_off_leadership(shard).await;
    Ok(())
}

/// Accepts connections of protocol `P` until the shard stops; `table` holds this
/// shard's connections of every protocol.
async fn accept<P: Protocol>(
    shard: Shard,
    broker: Rc<Broker>,
    listener: TcpListener,
    table: Rc<ConnectionTable>,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.stopped().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(stream)) => {
                backoff.succeeded();
                stream
            }
            Some(Err(e)) => {
                // Out of descriptors, say: the connection waits in the backlog.
                let after = backoff.failed(Instant::now());
                if let Some(failures) = after.log_failures {
                    tracing::warn!(
                        error = %e,
                        failures,
                        retry_ms = after.wait.as_millis() as u64,
                        "accept failed; retrying with back-off (if out of file descriptors, \
                         raise the limit or close connections)"
                    );
                }
                let wait = glommio::timer::sleep(after.wait);
                futures_lite::future::or(
                    async {
                        wait.await;
                    },
                    shard.stopped(),
                )
                .await;
                continue;
            }
        };
        if table.len() >= CONNECTIONS_PER_SHARD_MAX {
            tracing::debug!("too many connections on this shard; closing a new one");
            drop(stream);
            continue;
        }
        let (b, t, s) = (Rc::clone(&broker), Rc::clone(&table), shard.clone());
        glommio::spawn_local(async move {
            let admission = match stream.peer_addr() {
                Ok(addr) => {
                    crate::connection_limits::admit(&s, &b.config.connections, addr.ip()).await
                }
                Err(_) => Ok(None),
            };
            let admission = match admission {
                Ok(a) => a,
                Err(refusal) => {
                    tracing::debug!(reason = %refusal, "closing a new connection");
                    return;
                }
            };
            let registered = t.register(stream.as_raw_fd());
            crate::metrics::with(|m| {
                m.connections_open += 1;
                m.connections_total += 1;
            });
            connection::serve::<P>(
                b,
                stream,
                Rc::clone(&registered.state),
                Rc::clone(&t.budget),
            )
            .await;
            crate::metrics::with(|m| m.connections_open -= 1);
            drop(registered);
            drop(admission);
        })
        .detach();
    }
}
