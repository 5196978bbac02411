//! `auth.htpasswd`: HTTP Basic credentials checked against an Apache htpasswd file of bcrypt
//! hashes, re-read whenever the file seen through its path changes.
//!
//! Every request stats the path, following symlinks, and compares device, inode, size,
//! modification time and change time with the values of the last read. The inode catches an
//! atomic swap of a symlink to another file, as Kubernetes does for Secret and ConfigMap volumes.
//! The change time catches a rewrite whose modification time was restored (`touch -r`, `cp -p`,
//! `rsync -a`), because no tool can set it.
//!
//! bcrypt is slow by design (tens of milliseconds at the usual costs), and a pull sends the same
//! credentials with every request. So a successful check is remembered under the SHA-256 of the
//! user name and password, and later requests with the same pair skip bcrypt. Remembered pairs
//! are dropped when the file is re-read. Failed checks are never remembered.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// Maximum number of verified credential pairs remembered. Each entry is 32 bytes; when the set
/// is full it is emptied, so a flood of distinct valid pairs costs bcrypt again, not memory.
pub const MAX_VERIFIED_CREDENTIALS: usize = 4096;

/// bcrypt prefixes accepted in the file. Apache's other hash kinds (MD5 `$apr1$`, SHA-1 `{SHA}`,
/// crypt and plain text) are rejected, as Docker Distribution rejects them.
const BCRYPT_PREFIXES: [&str; 3] = ["$2y$", "$2a$", "$2b$"];

/// bcrypt cost of the hash that unknown users are checked against, so that a request for an
/// unknown user takes about as long as one with a wrong password.
const DUMMY_HASH_COST: u32 = 10;

/// An htpasswd file with its users and the credentials verified since it was last read.
pub struct Htpasswd {
    path: PathBuf,
    dummy_hash: String,
    state: Mutex<State>,
}

/// The outcome of [`Htpasswd::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Accepted,
    /// The user is unknown or the password is wrong.
    Rejected,
    /// The file changed and its new version cannot be read or parsed, so no user is accepted
    /// until it is fixed.
    FileUnusable,
}

/// The identity and metadata of the file that a path resolves to. Any difference means the file
/// was replaced or written since it was read.
///
/// NOTE: Linux stamps change times from a coarse clock (one scheduler tick, 1 to 10 ms). An
/// in-place rewrite of the same size with a restored modification time, made within the same
/// tick as the write before the last read, leaves all five values equal and is missed until the
/// file changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileVersion {
    fn of(metadata: &Metadata) -> FileVersion {
        FileVersion {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

struct State {
    /// The version of the file when it was read; `None` when it could not be opened.
    version: Option<FileVersion>,
    /// The users and their hashes, or why the file is unusable, in which case every request is
    /// rejected until the file changes.
    users: Result<Arc<HashMap<String, String>>, String>,
    /// SHA-256 of user name and password of each pair bcrypt accepted since the file was read.
    verified: HashSet<[u8; 32]>,
    /// Incremented on every read, so a check that started before a read does not remember its
    /// pair afterwards.
    generation: u64,
}

impl Htpasswd {
    /// Reads and checks the file at `path`. A missing or unreadable file, a line that is not
    /// `user:hash` and a hash that is not bcrypt are errors naming the file, line and user.
    pub fn open(path: &Path) -> Result<Htpasswd, String> {
        let (version, users) = read_users(path);
        let users = users.map_err(|error| match version {
            None => format!("{error}; create it with `htpasswd -B`"),
            Some(_) => error,
        })?;
        tracing::info!(path = %path.display(), users = users.len(), "htpasswd file read");

        let dummy_hash = bcrypt::hash(uuid::Uuid::new_v4().to_string(), DUMMY_HASH_COST)
            .map_err(|error| format!("hashing the placeholder password failed: {error}"))?;
        let state = State { version, users: Ok(Arc::new(users)), verified: HashSet::new(), generation: 0 };
        Ok(Htpasswd { path: path.to_owned(), dummy_hash, state: Mutex::new(state) })
    }

    /// Returns the number of users in the file as last read, or `None` while it is unusable.
    pub fn user_count(&self) -> Option<usize> {
        self.lock().users.as_ref().ok().map(|users| users.len())
    }

    /// Checks `user` and `password` against the file, re-reading it first if it changed.
    pub async fn verify(&self, user: &str, password: &str) -> Verification {
        let key = credential_key(user, password);
        let (users, generation) = {
            let mut state = self.lock();
            self.reload_if_changed(&mut state);
            if state.verified.contains(&key) {
                return Verification::Accepted;
            }
            let Ok(users) = &state.users else { return Verification::FileUnusable };
            (users.clone(), state.generation)
        };

        let known = users.get(user).cloned();
        let hash = known.clone().unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_owned();
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash)).await;
        let accepted = match matched {
            Ok(Ok(matched)) => matched && known.is_some(),
            Ok(Err(error)) => {
                tracing::warn!(user, %error, "bcrypt rejected the stored hash");
                false
            }
            Err(error) => {
                tracing::error!(%error, "the bcrypt task failed");
                false
            }
        };
        if !accepted {
            return Verification::Rejected;
        }

        let mut state = self.lock();
        if state.generation == generation {
            if state.verified.len() >= MAX_VERIFIED_CREDENTIALS {
                state.verified.clear();
            }
            state.verified.insert(key);
        }
        Verification::Accepted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves no half-written state: every field is replaced
        // whole, so the poisoned value is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stats the path once and re-reads the file when what it resolves to differs from the last
    /// read. A path that cannot be stat'ed is a change too, which makes the file unusable.
    fn reload_if_changed(&self, state: &mut State) {
        let current = std::fs::metadata(&self.path).ok().map(|metadata| FileVersion::of(&metadata));
        if current == state.version {
            return;
        }

        // A file that can be stat'ed but not opened keeps its stat'ed version, so that it is
        // not opened, and its error logged, again on every request.
        let (version, users) = read_users(&self.path);
        state.version = version.or(current);
        state.users = users.map(Arc::new);
        state.generation += 1;
        state.verified.clear();
        match &state.users {
            Ok(users) => tracing::info!(path = %self.path.display(), users = users.len(), "htpasswd file re-read"),
            Err(error) => tracing::error!(
                path = %self.path.display(),
                %error,
                "htpasswd file is unusable; every request is rejected until it is fixed"
            ),
        }
    }
}

/// Opens the file, stats the open file and reads it, so that the version returned is that of the
/// bytes parsed. The version is `None` when the file cannot be opened or stat'ed.
fn read_users(path: &Path) -> (Option<FileVersion>, Result<HashMap<String, String>, String>) {
    let cannot_read = |error: std::io::Error| format!("htpasswd file {} cannot be read: {error}", path.display());
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => return (None, Err(cannot_read(error))),
    };
    let version = match file.metadata() {
        Ok(metadata) => FileVersion::of(&metadata),
        Err(error) => return (None, Err(cannot_read(error))),
    };

    let mut text = String::new();
    if let Err(error) = file.read_to_string(&mut text) {
        return (Some(version), Err(cannot_read(error)));
    }
    let users = parse(&text).map_err(|error| format!("htpasswd file {}: {error}", path.display()));
    (Some(version), users)
}

