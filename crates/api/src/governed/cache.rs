//! The agreements every governed read is decided against, kept in memory.
//!
//! `beffroi_policy::decide` wants the whole slice of agreements; reading them from the
//! database on every request would cost a query per read. [`AgreementCache::current`]
//! answers from memory and reloads from the store when its copy is older than
//! [`REFRESH_INTERVAL`]; a change made through this node's API calls
//! [`AgreementCache::invalidate`], so that the next read here sees it at once. Changes made
//! through another node (or the admin CLI) are seen here within [`REFRESH_INTERVAL`]: several
//! platform nodes converge within one second, with no coordination beyond the database.
//!
//! Reloads are single-flight (one at a time; readers arriving meanwhile wait for it). A
//! reload that fails is an error for the read that asked (fail closed), and the stale copy
//! is not served.
//!
//! [`AgreementCache::subscribe`] tells long-lived readers (live views) that the agreements
//! changed: the generation moves each time a reload finds a different set, or this node
//! invalidates. A live view re-decides its permit on each change, and still checks
//! `Transforms::admits` with the current time on every value it pushes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use beffroi_policy::Agreement;
use beffroi_store::Store;
use tokio::sync::{watch, Mutex};

/// How old the in-memory copy may get before a read reloads it.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The agreements of every grantor, cached (cheap to clone: one shared cache).
#[derive(Clone)]
pub struct AgreementCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    copy: Mutex<Option<Loaded>>,
    generation: watch::Sender<u64>,
}

struct Loaded {
    at: Instant,
    agreements: Arc<Vec<Agreement>>,
}

impl AgreementCache {
    /// An empty cache over `store` (the first read loads it).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                copy: Mutex::new(None),
                generation: watch::Sender::new(0),
            }),
        }
    }

    /// Every agreement, at most [`REFRESH_INTERVAL`] old.
    pub async fn current(&self) -> Result<Arc<Vec<Agreement>>, beffroi_store::Error> {
        let mut copy = self.inner.copy.lock().await;
        if let Some(loaded) = copy.as_ref() {
            if loaded.at.elapsed() < REFRESH_INTERVAL {
                return Ok(loaded.agreements.clone());
            }
        }
        let agreements = Arc::new(self.inner.store.all_agreements().await?);
        let changed = copy
            .as_ref()
            .is_none_or(|loaded| loaded.agreements != agreements);
        *copy = Some(Loaded {
            at: Instant::now(),
            agreements: agreements.clone(),
        });
        drop(copy);
        if changed {
            self.bump();
        }
        Ok(agreements)
    }

    /// Forgets the copy: the next read reloads (call after changing an agreement).
    pub async fn invalidate(&self) {
        *self.inner.copy.lock().await = None;
        self.bump();
    }

    /// A receiver whose value moves each time the agreements change (see the module docs).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    fn bump(&self) {
        self.inner
            .generation
            .send_modify(|g| *g = g.wrapping_add(1));
    }
}

impl std::fmt::Debug for AgreementCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgreementCache")
            .field("generation", &*self.inner.generation.borrow())
            .finish_non_exhaustive()
    }
}
