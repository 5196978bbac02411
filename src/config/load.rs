//! Reading `config.yml` and `REGISTRY_*` overrides into a [`Config`].
//!
//! Every key is checked against what this registry implements: an unknown or misspelled key and a
//! Distribution feature it lacks are errors that name the key, never ignored.

mod auth;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde_yaml_ng::{Mapping, Value};

mod debug;
mod host;
mod tls;

use super::{
    parse_go_duration, Config, ContainerdConfig, Driver, FastPathMode, StorageHealthCheck, HttpConfig, LogConfig, LogFormatter,
    StorageConfig, UploadPurging, DEFAULT_HTTP_ADDR,
};

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "REGISTRY_";

/// Distribution storage drivers that this registry does not implement.
const OTHER_DRIVERS: [&str; 6] = ["filesystem", "s3", "azure", "gcs", "swift", "oss"];

/// A reason the configuration cannot be used. Each message starts with the file, the key path or
/// the environment variable it concerns, and says what to write instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("{path} must contain a mapping of config keys at the top level, not {found}")]
    NotAMapping { path: String, found: &'static str },
    #[error("{name} is not a config key: write {ENV_PREFIX} and the key path in capitals with _ between keys, such as REGISTRY_STORAGE_DELETE_ENABLED")]
    EnvName { name: String },
    #[error("{key}{origin}: {message}")]
    Key { key: String, origin: String, message: String },
}

/// Loads the config file at `path`, or only defaults and environment when `path` is `None`.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?,
        None => String::new(),
    };
    let name = path.map_or_else(|| "(none)".to_owned(), |p| p.display().to_string());
    load_str(&text, &name, env)
}

/// Parses config text; `name` appears in messages.
pub fn load_str(text: &str, name: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let mut root = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::Yaml { path: name.to_owned(), message: e.to_string() })?
    };
    if root.is_null() {
        root = Value::Mapping(Mapping::new());
    }
    if !matches!(root, Value::Mapping(_)) {
        return Err(ConfigError::NotAMapping { path: name.to_owned(), found: kind_name(&root) });
    }

    let mut origins = HashMap::new();
    apply_env(&mut root, env, &mut origins)?;

    let top = Section::new(&root, String::new(), &origins)?;
    top.allow_keys(&["version", "log", "http", "storage", "health", "auth"])?;
    top.reject_keys(&[
        ("proxy", "pull-through caching is not implemented yet"),
        ("notifications", "notifications are not implemented"),
        ("redis", "redis is not used by this registry"),
        ("validation", "manifest URL validation is not implemented"),
    ])?;

    if let Some(version) = top.string("version")? {
        if version != "0.1" {
            return Err(top.error("version", &format!("{version:?} is not a supported config version; use 0.1")));
        }
    }

    Ok(Config {
        log: log_config(&top)?,
        http: http_config(&top)?,
        storage: storage_config(&top)?,
        storage_health: health_config(&top)?,
        auth: auth::auth_config(&top)?,
        ignored_keys: ignored_keys(&top)?,
    })
}

/// Writes each `REGISTRY_A_B=value` into the tree at `a.b`, parsing the value as YAML.
fn apply_env(
    root: &mut Value,
    env: &HashMap<String, String>,
    origins: &mut HashMap<String, String>,
) -> Result<(), ConfigError> {
    let mut names: Vec<&String> = env.keys().filter(|k| k.starts_with(ENV_PREFIX)).collect();
    names.sort();

    for name in names {
        let path: Vec<String> =
            name[ENV_PREFIX.len()..].split('_').map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::EnvName { name: name.clone() });
        }
        let key = key_path(&path);
        let error = |message: &str| ConfigError::Key {
            key: key.clone(),
            origin: format!(" (set by {name})"),
            message: message.to_owned(),
        };

        let value: Value = serde_yaml_ng::from_str(&env[name])
            .unwrap_or_else(|_| Value::String(env[name].clone()));
        let mut node = &mut *root;
        for (depth, component) in path.iter().enumerate() {
            if node.is_null() {
                *node = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(map) = node else {
                return Err(error(&format!("{} is not a section", key_path(&path[..depth]))));
            };
            let slot = map.entry(Value::String(component.clone())).or_insert(Value::Null);
            if depth + 1 == path.len() {
                *slot = value.clone();
            }
            node = slot;
        }
        origins.insert(key, name.clone());
    }
    Ok(())
}

