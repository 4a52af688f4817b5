//! The little-endian byte layout shared by metadata records, controller commands and
//! their replies: fixed-width integers, `u16`-length strings, counts checked against
//! both a named bound and the bytes left, so a corrupt or hostile length is an error
//! and never a huge allocation.

use strata_raft::NodeId;

/// Longest string field (host names, topic names, config keys and values, racks).
pub const STRING_BYTES_MAX: usize = u16::MAX as usize;

/// Why bytes do not decode as a metadata record, command or reply.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RecordCodecError {
    #[error("{what}: {needed} bytes needed, {left} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("{what}: {count} items, at most {max} are allowed")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{what} version {version} is newer than this broker reads (at most {known})")]
    UnknownVersion {
        what: &'static str,
        version: u8,
        known: u8,
    },
    #[error("{what}: {left} bytes left over after the last field")]
    Trailing { what: &'static str, left: usize },
    #[error("{what}: {len} bytes, at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// Appends fields to a buffer.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn id16(&mut self, v: &[u8; 16]) {
        self.0.extend_from_slice(v);
    }
    /// A count; callers bound their collections far below `u32::MAX` (they were
    /// validated on the way in), so saturating is only a guard.
    pub(crate) fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    /// A string of at most [`STRING_BYTES_MAX`] bytes (longer ones were refused when
    /// they were validated; a longer one is cut at a char boundary rather than written
    /// with a wrong length).
    pub(crate) fn str(&mut self, s: &str) {
        let mut end = s.len().min(STRING_BYTES_MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    pub(crate) fn opt_node(&mut self, n: Option<NodeId>) {
        match n {
            None => self.u8(0),
            Some(n) => {
                self.u8(1);
                self.u64(n);
            }
        }
    }
    pub(crate) fn nodes(&mut self, v: &[NodeId]) {
        self.count(v.len());
        for &n in v {
            self.u64(n);
        }
    }
    pub(crate) fn opt_nodes(&mut self, v: Option<&[NodeId]>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.nodes(v);
            }
        }
    }
    pub(crate) fn str_map(&mut self, m: &std::collections::BTreeMap<String, String>) {
        self.count(m.len());
        for (k, v) in m {
            self.str(k);
            self.str(v);
        }
    }
    pub(crate) fn strs(&mut self, v: &[String]) {
        self.count(v.len());
        for s in v {
            self.str(s);
        }
    }
    /// A length-prefixed section, filled by `body`.
    pub(crate) fn section(&mut self, body: impl FnOnce(&mut Writer)) {
        let at = self.0.len();
        self.u32(0);
        body(self);
        let len = self.0.len() - at - 4;
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.0[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// Reads fields from a buffer, front to back.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(
        &mut self,
        n: usize,
        what: &'static str,
    ) -> Result<&'a [u8], RecordCodecError> {
        if self.0.len() < n {
            return Err(RecordCodecError::Truncated {
                what,
                needed: n,
                left: self.0.len(),
            });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RecordCodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, RecordCodecError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, RecordCodecError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(RecordCodecError::UnknownTag { what, tag }),
        }
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, RecordCodecError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, RecordCodecError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, RecordCodecError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, RecordCodecError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, RecordCodecError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn id16(&mut self, what: &'static str) -> Result<[u8; 16], RecordCodecError> {
        self.array(what)
    }
    /// A count of at most `max` items that take at least `item_bytes_min` bytes each:
    /// a count the rest of the buffer cannot hold is an error, not an allocation.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        max: usize,
        item_bytes_min: usize,
    ) -> Result<usize, RecordCodecError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(RecordCodecError::TooMany {
                what,
                count: n,
                max,
            });
        }
        let needed = n.saturating_mul(item_bytes_min);
        if needed > self.0.len() {
            return Err(RecordCodecError::Truncated {
                what,
                needed,
                left: self.0.len(),
            });
        }
        Ok(n)
    }
    /// A string of at most `max` bytes.
    pub(crate) fn str_max(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<String, RecordCodecError> {
        let n = usize::from(self.u16(what)?);
        if n > max {
            return Err(RecordCodecError::TooLong { what, len: n, max });
        }
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordCodecError::NotUtf8(what))
    }
    pub(crate) fn str(&mut self, what: &'static str) -> Result<String, RecordCodecError> {
        self.str_max(what, STRING_BYTES_MAX)
    }
    pub(crate) fn opt_str(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, RecordCodecError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.str(what)?)),
            tag => Err(RecordCodecError::UnknownTag { what, tag }),
        }
    }
    pub(crate) fn opt_node(
        &mut self,
        what: &'static str,
    ) -> Result<Option<NodeId>, RecordCodecError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.u64(what)?)),
            tag => Err(RecordCodecError::UnknownTag { what, tag }),
        }
    }
    pub(crate) fn nodes(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<NodeId>, RecordCodecError> {
        let n = self.count(what, max, 8)?;
        (0..n).map(|_| self.u64(what)).collect()
    }
    pub(crate) fn opt_nodes(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Option<Vec<NodeId>>, RecordCodecError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.nodes(what, max)?)),
            tag => Err(RecordCodecError::UnknownTag { what, tag }),
        }
    }
    pub(crate) fn str_map(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<std::collections::BTreeMap<String, String>, RecordCodecError> {
        let n = self.count(what, max, 4)?;
        let mut out = std::collections::BTreeMap::new();
        for _ in 0..n {
            let k = self.str(what)?;
            let v = self.str(what)?;
            out.insert(k, v);
        }
        Ok(out)
    }
    pub(crate) fn strs(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<String>, RecordCodecError> {
        let n = self.count(what, max, 2)?;
        (0..n).map(|_| self.str(what)).collect()
    }
    /// A length-prefixed section as its own reader (the section must be read to its
    /// end by the caller: see [`Reader::end`]).
    pub(crate) fn section(&mut self, what: &'static str) -> Result<Reader<'a>, RecordCodecError> {
        let n = self.u32(what)? as usize;
        Ok(Reader(self.take(n, what)?))
    }
    pub(crate) fn end(&self, what: &'static str) -> Result<(), RecordCodecError> {
        match self.0.len() {
            0 => Ok(()),
            left => Err(RecordCodecError::Trailing { what, left }),
        }
    }
}
