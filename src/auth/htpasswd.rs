//! `auth.htpasswd`: HTTP Basic credentials checked against an Apache htpasswd file of bcrypt
//! hashes, re-read whenever its modification time changes, as Docker Distribution does.
//!
//! bcrypt is slow by design (tens of milliseconds at the usual costs), and a pull sends the same
//! credentials with every request. So a successful check is remembered under the SHA-256 of the
//! user name and password, and later requests with the same pair skip bcrypt. Remembered pairs
//! are dropped when the file is re-read. Failed checks are never remembered.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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

struct State {
    /// Modification time of the file when it was read; `None` when it could not be read.
    modified: Option<SystemTime>,
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
        let modified = modification_time(path)
            .map_err(|error| format!("htpasswd file {}: {error}; create it with `htpasswd -B`", path.display()))?;
        let users = read_users(path)?;
        tracing::info!(path = %path.display(), users = users.len(), "htpasswd file read");

        let dummy_hash = bcrypt::hash(uuid::Uuid::new_v4().to_string(), DUMMY_HASH_COST)
            .map_err(|error| format!("hashing the placeholder password failed: {error}"))?;
        let state = State { modified: Some(modified), users: Ok(Arc::new(users)), verified: HashSet::new(), generation: 0 };
        Ok(Htpasswd { path: path.to_owned(), dummy_hash, state: Mutex::new(state) })
    }

    /// Checks `user` and `password` against the file, re-reading it first if it changed.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let key = credential_key(user, password);
        let (users, generation) = {
            let mut state = self.lock();
            self.reload_if_changed(&mut state);
            if state.verified.contains(&key) {
                return true;
            }
            let Ok(users) = &state.users else { return false };
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

        if accepted {
            let mut state = self.lock();
            if state.generation == generation {
                if state.verified.len() >= MAX_VERIFIED_CREDENTIALS {
                    state.verified.clear();
                }
                state.verified.insert(key);
            }
        }
        accepted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves no half-written state: every field is replaced
        // whole, so the poisoned value is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reload_if_changed(&self, state: &mut State) {
        let modified = modification_time(&self.path).ok();
        if modified == state.modified {
            return;
        }
        state.modified = modified;
        state.generation += 1;
        state.verified.clear();
        state.users = match modified {
            None => Err(format!("htpasswd file {} cannot be read", self.path.display())),
            Some(_) => read_users(&self.path).map(Arc::new),
        };
        match &state.users {
            Ok(users) => tracing::info!(path = %self.path.display(), users = users.len(), "htpasswd file re-read"),
            Err(error) => tracing::error!(%error, "htpasswd file is unusable; every request is rejected until it is fixed"),
        }
    }
}

fn modification_time(path: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

fn credential_key(user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(user.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

fn read_users(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("htpasswd file {} cannot be read: {error}", path.display()))?;
    parse(&text).map_err(|error| format!("htpasswd file {}: {error}", path.display()))
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

    #[tokio::test]
    async fn verify_accepts_only_the_right_password() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("secret", 4).unwrap();
        let file = Htpasswd::open(&write_file(dir.path(), &format!("alice:{hash}\n"))).unwrap();
        assert!(file.verify("alice", "secret").await);
        assert!(file.verify("alice", "secret").await, "a remembered pair is accepted again");
        assert!(!file.verify("alice", "wrong").await);
        assert!(!file.verify("bob", "secret").await);
    }

    #[tokio::test]
    async fn verify_rereads_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), &format!("alice:{}\n", bcrypt::hash("one", 4).unwrap()));
        let file = Htpasswd::open(&path).unwrap();
        assert!(file.verify("alice", "one").await);

        std::fs::write(&path, format!("alice:{}\n", bcrypt::hash("two", 4).unwrap())).unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert!(!file.verify("alice", "one").await, "the old password is forgotten");
        assert!(file.verify("alice", "two").await);
    }

    #[tokio::test]
    async fn broken_file_rejects_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), &format!("alice:{}\n", bcrypt::hash("one", 4).unwrap()));
        let file = Htpasswd::open(&path).unwrap();
        assert!(file.verify("alice", "one").await);

        std::fs::write(&path, "alice:$apr1$x$y\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert!(!file.verify("alice", "one").await);
    }

    #[test]
    fn missing_file_is_an_error() {
        let error = Htpasswd::open(Path::new("/nonexistent/htpasswd")).err().unwrap();
        assert!(error.contains("/nonexistent/htpasswd"), "{error}");
    }
}
