//! This broker as a member of a cluster (shard 0): starts the controller replica and
//! the transport, registers the broker and keeps it alive with heartbeats, routes
//! inbound messages to the shards that host their groups, forwards commands to the
//! controller quorum's leader, and publishes each new metadata image to the shards.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::replication::LocalBoxFuture;
use strata_engine::shard::Shard;
use strata_raft::NodeId;
use strata_schema::ErrorCode;

use crate::broker::{Broker, METADATA_SHARD};
use crate::cluster::controller_host::{ControllerHost, ImageListener, LeaderBalancing};
use crate::cluster::replicas::ShardReplicas;
use crate::cluster::TICK_MS;
use crate::cluster_config::ClusterConfig;
use crate::controller::error::kafka_codes::BROKER_ID_NOT_REGISTERED;
use crate::controller::{
    decode_command, decode_reply, encode_command, encode_reply, BrokerRegistration,
    ControllerCommand, ControllerError, ControllerReply, ControllerSettings, LeaderReport,
    MetadataImage, ReplyPayload,
};
use crate::errors::WireError;
use crate::metadata::Topics;
use crate::replication::{GroupId, GroupMessage, Inbound, Transport, TransportConfig};

/// How long a command forwarded to the controller keeps trying (leader elections
/// included) before it fails with NOT_CONTROLLER.
pub const CONTROLLER_CALL_DEADLINE_MS: u64 = 15_000;
/// One call to the controller's leader waits this long for its reply.
const CONTROLLER_CALL_TIMEOUT_MS: u64 = 5_000;
/// Pause between attempts while the quorum has no leader.
const CONTROLLER_RETRY_MS: u64 = 100;
/// Heartbeat period of a registered broker (a third of the session timeout).
const HEARTBEAT_MS: u64 = 3_000;

/// The cluster side of this broker, stored on shard 0 with `Shard::insert_local`.
pub struct ClusterNode {
    pub config: ClusterConfig,
    pub controller: Rc<ControllerHost>,
    transport: RefCell<Option<Rc<Transport>>>,
    /// Topic ids to names, for routing inbound partition messages.
    topic_names: RefCell<HashMap<[u8; 16], String>>,
    /// The newest image waiting to be published, and whether a publish runs.
    pending_image: RefCell<Option<(MetadataImage, u64)>>,
    publishing: Cell<bool>,
    shard: Shard,
}

impl ClusterNode {
    /// The node, on shard 0 of a broker started with cluster flags.
    pub fn of(shard: &Shard) -> Option<Rc<ClusterNode>> {
        shard.local::<ClusterNode>()
    }

    fn transport(&self) -> Option<Rc<Transport>> {
        self.transport.borrow().clone()
    }

    /// The controller settings from the broker's configs.
    fn settings(broker: &Broker) -> ControllerSettings {
        ControllerSettings {
            default_replication_factor: broker.config.default_replication_factor,
            min_insync_replicas: 1,
            default_partitions: broker.config.num_partitions,
            topic_defaults: broker.topic_defaults(),
        }
    }
}

