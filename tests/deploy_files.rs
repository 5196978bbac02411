//! The deployment examples under `deploy/`. The Kubernetes manifest parses, its ConfigMap is a
//! config the registry loads, and the paths and ports agree between the config and the pod.
//! The systemd unit passes `systemd-analyze verify` and keeps its hardening.

use std::collections::HashMap;
use std::process::Command;

use containerd_registry::config::{load_str, parse_go_duration};
use serde::Deserialize;
use serde_yaml_ng::Value;

const DAEMONSET: &str = include_str!("../deploy/kubernetes/daemonset.yaml");
const UNIT: &str = include_str!("../deploy/systemd/containerd-registry.service");

fn documents() -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(DAEMONSET).map(|document| Value::deserialize(document).unwrap()).collect()
}

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut node = value;
    for key in path {
        node = &node[*key];
    }
    node.as_str().unwrap_or_else(|| panic!("{} is not a string: {node:?}", path.join(".")))
}

#[test]
fn manifest_matches_its_config() {
    let documents = documents();
    let kinds: Vec<&str> = documents.iter().map(|document| text(document, &["kind"])).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "DaemonSet"]);

    let config_text = text(&documents[1], &["data", "config.yml"]);
    let loaded = load_str(config_text, "daemonset.yaml", &HashMap::new())
        .unwrap_or_else(|error| panic!("the ConfigMap's config.yml does not load: {error}"));
    let debug = loaded.http.debug.as_ref().expect("the ConfigMap sets http.debug.addr for the probes");

    let pod = &documents[2]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let ports: Vec<u64> = container["ports"].as_sequence().unwrap().iter().map(|p| p["containerPort"].as_u64().unwrap()).collect();
    assert_eq!(ports, [u64::from(loaded.http.addr.port()), u64::from(debug.addr.port())]);
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"].as_u64(), Some(u64::from(debug.addr.port())), "{probe}");
        assert_eq!(text(container, &[probe, "httpGet", "host"]), debug.addr.ip().to_string(), "{probe}");
        assert_eq!(text(container, &[probe, "httpGet", "path"]), "/debug/health", "{probe}");
    }

    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(loaded.http.drain_timeout.as_secs() < grace, "draintimeout must end before the grace period");

    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let host_path = |path: &str| {
        let volume = volumes.iter().find(|volume| volume["hostPath"]["path"].as_str() == Some(path));
        let volume = volume.unwrap_or_else(|| panic!("no hostPath volume for {path}"));
        let mount = mounts.iter().find(|mount| mount["name"] == volume["name"]).unwrap();
        assert_eq!(text(mount, &["mountPath"]), path, "mount path of {path}");
        assert_eq!(mount["readOnly"].as_bool(), Some(true), "{path} must be mounted read-only");
    };
    let containerd_registry::config::Driver::Containerd(containerd) = &loaded.storage.driver;
    host_path(containerd.address.to_str().unwrap());
    host_path(containerd.content_dir.as_deref().unwrap().to_str().unwrap());
}

#[test]
fn systemd_unit_is_hardened() {
    let settings: Vec<(&str, &str)> = UNIT.lines().filter_map(|line| line.split_once('=')).filter(|(key, _)| !key.starts_with('#')).collect();
    let values = |key: &str| settings.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).collect::<Vec<_>>();

    assert_eq!(values("Requires"), ["containerd.service"]);
    assert!(values("After")[0].split_whitespace().any(|unit| unit == "containerd.service"));
    assert_eq!(values("NoNewPrivileges"), ["yes"]);
    assert_eq!(values("ProtectSystem"), ["strict"]);
    assert_eq!(values("CapabilityBoundingSet"), [""]);
    assert!(values("ReadOnlyPaths").contains(&"/var/lib/containerd/io.containerd.content.v1.content"));
    assert!(values("ExecStart")[0].ends_with("serve /etc/containerd-registry/config.yml"));
    let stop = parse_go_duration(values("TimeoutStopSec")[0]).unwrap();
    assert!(stop.as_secs() >= 60, "TimeoutStopSec leaves no time to drain");
}

#[test]
fn systemd_unit_passes_verify() {
    // systemd-analyze resolves the unit's commands and dependencies under --root, so the root
    // contains systemd's own units, the registry binary and a stand-in for containerd.service.
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.path().join("usr/local/bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_containerd-registry"), root.path().join("usr/local/bin/containerd-registry")).unwrap();
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp").arg("-r").arg("/usr/lib/systemd/system").arg(root.path().join("usr/lib/systemd/")).status();
    assert!(copied.unwrap().success(), "copying systemd's units failed");
    std::fs::write(units.join("containerd.service"), "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/usr/local/bin/containerd-registry --help\n").unwrap();
    let unit = units.join("containerd-registry.service");
    std::fs::write(&unit, UNIT).unwrap();

    let output = Command::new("systemd-analyze").arg("verify").arg(format!("--root={}", root.path().display())).arg(&unit).output();
    let output = output.expect("systemd-analyze runs (scripts/install-deps.sh installs systemd)");
    let messages = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify failed: {messages}");
    assert!(messages.trim().is_empty(), "systemd-analyze verify warned: {messages}");
}
