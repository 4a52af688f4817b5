//! The partition replica's Raft hard state — its current term and its vote in that
//! term — in a small checksummed file `raft-state` in the partition directory.
//!
//! A vote must survive a crash once it was granted (else a replica could vote twice in
//! one term), so a write is durable when it returns: temp file, fsync, rename, fsync
//! of the directory (`clean_marker::write_durably`). The file work runs on glommio's
//! blocking pool, never on the shard thread. A damaged file is an error naming it,
//! never silently "no vote": forgetting a vote is exactly what Raft forbids.

use std::path::{Path, PathBuf};

use strata_raft::{HardState, NodeId};

use crate::error::{EngineError, Result};

/// File holding the hard state in a partition directory.
pub const RAFT_STATE_NAME: &str = "raft-state";

/// First bytes of the file: `"SRHS"`, then the format version.
const MAGIC: &[u8; 4] = b"SRHS";
const VERSION: u8 = 1;
/// magic, version, term u64, vote flag u8, vote u64, crc32c u32 (little endian).
const FILE_BYTES: usize = 4 + 1 + 8 + 1 + 8 + 4;

/// The hard-state file's path in the partition directory `dir`.
pub fn raft_state_path(dir: &Path) -> PathBuf {
    dir.join(RAFT_STATE_NAME)
}

/// The hard state kept in `dir`, or `None` if none was ever written (a new replica).
/// A damaged or unreadable file is an error naming it.
pub async fn read_hard_state(dir: impl AsRef<Path>) -> Result<Option<HardState>> {
    let path = raft_state_path(dir.as_ref());
    let read = glommio::executor()
        .spawn_blocking({
            let path = path.clone();
            move || match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| EngineError::io("read raft hard state", &path, e))?;
    match read {
        None => Ok(None),
        Some(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|detail| EngineError::Corrupt {
                path,
                position_bytes: 0,
                detail: format!("raft hard state: {detail}"),
            }),
    }
}

/// Writes `hard` to `dir` durably (file and directory synced) before returning.
pub async fn write_hard_state(dir: impl AsRef<Path>, hard: HardState) -> Result<()> {
    let path = raft_state_path(dir.as_ref());
    let bytes = encode(hard);
    glommio::executor()
        .spawn_blocking({
            let path = path.clone();
            move || crate::clean_marker::write_durably(&path, &bytes)
        })
        .await
        .map_err(|e| EngineError::io("write raft hard state", &path, e))
}

fn encode(hard: HardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_BYTES);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&hard.term.to_le_bytes());
    out.push(u8::from(hard.vote.is_some()));
    out.extend_from_slice(&hard.vote.unwrap_or(0).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), FILE_BYTES);
    out
}

fn decode(bytes: &[u8]) -> std::result::Result<HardState, String> {
    if bytes.len() != FILE_BYTES {
        return Err(format!("{} bytes, expected {FILE_BYTES}", bytes.len()));
    }
    let (body, crc) = bytes.split_at(FILE_BYTES - 4);
    let stored = u32::from_le_bytes(word(crc));
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!(
            "checksum {stored:#010x} does not match the contents ({computed:#010x})"
        ));
    }
    if &body[..4] != MAGIC {
        return Err("not a raft hard-state file (bad magic)".into());
    }
    if body[4] != VERSION {
        return Err(format!("unsupported version {}", body[4]));
    }
    let term = u64::from_le_bytes(word(&body[5..13]));
    let vote: NodeId = u64::from_le_bytes(word(&body[14..22]));
    let vote = match body[13] {
        0 => None,
        1 => Some(vote),
        flag => return Err(format!("bad vote flag {flag}")),
    };
    Ok(HardState { term, vote })
}

fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::run_local;

    #[test]
    fn codec_roundtrips_and_refuses_damage() {
        for hard in [
            HardState::default(),
            HardState {
                term: 7,
                vote: Some(3),
            },
            HardState {
                term: u64::from(i32::MAX as u32),
                vote: None,
            },
        ] {
            let bytes = encode(hard);
            assert_eq!(decode(&bytes), Ok(hard));
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x40;
                assert!(decode(&bad).is_err(), "flipped byte {i} accepted");
            }
            assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn roundtrip_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run_local(move || async move {
            assert_eq!(read_hard_state(&path).await.unwrap(), None);
            let hard = HardState {
                term: 5,
                vote: Some(2),
            };
            write_hard_state(&path, hard).await.unwrap();
            assert_eq!(read_hard_state(&path).await.unwrap(), Some(hard));
            let next = HardState {
                term: 6,
                vote: None,
            };
            write_hard_state(&path, next).await.unwrap();
            assert_eq!(read_hard_state(&path).await.unwrap(), Some(next));
            // No temp file is left behind.
            let names: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, [RAFT_STATE_NAME]);

            let file = raft_state_path(&path);
            let mut bytes = std::fs::read(&file).unwrap();
            bytes[6] ^= 1;
            std::fs::write(&file, &bytes).unwrap();
            match read_hard_state(&path).await {
                Err(EngineError::Corrupt { path: p, .. }) => assert_eq!(p, file),
                other => panic!("corrupt file read as {other:?}"),
            }
            std::fs::write(&file, b"").unwrap();
            let err = read_hard_state(&path).await.unwrap_err();
            assert!(err.to_string().contains(RAFT_STATE_NAME), "{err}");
        });
    }
}
