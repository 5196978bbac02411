//! The storage conformance suite on `ContainerdStorage`, each test on a private containerd.
//!
//! After a check has deleted what it created and closed its uploads, the fixture runs
//! containerd's garbage collector and lists the test's namespace with `ctr`: no content, no
//! active ingest, no image and no lease may remain. A repository lease is deleted with the
//! repository's last link, so an empty one would count as left behind too.

mod support;

use std::sync::Arc;

use containerd_registry::config::{ContainerdConfig, FastPathMode, UploadPurging};
use containerd_registry::storage::containerd::ContainerdStorage;
use containerd_registry::storage::Storage;

use support::conformance::Backend;
use support::containerd::Containerd;
use support::http::ctr_lines;

const NAMESPACE: &str = "conformance";

struct OnContainerd {
    containerd: Containerd,
    storage: Arc<ContainerdStorage>,
}

impl OnContainerd {
    fn start() -> OnContainerd {
        let containerd = Containerd::start();
        let config = ContainerdConfig {
            address: containerd.socket(),
            namespace: NAMESPACE.to_owned(),
            root: "/registry".to_owned(),
            content_dir: None,
            fast_path: FastPathMode::Off,
        };
        let storage = ContainerdStorage::connect(&config, &UploadPurging::default()).expect("connect to containerd");
        OnContainerd { containerd, storage: Arc::new(storage) }
    }
}

#[async_trait::async_trait]
impl Backend for OnContainerd {
    fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    async fn leftovers(&self) -> Vec<String> {
        self.containerd.force_gc().await;
        let listings = [
            ("content", &["content", "ls", "--quiet"][..]),
            ("ingest", &["content", "active"][..]),
            ("image", &["images", "ls", "--quiet"][..]),
            ("lease", &["leases", "ls", "--quiet"][..]),
        ];
        let mut left = Vec::new();
        for (kind, args) in listings {
            // `content active` prints a header line even when it lists nothing.
            let lines = ctr_lines(&self.containerd, NAMESPACE, args);
            left.extend(lines.into_iter().filter(|line| !line.starts_with("REF")).map(|line| format!("{kind} {line}")));
        }
        left
    }
}

conformance_tests!(OnContainerd::start());
