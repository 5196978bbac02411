//! The storage conformance suite on `MemoryStorage`. What a check leaves behind is found through
//! the storage API alone, which for memory is all there is: the suite's own look-ups of every
//! upload, blob, manifest and tag the check created, and the repository list.

mod support;

use std::sync::Arc;

use containerd_registry::storage::memory::MemoryStorage;
use containerd_registry::storage::Storage;

use support::conformance::Backend;

struct Memory(Arc<MemoryStorage>);

#[async_trait::async_trait]
impl Backend for Memory {
    fn storage(&self) -> Arc<dyn Storage> {
        self.0.clone()
    }

    async fn leftovers(&self) -> Vec<String> {
        Vec::new()
    }
}

conformance_tests!(Memory(Arc::new(MemoryStorage::new())));
