//! The topic id a cluster partition's directory belongs to (`topic.id` in the
//! partition directory): a topic deleted while this broker was down and created again
//! under its name has another id, and its old data must not become the new topic's.
//!
//! Blocking: run on glommio's blocking pool.

use std::path::Path;

use crate::metadata::{hex, parse_hex_id};

/// The marker file in a partition directory.
pub const TOPIC_ID_FILE: &str = "topic.id";

/// What [`claim_partition_dir`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The directory was new, or already this topic's (or from before markers).
    Kept,
    /// The directory held another topic id's data; it was removed.
    Replaced { old_id: String },
}

/// Makes `dir` the directory of topic `id`: creates it if missing, removes what it
/// holds if it belongs to another id, and records `id` durably. A directory without
/// a marker (written before markers existed) is adopted as it is.
pub fn claim_partition_dir(dir: &Path, id: &[u8; 16]) -> std::io::Result<Claim> {
    let marker = dir.join(TOPIC_ID_FILE);
    let mut claim = Claim::Kept;
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let found = parse_hex_id(text.trim());
            if found.as_ref() == Some(id) {
                return Ok(Claim::Kept);
            }
            std::fs::remove_dir_all(dir)?;
            claim = Claim::Replaced {
                old_id: text.trim().to_owned(),
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let created = !dir.exists();
    std::fs::create_dir_all(dir)?;
    if created {
        if let Some(parent) = dir.parent() {
            strata_engine::clean_marker::sync_dir(parent)?;
        }
    }
    strata_engine::clean_marker::write_durably(&marker, format!("{}\n", hex(id)).as_bytes())?;
    Ok(claim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_another_topic_id_is_emptied_and_claimed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let (a, b) = ([1u8; 16], [2u8; 16]);
        assert_eq!(claim_partition_dir(&dir, &a).unwrap(), Claim::Kept);
        std::fs::write(dir.join("00000000000000000000.log"), b"old data").unwrap();
        assert_eq!(claim_partition_dir(&dir, &a).unwrap(), Claim::Kept);
        assert!(dir.join("00000000000000000000.log").exists());
        let claim = claim_partition_dir(&dir, &b).unwrap();
        assert_eq!(claim, Claim::Replaced { old_id: hex(&a) });
        assert!(!dir.join("00000000000000000000.log").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join(TOPIC_ID_FILE))
                .unwrap()
                .trim(),
            hex(&b)
        );
    }

    #[test]
    fn a_directory_without_a_marker_is_adopted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"data").unwrap();
        assert_eq!(claim_partition_dir(&dir, &[7u8; 16]).unwrap(), Claim::Kept);
        assert!(dir.join("00000000000000000000.log").exists());
        assert!(dir.join(TOPIC_ID_FILE).exists());
    }
}
