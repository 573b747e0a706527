//! The crate's one lock-poisoning policy: a `std::sync` lock whose holder
//! panicked is taken anyway ([`PoisonError::into_inner`]), never turned into
//! a second panic.
//!
//! Why recover rather than propagate: every critical section in this crate
//! is a short update of a map, list or slot (a replay window, a pool of
//! parked connections, the relay's registry, a cache) that leaves the data
//! usable at every step, and a panic in one ends only its own task (tokio
//! catches it; the task pipeline answers it, `node/contained.rs`). Propagating the poison would turn that one
//! bug into a panic on every later request that touches the lock: a node
//! that stops serving, or a relay that drops every session, because of one
//! peer's input. Every lock outside tests goes through these three
//! functions, so the policy is stated once.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, recovering it if a holder panicked.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `rw`, recovering it if a writer panicked.
pub(crate) fn read<T: ?Sized>(rw: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rw.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `rw`, recovering it if a holder panicked.
pub(crate) fn write<T: ?Sized>(rw: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rw.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while holding the lock poisons it; the policy still hands
    /// out the data as the holder left it.
    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let m = Mutex::new(vec![1]);
        let rw = RwLock::new(7);
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let mut g = m.lock().unwrap();
                    g.push(2);
                    let _w = rw.write().unwrap();
                    panic!("holder panics");
                })
                .join();
        });
        assert!(m.is_poisoned() && rw.is_poisoned());
        assert_eq!(*lock(&m), [1, 2]);
        assert_eq!(*read(&rw), 7);
        *write(&rw) = 8;
        assert_eq!(*read(&rw), 8);
    }
}
