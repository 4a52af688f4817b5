//! Small durable files in `data_dir/__meta` next to the topics file (the cluster id,
//! the producer id reservation), and the per-shard cache their values live in.
//!
//! The file functions are blocking: run them at startup or on glommio's blocking
//! pool, never on a shard thread.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use strata_engine::shard::Shard;

use crate::metadata::META_DIR;

/// Where the metadata file `name` lives.
pub fn meta_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(META_DIR).join(name)
}

/// The text of the metadata file `name`, `None` when there is none. Blocking.
pub fn read_meta_file(data_dir: &Path, name: &str) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(meta_path(data_dir, name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the metadata file `name` with `text` atomically and durably (temp file,
/// fsync, rename, directory fsync). Blocking.
pub fn write_meta_file(data_dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let dir = data_dir.join(META_DIR);
    let created = !dir.exists();
    std::fs::create_dir_all(&dir)?;
    if created {
        strata_engine::clean_marker::sync_dir(data_dir)?;
    }
    strata_engine::clean_marker::write_durably(&meta_path(data_dir, name), text.as_bytes())
}

/// This shard's value of type `T`, created empty on first use.
pub fn shard_local<T: Default + 'static>(shard: &Shard) -> Rc<T> {
    if let Some(v) = shard.local::<T>() {
        return v;
    }
    let v = Rc::new(T::default());
    shard.insert_local(Rc::clone(&v));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_meta_file(dir.path(), "x").unwrap(), None);
        write_meta_file(dir.path(), "x", "one\n").unwrap();
        write_meta_file(dir.path(), "x", "two\n").unwrap();
        assert_eq!(
            read_meta_file(dir.path(), "x").unwrap().as_deref(),
            Some("two\n")
        );
        assert!(!meta_path(dir.path(), "x.tmp").exists());
    }
}