/// A mapping of the config tree with its dotted path, for messages.
struct Section<'a> {
    map: Option<&'a Mapping>,
    path: String,
    origins: &'a HashMap<String, String>,
}

impl<'a> Section<'a> {
    fn new(value: &'a Value, path: String, origins: &'a HashMap<String, String>) -> Result<Self, ConfigError> {
        match value {
            Value::Mapping(map) => Ok(Section { map: Some(map), path, origins }),
            Value::Null => Ok(Section { map: None, path, origins }),
            _ => Err(Section { map: None, path: path.clone(), origins }.error_at(&path, "must be a section of keys")),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn error_at(&self, key_path: &str, message: &str) -> ConfigError {
        let origin = self.origins.get(key_path).map(|name| format!(" (set by {name})")).unwrap_or_default();
        ConfigError::Key { key: key_path.to_owned(), origin, message: message.to_owned() }
    }

    fn error(&self, key: &str, message: &str) -> ConfigError {
        self.error_at(&self.key_path(key), message)
    }

    fn keys(&self) -> Vec<String> {
        let Some(map) = self.map else { return Vec::new() };
        map.keys().map(key_name).collect()
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|map| map.get(key)).filter(|v| !v.is_null())
    }

    fn has(&self, key: &str) -> bool {
        self.map.is_some_and(|map| map.contains_key(key))
    }

    /// Fails on any key not in `allowed`, naming it and the keys that are allowed.
    fn allow_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        for key in self.keys() {
            let rejected = ["proxy", "notifications", "redis", "validation"];
            if !allowed.contains(&key.as_str()) && !(self.path.is_empty() && rejected.contains(&key.as_str())) {
                return Err(self.error(&key, &format!("unknown key; the keys allowed here are {}", allowed.join(", "))));
            }
        }
        Ok(())
    }

    /// Fails on a present key whose feature is not implemented, with the reason.
    fn reject_keys(&self, rejected: &[(&str, &str)]) -> Result<(), ConfigError> {
        for (key, reason) in rejected {
            if self.has(key) {
                return Err(self.error(key, reason));
            }
        }
        Ok(())
    }

    fn section(&self, key: &str) -> Result<Section<'a>, ConfigError> {
        match self.map.and_then(|map| map.get(key)) {
            Some(value) => Section::new(value, self.key_path(key), self.origins),
            None => Ok(Section { map: None, path: self.key_path(key), origins: self.origins }),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.error(key, "must be a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(other) => Err(self.error(key, &format!("must be true or false, not {}", describe(other)))),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<std::time::Duration>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(text) => parse_go_duration(&text).map(Some).map_err(|message| self.error(key, &message)),
        }
    }
}

/// Returns a mapping key as messages and key paths show it. A key of letters, digits, `_` and `-`
/// appears as written. Any other key is quoted, so that an empty key or one containing `.` cannot
/// be read as a different path.
fn key_name(key: &Value) -> String {
    let plain = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    match key.as_str() {
        Some(text) if plain(text) => text.to_owned(),
        Some(text) => format!("{text:?}"),
        None => format!("{:?}", describe(key)),
    }
}

/// Joins the components of a key path, quoting them as [`key_name`] does.
fn key_path(components: &[String]) -> String {
    let names: Vec<String> = components.iter().map(|c| key_name(&Value::String(c.clone()))).collect();
    names.join(".")
}

/// Returns the kind of a YAML value, for messages.
fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn describe(value: &Value) -> String {
    serde_yaml_ng::to_string(value).map(|s| s.trim().to_owned()).unwrap_or_else(|_| "that value".into())
}

fn log_config(top: &Section) -> Result<LogConfig, ConfigError> {
    let log = top.section("log")?;
    log.allow_keys(&["level", "formatter", "fields", "accesslog"])?;

    let level = log.string("level")?.unwrap_or_else(|| "info".to_owned());
    if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
        return Err(log.error("level", &format!("{level:?} is not a log level; use error, warn, info, debug or trace")));
    }
    let formatter = match log.string("formatter")?.as_deref() {
        None | Some("text") => LogFormatter::Text,
        Some("json") => LogFormatter::Json,
        Some(other) => return Err(log.error("formatter", &format!("{other:?} is not supported; use text or json"))),
    };
    Ok(LogConfig { level, formatter })
}

