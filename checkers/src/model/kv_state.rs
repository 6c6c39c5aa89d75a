//! The kv model's state: a string that appends build, held as a persistent
//! list of the appended pieces. Each piece is the operation's own value
//! (shared with the history, never copied), and states that the search
//! reaches from one another share their prefixes.
//!
//! Why not a plain string: in Porcupine's c50 kv history nearly every
//! configuration the search stores has its own state (52,749 distinct states
//! in 53,752 configurations of one key), each a copy of a ~200-byte value.
//! A piece costs one small allocation, a state's hash is kept up to date
//! in O(1) per append instead of rehashing the whole string, and equal
//! strings are still equal whatever pieces built them. Pieces are `Rc`:
//! a state never leaves the search thread that made it, and the atomic
//! counts of `Arc` were a tenth of c50-ok (17.8 -> 15.8 ms).
use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;

/// Multiplier of the polynomial hash (FNV's 64-bit prime): the hash of
/// `s + t` follows from those of `s` and `t` and `BASE^len(t)`. Collisions
/// cost only a byte comparison: equality never trusts the hash alone.
const BASE: u64 = 0x0000_0100_0000_01b3;

struct Piece {
    prev: Option<Rc<Piece>>,
    text: Arc<str>,
    /// Length and hash of the whole string up to and including `text`.
    len: usize,
    hash: u64,
}

impl Drop for Piece {
    /// One piece at a time: a long chain dropped recursively would
    /// overflow the search thread's stack.
    fn drop(&mut self) {
        let mut next = self.prev.take();
        while let Some(piece) = next {
            next = match Rc::try_unwrap(piece) {
                Ok(mut owned) => owned.prev.take(),
                Err(_) => None,
            };
        }
    }
}

/// Heap bytes of one piece: its `Rc` counts and fields (its text is the
/// history's).
pub(crate) const PIECE_HEAP_BYTES: usize = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Piece>();

/// One key's value; the empty string is `None` however it was made.
#[derive(Clone, Default)]
pub struct KvState(Option<Rc<Piece>>);

/// The hash of `bytes` and `BASE^len`.
fn hash_bytes(bytes: &[u8]) -> (u64, u64) {
    let mut hash = 0u64;
    let mut power = 1u64;
    for byte in bytes {
        // +1 so that zero bytes count.
        hash = hash.wrapping_mul(BASE).wrapping_add(u64::from(*byte) + 1);
        power = power.wrapping_mul(BASE);
    }
    (hash, power)
}

impl KvState {
    /// The state `put(text)` leaves.
    pub fn put(text: &Arc<str>) -> KvState {
        KvState::default().append(text)
    }

    /// The state after appending `text`.
    pub fn append(&self, text: &Arc<str>) -> KvState {
        if text.is_empty() {
            return self.clone();
        }
        let (text_hash, power) = hash_bytes(text.as_bytes());
        let piece = Piece {
            prev: self.0.clone(),
            text: text.clone(),
            len: self.len() + text.len(),
            hash: self.content_hash().wrapping_mul(power).wrapping_add(text_hash),
        };
        KvState(Some(Rc::new(piece)))
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |piece| piece.len)
    }

    fn content_hash(&self) -> u64 {
        self.0.as_ref().map_or(0, |piece| piece.hash)
    }

    /// True if the value is exactly `text`.
    pub fn is(&self, text: &str) -> bool {
        self.len() == text.len() && Cursor::of(self).same_rest(Cursor { node: None, rest: text.as_bytes() })
    }

    /// The whole value as one string (for messages).
    pub fn text(&self) -> String {
        let mut pieces = Vec::new();
        let mut node = self.0.as_deref();
        while let Some(piece) = node {
            pieces.push(&*piece.text);
            node = piece.prev.as_deref();
        }
        pieces.iter().rev().copied().collect()
    }

    /// Heap bytes this state alone holds: its newest piece when nothing
    /// else holds it yet (older pieces and the texts are shared).
    pub fn fresh_heap_bytes(&self) -> usize {
        match &self.0 {
            Some(piece) if Rc::strong_count(piece) == 1 => PIECE_HEAP_BYTES,
            _ => 0,
        }
    }
}

