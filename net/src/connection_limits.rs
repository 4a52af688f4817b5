//! `max.connections` and `max.connections.per.ip` across the whole broker.
//!
//! Shards share nothing, and SO_REUSEPORT spreads one client's connections over
//! all of them, so a per-shard count could not enforce a per-IP limit. The counts
//! therefore live on one shard (`METADATA_SHARD`): every accept asks it with one
//! cross-shard call, and every close tells it. When neither limit is set (Kafka's
//! default) no call is made at all. `ConnectionCounts` is the plain state; the
//! `admit` glue and the `Admission` guard move it over the shard mesh.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use strata_engine::shard::Shard;

use crate::broker::METADATA_SHARD;
use crate::config::ConnectionConfig;

/// Why a new connection is refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    #[error("the broker already serves max.connections = {max} connections")]
    Total { max: u32 },
    #[error("{ip} already has max.connections.per.ip = {max} connections")]
    PerIp { ip: IpAddr, max: u32 },
    #[error("the connection counts are unavailable: {0}")]
    Unavailable(String),
}

/// Open connections, in total and per client IP (entries at zero are removed, so
/// the map holds at most one entry per open connection).
#[derive(Debug)]
pub struct ConnectionCounts {
    max_total: u32,
    max_per_ip: u32,
    total: Cell<u32>,
    per_ip: RefCell<HashMap<IpAddr, u32>>,
}

impl ConnectionCounts {
    pub fn new(config: &ConnectionConfig) -> Self {
        ConnectionCounts {
            max_total: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            total: Cell::new(0),
            per_ip: RefCell::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`, unless it is over a limit.
    pub fn try_open(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.total.get() >= self.max_total {
            return Err(Refusal::Total {
                max: self.max_total,
            });
        }
        let mut per_ip = self.per_ip.borrow_mut();
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            return Err(Refusal::PerIp {
                ip,
                max: self.max_per_ip,
            });
        }
        *n += 1;
        self.total.set(self.total.get() + 1);
        Ok(())
    }

    /// Uncounts a closed connection from `ip`.
    pub fn close(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.borrow_mut();
        if let Some(n) = per_ip.get_mut(&ip) {
            debug_assert!(*n > 0);
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
            self.total.set(self.total.get().saturating_sub(1));
        }
    }

    /// Open connections, in total.
    #[cfg(test)]
    fn total(&self) -> u32 {
        self.total.get()
    }
}

/// A counted connection: uncounted on drop.
pub(crate) struct Admission {
    shard: Shard,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let (shard, ip) = (self.shard.clone(), self.ip);
        // The close is told in the background: the connection is gone already.
        glommio::spawn_local(async move {
            let told = shard
                .invoke_on(METADATA_SHARD, move |s| async move {
                    if let Some(counts) = s.local::<ConnectionCounts>() {
                        counts.close(ip);
                    }
                })
                .await;
            if let Err(e) = told {
                // Only at shutdown, when the counts no longer matter.
                tracing::debug!(error = %e, "cannot uncount a closed connection");
            }
        })
        .detach();
    }
}

/// Counts a new connection from `ip` on the counting shard: `Ok(None)` when no
/// limit is configured (nothing is counted), `Ok(Some(_))` when it is admitted.
pub(crate) async fn admit(
    shard: &Shard,
    config: &ConnectionConfig,
    ip: IpAddr,
) -> Result<Option<Admission>, Refusal> {
    if !config.limits_connections() {
        return Ok(None);
    }
    let verdict = shard
        .invoke_on(METADATA_SHARD, move |s| async move {
            match s.local::<ConnectionCounts>() {
                Some(counts) => counts.try_open(ip),
                None => Err(Refusal::Unavailable("not installed".to_owned())),
            }
        })
        .await
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    verdict?;
    Ok(Some(Admission {
        shard: shard.clone(),
        ip,
    }))
}

/// Installs the counts on the counting shard (call on every shard; only that one
/// keeps them).
pub(crate) fn install(shard: &Shard, config: &ConnectionConfig) {
    if shard.id() == METADATA_SHARD {
        shard.insert_local(Rc::new(ConnectionCounts::new(config)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(max_total: u32, max_per_ip: u32) -> ConnectionCounts {
        ConnectionCounts::new(&ConnectionConfig {
            max_connections: max_total,
            max_connections_per_ip: max_per_ip,
            ..ConnectionConfig::default()
        })
    }

    #[test]
    fn per_ip_limit_refuses_only_that_ip_and_frees_on_close() {
        let c = counts(100, 2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(c.try_open(a), Ok(()));
        assert_eq!(c.try_open(a), Ok(()));
        assert_eq!(c.try_open(a), Err(Refusal::PerIp { ip: a, max: 2 }));
        assert_eq!(c.try_open(b), Ok(()));
        c.close(a);
        assert_eq!(c.try_open(a), Ok(()));
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn total_limit_counts_every_ip_and_unknown_closes_are_ignored() {
        let c = counts(2, 10);
        let ips: Vec<IpAddr> = (1..=3)
            .map(|i| format!("10.0.0.{i}").parse().unwrap())
            .collect();
        assert_eq!(c.try_open(ips[0]), Ok(()));
        assert_eq!(c.try_open(ips[1]), Ok(()));
        assert_eq!(c.try_open(ips[2]), Err(Refusal::Total { max: 2 }));
        c.close(ips[2]); // never counted: no effect
        assert_eq!(c.total(), 2);
        c.close(ips[0]);
        assert_eq!(c.try_open(ips[2]), Ok(()));
        assert!(c.per_ip.borrow().get(&ips[0]).is_none(), "zero entries go");
    }

    #[test]
    fn a_zero_per_ip_limit_leaves_no_entry_behind() {
        let c = counts(10, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(c.try_open(a).is_err());
        assert!(c.per_ip.borrow().is_empty());
    }
}
