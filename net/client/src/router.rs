//! [`Router`]: the connections of one client — one to any broker (bootstrap; Metadata,
//! admin and group calls) and one per partition leader it sends to — and the
//! [`RoutingTable`] that says which is which, refreshed by Metadata when a request
//! finds a leader moved.
//!
//! Shared by a client's threads behind a mutex that is never held while waiting for a
//! broker (connecting and requests happen outside it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use strata_schema::ApiKey;

use crate::connection::Connection;
use crate::error::Result;
use crate::protocol::{self, ClusterDescription};
use crate::routing::{Route, RoutingTable};

/// Leaders older than this are looked up again even when no request failed.
pub(crate) const METADATA_MAX_AGE: Duration = Duration::from_secs(300);
/// Brokers a Metadata request tries before giving up (each at most once).
const METADATA_ATTEMPTS_MAX: usize = 4;

struct State {
    table: RoutingTable,
    /// The connection for requests any broker answers.
    any: Option<Arc<Connection>>,
    /// Connections to partition leaders, by `host:port`.
    leaders: HashMap<String, Arc<Connection>>,
}

/// A client's connections and routing table.
pub(crate) struct Router {
    bootstrap: Vec<String>,
    state: Mutex<State>,
}

impl Router {
    /// Connects to the first of `bootstrap` that accepts.
    pub fn connect(bootstrap: Vec<String>) -> Result<Router> {
        let conn = Connection::connect(&bootstrap)?;
        Ok(Router {
            bootstrap,
            state: Mutex::new(State {
                table: RoutingTable::default(),
                any: Some(Arc::new(conn)),
                leaders: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection to some live broker: the current one, else the first that accepts
    /// of the known brokers and then the bootstrap list.
    pub fn any(&self) -> Result<Arc<Connection>> {
        let candidates = {
            let state = self.lock();
            if let Some(c) = state.any.as_ref().filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
            let mut candidates = state.table.broker_addrs();
            candidates.extend(self.bootstrap.iter().cloned());
            candidates
        };
        let conn = Arc::new(Connection::connect(&candidates)?);
        self.lock().any = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets `conn` (it failed or timed out): the next request that would have used
    /// it connects again (to another broker, for requests any broker answers).
    pub fn forget(&self, conn: &Arc<Connection>) {
        let mut state = self.lock();
        if state.any.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            state.any = None;
        }
        state.leaders.retain(|_, c| !Arc::ptr_eq(c, conn));
    }

    /// Asks a broker for the cluster and `topics` (none: just the brokers) and takes
    /// the answer into the routing table, within `timeout` in all. In a cluster, a
    /// broker that does not answer is skipped for the next one; a single broker's
    /// failure is the caller's at once.
    pub fn refresh(&self, topics: &[&str], timeout: Duration) -> Result<ClusterDescription> {
        let deadline = Instant::now() + timeout;
        let body = protocol::encode_metadata(Some(topics), true);
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            let conn = self.any()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let answer = conn
                .request(ApiKey::Metadata, &body, &[], remaining)
                .wait()
                .and_then(|r| protocol::decode_cluster(r.body()));
            match answer {
                Ok(cluster) => {
                    self.lock()
                        .table
                        .update(&cluster, conn.addr(), Instant::now());
                    return Ok(cluster);
                }
                Err(e)
                    if e.is_retriable()
                        && self.is_cluster()
                        && attempts < METADATA_ATTEMPTS_MAX
                        && Instant::now() < deadline =>
                {
                    self.forget(&conn);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The connection for `topic`/`partition`'s requests: its leader's (after a
    /// Metadata look-up if the table is out of date), or the bootstrap connection on
    /// a single broker.
    pub fn leader(
        &self,
        topic: &str,
        partition: u32,
        timeout: Duration,
    ) -> Result<Arc<Connection>> {
        let refresh = self
            .lock()
            .table
            .needs_refresh(topic, Instant::now(), METADATA_MAX_AGE);
        if refresh {
            self.refresh(&[topic], timeout)?;
        }
        let route = self.lock().table.route(topic, partition)?;
        match route {
            Route::Any => self.any(),
            Route::Leader { addr, .. } => self.connection_to(&addr),
        }
    }

    /// The open connection to the broker at `addr`, connecting if there is none.
    pub fn connection_to(&self, addr: &str) -> Result<Arc<Connection>> {
        if let Some(c) = self.lock().leaders.get(addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let conn = Arc::new(Connection::connect(&[addr.to_owned()])?);
        let mut state = self.lock();
        let kept = state
            .leaders
            .entry(addr.to_owned())
            .and_modify(|c| {
                if c.is_closed() {
                    *c = conn.clone();
                }
            })
            .or_insert_with(|| conn.clone())
            .clone();
        Ok(kept)
    }

    /// Whether requests go to partition leaders (Metadata listed several brokers).
    pub fn is_cluster(&self) -> bool {
        self.lock().table.is_cluster()
    }

    /// A request for `topic` failed in a way that says its leaders may have moved:
    /// the next [`leader`](Self::leader) looks them up again.
    pub fn invalidate(&self, topic: &str) {
        self.lock().table.invalidate(topic);
    }
}