/// Starts the cluster side on shard 0 (nothing on a single-node broker).
pub async fn start(broker: &Rc<Broker>) -> Result<(), WireError> {
    let Some(config) = broker.config.cluster.clone() else {
        return Ok(());
    };
    debug_assert_eq!(broker.shard.id(), METADATA_SHARD);
    let voters: Vec<NodeId> = config.voters.iter().map(|(id, _)| *id).collect();
    let outbox = ShardReplicas::of(&broker.shard).outbox(&broker.shard);
    let controller = ControllerHost::open(
        config.node_id,
        &broker.config.data_dir,
        &voters,
        broker.env.clone(),
        outbox,
        ClusterNode::settings(broker),
        broker.config.metadata_snapshot_interval_bytes,
    )
    .await?;
    let node = Rc::new(ClusterNode {
        config: config.clone(),
        controller: Rc::clone(&controller),
        transport: RefCell::new(None),
        topic_names: RefCell::new(HashMap::new()),
        pending_image: RefCell::new(None),
        publishing: Cell::new(false),
        shard: broker.shard.clone(),
    });
    broker.shard.insert_local(Rc::clone(&node));
    let peers: Vec<(NodeId, SocketAddr)> = config
        .voters
        .iter()
        .filter(|(id, _)| *id != config.node_id)
        .cloned()
        .collect();
    let inbound: Rc<dyn Inbound> = Rc::new(NodeInbound {
        shard: broker.shard.clone(),
    });
    let transport = Transport::start(
        TransportConfig::new(config.node_id, config.cluster_listen),
        inbound,
    )
    .map_err(|e| {
        WireError::new(
            ErrorCode::InvalidConfig,
            format!(
                "cannot listen on cluster address {}: {e}",
                config.cluster_listen
            ),
        )
    })?;
    for (id, addr) in peers {
        transport.set_peer(id, addr);
    }
    let transport = Rc::new(transport);
    *node.transport.borrow_mut() = Some(Rc::clone(&transport));
    glommio::spawn_local(crate::cluster::failure_detector::run(
        broker.shard.clone(),
        transport,
    ))
    .detach();
    controller.set_listener(Rc::new(Publisher {
        shard: broker.shard.clone(),
    }));
    // The controller group's ticks (partition groups tick on their own shards).
    let (c, s) = (Rc::clone(&controller), broker.shard.clone());
    glommio::spawn_local(async move {
        while !s.is_stopping() {
            let tick = glommio::timer::sleep(Duration::from_millis(TICK_MS));
            futures_lite::future::or(tick, s.stopped()).await;
            c.tick();
        }
    })
    .detach();
    glommio::spawn_local(Rc::clone(&controller).watch_liveness(broker.shard.clone())).detach();
    if broker.config.auto_leader_rebalance {
        let balancing = LeaderBalancing {
            check_interval_ms: broker
                .config
                .leader_imbalance_check_interval_s
                .saturating_mul(1000),
            imbalance_percentage: broker.config.leader_imbalance_per_broker_percentage,
        };
        glommio::spawn_local(
            Rc::clone(&controller).watch_leader_balance(broker.shard.clone(), balancing),
        )
        .detach();
    }
    glommio::spawn_local(register_and_heartbeat(Rc::clone(broker))).detach();
    glommio::spawn_local(crate::cluster::isolation::watch(Rc::clone(broker))).detach();
    Ok(())
}

/// Stops the transport (at shutdown, after the shards stopped serving).
pub async fn stop(shard: &Shard) {
    if let Some(node) = ClusterNode::of(shard) {
        let replica = node.controller.replica();
        replica.stop();
        if let Some(t) = node.transport() {
            t.stop().await;
        }
        if let Err(e) = replica.log().close().await {
            tracing::warn!(error = %e, "closing the metadata log failed");
        }
    }
}

async fn register_and_heartbeat(broker: Rc<Broker>) {
    let Some(cluster) = broker.config.cluster.clone() else {
        return;
    };
    let incarnation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let (kafka_host, kafka_port) = crate::cluster_view::kafka_endpoint(&broker.config);
    let registration = BrokerRegistration {
        id: cluster.node_id,
        incarnation,
        kafka_host,
        kafka_port,
        native_addr: broker.config.listen.to_string(),
        cluster_addr: cluster.cluster_listen.to_string(),
        rack: cluster.rack.clone(),
    };
    let shard = broker.shard.clone();
    let mut registered = false;
    while !shard.is_stopping() {
        let cmd = if registered {
            ControllerCommand::BrokerHeartbeat {
                id: cluster.node_id,
                incarnation,
            }
        } else {
            ControllerCommand::RegisterBroker(registration.clone())
        };
        match submit_on_shard0(&shard, cmd).await {
            Ok(_) => registered = true,
            // Registrations live in the replicated metadata log: one that was taken and
            // is now unknown was removed by UnregisterBroker (decommissioning). The
            // broker stays out until it is restarted, rather than join again at once.
            Err(e) if registered && e.kafka_code == BROKER_ID_NOT_REGISTERED => {
                tracing::warn!(
                    "this broker was unregistered from the cluster (decommissioned): it no \
                     longer heartbeats; stop it, or restart it to register again"
                );
                return;
            }
            Err(e) => {
                tracing::info!(error = %e.message, registered, "controller not reached yet");
            }
        }
        let wait = if registered { HEARTBEAT_MS } else { 500 };
        let tick = glommio::timer::sleep(Duration::from_millis(wait));
        futures_lite::future::or(tick, shard.stopped()).await;
    }
}

