//! Typed values other crates attach to a transaction (the plugin versions it
//! is pinned to, instances held between prepare and commit) without the
//! engine knowing their types.

use std::any::{Any, TypeId};

/// A small typed map: at most one value per (type, key).
#[derive(Default)]
pub struct Extensions {
    entries: Vec<(TypeId, u64, Box<dyn Any + Send>)>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extensions({} entries)", self.entries.len())
    }
}

impl Extensions {
    /// Stores `value` under `key`, returning what was there.
    pub fn insert<T: Any + Send>(&mut self, key: u64, value: T) -> Option<T> {
        let old = self.remove::<T>(key);
        self.entries.push((TypeId::of::<T>(), key, Box::new(value)));
        old
    }

    /// The value of type `T` under `key`.
    pub fn get<T: Any + Send>(&self, key: u64) -> Option<&T> {
        self.entries
            .iter()
            .find(|(t, k, _)| *t == TypeId::of::<T>() && *k == key)
            .and_then(|(_, _, v)| v.downcast_ref())
    }

    /// Takes the value of type `T` under `key` out.
    pub fn remove<T: Any + Send>(&mut self, key: u64) -> Option<T> {
        let i = self
            .entries
            .iter()
            .position(|(t, k, _)| *t == TypeId::of::<T>() && *k == key)?;
        let (_, _, v) = self.entries.swap_remove(i);
        v.downcast().ok().map(|b| *b)
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_keyed() {
        let mut e = Extensions::default();
        assert!(e.insert(1, 5u32).is_none());
        e.insert(2, 6u32);
        e.insert(1, "text");
        assert_eq!(e.get::<u32>(1), Some(&5));
        assert_eq!(e.get::<&str>(1), Some(&"text"));
        assert_eq!(e.insert(1, 7u32), Some(5));
        assert_eq!(e.remove::<u32>(2), Some(6));
        assert_eq!(e.get::<u32>(2), None);
        assert_eq!(e.len(), 2);
    }
}