/// Walks a value from its end: the unread part of the current piece.
struct Cursor<'a> {
    node: Option<&'a Piece>,
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn of(state: &'a KvState) -> Cursor<'a> {
        let node = state.0.as_deref();
        Cursor { node, rest: node.map_or(&[][..], |piece| piece.text.as_bytes()) }
    }

    /// Moves to the previous piece while this one is used up; false at the
    /// start of the value.
    fn refill(&mut self) -> bool {
        while self.rest.is_empty() {
            match self.node.and_then(|piece| piece.prev.as_deref()) {
                Some(prev) => {
                    self.node = Some(prev);
                    self.rest = prev.text.as_bytes();
                }
                None => return false,
            }
        }
        true
    }

    fn at_whole(&self) -> Option<&'a Piece> {
        self.node.filter(|piece| piece.text.len() == self.rest.len())
    }

    /// Whether what is left of `self` and `other` (of equal lengths) is the
    /// same bytes. Bounded by the values: each round consumes bytes or ends.
    fn same_rest(mut self, mut other: Cursor<'_>) -> bool {
        loop {
            let (more, other_more) = (self.refill(), other.refill());
            if !more || !other_more {
                return more == other_more;
            }
            // The same piece with as much left on both sides: the same rest.
            if let (Some(a), Some(b)) = (self.at_whole(), other.at_whole()) {
                if std::ptr::eq(a, b) {
                    return true;
                }
            }
            let count = self.rest.len().min(other.rest.len());
            let (head, tail) = self.rest.split_at(self.rest.len() - count);
            let (other_head, other_tail) = other.rest.split_at(other.rest.len() - count);
            if tail != other_tail {
                return false;
            }
            (self.rest, other.rest) = (head, other_head);
        }
    }
}

impl PartialEq for KvState {
    fn eq(&self, other: &KvState) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Rc::ptr_eq(a, b) || (a.len == b.len && a.hash == b.hash && Cursor::of(self).same_rest(Cursor::of(other)))
            }
            _ => false,
        }
    }
}

impl Eq for KvState {}

impl Hash for KvState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.content_hash() ^ self.len() as u64);
    }
}

impl fmt::Debug for KvState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(pieces: &[&str]) -> KvState {
        pieces.iter().fold(KvState::default(), |state, piece| state.append(&Arc::from(*piece)))
    }

    #[test]
    fn equal_strings_are_equal_whatever_pieces_built_them() {
        let a = build(&["x 0", " 1 y", ""]);
        let b = build(&["x", " 0 1", " y"]);
        assert_eq!(a, b);
        assert_eq!(a.text(), "x 0 1 y");
        assert!(a.is("x 0 1 y") && !a.is("x 0 1 z") && !a.is("x 0 1"));
        assert_ne!(a, build(&["x 0 1 z"]));
        assert_eq!(build(&[""]), KvState::default());
        assert!(KvState::default().is(""));
        assert_eq!(format!("{a:?}"), "\"x 0 1 y\"");
    }

    #[test]
    fn a_long_chain_drops_without_recursion() {
        let piece: Arc<str> = Arc::from("ab");
        let mut state = KvState::default();
        for _ in 0..1_000_000 {
            state = state.append(&piece);
        }
        assert_eq!(state.len(), 2_000_000);
        drop(state);
    }

    proptest! {
        #[test]
        fn equality_and_hash_follow_the_strings(a in proptest::collection::vec("[ab]{0,3}", 0..6), b in proptest::collection::vec("[ab]{0,3}", 0..6)) {
            let (x, y) = (build(&a.iter().map(String::as_str).collect::<Vec<_>>()), build(&b.iter().map(String::as_str).collect::<Vec<_>>()));
            let (sx, sy) = (a.concat(), b.concat());
            prop_assert_eq!(x == y, sx == sy);
            prop_assert_eq!(x.text(), sx.clone());
            prop_assert!(x.is(&sx));
            if sx == sy {
                let hash = |s: &KvState| { let mut h = std::collections::hash_map::DefaultHasher::new(); s.hash(&mut h); h.finish() };
                prop_assert_eq!(hash(&x), hash(&y));
            }
        }
    }
}
