//! Discovery of containerd's content directory, where committed blobs live as
//! `blobs/<algorithm>/<hex>`, and whether this process can read it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::DEFAULT_CONTENT_DIR;

/// The origin of the content directory setting, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentDirSource {
    /// `storage.containerd.contentdir` or `REGISTRY_STORAGE_CONTAINERD_CONTENTDIR`.
    Config,
    /// The `root` export of containerd's `io.containerd.content.v1` plugin.
    Introspection,
    /// The default of a containerd installed with its standard root.
    Default,
}

impl fmt::Display for ContentDirSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContentDirSource::Config => "configuration",
            ContentDirSource::Introspection => "containerd introspection",
            ContentDirSource::Default => "default",
        })
    }
}

/// The chosen content directory and whether its blobs can be read directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDir {
    pub path: PathBuf,
    pub source: ContentDirSource,
    /// `Ok` when `blobs/sha256` can be listed; otherwise the reason, for logs and `check`.
    pub readable: Result<(), String>,
}

/// Picks the content directory: the configured one, else the one containerd reports, else the
/// default, then checks that it can be read.
pub fn discover(configured: Option<&Path>, introspected: Option<PathBuf>) -> ContentDir {
    let (path, source) = match (configured, introspected) {
        (Some(path), _) => (path.to_owned(), ContentDirSource::Config),
        (None, Some(path)) => (path, ContentDirSource::Introspection),
        (None, None) => (PathBuf::from(DEFAULT_CONTENT_DIR), ContentDirSource::Default),
    };
    let readable = check_readable(&path, source);
    ContentDir { path, source, readable }
}

fn check_readable(path: &Path, source: ContentDirSource) -> Result<(), String> {
    let blobs = path.join("blobs").join("sha256");
    match std::fs::read_dir(&blobs) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && path.is_dir() => {
            // A fresh content store has no blobs directory until the first commit.
            std::fs::read_dir(path).map(|_| ()).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && source == ContentDirSource::Introspection => {
            // containerd 1.7 and 2.x create the content directory only at the first write into
            // the store, where 1.6 creates it at start-up. The path containerd reports is where
            // blobs will appear, so it counts as readable when its parent, containerd's root, is.
            let root = path.parent().ok_or_else(|| format!("{}: {error}", blobs.display()))?;
            std::fs::read_dir(root).map(|_| ()).map_err(|e| format!("{}: {e}", root.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "{}: permission denied; run as root, grant CAP_DAC_READ_SEARCH, or mount the content directory readable for this user",
            blobs.display()
        )),
        Err(error) => Err(format!("{}: {error}", blobs.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_config_then_introspection_then_default() {
        let config = discover(Some(Path::new("/c")), Some(PathBuf::from("/i")));
        assert_eq!((config.path.as_path(), config.source), (Path::new("/c"), ContentDirSource::Config));

        let introspected = discover(None, Some(PathBuf::from("/i")));
        assert_eq!(introspected.source, ContentDirSource::Introspection);

        let default = discover(None, None);
        assert_eq!(default.path, PathBuf::from(DEFAULT_CONTENT_DIR));
        assert_eq!(default.source, ContentDirSource::Default);
    }

    #[test]
    fn missing_directory_is_unreadable() {
        let dir = discover(Some(Path::new("/nonexistent/content")), None);
        assert!(dir.readable.is_err());
    }

    #[test]
    fn introspected_directory_not_yet_created_is_readable() {
        let root = tempfile::tempdir().unwrap();
        let content = root.path().join("io.containerd.content.v1.content");

        let introspected = discover(None, Some(content.clone()));
        assert_eq!(introspected.readable, Ok(()));

        // A configured path that does not exist is more likely a typo than a store to come.
        let configured = discover(Some(&content), None);
        assert!(configured.readable.is_err(), "{configured:?}");
    }
}
