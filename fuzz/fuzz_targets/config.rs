//! Fuzzes `config::load_str` with YAML text and `REGISTRY_*` overrides.
//!
//! Input layout: the config text, then optionally a NUL byte and up to four overrides separated
//! by NUL bytes, each `NAME=value`. `REGISTRY_` is put before each `NAME`.
//!
//! An error must start with what it is about: the dotted key path, or the file name for text that
//! is not YAML. A key set by an override must name that variable. An accepted config must hold
//! values that the registry can use.

#![no_main]

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};

use containerd_registry::config::{load_str, ConfigError, Driver};
use containerd_registry::mapping::{is_containerd_identifier, Mapping};
use libfuzzer_sys::fuzz_target;

const FILE_NAME: &str = "fuzz-config.yml";
const MAX_OVERRIDES: usize = 4;

/// glibc's `EAI_NONAME`: the host name is unknown.
const EAI_NONAME: c_int = -2;

/// Fails every host name look-up in this binary. `http.addr` may be a host name, which the loader
/// resolves with the C library's `getaddrinfo`, so without this definition (which the linker
/// prefers over the C library's) a fuzzed config would send DNS queries. An address that needs a
/// look-up is then rejected as `http.addr` is when the name is unknown.
#[no_mangle]
pub extern "C" fn getaddrinfo(
    _node: *const c_char,
    _service: *const c_char,
    _hints: *const c_void,
    _result: *mut *mut c_void,
) -> c_int {
    EAI_NONAME
}

/// Returns the config text and the environment that `data` encodes.
fn split_input(data: &[u8]) -> Option<(&str, HashMap<String, String>)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut parts = text.split('\0');
    let config = parts.next()?;

    let mut env = HashMap::new();
    for pair in parts.take(MAX_OVERRIDES) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        env.insert(format!("REGISTRY_{name}"), value.to_owned());
    }
    Some((config, env))
}

fn check_error(error: &ConfigError, env: &HashMap<String, String>) {
    let message = error.to_string();
    match error {
        ConfigError::Read { .. } => panic!("load_str reads no file: {message}"),
        ConfigError::Yaml { path, .. } | ConfigError::NotAMapping { path, .. } => {
            assert_eq!(path, FILE_NAME);
            assert!(message.starts_with(FILE_NAME), "{message}");
        }
        ConfigError::EnvName { name } => {
            assert!(env.contains_key(name), "{name:?} was not set");
            assert!(message.starts_with(name.as_str()), "{message}");
        }
        ConfigError::Key { key, origin, .. } => {
            // Unusual keys are quoted, so a path may contain `..` inside quotes, but it never
            // starts or ends with a separator.
            assert!(!key.is_empty(), "an error names no key: {message}");
            assert!(!key.starts_with('.'), "{key:?} is not a key path: {message}");
            assert!(!key.ends_with('.'), "{key:?} is not a key path: {message}");
            assert!(message.starts_with(key.as_str()), "{message}");
            if !origin.is_empty() {
                let named = env.keys().any(|name| *origin == format!(" (set by {name})"));
                assert!(named, "{origin:?} names no variable that was set: {message}");
            }
        }
    }
}

fn check_config(config: &containerd_registry::config::Config) {
    let Driver::Containerd(containerd) = &config.storage.driver;
    assert!(is_containerd_identifier(&containerd.namespace), "{:?}", containerd.namespace);
    assert!(Mapping::new(&containerd.root).is_ok(), "{:?}", containerd.root);
    assert!(!containerd.address.as_os_str().is_empty());
    if let Some(dir) = &containerd.content_dir {
        assert!(dir.is_absolute(), "{dir:?}");
    }
    assert!(["error", "warn", "info", "debug", "trace"].contains(&config.log.level.as_str()));
}

fuzz_target!(|data: &[u8]| {
    let Some((text, env)) = split_input(data) else {
        return;
    };
    match load_str(text, FILE_NAME, &env) {
        Ok(config) => check_config(&config),
        Err(error) => check_error(&error, &env),
    }
});
