//! Snapshots of the controller's metadata image: what the compacted prefix of the
//! metadata log stood for. Each replica writes its own beside the log
//! (`cluster-metadata/snapshots/<end offset>-<term>.snapshot`) once enough of the log
//! has been applied since the last one, then lets the log start move up; a leader
//! sends one to a follower whose log ends below its log start (Raft's
//! InstallSnapshot, the data in the frame tail).
//!
//! File layout, little endian: `b"STRMSNAP"`, `u8 version`, `u64 end_offset`,
//! `u64 term`, `u32 records_bytes`, the image as records (one metadata entry, as
//! [`encode_records`] writes it; [`MetadataImage::snapshot_records`]), then `u32`
//! crc32c of everything before it. The same bytes travel between brokers, so a
//! received snapshot is checked exactly as a file read back is.

use std::path::{Path, PathBuf};

use strata_raft::Term;

use crate::controller::{decode_records, encode_records, MetadataImage};

/// The snapshot directory inside the metadata log's directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
const SUFFIX: &str = ".snapshot";
const MAGIC: &[u8; 8] = b"STRMSNAP";
const VERSION: u8 = 1;
const HEAD_BYTES: usize = 8 + 1 + 8 + 8 + 4;
const CRC_BYTES: usize = 4;
/// Kafka's `metadata.log.max.record.bytes.between.snapshots` default: a replica
/// writes a new snapshot once this many bytes of the log were applied since its last.
pub const SNAPSHOT_INTERVAL_BYTES_DEFAULT: u64 = 20 * 1024 * 1024;

/// A decoded snapshot: the image as of the log up to `end_offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataSnapshot {
    /// The log start once it is in force (one past the last entry it covers).
    pub end_offset: u64,
    /// Term of the entry at `end_offset - 1`.
    pub term: Term,
    pub image: MetadataImage,
}

/// Why snapshot bytes were refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("{0} bytes are too short for a metadata snapshot")]
    TooShort(usize),
    #[error("not a metadata snapshot (bad magic)")]
    BadMagic,
    #[error("metadata snapshot version {0} is newer than this broker knows ({VERSION})")]
    Version(u8),
    #[error("the metadata snapshot says {said} bytes of records but holds {held}")]
    Length { said: usize, held: usize },
    #[error("the metadata snapshot's checksum does not match (damaged)")]
    Checksum,
    #[error("the metadata snapshot's records do not decode: {0}")]
    Records(String),
    #[error("the metadata snapshot's records do not rebuild an image: {0}")]
    Image(String),
}

/// The bytes of a snapshot of `image` as of the log up to `end_offset`.
pub fn encode(end_offset: u64, term: Term, image: &MetadataImage) -> Vec<u8> {
    let records = encode_records(&image.snapshot_records());
    let mut out = Vec::with_capacity(HEAD_BYTES + records.len() + CRC_BYTES);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&end_offset.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&records);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// `(end_offset, term)` of snapshot bytes, checked (magic, version, length, checksum)
