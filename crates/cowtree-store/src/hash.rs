//! BLAKE3 hashes as blob names and snapshot ids.

use std::fmt;

/// A BLAKE3 hash: the name of a blob or a snapshot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

impl Hash {
    /// Wraps 32 bytes.
    pub fn from_bytes(b: [u8; 32]) -> Hash {
        Hash(b)
    }

    /// 32 bytes from a slice of exactly that length.
    pub fn from_slice(b: &[u8]) -> Option<Hash> {
        b.try_into().ok().map(Hash)
    }

    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.hex_bytes().into_iter().map(char::from).collect()
    }

    /// Lowercase hex as 64 ASCII bytes, made without the formatting machinery (a snapshot
    /// names a blob by it for every file it records).
    pub fn hex_bytes(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        out
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Hash> {
        blake3::Hash::from_hex(s).ok().map(Hash::from)
    }
}

impl From<blake3::Hash> for Hash {
    fn from(h: blake3::Hash) -> Hash {
        Hash(*h.as_bytes())
    }
}

/// True when `s` is non-empty lowercase or uppercase hex.
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The fewest hex digits that name a snapshot by a prefix of its id.
pub const MIN_PREFIX: usize = 8;

/// True when `s` can name a snapshot by a prefix of its id: [`MIN_PREFIX`] or more hex digits.
pub fn is_id_prefix(s: &str) -> bool {
    is_hex(s) && s.len() >= MIN_PREFIX
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written from the stack: no allocation per hash shown. The digits are ASCII, so the
        // error cannot happen.
        let hex = self.hex_bytes();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", blake3::Hash::from_bytes(self.0).to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_refusals() {
        let h = Hash::of(b"abc");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        let hex: String = h.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(h.to_hex(), hex);
        assert_eq!(h.hex_bytes().as_slice(), hex.as_bytes());
        assert_eq!(
            h.to_hex(),
            blake3::Hash::from_bytes(*h.as_bytes()).to_hex().as_str()
        );
        let edges = Hash::from_bytes([0x00, 0x0f, 0xf0, 0xff].repeat(8).try_into().unwrap());
        assert_eq!(edges.to_hex(), "000ff0ff".repeat(8));
        assert_eq!(h.to_string(), hex);
        assert_eq!(format!("{edges}"), "000ff0ff".repeat(8));
        assert_eq!(
            crate::Store::blob_rel(&h),
            std::ffi::OsString::from(format!("{}/{}", &hex[..2], &hex[2..]))
        );
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(Hash::from_hex("ab"), None);
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
        assert_eq!(Hash::from_hex(&format!("+{}", &h.to_hex()[1..])), None);
        assert_eq!(Hash::from_hex(&"é".repeat(32)), None);
        assert_eq!(Hash::from_hex(&format!("{}0", h.to_hex())), None);
        assert!(is_hex("0aF"));
        assert!(!is_hex(""));
        assert!(!is_hex("x1"));
    }
}
