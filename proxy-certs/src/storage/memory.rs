//! [`MemoryStorage`]: values in the process's memory.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::storage::{Lock, Storage, StorageFuture, check_key};

/// Values in memory, for one process (and tests): gone when it ends.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    values: HashMap<String, Vec<u8>>,
    locks: HashMap<String, (Lock, Instant)>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, key: &str, op: impl FnOnce(&mut State) -> T) -> io::Result<T> {
        check_key(key)?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(op(&mut state))
    }
}

impl Storage for MemoryStorage {
    fn load<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { self.with(key, |s| s.values.get(key).cloned()) })
    }

    fn store<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.with(key, |s| {
                s.values.insert(key.to_owned(), value.to_vec());
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.with(key, |s| {
                s.values.remove(key);
            })
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        current: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> StorageFuture<'a, bool> {
        Box::pin(async move {
            self.with(key, |s| {
                if s.values.get(key).map(Vec::as_slice) != current {
                    return false;
                }
                s.values.insert(key.to_owned(), value.to_vec());
                true
            })
        })
    }

    fn lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StorageFuture<'a, Option<Lock>> {
        Box::pin(async move {
            let lock = Lock::new()?;
            self.with(name, |s| {
                let now = Instant::now();
                if s.locks.get(name).is_some_and(|(_, until)| *until > now) {
                    return None;
                }
                s.locks.insert(name.to_owned(), (lock.clone(), now + ttl));
                Some(lock)
            })
        })
    }

    fn unlock<'a>(&'a self, name: &'a str, lock: &'a Lock) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.with(name, |s| {
                if s.locks.get(name).is_some_and(|(held, _)| held == lock) {
                    s.locks.remove(name);
                }
            })
        })
    }
}