/// but not decoded.
pub fn peek(bytes: &[u8]) -> Result<(u64, Term), SnapshotError> {
    if bytes.len() < HEAD_BYTES + CRC_BYTES {
        return Err(SnapshotError::TooShort(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    if bytes[8] != VERSION {
        return Err(SnapshotError::Version(bytes[8]));
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let said = u32::from_le_bytes(bytes[25..29].try_into().expect("4 bytes")) as usize;
    let held = bytes.len() - HEAD_BYTES - CRC_BYTES;
    if said != held {
        return Err(SnapshotError::Length { said, held });
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(SnapshotError::Checksum);
    }
    Ok((u64_at(9), u64_at(17)))
}

/// Decodes snapshot bytes into the image they hold.
pub fn decode(bytes: &[u8]) -> Result<MetadataSnapshot, SnapshotError> {
    let (end_offset, term) = peek(bytes)?;
    let records = decode_records(&bytes[HEAD_BYTES..bytes.len() - CRC_BYTES])
        .map_err(|e| SnapshotError::Records(e.to_string()))?;
    let mut image = MetadataImage::new();
    image
        .apply_all(&records)
        .map_err(|e| SnapshotError::Image(e.to_string()))?;
    Ok(MetadataSnapshot {
        end_offset,
        term,
        image,
    })
}

/// The snapshot directory of the metadata log in `log_dir`.
pub fn snapshot_dir(log_dir: &Path) -> PathBuf {
    log_dir.join(SNAPSHOT_DIR)
}

/// The file of the snapshot ending at `end_offset` in `term`.
pub fn snapshot_path(dir: &Path, end_offset: u64, term: Term) -> PathBuf {
    dir.join(format!("{end_offset:020}-{term:020}{SUFFIX}"))
}

fn parse_name(name: &str) -> Option<(u64, Term)> {
    let (end, term) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    Some((end.parse().ok()?, term.parse().ok()?))
}

/// The snapshots in `dir` as `(end_offset, term)`, oldest first (none if the
/// directory does not exist). Blocking.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, Term)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        if let Some(key) = parse_name(&entry?.file_name().to_string_lossy()) {
            out.push(key);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes snapshot `bytes` (from [`encode`], or a leader's already checked) durably
/// as the one ending at `end_offset` in `term`. Blocking.
pub fn write(dir: &Path, end_offset: u64, term: Term, bytes: &[u8]) -> std::io::Result<PathBuf> {
    debug_assert_eq!(peek(bytes), Ok((end_offset, term)));
    std::fs::create_dir_all(dir)?;
    let path = snapshot_path(dir, end_offset, term);
    strata_engine::clean_marker::write_durably(&path, bytes)?;
    Ok(path)
}

/// The bytes of the snapshot ending at `end_offset` in `term`, if `dir` holds it
/// whole. Blocking.
pub fn read(dir: &Path, end_offset: u64, term: Term) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(snapshot_path(dir, end_offset, term)) {
        Ok(bytes) if peek(&bytes) == Ok((end_offset, term)) => Ok(Some(bytes)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The newest snapshot in `dir` that decodes; damaged ones are reported and passed
/// over (an older one, and the log above it, may still rebuild the image). Blocking.
pub fn read_newest(dir: &Path) -> std::io::Result<Option<MetadataSnapshot>> {
    for (end, term) in list(dir)?.into_iter().rev() {
        let path = snapshot_path(dir, end, term);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match decode(&bytes) {
            Ok(s) if (s.end_offset, s.term) == (end, term) => return Ok(Some(s)),
            Ok(s) => {
                tracing::error!(path = %path.display(), end_offset = s.end_offset, term = s.term, "metadata snapshot holds another key than its name; passed over")
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "damaged metadata snapshot; passed over")
            }
        }
    }
    Ok(None)
}

/// Removes the snapshots ending below `end_offset` (the log start has passed them).
/// Blocking.
pub fn remove_below(dir: &Path, end_offset: u64) -> std::io::Result<()> {
    for (end, term) in list(dir)? {
        if end >= end_offset {
            break;
        }
        match std::fs::remove_file(snapshot_path(dir, end, term)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::MetadataRecord;
    use std::collections::BTreeMap;

    fn image() -> MetadataImage {
        let mut image = MetadataImage::new();
        image
            .apply_all(&[
                MetadataRecord::ClusterId([7; 16]),
                MetadataRecord::CreateTopic {
                    name: "orders".into(),
                    id: [1; 16],
                    overrides: BTreeMap::from([("retention.ms".into(), "1000".into())]),
                    replicas: vec![vec![1, 2, 3], vec![2, 3, 1]],
                },
                MetadataRecord::PartitionLeader {
                    topic_id: [1; 16],
                    partition: 1,
                    leader: Some(3),
                    leader_epoch: 4,
                    isr: vec![2, 3],
                },
                MetadataRecord::ProducerIdBlock {
                    first: 0,
                    count: 1000,
                },
            ])
            .unwrap();
        image
    }

    #[test]
    fn a_snapshot_rebuilds_the_image_it_was_taken_of() {
        let bytes = encode(42, 5, &image());
        assert_eq!(peek(&bytes), Ok((42, 5)));
        let s = decode(&bytes).unwrap();
        assert_eq!((s.end_offset, s.term), (42, 5));
        assert_eq!(s.image, image());
    }

    #[test]
    fn damaged_or_foreign_bytes_are_refused() {
        let bytes = encode(42, 5, &image());
        for at in [0, 8, 12, 27, HEAD_BYTES + 3, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad).is_err(), "a flip at {at} went unnoticed");
        }
        assert_eq!(
            decode(&bytes[..bytes.len() - 1]),
            Err(SnapshotError::Length {
                said: bytes.len() - HEAD_BYTES - CRC_BYTES,
                held: bytes.len() - HEAD_BYTES - CRC_BYTES - 1
            })
        );
        assert_eq!(decode(&bytes[..10]), Err(SnapshotError::TooShort(10)));
        let mut newer = bytes.clone();
        newer[8] = VERSION + 1;
        assert_eq!(decode(&newer), Err(SnapshotError::Version(VERSION + 1)));
    }

    #[test]
    fn the_newest_whole_snapshot_is_read_and_older_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join(SNAPSHOT_DIR);
        assert_eq!(read_newest(&dir).unwrap(), None);
        write(&dir, 10, 2, &encode(10, 2, &MetadataImage::new())).unwrap();
        write(&dir, 20, 3, &encode(20, 3, &MetadataImage::new())).unwrap();
        let newest = snapshot_path(&dir, 30, 3);
        write(&dir, 30, 3, &encode(30, 3, &image())).unwrap();
        assert_eq!(list(&dir).unwrap(), vec![(10, 2), (20, 3), (30, 3)]);
        assert_eq!(read_newest(&dir).unwrap().unwrap().end_offset, 30);
        assert!(read(&dir, 30, 3).unwrap().is_some());
        assert_eq!(read(&dir, 30, 4).unwrap(), None);

        // A damaged newest file is passed over for the one before it.
        let mut bytes = std::fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&newest, &bytes).unwrap();
        assert_eq!(read_newest(&dir).unwrap().unwrap().end_offset, 20);
        assert_eq!(read(&dir, 30, 3).unwrap(), None);

        remove_below(&dir, 20).unwrap();
        assert_eq!(list(&dir).unwrap(), vec![(20, 3), (30, 3)]);
        // No temp file is left behind.
        let names = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(names, 2);
    }
}
