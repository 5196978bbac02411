//! Runs the `containerd-registry` binary as a child process on a loopback port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running registry process, killed by PID when dropped.
pub struct RegistryProcess {
    child: Child,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    log_lines: mpsc::Receiver<String>,
}

/// Settings of a registry under test.
pub struct RegistrySettings<'a> {
    pub socket: &'a Path,
    pub namespace: &'a str,
    pub root: &'a str,
    pub delete_enabled: bool,
    pub extra_yaml: &'a str,
}

impl<'a> RegistrySettings<'a> {
    pub fn new(socket: &'a Path) -> RegistrySettings<'a> {
        RegistrySettings { socket, namespace: "registry", root: "/registry", delete_enabled: true, extra_yaml: "" }
    }
}

impl RegistryProcess {
    /// Writes a config into `dir` and starts the registry on an ephemeral loopback port.
    pub fn start(dir: &Path, settings: &RegistrySettings) -> RegistryProcess {
        let config_path = dir.join(format!("registry-{}.yml", settings.namespace));
        let config = format!(
            "version: 0.1\nlog:\n  level: debug\nhttp:\n  addr: 127.0.0.1:0\nstorage:\n  containerd:\n    address: {}\n    namespace: {}\n    root: {}\n  delete:\n    enabled: {}\n{}",
            settings.socket.display(),
            settings.namespace,
            settings.root,
            settings.delete_enabled,
            settings.extra_yaml,
        );
        std::fs::write(&config_path, config).unwrap();
        RegistryProcess::start_with_config(&config_path)
    }

    /// Starts the registry with an existing config file.
    pub fn start_with_config(config_path: &Path) -> RegistryProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_containerd-registry"))
            .arg("serve")
            .arg(config_path)
            .env("RUST_LOG", "containerd_registry=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("registry binary starts");

        let (sender, log_lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[registry] {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });

        let addr = loop {
            match log_lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("listening") => {
                    let start = line.find("addr=").expect("listening line has addr") + 5;
                    let text = line[start..].split_whitespace().next().unwrap();
                    break text.parse().expect("addr parses");
                }
                Ok(_) => continue,
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    panic!("registry did not start listening within 30 s (exit status {status:?})");
                }
            }
        };
        RegistryProcess { child, addr, config_path: config_path.to_owned(), log_lines }
    }

    /// Returns `host:port` for client references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Returns the log lines written since the last call.
    pub fn drain_log(&self) -> Vec<String> {
        self.log_lines.try_iter().collect()
    }

    /// Reads the log until the debug listener of `http.debug.addr` reports its address. Lines
    /// read before it are consumed.
    pub fn debug_addr(&self) -> std::net::SocketAddr {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            for line in self.drain_log() {
                if line.contains("debug server started") {
                    let start = line.find("addr=").expect("debug server line has addr") + 5;
                    return line[start..].split_whitespace().next().unwrap().parse().expect("debug addr parses");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the registry did not report its debug server address");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM to the registry process, by its PID.
    pub fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; returns its status, or `None` if it still
    /// runs.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the registry") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
