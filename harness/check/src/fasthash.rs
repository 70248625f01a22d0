//! A fast, non-cryptographic hash for the checkers' maps: their keys are the run's own ids
//! (appointments, slots), never chosen by an adversary, and SipHash was a tenth of the time
//! of checking a million-op history. Multiply-rotate over 8-byte words, as FxHash does.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Default, Clone, Copy)]
pub struct WordHasher {
    hash: u64,
}

const K: u64 = 0x517c_c1b7_2722_0a95;

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply leaves its entropy in the high bits, and the table indexes by the low
    /// ones: rotate them down (ids such as `a-123456` differ only in their last bytes).
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// A `HashMap` with the word hasher. Its iteration order is arbitrary: anything that shapes
/// output is sorted first.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn equal_keys_hash_equal_and_near_keys_differ() {
        let b = BuildHasherDefault::<WordHasher>::default();
        assert_eq!(b.hash_one("a-123456"), b.hash_one("a-123456"));
        assert_ne!(b.hash_one("a-123456"), b.hash_one("a-123457"));
        assert_ne!(b.hash_one(("a", "b")), b.hash_one(("ab", "")));
        let mut m: FastMap<&str, u32> = FastMap::default();
        for i in 0..1000 {
            m.insert(Box::leak(format!("a-{i}").into_boxed_str()), i);
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(m["a-999"], 999);
    }
}