/// Carries out a controller command from any shard of this broker: on the quorum's
/// leader, wherever that is, and resolves once this broker's image has applied it.
pub async fn submit(shard: &Shard, cmd: ControllerCommand) -> Result<ReplyPayload, WireError> {
    submit_controller(shard, cmd)
        .await
        .map_err(controller_error)
}

/// [`submit`], with the controller's refusal as it is (its exact Kafka code), for
/// the Kafka admin handlers.
pub async fn submit_controller(
    shard: &Shard,
    cmd: ControllerCommand,
) -> Result<ReplyPayload, ControllerError> {
    if shard.id() == METADATA_SHARD {
        return submit_on_shard0(shard, cmd).await;
    }
    match shard
        .invoke_on(METADATA_SHARD, move |s| async move {
            submit_on_shard0(&s, cmd).await
        })
        .await
    {
        Ok(r) => r,
        Err(e) => {
            // Not the controller's refusal: the native code says what went wrong.
            let e = WireError::from(e);
            Err(ControllerError::new(e.code, -1, e.message))
        }
    }
}

/// The metadata image this broker has applied (a copy, from shard 0).
pub async fn image(shard: &Shard) -> Option<MetadataImage> {
    shard
        .invoke_on(METADATA_SHARD, |s| async move {
            ClusterNode::of(&s).map(|n| n.controller.image())
        })
        .await
        .ok()
        .flatten()
}

async fn submit_on_shard0(
    shard: &Shard,
    cmd: ControllerCommand,
) -> Result<ReplyPayload, ControllerError> {
    let not_controller = |m: String| ControllerError::new(ErrorCode::NotController, 41, m);
    let Some(node) = ClusterNode::of(shard) else {
        return Err(not_controller(
            "this broker is not part of a cluster".to_owned(),
        ));
    };
    let deadline = Instant::now() + Duration::from_millis(CONTROLLER_CALL_DEADLINE_MS);
    let me = node.config.node_id;
    let mut last = "no controller leader known".to_owned();
    // Where to ask when this replica knows no leader: the hint of the last answer, else
    // each other voter in turn (a non-voter broker knows no leader until it is told).
    let mut hint: Option<NodeId> = None;
    let others: Vec<NodeId> = node
        .config
        .voters
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| *id != me)
        .collect();
    let mut attempt = 0usize;
    while Instant::now() < deadline && !shard.is_stopping() {
        attempt += 1;
        let leader = node
            .controller
            .leader()
            .or(hint.take())
            .or_else(|| others.get(attempt % others.len().max(1)).copied());
        let reply = match leader {
            Some(l) if l == me => node.controller.submit_local(cmd.clone()).await,
            Some(l) => match node.transport() {
                Some(t) => match t
                    .call(l, encode_command(&cmd), CONTROLLER_CALL_TIMEOUT_MS)
                    .await
                {
                    Ok(bytes) => match decode_reply(&bytes) {
                        Ok(r) => r,
                        Err(e) => {
                            last = format!("undecodable reply from controller leader {l}: {e}");
                            ControllerReply::NotController { leader: None }
                        }
                    },
                    Err(e) => {
                        last = format!("controller leader {l} not reached: {e}");
                        ControllerReply::NotController { leader: None }
                    }
                },
                None => ControllerReply::NotController { leader: None },
            },
            None => ControllerReply::NotController { leader: None },
        };
        match reply {
            ControllerReply::Ok {
                applied_offset,
                payload,
            } => {
                node.controller
                    .wait_applied(applied_offset, CONTROLLER_CALL_TIMEOUT_MS)
                    .await;
                return Ok(payload);
            }
            ControllerReply::Err(e) => return Err(e),
            ControllerReply::NotController { leader } => {
                hint = leader.filter(|l| *l != me);
                glommio::timer::sleep(Duration::from_millis(CONTROLLER_RETRY_MS)).await;
            }
        }
    }
    Err(not_controller(format!(
        "the controller quorum did not answer within {CONTROLLER_CALL_DEADLINE_MS} ms ({last})"
    )))
}

