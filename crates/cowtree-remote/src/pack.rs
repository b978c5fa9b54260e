//! Pack indexes: which blob lies where in a pack object.
//!
//! A pack is the plain concatenation of blobs. Its index is a separate, small object read by
//! every push (to skip what the remote has) and pull (to find what to fetch), so it is what
//! packing saves requests on. Pack and index are both named by the BLAKE3 hash of the index
//! bytes: a cached index is checked against its name, and the index names every blob, so the
//! pack's content is fixed by its name too.
//!
//! Encoding, version 1 (integers little-endian):
//!
//! ```text
//! header   "CTPACKIX" (8 bytes), version u32 = 1, entry count u64, pack length u64
//! entry    BLAKE3 hash (32 bytes), offset u64, length u64
//! ```
//! Entries are sorted by hash with no duplicates; every range lies within the pack length.
//! Nothing may follow the last entry. Indexes come from a remote, so [`PackIndex::decode`]
//! treats its input as hostile and never panics.

use cowtree_store::Hash;

/// The first bytes of every pack index.
pub const MAGIC: &[u8; 8] = b"CTPACKIX";
/// The index encoding this code writes and reads.
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 8;
const ENTRY: usize = 32 + 8 + 8;

/// Where one blob lies in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The blob.
    pub hash: Hash,
    /// Byte offset in the pack.
    pub offset: u64,
    /// Length in bytes (the blob's size).
    pub len: u64,
}

/// A decoded, validated pack index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackIndex {
    /// Length of the pack object in bytes.
    pub pack_len: u64,
    /// Slots sorted by hash.
    pub slots: Vec<Slot>,
}

/// Why an index was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Not an index, or another version.
    #[error("not a cowtree pack index of version {VERSION}")]
    BadHeader,
    /// The byte length does not match the entry count.
    #[error("index length {len} does not match its {count} entries")]
    BadLength {
        /// Bytes received.
        len: usize,
        /// Entries the header states.
        count: u64,
    },
    /// Entries out of order or repeated.
    #[error("entry {0} is out of order or repeated")]
    Unsorted(u64),
    /// A range past the end of the pack.
    #[error("entry {index} (blob {hash}) ends at {end}, past the pack's end at {pack_len}")]
    PastEnd {
        /// Entry index.
        index: u64,
        /// Its blob.
        hash: Hash,
        /// Where its range ends (saturated).
        end: u64,
        /// The pack length the header states.
        pack_len: u64,
    },
}

impl PackIndex {
    /// Builds the index of a pack from its slots in pack order (any order is accepted).
    pub fn new(pack_len: u64, mut slots: Vec<Slot>) -> PackIndex {
        slots.sort_by_key(|s| s.hash);
        PackIndex { pack_len, slots }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + ENTRY * self.slots.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.slots.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.pack_len.to_le_bytes());
        for s in &self.slots {
            out.extend_from_slice(s.hash.as_bytes());
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.len.to_le_bytes());
        }
        out
    }

    /// Decodes and validates an index.
    pub fn decode(bytes: &[u8]) -> Result<PackIndex, IndexError> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC || u32_at(bytes, 8) != VERSION {
            return Err(IndexError::BadHeader);
        }
        let count = u64_at(bytes, 12);
        let pack_len = u64_at(bytes, 20);
        let body = bytes.len() - HEADER;
        if !body.is_multiple_of(ENTRY) || (body / ENTRY) as u64 != count {
            return Err(IndexError::BadLength {
                len: bytes.len(),
                count,
            });
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(body / ENTRY);
        for (i, e) in bytes[HEADER..].chunks_exact(ENTRY).enumerate() {
            let index = i as u64;
            let hash = Hash::from_slice(&e[..32]).ok_or(IndexError::BadHeader)?;
            let offset = u64_at(e, 32);
            let len = u64_at(e, 40);
            let end = offset.saturating_add(len);
            if end > pack_len {
                return Err(IndexError::PastEnd {
                    index,
                    hash,
                    end,
                    pack_len,
                });
            }
            if slots.last().is_some_and(|p| p.hash >= hash) {
                return Err(IndexError::Unsorted(index));
            }
            slots.push(Slot { hash, offset, len });
        }
        Ok(PackIndex { pack_len, slots })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(seed: &[u8], offset: u64, len: u64) -> Slot {
        Slot {
            hash: Hash::of(seed),
            offset,
            len,
        }
    }

    #[test]
    fn round_trip_sorts_by_hash() {
        let idx = PackIndex::new(30, vec![slot(b"a", 0, 10), slot(b"b", 10, 20)]);
        let back = PackIndex::decode(&idx.encode()).expect("decodes");
        assert_eq!(back, idx);
        assert!(back.slots[0].hash < back.slots[1].hash);
    }

    #[test]
    fn a_range_past_the_pack_end_is_refused() {
        let idx = PackIndex::new(29, vec![slot(b"a", 0, 10), slot(b"b", 10, 20)]);
        assert!(matches!(
            PackIndex::decode(&idx.encode()),
            Err(IndexError::PastEnd { end: 30, .. })
        ));
        let overflow = PackIndex::new(10, vec![slot(b"a", u64::MAX, 2)]);
        assert!(matches!(
            PackIndex::decode(&overflow.encode()),
            Err(IndexError::PastEnd { end: u64::MAX, .. })
        ));
    }

    #[test]
    fn truncated_unsorted_and_foreign_bytes_are_refused() {
        let idx = PackIndex::new(30, vec![slot(b"a", 0, 10), slot(b"b", 10, 20)]);
        let bytes = idx.encode();
        for cut in 0..bytes.len() {
            assert!(PackIndex::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut swapped = bytes.clone();
        let (h, t) = swapped[HEADER..].split_at_mut(ENTRY);
        h.swap_with_slice(t);
        assert_eq!(PackIndex::decode(&swapped), Err(IndexError::Unsorted(1)));
        let mut dup = PackIndex::new(30, vec![slot(b"a", 0, 10)]);
        dup.slots.push(slot(b"a", 10, 10));
        assert_eq!(
            PackIndex::decode(&dup.encode()),
            Err(IndexError::Unsorted(1))
        );
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(PackIndex::decode(&v2), Err(IndexError::BadHeader));
        assert_eq!(
            PackIndex::decode(b"CTMANIF\n\x01\0\0\0"),
            Err(IndexError::BadHeader)
        );
    }
}
