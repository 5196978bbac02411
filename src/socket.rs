//! Diagnosis of containerd socket problems, so that start-up errors name the fix.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

/// Checks that `path` is a unix socket this process can connect to. The error names the path and
/// the fix: start containerd, correct the address, or grant the group or ACL it needs.
pub fn check_socket(path: &Path) -> Result<(), String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "containerd socket {} does not exist: start containerd, or set storage.containerd.address \
                 (REGISTRY_STORAGE_CONTAINERD_ADDRESS) to the socket it listens on",
                path.display()
            ))
        }
        Err(error) if error.kind() == ErrorKind::PermissionDenied => {
            return Err(format!(
                "cannot reach containerd socket {}: permission denied on a parent directory; run the \
                 registry as a user that can traverse it",
                path.display()
            ))
        }
        Err(error) => return Err(format!("cannot inspect containerd socket {}: {error}", path.display())),
    };
    if !metadata.file_type().is_socket() {
        return Err(format!("{} is not a unix socket; set storage.containerd.address to containerd's socket", path.display()));
    }

    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => Err(permission_advice(path, &metadata)),
        Err(error) if error.kind() == ErrorKind::ConnectionRefused => Err(format!(
            "containerd socket {} refuses connections: containerd is not running; start it and retry",
            path.display()
        )),
        Err(error) => Err(format!("cannot connect to containerd socket {}: {error}", path.display())),
    }
}

fn permission_advice(path: &Path, metadata: &std::fs::Metadata) -> String {
    let owner = User::from_uid(Uid::from_raw(metadata.uid()))
        .ok()
        .flatten()
        .map_or_else(|| metadata.uid().to_string(), |user| user.name);
    let group = Group::from_gid(Gid::from_raw(metadata.gid()))
        .ok()
        .flatten()
        .map_or_else(|| metadata.gid().to_string(), |group| group.name);
    let user = User::from_uid(Uid::effective())
        .ok()
        .flatten()
        .map_or_else(|| Uid::effective().to_string(), |user| user.name);
    format!(
        "permission denied on containerd socket {} (owner {owner}, group {group}, mode {:o}): the registry \
         needs read and write access; add user {user} to group {group} (usermod -aG {group} {user}) if the \
         group may write, or grant an ACL (setfacl -m u:{user}:rw {}), or run the registry as {owner}",
        path.display(),
        metadata.mode() & 0o7777,
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_socket_names_path_and_fix() {
        let message = check_socket(Path::new("/nonexistent/containerd.sock")).unwrap_err();
        assert!(message.contains("/nonexistent/containerd.sock does not exist"), "{message}");
        assert!(message.contains("REGISTRY_STORAGE_CONTAINERD_ADDRESS"), "{message}");
    }

    #[test]
    fn regular_file_is_not_a_socket() {
        let file = std::env::temp_dir().join(format!("not-a-socket-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        let message = check_socket(&file).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(message.contains("is not a unix socket"), "{message}");
    }

    #[test]
    fn closed_socket_is_refused() {
        let path = std::env::temp_dir().join(format!("closed-{}.sock", std::process::id()));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(listener);
        let message = check_socket(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(message.contains("refuses connections"), "{message}");
    }
}