/// Tells the controller that this broker leads a partition (called on the owner
/// shard); false if the controller could not be told.
pub async fn report_leader(
    shard: &Shard,
    topic_id: [u8; 16],
    partition: u32,
    term: u64,
    isr: Vec<NodeId>,
) -> bool {
    shard
        .invoke_on(METADATA_SHARD, move |s| async move {
            let Some(leader) = ClusterNode::of(&s).map(|n| n.config.node_id) else {
                return false;
            };
            let report = LeaderReport {
                topic_id,
                partition,
                leader: Some(leader),
                leader_epoch: term.min(i32::MAX as u64) as i32,
                isr,
            };
            crate::cluster::leader_reports::report(&s, report).await
        })
        .await
        .unwrap_or(false)
}

/// Calls broker `to` over shard 0's transport, from any shard: its answer, or why
/// there is none.
pub async fn call_broker(
    shard: &Shard,
    to: NodeId,
    payload: Vec<u8>,
    timeout_ms: u64,
) -> Result<Vec<u8>, String> {
    async fn call_here(
        shard: &Shard,
        to: NodeId,
        payload: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<Vec<u8>, String> {
        let Some(t) = ClusterNode::of(shard).and_then(|n| n.transport()) else {
            return Err("this broker's cluster transport is not running".to_owned());
        };
        t.call(to, payload, timeout_ms)
            .await
            .map_err(|e| e.to_string())
    }
    if shard.id() == METADATA_SHARD {
        return call_here(shard, to, payload, timeout_ms).await;
    }
    shard
        .invoke_on(METADATA_SHARD, move |s| async move {
            call_here(&s, to, payload, timeout_ms).await
        })
        .await
        .map_err(|e| e.to_string())?
}

/// Sends replicas' messages through shard 0's transport, from any shard.
pub async fn send_from_any_shard(shard: &Shard, messages: Vec<(NodeId, GroupMessage)>) {
    if shard.id() == METADATA_SHARD {
        send_here(shard, messages);
        return;
    }
    let _ = shard
        .invoke_on(
            METADATA_SHARD,
            move |s| async move { send_here(&s, messages) },
        )
        .await;
}

fn send_here(shard: &Shard, messages: Vec<(NodeId, GroupMessage)>) {
    let Some(t) = ClusterNode::of(shard).and_then(|n| n.transport()) else {
        return;
    };
    for (to, m) in messages {
        // A full queue or an unknown peer drops the message: Raft resends.
        let _ = t.send(to, m);
    }
}

/// The transport's inbound side on shard 0.
struct NodeInbound {
    shard: Shard,
}

impl Inbound for NodeInbound {
    fn messages(&self, _from: NodeId, messages: Vec<GroupMessage>) {
        let Some(node) = ClusterNode::of(&self.shard) else {
            return;
        };
        let broker = Broker::of(&self.shard);
        let mut by_shard: BTreeMap<usize, Vec<GroupMessage>> = BTreeMap::new();
        for m in messages {
            match &m.group {
                GroupId::Controller => node.controller.replica().receive(m.message, m.batches),
                GroupId::Partition {
                    topic_id,
                    partition,
                } => {
                    let name = node.topic_names.borrow().get(topic_id).cloned();
                    if let Some(name) = name {
                        by_shard
                            .entry(broker.owner(&name, *partition))
                            .or_default()
                            .push(m);
                    }
                }
            }
        }
        for (owner, batch) in by_shard {
            if owner == self.shard.id() {
                ShardReplicas::of(&self.shard).deliver(batch);
                continue;
            }
            let shard = self.shard.clone();
            glommio::spawn_local(async move {
                let _ = shard
                    .invoke_on(owner, move |s| async move {
                        ShardReplicas::of(&s).deliver(batch);
                    })
                    .await;
            })
            .detach();
        }
    }

    fn call(&self, _from: NodeId, payload: Vec<u8>) -> LocalBoxFuture<Result<Vec<u8>, String>> {
        let shard = self.shard.clone();
        if crate::cluster::group_forward::is_forwarded(&payload) {
            return crate::cluster::group_forward::serve(shard, payload);
        }
        Box::pin(async move {
            let cmd = decode_command(&payload).map_err(|e| e.to_string())?;
            let Some(node) = ClusterNode::of(&shard) else {
                return Err("not a cluster member".to_owned());
            };
            let reply = node.controller.submit_local(cmd).await;
            Ok(encode_reply(&reply))
        })
    }
}

/// Publishes each applied image to the shards: the newest one wins, one publish at a
/// time, off the controller's Ready loop (a publish opens partitions and may be slow).
struct Publisher {
    shard: Shard,
}

impl ImageListener for Publisher {
    fn image_changed(&self, image: &MetadataImage, applied_offset: u64) -> LocalBoxFuture<()> {
        let Some(node) = ClusterNode::of(&self.shard) else {
            return Box::pin(async {});
        };
        *node.pending_image.borrow_mut() = Some((image.clone(), applied_offset));
        if !node.publishing.replace(true) {
            glommio::spawn_local(publish_loop(node)).detach();
        }
        Box::pin(async {})
    }
}

async fn publish_loop(node: Rc<ClusterNode>) {
    let broker = Broker::of(&node.shard);
    loop {
        let next = node.pending_image.borrow_mut().take();
        let Some((image, applied)) = next else {
            node.publishing.set(false);
            return;
        };
        if let Err(e) = publish(&node, &broker, &image).await {
            tracing::warn!(error = %e.message, applied, "metadata image not published");
        }
    }
}

async fn publish(
    node: &ClusterNode,
    broker: &Rc<Broker>,
    image: &MetadataImage,
) -> Result<(), WireError> {
    // Every broker of the image is a peer for partition traffic.
    if let Some(t) = node.transport() {
        for b in image.brokers().values() {
            if b.registration.id == node.config.node_id {
                continue;
            }
            if let Ok(addr) = b.registration.cluster_addr.parse::<SocketAddr>() {
                t.set_peer(b.registration.id, addr);
            }
        }
    }
    // Brokers outside the quorum follow the metadata log as observers.
    let observers: Vec<NodeId> = image
        .brokers()
        .keys()
        .copied()
        .filter(|id| !node.config.voters.iter().any(|(v, _)| v == id))
        .collect();
    node.controller.replica().set_observers(&observers);
    let current = broker.topics();
    let defaults = broker.topic_defaults();
    let mut topics: Topics = image
        .to_topics(&defaults, Arc::clone(&current.dynamic))
        .map_err(|e| WireError::new(ErrorCode::InvalidConfig, e.to_string()))?;
    for (name, meta) in topics.topics.iter_mut() {
        if let Some(t) = image.topic(name) {
            let m = Arc::make_mut(meta);
            m.replicas = t.partitions.iter().map(|p| p.replicas.clone()).collect();
        }
    }
    *node.topic_names.borrow_mut() = topics
        .topics
        .values()
        .map(|t| (t.id, t.name.clone()))
        .collect();
    node.controller.set_settings(ClusterNode::settings(broker));
    crate::cluster::reassignment::publish_goals(broker, image, node.config.node_id).await;
    crate::cluster::view::publish_view(
        broker,
        image,
        node.config.node_id,
        node.controller.leader(),
    )
    .await;
    broker.apply_cluster_topics(topics).await
}

/// The native code for a refused command: the controller's own, made precise by its
/// Kafka code where the native set has the exact one.
fn controller_error(e: ControllerError) -> WireError {
    let code = match e.kafka_code {
        36 => ErrorCode::TopicAlreadyExists,
        37 => ErrorCode::InvalidPartitions,
        38 => ErrorCode::InvalidReplicationFactor,
        39 => ErrorCode::InvalidReplicaAssignment,
        40 => ErrorCode::InvalidConfig,
        41 => ErrorCode::NotController,
        74 => ErrorCode::FencedLeaderEpoch,
        3 | 100 => ErrorCode::UnknownTopic,
        17 => ErrorCode::InvalidTopicName,
        _ => e.code,
    };
    WireError::new(code, e.message)
}
