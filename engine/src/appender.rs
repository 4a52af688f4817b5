//! Appending to an O_DIRECT file: writes must be whole aligned blocks, so the
//! appender keeps the file's partial last block in memory and rewrites it, followed by
//! the new bytes, on the next write. Bytes already on disk are rewritten unchanged, so
//! a torn rewrite of that block never damages data that was there before.

use std::rc::Rc;

use crate::error::Result;
use crate::file::{align_down, align_up, StorageFile, DMA_ALIGN_BYTES};

/// Appends byte runs to a `StorageFile` at its logical end.
#[derive(Debug)]
pub struct AlignedAppender {
    file: Rc<StorageFile>,
    size_bytes: u64,
    /// The bytes of the last, partial block: `[align_down(size_bytes), size_bytes)`.
    tail: Vec<u8>,
}

impl AlignedAppender {
    /// Continues a file whose logical content is `size_bytes` long.
    pub async fn resume(file: Rc<StorageFile>, size_bytes: u64) -> Result<Self> {
        let tail_start = align_down(size_bytes);
        let tail_len = (size_bytes - tail_start) as usize;
        let mut tail = Vec::with_capacity(DMA_ALIGN_BYTES as usize);
        if tail_len > 0 {
            let block = file.read_at(tail_start, tail_len).await?;
            if block.len() < tail_len {
                return Err(crate::error::EngineError::Corrupt {
                    path: file.path().to_path_buf(),
                    position_bytes: tail_start,
                    detail: format!(
                        "expected {tail_len} bytes at the tail, found {}",
                        block.len()
                    ),
                });
            }
            tail.extend_from_slice(&block[..tail_len]);
        }
        Ok(AlignedAppender {
            file,
            size_bytes,
            tail,
        })
    }

    /// The logical size written so far.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The file written to.
    pub fn file(&self) -> &Rc<StorageFile> {
        &self.file
    }

    /// Writes `chunks` after the current end in one aligned write. On error the
    /// appender is unchanged (the caller fences the partition).
    pub async fn append(&mut self, chunks: &[&[u8]]) -> Result<()> {
        let new_bytes: usize = chunks.iter().map(|c| c.len()).sum();
        if new_bytes == 0 {
            return Ok(());
        }
        let start = align_down(self.size_bytes);
        let used = self.tail.len() + new_bytes;
        let mut buf = self.file.alloc(align_up(used as u64) as usize);
        let bytes = buf.as_bytes_mut();
        bytes[..self.tail.len()].copy_from_slice(&self.tail);
        let mut at = self.tail.len();
        for chunk in chunks {
            bytes[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        }
        bytes[at..].fill(0);
        let new_size = self.size_bytes + new_bytes as u64;
        let new_tail_start = (align_down(new_size) - start) as usize;
        let new_tail = bytes[new_tail_start..used].to_vec();
        self.file.write_all_at(buf, start).await?;
        self.size_bytes = new_size;
        self.tail = new_tail;
        Ok(())
    }
}
