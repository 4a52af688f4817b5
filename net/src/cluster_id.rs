//! The cluster id Kafka clients see (DescribeCluster, Metadata): generated once per
//! data directory and kept in `data_dir/__meta/cluster_id`, so it stays the same
//! across restarts.
//!
//! Format, as Kafka's: 16 random bytes (version-4 UUID layout) in URL-safe base64
//! without padding — 22 characters — followed by a newline.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use glommio::sync::Semaphore;
use strata_schema::ErrorCode;

use crate::broker::{Broker, METADATA_SHARD};
use crate::errors::WireError;
use crate::meta_file::{meta_path, read_meta_file, shard_local, write_meta_file};

/// The file under `__meta` holding the cluster id.
pub const CLUSTER_ID_FILE: &str = "cluster_id";
/// Characters in a cluster id.
pub const CLUSTER_ID_CHARS: usize = 22;

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `bytes` in URL-safe base64 without padding.
fn base64_url(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(CLUSTER_ID_CHARS);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64_URL[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Whether `id` looks like a cluster id this broker wrote.
fn valid(id: &str) -> bool {
    id.len() == CLUSTER_ID_CHARS && id.bytes().all(|b| BASE64_URL.contains(&b))
}

fn random_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Ok(base64_url(&bytes))
}

/// The cluster id stored in `data_dir`, created and stored first if there is none.
/// Blocking; call it from one thread at a time per data dir.
pub fn load_or_create(data_dir: &Path) -> Result<String, String> {
    let path = meta_path(data_dir, CLUSTER_ID_FILE);
    match read_meta_file(data_dir, CLUSTER_ID_FILE) {
        Ok(Some(text)) => {
            let id = text.trim_end_matches('\n');
            if valid(id) {
                Ok(id.to_owned())
            } else {
                Err(format!(
                    "{} holds {id:?}, not a cluster id ({CLUSTER_ID_CHARS} URL-safe base64 characters); restore it from a backup or remove it to get a new id",
                    path.display()
                ))
            }
        }
        Ok(None) => {
            let id = random_id().map_err(|e| format!("cannot generate a cluster id: {e}"))?;
            write_meta_file(data_dir, CLUSTER_ID_FILE, &format!("{id}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A shard's copy of the cluster id. On the metadata shard, its lock makes the id
/// be created once.
struct ClusterIdCache {
    id: RefCell<Option<Rc<str>>>,
    lock: Semaphore,
    /// A background fetch for [`cached`] is under way.
    fetching: Cell<bool>,
}

impl Default for ClusterIdCache {
    fn default() -> Self {
        ClusterIdCache {
            id: RefCell::new(None),
            lock: Semaphore::new(1),
            fetching: Cell::new(false),
        }
    }
}

impl ClusterIdCache {
    fn get(&self) -> Option<Rc<str>> {
        self.id.borrow().clone()
    }
}

/// Loads or creates the id on the metadata shard (once).
async fn on_metadata_shard(broker: &Broker) -> Result<Rc<str>, WireError> {
    debug_assert_eq!(broker.shard.id(), METADATA_SHARD);
    let cache = shard_local::<ClusterIdCache>(&broker.shard);
    if let Some(id) = cache.get() {
        return Ok(id);
    }
    let _permit = cache.lock.acquire_permit(1).await.map_err(|_| {
        WireError::new(ErrorCode::BrokerShuttingDown, "the broker is shutting down")
    })?;
    if let Some(id) = cache.get() {
        return Ok(id);
    }
    let data_dir = broker.config.data_dir.clone();
    let id: Rc<str> = glommio::executor()
        .spawn_blocking(move || load_or_create(&data_dir))
        .await
        .map_err(|e| WireError::new(ErrorCode::StorageError, e))?
        .into();
    *cache.id.borrow_mut() = Some(Rc::clone(&id));
    Ok(id)
}

/// This broker's cluster id, created on first use; from any shard.
pub async fn cluster_id(broker: &Broker) -> Result<Rc<str>, WireError> {
    if broker.shard.id() == METADATA_SHARD {
        return on_metadata_shard(broker).await;
    }
    let cache = shard_local::<ClusterIdCache>(&broker.shard);
    if let Some(id) = cache.get() {
        return Ok(id);
    }
    let id: String = broker
        .shard
        .invoke_on(METADATA_SHARD, |shard| async move {
            on_metadata_shard(&Broker::of(&shard))
                .await
                .map(|id| id.to_string())
        })
        .await??;
    let id: Rc<str> = id.into();
    *cache.id.borrow_mut() = Some(Rc::clone(&id));
    Ok(id)
}

/// The cluster id if this shard has it already, for callers that cannot wait
/// (Metadata). Otherwise `None`, and a background task fetches it for next time.
pub fn cached(broker: &Broker) -> Option<Rc<str>> {
    let cache = shard_local::<ClusterIdCache>(&broker.shard);
    if let Some(id) = cache.get() {
        return Some(id);
    }
    if !cache.fetching.replace(true) {
        let broker = Broker::of(&broker.shard);
        glommio::spawn_local(async move {
            if let Err(e) = cluster_id(&broker).await {
                tracing::warn!(error = %e.message, "cannot load the cluster id");
            }
            shard_local::<ClusterIdCache>(&broker.shard)
                .fetching
                .set(false);
        })
        .detach();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_kafka_encoding() {
        // Kafka's Uuid.toString() of 0x00..0x0f is "AAECAwQFBgcICQoLDA0ODw".
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(base64_url(&bytes), "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(base64_url(&[0xff; 16]), "_____________________w");
    }

    #[test]
    fn id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(valid(&first), "{first}");
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), first);
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        write_meta_file(dir.path(), CLUSTER_ID_FILE, "garbage\n").unwrap();
        let e = load_or_create(dir.path()).unwrap_err();
        assert!(e.contains("cluster_id") && e.contains("garbage"), "{e}");
    }
}
