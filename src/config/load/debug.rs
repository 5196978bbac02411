//! `http.debug`: the address of the debug listener and its Prometheus settings, with the keys
//! and meaning of Docker Distribution's.

use std::net::SocketAddr;

use super::{parse_listen_addr, ConfigError, Section};
use crate::config::{DebugConfig, DEBUG_HEALTH_PATH, DEFAULT_PROMETHEUS_PATH};

/// Maximum length of `http.debug.prometheus.path`, a bound that keeps the path readable in logs.
const MAX_PROMETHEUS_PATH_BYTES: usize = 256;

/// Parses `http.debug`. `main_addr` is `http.addr`, which the debug listener must not share.
pub(super) fn debug_config(http: &Section, main_addr: SocketAddr) -> Result<Option<DebugConfig>, ConfigError> {
    let debug = http.section("debug")?;
    debug.reject_keys(&[("tls", "TLS on the debug listener is not implemented; keep http.debug.addr on a private interface")])?;
    debug.allow_keys(&["addr", "prometheus"])?;

    let prometheus = debug.section("prometheus")?;
    prometheus.allow_keys(&["enabled", "path"])?;
    let enabled = prometheus.bool("enabled")?.unwrap_or(false);
    let path = prometheus.string("path")?.unwrap_or_else(|| DEFAULT_PROMETHEUS_PATH.to_owned());
    check_metrics_path(&prometheus, &path)?;

    let Some(addr_text) = debug.string("addr")? else {
        if enabled {
            return Err(prometheus.error(
                "enabled",
                "metrics are served on the debug listener, so set http.debug.addr too, such as 127.0.0.1:5001",
            ));
        }
        return Ok(None);
    };
    let Some(addr) = parse_listen_addr(&addr_text) else {
        return Err(debug.error("addr", &format!("{addr_text:?} is not a listen address; write it like :5001 or 127.0.0.1:5001")));
    };
    if shares_port(addr, main_addr) {
        return Err(debug.error(
            "addr",
            &format!("{addr} overlaps http.addr {main_addr}; the debug listener needs a port of its own, such as :5001"),
        ));
    }
    Ok(Some(DebugConfig { addr, prometheus_path: enabled.then_some(path) }))
}

/// Rejects a metrics path that is not an absolute URL path or that hides the health report.
fn check_metrics_path(prometheus: &Section, path: &str) -> Result<(), ConfigError> {
    let plain = path.bytes().all(|byte| byte.is_ascii_graphic() && byte != b'?' && byte != b'#');
    if !path.starts_with('/') || !plain || path.len() > MAX_PROMETHEUS_PATH_BYTES {
        return Err(prometheus.error(
            "path",
            &format!(
                "{path:?} is not a URL path; write an absolute path of at most {MAX_PROMETHEUS_PATH_BYTES} \
                 visible ASCII characters without ? or #, such as /metrics"
            ),
        ));
    }
    if path == DEBUG_HEALTH_PATH {
        return Err(prometheus.error("path", &format!("{path:?} is the health report's path; use another, such as /metrics")));
    }
    Ok(())
}

