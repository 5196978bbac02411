//! `storage.maintenance.uploadpurging` on the registry's own schedule. Upload leases also carry
//! containerd's `gc.expire` label, but containerd collects only when something triggers its
//! garbage collector, so the registry deletes expired sessions itself every `interval`.

use std::time::{Duration, SystemTime};

use super::client::label_filter;
use super::Inner;
use crate::error::Result;
use crate::mapping::{UploadId, LABEL_ROOT, LABEL_UPLOAD};

/// The outcome of one purge.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Upload sessions deleted.
    pub purged: usize,
    /// Upload sessions old enough to purge but kept because of a dry run.
    pub kept_by_dry_run: usize,
}

impl Inner {
    /// Deletes the upload sessions of this root that started more than `age` ago, with their
    /// ingests. With `dry_run`, only logs them.
    pub(super) async fn purge_uploads(&self, age: Duration, dry_run: bool) -> Result<PurgeReport> {
        let leases = self.client.list_leases(label_filter(LABEL_ROOT, self.mapping.root())).await?;
        let now = SystemTime::now();
        let mut report = PurgeReport::default();

        for lease in leases {
            let Some(id) = lease.labels.get(LABEL_UPLOAD).and_then(|id| UploadId::parse(id)) else {
                continue;
            };
            let Some(created) = lease.created_at.and_then(|at| SystemTime::try_from(at).ok()) else {
                continue;
            };
            let started_ago = now.duration_since(created).unwrap_or_default();
            if started_ago < age {
                continue;
            }

            if dry_run {
                tracing::info!(upload = %id, started_secs_ago = started_ago.as_secs(), "upload would be purged (dry run)");
                report.kept_by_dry_run += 1;
                continue;
            }
            match self.end_session(&id, &lease.id).await {
                Ok(()) => {
                    tracing::info!(upload = %id, started_secs_ago = started_ago.as_secs(), "purged an abandoned upload");
                    report.purged += 1;
                }
                Err(error) => tracing::warn!(upload = %id, %error, "purging an abandoned upload failed"),
            }
        }
        Ok(report)
    }
}
