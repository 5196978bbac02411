//! Repositories as containerd leases: the content a repository's lease lists is the set of blobs
//! and manifests the repository links.
//!
//! The sets are cached in this process, loaded from containerd on first use and updated after
//! every change this process makes. Repositories without a lease are not cached, so look-ups of
//! arbitrary names do not grow the cache. NOTE: the cache assumes that one registry process owns a
//! root in a namespace. A second process, or `ctr leases` run by hand, changes leases behind its
//! back, and the cache stays stale until the registry restarts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedMappedMutexGuard, OwnedMutexGuard};

use super::client::{label_filter, Client};
use crate::error::{Error, Result};
use crate::mapping::{Mapping, LABEL_REPOSITORY, LABEL_ROOT};
use crate::names::RepositoryName;

/// One repository's link set, `None` until loaded. Its async mutex is held across the
/// containerd call that changes the lease and the cache update after it, so that both see
/// changes in one order.
type Entry = Arc<tokio::sync::Mutex<Option<LinkSet>>>;

type Entries = Arc<Mutex<HashMap<RepositoryName, Entry>>>;

/// The cached link sets, one per repository.
#[derive(Default)]
pub struct Repositories {
    entries: Entries,
}

#[derive(Default)]
struct LinkSet {
    lease_exists: bool,
    /// containerd content digests (sha256) that the lease lists.
    digests: HashSet<String>,
}

/// Returns the labels of a repository lease or tag image: the root and repository it belongs to.
pub fn repository_labels(mapping: &Mapping, repository: &RepositoryName) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_ROOT.to_owned(), mapping.root().to_owned()),
        (LABEL_REPOSITORY.to_owned(), repository.as_str().to_owned()),
    ])
}

/// Checks that the labels of a lease or image name this root and repository, which detects a
/// collision of hashed lease ids instead of sharing a lease.
pub fn labels_match(labels: &HashMap<String, String>, mapping: &Mapping, repository: &RepositoryName) -> bool {
    labels.get(LABEL_ROOT).map(String::as_str) == Some(mapping.root())
        && labels.get(LABEL_REPOSITORY).map(String::as_str) == Some(repository.as_str())
}

impl Repositories {
    /// Locks one repository's link set, loading it from containerd on first use. Other calls on
    /// the same repository wait until the returned guard is dropped, so hold it briefly.
    pub async fn lock(&self, client: &Client, mapping: &Mapping, repository: &RepositoryName) -> Result<Links> {
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.entry(repository.clone()).or_default().clone()
        };

        let mut slot = entry.clone().lock_owned().await;
        if slot.is_none() {
            match load(client, mapping, repository).await {
                Ok(set) => *slot = Some(set),
                Err(error) => {
                    drop(slot);
                    forget_if_unused(&self.entries, repository, &entry, 2);
                    return Err(error);
                }
            }
        }
        Ok(Links {
            set: OwnedMutexGuard::map(slot, |slot| slot.get_or_insert_with(LinkSet::default)),
            entry,
            entries: self.entries.clone(),
            repository: repository.clone(),
            lease: mapping.repository_lease(repository),
            labels: repository_labels(mapping, repository),
        })
    }

    /// Lists every repository of this root that has a lease, in lexical order.
    pub async fn list(&self, client: &Client, mapping: &Mapping) -> Result<Vec<RepositoryName>> {
        let leases = client.list_leases(label_filter(LABEL_ROOT, mapping.root())).await?;

        // Upload leases carry the same labels; only a repository lease has the derived id.
        let mut names: Vec<RepositoryName> = leases
            .into_iter()
            .filter_map(|lease| {
                let repository = RepositoryName::parse(lease.labels.get(LABEL_REPOSITORY)?).ok()?;
                (lease.id == mapping.repository_lease(&repository)).then_some(repository)
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// Removes a repository's entry from the cache when its reference count is `holders`, the
/// references the caller knows of (the map's included), so that no other call waits on it.
fn forget_if_unused(entries: &Entries, repository: &RepositoryName, entry: &Entry, holders: usize) {
    let mut entries = entries.lock().unwrap_or_else(PoisonError::into_inner);
    // Other calls clone an entry only while holding the map's lock, so the count is stable here.
    let unused = Arc::strong_count(entry) == holders;
    if unused && entries.get(repository).is_some_and(|cached| Arc::ptr_eq(cached, entry)) {
        entries.remove(repository);
    }
}

async fn load(client: &Client, mapping: &Mapping, repository: &RepositoryName) -> Result<LinkSet> {
    let id = mapping.repository_lease(repository);
    let missing = LinkSet { lease_exists: false, digests: HashSet::new() };
    let Some(lease) = client.find_lease(&id).await? else {
        return Ok(missing);
    };
    if !labels_match(&lease.labels, mapping, repository) {
        return Err(Error::Internal(format!(
            "lease {id} has labels {:?}, not those of repository {repository} under root {}",
            lease.labels,
            mapping.root()
        )));
    }

    match client.lease_content(&id).await? {
        Some(digests) => Ok(LinkSet { lease_exists: true, digests: digests.into_iter().collect() }),
        None => Ok(missing),
    }
}

/// One repository's locked link set.
pub struct Links {
    set: OwnedMappedMutexGuard<Option<LinkSet>, LinkSet>,
    entry: Entry,
    entries: Entries,
    repository: RepositoryName,
    lease: String,
    labels: HashMap<String, String>,
}

impl Drop for Links {
    fn drop(&mut self) {
        if !self.set.lease_exists {
            // The map, `self.entry` and the guard in `self.set` hold the entry.
            forget_if_unused(&self.entries, &self.repository, &self.entry, 3);
        }
    }
}

impl Links {
    /// Returns whether the repository's lease exists, which is what makes a repository known.
    pub fn exists(&self) -> bool {
        self.set.lease_exists
    }

    /// Returns whether the repository links the content with this containerd digest.
    pub fn contains(&self, content_digest: &str) -> bool {
        self.set.digests.contains(content_digest)
    }

    /// Links content in the repository, creating the repository's lease (without expiry) on
    /// first use. The content need not exist yet.
    pub async fn link(&mut self, client: &Client, content_digest: &str) -> Result<()> {
        if !self.exists() {
            client.create_lease(&self.lease, self.labels.clone()).await?;
            self.set.lease_exists = true;
        }

        if client.add_lease_content(&self.lease, content_digest).await?.is_none() {
            // The lease was deleted outside this process: create it again.
            client.create_lease(&self.lease, self.labels.clone()).await?;
            if client.add_lease_content(&self.lease, content_digest).await?.is_none() {
                return Err(Error::Internal(format!("lease {} vanished while content was added", self.lease)));
            }
        }

        self.set.digests.insert(content_digest.to_owned());
        Ok(())
    }

    /// Unlinks content from the repository. containerd's garbage collector reclaims it once
    /// nothing else references it. The repository ends with its last link: its lease is then
    /// deleted, so it is no longer listed and its tags list is `NAME_UNKNOWN`, as in memory.
    pub async fn unlink(&mut self, client: &Client, content_digest: &str) -> Result<()> {
        // A lease that no longer exists lists nothing, which is the result wanted.
        client.remove_lease_content(&self.lease, content_digest).await?;
        self.set.digests.remove(content_digest);

        // Every link goes through this locked set, so an empty set means an empty lease.
        if self.set.digests.is_empty() && self.set.lease_exists {
            client.delete_lease(&self.lease, false).await?;
            self.set.lease_exists = false;
        }
        Ok(())
    }
}