/// Reports whether two listen addresses would bind the same port. With port 0 the kernel picks
/// a free port, so it never conflicts.
fn shares_port(debug: SocketAddr, main: SocketAddr) -> bool {
    debug.port() != 0
        && debug.port() == main.port()
        && (debug.ip() == main.ip() || debug.ip().is_unspecified() || main.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{load_str, Config, DebugConfig};

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load_str(text, "config.yml", &env).map_err(|error| error.to_string())
    }

    fn debug(text: &str) -> Option<DebugConfig> {
        load(text, &[]).unwrap().http.debug
    }

    #[test]
    fn debug_is_off_by_default() {
        assert_eq!(debug(""), None);
        assert_eq!(debug("http:\n  debug:\n    prometheus:\n      enabled: false\n"), None);
    }

    #[test]
    fn debug_addr_without_prometheus_serves_health_only() {
        let config = debug("http:\n  debug:\n    addr: 127.0.0.1:5001\n").unwrap();
        assert_eq!(config.addr, "127.0.0.1:5001".parse().unwrap());
        assert_eq!(config.prometheus_path, None);
    }

    #[test]
    fn prometheus_path_defaults_to_metrics() {
        let config = debug("http:\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: true\n").unwrap();
        assert_eq!(config.addr, "0.0.0.0:5001".parse().unwrap());
        assert_eq!(config.prometheus_path.as_deref(), Some("/metrics"));
    }

    #[test]
    fn prometheus_path_is_configurable() {
        let text = "http:\n  debug:\n    addr: '[::1]:5001'\n    prometheus:\n      enabled: true\n      path: /internal/metrics\n";
        let config = debug(text).unwrap();
        assert_eq!(config.addr, "[::1]:5001".parse().unwrap());
        assert_eq!(config.prometheus_path.as_deref(), Some("/internal/metrics"));
    }

    #[test]
    fn debug_keys_follow_environment_overrides() {
        let vars = [
            ("REGISTRY_HTTP_DEBUG_ADDR", "127.0.0.1:5002"),
            ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
            ("REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH", "/m"),
        ];
        let config = load("", &vars).unwrap().http.debug.unwrap();
        assert_eq!(config.addr, "127.0.0.1:5002".parse().unwrap());
        assert_eq!(config.prometheus_path.as_deref(), Some("/m"));
    }

    #[test]
    fn invalid_debug_settings_name_the_key() {
        let cases = [
            ("http:\n  debug:\n    addr: nowhere\n", "http.debug.addr: \"nowhere\" is not a listen address"),
            ("http:\n  debug:\n    addr: [1]\n", "http.debug.addr: must be a string"),
            ("http:\n  addr: :5000\n  debug:\n    addr: 127.0.0.1:5000\n", "http.debug.addr: 127.0.0.1:5000 overlaps http.addr"),
            ("http:\n  debug:\n    adr: :5001\n", "http.debug.adr: unknown key"),
            ("http:\n  debug:\n    addr: :5001\n    tls:\n      certificate: x\n", "http.debug.tls: TLS on the debug listener"),
            ("http:\n  debug: yes\n", "http.debug: must be a section"),
            ("http:\n  debug:\n    prometheus:\n      enabled: true\n", "http.debug.prometheus.enabled: metrics are served on the debug listener"),
            ("http:\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: maybe\n", "http.debug.prometheus.enabled: must be true or false"),
            ("http:\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: true\n      path: metrics\n", "http.debug.prometheus.path: \"metrics\" is not a URL path"),
            ("http:\n  debug:\n    addr: :5001\n    prometheus:\n      path: /a b\n", "http.debug.prometheus.path: \"/a b\" is not a URL path"),
            ("http:\n  debug:\n    addr: :5001\n    prometheus:\n      path: /m?x=1\n", "http.debug.prometheus.path: \"/m?x=1\" is not a URL path"),
            ("http:\n  debug:\n    addr: :5001\n    prometheus:\n      path: /debug/health\n", "http.debug.prometheus.path: \"/debug/health\" is the health report's path"),
            ("http:\n  debug:\n    addr: :5001\n    prometheus:\n      verbose: true\n", "http.debug.prometheus.verbose: unknown key"),
        ];
        for (text, start) in cases {
            let message = load(text, &[]).unwrap_err();
            assert!(message.starts_with(start), "{text:?}: {message}");
        }
    }

    #[test]
    fn invalid_override_names_the_variable() {
        let message = load("", &[("REGISTRY_HTTP_DEBUG_ADDR", "nowhere")]).unwrap_err();
        assert!(message.starts_with("http.debug.addr (set by REGISTRY_HTTP_DEBUG_ADDR): "), "{message}");
    }

    #[test]
    fn port_zero_never_overlaps() {
        let config = load("http:\n  addr: 127.0.0.1:0\n  debug:\n    addr: 127.0.0.1:0\n", &[]).unwrap();
        assert_eq!(config.http.debug.unwrap().addr.port(), 0);
    }
}
