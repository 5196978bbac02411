//! Opening a committed blob file and checking it against containerd's metadata.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The reason a blob file cannot be served from disk, after which the caller falls back to gRPC.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("blob file {0} does not exist")]
    Missing(String),
    #[error("permission denied on blob file {0}")]
    PermissionDenied(String),
    #[error("blob file {path} has {actual} bytes, but containerd records {expected}")]
    SizeMismatch { path: String, expected: u64, actual: u64 },
    #[error("blob file {0} is not a regular file")]
    NotRegular(String),
    #[error("cannot open blob file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Opens the blob file at `path` without following a symbolic link, and checks that it is a
/// regular file of `expected_size` bytes.
pub fn open_blob(path: &Path, expected_size: u64) -> Result<File, OpenError> {
    let shown = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound => OpenError::Missing(shown.clone()),
            ErrorKind::PermissionDenied => OpenError::PermissionDenied(shown.clone()),
            _ => OpenError::Io { path: shown.clone(), source },
        })?;

    let metadata = file.metadata().map_err(|source| OpenError::Io { path: shown.clone(), source })?;
    if !metadata.is_file() {
        return Err(OpenError::NotRegular(shown));
    }
    if metadata.len() != expected_size {
        return Err(OpenError::SizeMismatch { path: shown, expected: expected_size, actual: metadata.len() });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_checks_size_type_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"abc").unwrap();
        assert!(open_blob(&path, 3).is_ok());
        assert!(matches!(open_blob(&path, 4), Err(OpenError::SizeMismatch { expected: 4, actual: 3, .. })));
        assert!(matches!(open_blob(&dir.path().join("none"), 3), Err(OpenError::Missing(_))));
        assert!(matches!(open_blob(dir.path(), 3), Err(OpenError::NotRegular(_)) | Err(OpenError::SizeMismatch { .. })));

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(open_blob(&link, 3), Err(OpenError::Io { .. })));
    }
}