/// Parses Distribution's listen address: `:5000` (all interfaces), `host:port` or `[v6]:port`.
fn parse_listen_addr(text: &str) -> Option<SocketAddr> {
    if let Some(port) = text.strip_prefix(':') {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port.parse().ok()?));
    }
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    text.to_socket_addrs().ok()?.next()
}

fn http_config(top: &Section) -> Result<HttpConfig, ConfigError> {
    let http = top.section("http")?;
    http.allow_keys(&["addr", "net", "secret", "prefix", "host", "headers", "http2", "relativeurls", "draintimeout", "debug", "tls"])?;
    http.reject_keys(&[("prefix", "a URL prefix is not supported; serve the registry at /v2/")])?;

    if let Some(net) = http.string("net")? {
        if net != "tcp" {
            return Err(http.error("net", &format!("{net:?} is not supported; use tcp")));
        }
    }
    let addr_text = http.string("addr")?.unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_owned());
    let Some(addr) = parse_listen_addr(&addr_text) else {
        return Err(http.error("addr", &format!("{addr_text:?} is not a listen address; write it like :5000 or 127.0.0.1:5000")));
    };
    let debug = debug::debug_config(&http, addr)?;
    Ok(HttpConfig {
        addr,
        secret: http.string("secret")?,
        headers: response_headers(&http)?,
        debug,
        tls: tls::tls_config(&http)?,
        drain_timeout: http.duration("draintimeout")?.unwrap_or(Duration::ZERO),
        host: host::public_host(&http)?,
        relative_urls: http.bool("relativeurls")?.unwrap_or(false),
    })
}

/// Parses `http.headers`: a mapping of header names to a list of values (or one value).
fn response_headers(http: &Section) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let Some(value) = http.get("headers") else {
        return Ok(Vec::new());
    };
    let Value::Mapping(map) = value else {
        return Err(http.error("headers", "must map header names to lists of values"));
    };

    let mut headers = Vec::new();
    for (name, values) in map {
        let Some(name_text) = name.as_str() else {
            return Err(http.error("headers", &format!("header name {} is not a string", describe(name))));
        };
        let key = format!("headers.{name_text}");
        let Ok(header_name) = HeaderName::from_bytes(name_text.as_bytes()) else {
            return Err(http.error(&key, "is not a valid HTTP header name"));
        };
        let texts: Vec<String> = match values {
            Value::Sequence(items) => items.iter().map(scalar_text).collect::<Option<_>>(),
            single => scalar_text(single).map(|text| vec![text]),
        }
        .ok_or_else(|| http.error(&key, "values must be strings"))?;
        for text in texts {
            let Ok(header_value) = HeaderValue::from_str(&text) else {
                return Err(http.error(&key, &format!("{text:?} is not a valid header value")));
            };
            headers.push((header_name.clone(), header_value));
        }
    }
    Ok(headers)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn storage_config(top: &Section) -> Result<StorageConfig, ConfigError> {
    let storage = top.section("storage")?;
    for driver in OTHER_DRIVERS {
        if storage.has(driver) {
            return Err(storage.error(driver, "this storage driver is not implemented; use storage.containerd"));
        }
    }
    storage.allow_keys(&["driver", "containerd", "delete", "maintenance", "cache", "redirect"])?;

    match storage.string("driver")?.as_deref() {
        None | Some("containerd") => {}
        Some(other) => {
            return Err(storage.error("driver", &format!("driver {other:?} is not implemented; use containerd")))
        }
    }
    let driver = Driver::Containerd(containerd_config(&storage.section("containerd")?)?);

    let delete = storage.section("delete")?;
    delete.allow_keys(&["enabled"])?;

    let maintenance = storage.section("maintenance")?;
    maintenance.allow_keys(&["uploadpurging", "readonly"])?;
    let purging = maintenance.section("uploadpurging")?;
    purging.allow_keys(&["enabled", "age", "interval", "dryrun"])?;
    let defaults = UploadPurging::default();
    let upload_purging = UploadPurging {
        enabled: purging.bool("enabled")?.unwrap_or(defaults.enabled),
        age: purging.duration("age")?.unwrap_or(defaults.age),
        interval: purging.duration("interval")?.unwrap_or(defaults.interval),
        dry_run: purging.bool("dryrun")?.unwrap_or(defaults.dry_run),
    };
    if upload_purging.interval.is_zero() {
        return Err(purging.error("interval", "must be longer than zero, such as 24h"));
    }
    let readonly = maintenance.section("readonly")?;
    readonly.allow_keys(&["enabled"])?;

    Ok(StorageConfig {
        driver,
        delete_enabled: delete.bool("enabled")?.unwrap_or(false),
        upload_purging,
        read_only: readonly.bool("enabled")?.unwrap_or(false),
    })
}

