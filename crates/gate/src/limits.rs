//! Connection counts per source address and per tenant, held by RAII slots.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use beffroi_protocol::TenantId;

/// Counts open connections per key, up to a maximum.
#[derive(Debug)]
pub(crate) struct Counts<K: Eq + Hash + Clone> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// Connections per source IP address.
pub(crate) type AddressCounts = Counts<IpAddr>;
/// Connections per tenant.
pub(crate) type TenantCounts = Counts<TenantId>;

impl<K: Eq + Hash + Clone> Counts<K> {
    /// Counts allowing at most `max` open connections per key.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The maximum per key.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Takes a slot for `key`, or `None` when `key` already has the maximum.
    pub(crate) fn acquire(self: &Arc<Self>, key: &K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: Arc::clone(self),
            key: key.clone(),
        })
    }

    #[cfg(test)]
    fn open(&self, key: &K) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// One counted connection; gives its slot back when dropped.
#[derive(Debug)]
pub(crate) struct Slot<K: Eq + Hash + Clone> {
    counts: Arc<Counts<K>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_and_release() {
        let counts = AddressCounts::new(2);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let a = counts.acquire(&ip).unwrap();
        let b = counts.acquire(&ip).unwrap();
        assert!(counts.acquire(&ip).is_none());
        assert!(counts.acquire(&[10, 0, 0, 1].into()).is_some());
        drop(a);
        assert_eq!(counts.open(&ip), 1);
        let _c = counts.acquire(&ip).unwrap();
        drop(b);
        assert_eq!(counts.open(&ip), 1);
    }
}