fn credential_key(user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(user.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

/// Parses htpasswd text: one `user:hash` per line; blank lines and lines starting with `#` are
/// skipped. A user listed twice keeps the last hash, as in Docker Distribution.
pub fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("line {number} is not user:hash"));
        };
        if !BCRYPT_PREFIXES.iter().any(|prefix| hash.starts_with(prefix)) {
            return Err(format!(
                "line {number}: the hash of user {user:?} is not bcrypt ($2y$, $2a$ or $2b$); \
                 write it with `htpasswd -B`"
            ));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn parse_reads_bcrypt_users() {
        let text = "# comment\n\nalice:$2y$05$abc\n bob:$2b$05$def \nalice:$2a$05$ghi\n";
        let users = parse(text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"], "$2a$05$ghi");
        assert_eq!(users["bob"], "$2b$05$def");
    }

    #[test]
    fn parse_rejects_other_hashes_naming_line_and_user() {
        for (text, user) in [
            ("alice:$apr1$salt$hash\n", "alice"),
            ("ok:$2y$05$x\nbob:{SHA}abc=\n", "bob"),
            ("carol:plaintext\n", "carol"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(&format!("{user:?}")), "{error}");
            assert!(error.contains("line"), "{error}");
        }
        assert!(parse("ok:$2y$05$x\nbob:{SHA}abc=\n").unwrap_err().starts_with("line 2"));
    }

    #[test]
    fn parse_rejects_line_without_colon() {
        assert_eq!(parse("alice\n").unwrap_err(), "line 1 is not user:hash");
    }

    fn write_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("htpasswd");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Sets the modification time of `path` to `time`, as `touch -r` does.
    fn set_modified(path: &Path, time: SystemTime) {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(time).unwrap();
    }

    fn modified(path: &Path) -> SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    /// Waits longer than one tick of the kernel's coarse file clock, so that a write after it
    /// gets a later change time than a write before it.
    fn wait_for_clock_tick() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    #[tokio::test]
    async fn verify_accepts_only_the_right_password() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("secret", 4).unwrap();
        let file = Htpasswd::open(&write_file(dir.path(), &format!("alice:{hash}\n"))).unwrap();
        assert_eq!(file.user_count(), Some(1));
        assert_eq!(file.verify("alice", "secret").await, Verification::Accepted);
        assert_eq!(file.verify("alice", "secret").await, Verification::Accepted, "a remembered pair is accepted again");
        assert_eq!(file.verify("alice", "wrong").await, Verification::Rejected);
        assert_eq!(file.verify("bob", "secret").await, Verification::Rejected);
    }

    #[tokio::test]
    async fn verify_rereads_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), &format!("alice:{}\n", bcrypt::hash("one", 4).unwrap()));
        let file = Htpasswd::open(&path).unwrap();
        assert_eq!(file.verify("alice", "one").await, Verification::Accepted);

        std::fs::write(&path, format!("alice:{}\n", bcrypt::hash("two", 4).unwrap())).unwrap();
        set_modified(&path, SystemTime::now() + std::time::Duration::from_secs(5));
        assert_eq!(file.verify("alice", "one").await, Verification::Rejected, "the old password is forgotten");
        assert_eq!(file.verify("alice", "two").await, Verification::Accepted);
    }

    #[tokio::test]
    async fn rewrite_with_restored_mtime_is_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), &format!("alice:{}\n", bcrypt::hash("one", 4).unwrap()));
        let file = Htpasswd::open(&path).unwrap();
        assert_eq!(file.verify("alice", "one").await, Verification::Accepted);
        let original_mtime = modified(&path);
        let original_size = std::fs::metadata(&path).unwrap().len();

        // Same inode, same size (bcrypt hashes of one cost have one length), same mtime: only
        // the change time differs.
        wait_for_clock_tick();
        std::fs::write(&path, format!("alice:{}\n", bcrypt::hash("two", 4).unwrap())).unwrap();
        set_modified(&path, original_mtime);
        assert_eq!(modified(&path), original_mtime);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), original_size);

        assert_eq!(file.verify("alice", "one").await, Verification::Rejected, "the remembered pair is dropped");
        assert_eq!(file.verify("alice", "two").await, Verification::Accepted);
    }

    #[tokio::test]
    async fn symlink_swap_to_same_mtime_file_is_reread() {
        // The layout of a Kubernetes Secret volume: htpasswd -> ..data/htpasswd, and ..data is a
        // symlink to a timestamped directory that an update replaces with a rename.
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("..2026_01_01");
        let second = dir.path().join("..2026_01_02");
        std::fs::create_dir(&first).unwrap();
        std::fs::create_dir(&second).unwrap();
        let alice = bcrypt::hash("alice-password", 4).unwrap();
        std::fs::write(first.join("htpasswd"), format!("alice:{alice}\nbob:{}\n", bcrypt::hash("bob-password", 4).unwrap())).unwrap();
        std::fs::write(second.join("htpasswd"), format!("alice:{alice}\neve:{}\n", bcrypt::hash("eve-password", 4).unwrap())).unwrap();
        set_modified(&second.join("htpasswd"), modified(&first.join("htpasswd")));
        std::os::unix::fs::symlink("..2026_01_01", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/htpasswd", dir.path().join("htpasswd")).unwrap();

        let path = dir.path().join("htpasswd");
        let file = Htpasswd::open(&path).unwrap();
        assert_eq!(file.verify("bob", "bob-password").await, Verification::Accepted);
        let before = std::fs::metadata(&path).unwrap();

        std::os::unix::fs::symlink("..2026_01_02", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(after.modified().unwrap(), before.modified().unwrap());
        assert_eq!(after.len(), before.len());

        assert_eq!(file.verify("bob", "bob-password").await, Verification::Rejected, "the removed user is rejected");
        assert_eq!(file.verify("eve", "eve-password").await, Verification::Accepted);
        assert_eq!(file.verify("alice", "alice-password").await, Verification::Accepted);
    }

    #[tokio::test]
    async fn broken_file_makes_file_unusable_until_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("one", 4).unwrap();
        let path = write_file(dir.path(), &format!("alice:{hash}\n"));
        let file = Htpasswd::open(&path).unwrap();
        assert_eq!(file.verify("alice", "one").await, Verification::Accepted);
        let original_mtime = modified(&path);

        wait_for_clock_tick();
        std::fs::write(&path, "alice:$apr1$x$y\n").unwrap();
        set_modified(&path, original_mtime);
        assert_eq!(file.verify("alice", "one").await, Verification::FileUnusable);
        assert_eq!(file.user_count(), None);

        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        assert_eq!(file.verify("alice", "one").await, Verification::Accepted);
    }

    #[tokio::test]
    async fn removed_file_makes_file_unusable_until_restored() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("alice:{}\n", bcrypt::hash("one", 4).unwrap());
        let path = write_file(dir.path(), &text);
        let file = Htpasswd::open(&path).unwrap();

        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.verify("alice", "one").await, Verification::FileUnusable);
        assert_eq!(file.verify("alice", "one").await, Verification::FileUnusable);

        std::fs::write(&path, text).unwrap();
        assert_eq!(file.verify("alice", "one").await, Verification::Accepted);
    }

    #[test]
    fn missing_file_is_an_error() {
        let error = Htpasswd::open(Path::new("/nonexistent/htpasswd")).err().unwrap();
        assert!(error.contains("/nonexistent/htpasswd"), "{error}");
    }
}