/// Distribution keys this registry accepts but does not act on, and why.
const IGNORED_KEYS: [(&str, &str, &str); 5] = [
    ("log", "fields", "extra log fields are not added yet"),
    ("log", "accesslog", "every request is logged at info level when its response ends"),
    ("http", "http2", "HTTP/2 cleartext is always accepted"),
    ("storage", "cache", "containerd's metadata store serves descriptors; there is no separate cache"),
    ("storage", "redirect", "blobs are always served directly, never redirected"),
];

fn ignored_keys(top: &Section) -> Result<Vec<(String, &'static str)>, ConfigError> {
    let mut ignored = Vec::new();
    for (section, key, reason) in IGNORED_KEYS {
        if top.section(section)?.has(key) {
            ignored.push((format!("{section}.{key}"), reason));
        }
    }
    Ok(ignored)
}

fn health_config(top: &Section) -> Result<Option<StorageHealthCheck>, ConfigError> {
    let health = top.section("health")?;
    health.reject_keys(&[
        ("file", "file health checks are not implemented; use health.storagedriver"),
        ("http", "HTTP health checks are not implemented; use health.storagedriver"),
        ("tcp", "TCP health checks are not implemented; use health.storagedriver"),
    ])?;
    health.allow_keys(&["storagedriver"])?;

    let check = health.section("storagedriver")?;
    check.allow_keys(&["enabled", "interval", "threshold"])?;
    if !check.bool("enabled")?.unwrap_or(false) {
        return Ok(None);
    }
    let interval = check.duration("interval")?.unwrap_or(Duration::from_secs(10));
    if interval.is_zero() {
        return Err(check.error("interval", "must be longer than zero, such as 10s"));
    }
    let threshold = match check.get("threshold") {
        None => 3,
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0) {
            Some(n) => n,
            None => return Err(check.error("threshold", &format!("{n} is not a positive whole number of failures"))),
        },
        Some(other) => return Err(check.error("threshold", &format!("{} is not a positive whole number of failures", describe(other)))),
    };
    Ok(Some(StorageHealthCheck { interval, threshold }))
}

fn containerd_config(section: &Section) -> Result<ContainerdConfig, ConfigError> {
    section.allow_keys(&["address", "namespace", "root", "contentdir", "fastpath"])?;
    let mut config = ContainerdConfig::with_defaults();

    if let Some(address) = section.string("address")? {
        let path = address.strip_prefix("unix://").unwrap_or(&address);
        if path.is_empty() {
            return Err(section.error("address", "must be the path of containerd's socket"));
        }
        config.address = PathBuf::from(path);
    }
    if let Some(namespace) = section.string("namespace")? {
        if !crate::mapping::is_containerd_identifier(&namespace) {
            return Err(section.error("namespace", &format!("{namespace:?} is not a containerd namespace: use letters, digits and single '.', '_' or '-' between them, at most 76 characters")));
        }
        config.namespace = namespace;
    }
    if let Some(root) = section.string("root")? {
        crate::mapping::Mapping::new(&root).map_err(|e| section.error("root", &e.to_string()))?;
        config.root = root;
    }
    if let Some(dir) = section.string("contentdir")? {
        if !dir.starts_with('/') {
            return Err(section.error("contentdir", &format!("{dir:?} must be an absolute path")));
        }
        config.content_dir = Some(PathBuf::from(dir));
    }
    if let Some(mode) = section.string("fastpath")? {
        config.fast_path = FastPathMode::parse(&mode)
            .ok_or_else(|| section.error("fastpath", &format!("{mode:?} is not a read strategy; use sendfile, mmap, iouring or off")))?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthConfig;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn containerd(config: &Config) -> &ContainerdConfig {
        let Driver::Containerd(c) = &config.storage.driver;
        c
    }

    #[test]
    fn empty_config_has_defaults() {
        let config = load_str("", "test", &env(&[])).unwrap();
        assert_eq!(containerd(&config), &ContainerdConfig::with_defaults());
        assert_eq!(config.http.addr, "0.0.0.0:5000".parse().unwrap());
        assert!(!config.storage.delete_enabled);
        assert_eq!(config.log.level, "info");
    }

    #[test]
    fn distribution_style_config() {
        let text = "version: 0.1\nlog:\n  level: debug\nstorage:\n  containerd:\n    namespace: reg\n    root: /r1\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      age: 2h\nhttp:\n  addr: 127.0.0.1:5001\n";
        let config = load_str(text, "test", &env(&[])).unwrap();
        assert_eq!(containerd(&config).namespace, "reg");
        assert_eq!(containerd(&config).root, "/r1");
        assert!(config.storage.delete_enabled);
        assert_eq!(config.storage.upload_purging.age, std::time::Duration::from_secs(7200));
        assert_eq!(config.http.addr, "127.0.0.1:5001".parse().unwrap());
    }

    #[test]
    fn ignored_distribution_keys_are_reported() {
        let text = "http:\n  headers:\n    X-Content-Type-Options: [nosniff]\nstorage:\n  cache:\n    blobdescriptor: inmemory\n";
        let config = load_str(text, "test", &env(&[])).unwrap();
        let keys: Vec<&str> = config.ignored_keys.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["storage.cache"]);
    }

    #[test]
    fn response_headers_are_parsed() {
        let text = "http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n    X-Team: [a, b]\n    X-One: single\n";
        let config = load_str(text, "test", &env(&[])).unwrap();
        let headers: Vec<(String, String)> = config
            .http
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        let expected = [("x-content-type-options", "nosniff"), ("x-team", "a"), ("x-team", "b"), ("x-one", "single")];
        assert_eq!(headers, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));

        let bad = load_str("http:\n  headers:\n    \"Bad Name\": [x]\n", "test", &env(&[])).unwrap_err();
        assert!(bad.to_string().starts_with("http.headers.Bad Name"), "{bad}");
    }

    #[test]
    fn env_overrides_file() {
        let text = "storage:\n  driver: containerd\n  containerd:\n    address: /a.sock\n";
        let vars = env(&[
            ("REGISTRY_STORAGE_CONTAINERD_ADDRESS", "/b.sock"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_HTTP_ADDR", ":6000"),
        ]);
        let config = load_str(text, "test", &vars).unwrap();
        assert_eq!(containerd(&config).address, PathBuf::from("/b.sock"));
        assert!(config.storage.delete_enabled);
        assert_eq!(config.http.addr.port(), 6000);

        let vars = env(&[("REGISTRY_STORAGE_CONTAINERD_FASTPATH", "off")]);
        let config = load_str("", "test", &vars).unwrap();
        assert_eq!(containerd(&config).fast_path, FastPathMode::Off);
    }

    #[test]
    fn unknown_key_is_named() {
        let error = load_str("storage:\n  containerd:\n    adress: /x\n", "test", &env(&[])).unwrap_err();
        assert!(error.to_string().starts_with("storage.containerd.adress: unknown key"), "{error}");

        let error = load_str("", "test", &env(&[("REGISTRY_STORAGE_CONTAINERD_ADRESS", "/x")])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("storage.containerd.adress"), "{message}");
        assert!(message.contains("REGISTRY_STORAGE_CONTAINERD_ADRESS"), "{message}");
    }

    #[test]
    fn auth_sections_are_parsed() {
        let text = "auth:\n  htpasswd:\n    realm: Registry\n    path: /etc/registry/htpasswd\n";
        let config = load_str(text, "test", &env(&[])).unwrap();
        let expected = AuthConfig::Htpasswd { realm: "Registry".into(), path: PathBuf::from("/etc/registry/htpasswd") };
        assert_eq!(config.auth, Some(expected));

        let text = "auth:\n  token:\n    realm: https://auth.test/token\n    service: reg\n    issuer: iss\n    \
                    rootcertbundle: /etc/registry/root.pem\n    autoredirect: false\n    signingalgorithms: [ES256]\n";
        let config = load_str(text, "test", &env(&[])).unwrap();
        let Some(AuthConfig::Token(token)) = config.auth else { panic!("no token auth: {:?}", config.auth) };
        assert_eq!(token.realm, "https://auth.test/token");
        assert_eq!(token.service, "reg");
        assert_eq!(token.issuer, "iss");
        assert_eq!(token.root_cert_bundle, Some(PathBuf::from("/etc/registry/root.pem")));
        assert_eq!(token.jwks, None);
        assert_eq!(token.signing_algorithms, ["ES256"]);

        assert_eq!(load_str("", "test", &env(&[])).unwrap().auth, None);
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("storage:\n  filesystem:\n    rootdirectory: /x\n", "storage.filesystem"),
            ("storage:\n  driver: s3\n", "storage.driver"),
            ("storage:\n  containerd:\n    root: relative\n", "storage.containerd.root"),
            ("storage:\n  containerd:\n    namespace: 'a b'\n", "storage.containerd.namespace"),
            ("storage:\n  containerd:\n    fastpath: turbo\n", "storage.containerd.fastpath"),
            ("storage:\n  delete:\n    enabled: yes please\n", "storage.delete.enabled"),
            ("http:\n  addr: nowhere\n", "http.addr"),
            ("auth:\n  htpasswd: {}\n", "auth.htpasswd.realm"),
            ("auth:\n  htpasswd: {realm: r}\n", "auth.htpasswd.path"),
            ("auth:\n  silly: {realm: r}\n", "auth.silly"),
            ("auth:\n  htpasswd: {realm: r, path: /p}\n  token: {}\n", "auth"),
            ("auth:\n  token: {realm: r, service: s, issuer: i}\n", "auth.token.rootcertbundle"),
            ("auth:\n  token: {realm: r, service: s, issuer: i, rootcertbundle: /c, autoredirect: true}\n", "auth.token.autoredirect"),
            ("auth:\n  token: {realm: r, service: s, issuer: i, rootcertbundle: /c, signingalgorithms: ES256}\n", "auth.token.signingalgorithms"),
            ("log:\n  level: loud\n", "log.level"),
            ("version: 0.2\n", "version"),
            ("health:\n  storagedriver:\n    enabled: true\n    threshold: 0\n", "health.storagedriver.threshold"),
            ("health:\n  http:\n    - uri: x\n", "health.http"),
            ("storage:\n  maintenance:\n    uploadpurging:\n      interval: 0s\n", "storage.maintenance.uploadpurging.interval"),
            ("storage:\n  maintenance:\n    uploadpurging:\n      age: 1d\n", "storage.maintenance.uploadpurging.age"),
            ("http:\n  draintimeout: soon\n", "http.draintimeout"),
            ("http:\n  relativeurls: maybe\n", "http.relativeurls"),
            ("http:\n  tls:\n    letsencrypt:\n      email: a@b\n", "http.tls.letsencrypt"),
            ("http:\n  tls:\n    certificate: /c.pem\n", "http.tls.key"),
            ("http:\n  tls:\n    key: /k.pem\n", "http.tls.certificate"),
            ("http:\n  tls:\n    clientcas: [/ca.pem]\n", "http.tls.clientcas"),
            ("http:\n  tls:\n    certificate: /c\n    key: /k\n    clientcas: /ca.pem\n", "http.tls.clientcas"),
            ("http:\n  tls:\n    certificate: /c\n    key: /k\n    minimumtls: tls1.1\n", "http.tls.minimumtls"),
            ("http:\n  tls:\n    certificate: /c\n    key: /k\n    ciphersuites: [x]\n", "http.tls.ciphersuites"),
        ];
        for (text, key) in cases {
            let message = load_str(text, "test", &env(&[])).unwrap_err().to_string();
            assert!(message.starts_with(key), "{text:?}: {message}");
        }
    }

    #[test]
    fn tls_section_is_parsed() {
        let text = "http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas: [/a.pem, /b.pem]\n    minimumtls: tls1.3\n";
        let tls = load_str(text, "test", &env(&[])).unwrap().http.tls.unwrap();
        assert_eq!(tls.certificate, PathBuf::from("/c.pem"));
        assert_eq!(tls.key, PathBuf::from("/k.pem"));
        assert_eq!(tls.client_cas, [PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]);
        assert_eq!(tls.minimum_version, crate::config::TlsVersion::Tls13);

        let plain = load_str("", "test", &env(&[])).unwrap();
        assert_eq!(plain.http.tls, None);
    }

    #[test]
    fn drain_timeout_defaults_to_zero() {
        let config = load_str("", "test", &env(&[])).unwrap();
        assert_eq!(config.http.drain_timeout, Duration::ZERO);
        let config = load_str("http:\n  draintimeout: 1m30s\n", "test", &env(&[])).unwrap();
        assert_eq!(config.http.drain_timeout, Duration::from_secs(90));
    }

    #[test]
    fn http_host_accepts_scheme_host_and_port() {
        let cases = [
            ("https://registry.example.com:5000", "https", "registry.example.com:5000"),
            ("http://registry.example.com/", "http", "registry.example.com"),
            ("https://[::1]:5000", "https", "[::1]:5000"),
        ];
        for (text, scheme, authority) in cases {
            let config = load_str(&format!("http:\n  host: {text:?}\n"), "test", &env(&[])).unwrap();
            let host = config.http.host.unwrap();
            assert_eq!((host.scheme.as_str(), host.authority.as_str()), (scheme, authority), "{text}");
        }
        let config = load_str("http:\n  relativeurls: true\n", "test", &env(&[])).unwrap();
        assert!(config.http.relative_urls);
        assert!(config.ignored_keys.is_empty());
    }

    #[test]
    fn http_host_rejects_other_urls() {
        let cases = [
            ("registry.example.com:5000", "has no scheme"),
            ("ftp://registry.example.com", "http or https"),
            ("https://registry.example.com/v2", "path, query or fragment"),
            ("https://registry.example.com?a=b", "path, query or fragment"),
            ("https://registry.example.com#top", "path, query or fragment"),
            ("https://user@registry.example.com", "user information"),
            ("https://registry.example.com:port", "invalid port"),
            ("https://registry.example.com:", "invalid port"),
            ("https:///v2", "not a URL"),
            ("not a url", "not a URL"),
        ];
        for (text, reason) in cases {
            let message = load_str(&format!("http:\n  host: {text:?}\n"), "test", &env(&[])).unwrap_err().to_string();
            assert!(message.starts_with("http.host: "), "{text}: {message}");
            assert!(message.contains(reason), "{text}: {message}");
        }
    }

    #[test]
    fn invalid_yaml_names_the_file() {
        let message = load_str("storage: [", "config.yml", &env(&[])).unwrap_err().to_string();
        assert!(message.starts_with("config.yml is not valid YAML: "), "{message}");
    }

    #[test]
    fn top_level_scalar_names_the_file() {
        let cases = [("e\n", "a string"), ("- a\n", "a sequence"), ("5", "a number"), ("!x {}", "a tagged value")];
        for (text, found) in cases {
            let error = load_str(text, "config.yml", &env(&[])).unwrap_err();
            let expected = format!("config.yml must contain a mapping of config keys at the top level, not {found}");
            assert_eq!(error.to_string(), expected, "{text:?}");
        }
    }

    #[test]
    fn top_level_scalar_with_override_names_the_file() {
        let vars = env(&[("REGISTRY_STORAGE_DELETE_ENABLED", "true")]);
        let message = load_str("e", "config.yml", &vars).unwrap_err().to_string();
        assert!(message.starts_with("config.yml must contain a mapping"), "{message}");
    }

    #[test]
    fn override_with_empty_key_is_named() {
        for name in ["REGISTRY_", "REGISTRY_STORAGE__DELETE", "REGISTRY_LOG_"] {
            let message = load_str("", "config.yml", &env(&[(name, "x")])).unwrap_err().to_string();
            assert!(message.starts_with(&format!("{name} is not a config key: write REGISTRY_")), "{message}");
        }
    }

    #[test]
    fn unusual_keys_are_quoted() {
        let cases = [
            ("'': 1\n", "\"\": unknown key"),
            ("storage:\n  'a.b': 1\n", "storage.\"a.b\": unknown key"),
            ("1: x\n", "\"1\": unknown key"),
            ("log:\n  'level ': x\n", "log.\"level \": unknown key"),
        ];
        for (text, start) in cases {
            let message = load_str(text, "config.yml", &env(&[])).unwrap_err().to_string();
            assert!(message.starts_with(start), "{text:?}: {message}");
        }

        let vars = env(&[("REGISTRY_LOG_A.B", "x")]);
        let message = load_str("", "config.yml", &vars).unwrap_err().to_string();
        assert!(message.starts_with("log.\"a.b\" (set by REGISTRY_LOG_A.B): unknown key"), "{message}");
    }
}
