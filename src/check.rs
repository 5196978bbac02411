//! The `check` command: opens what `serve` opens before it listens (the TLS files, the auth
//! files and containerd) and prints what the registry would use, without binding a port.

use std::io::Write;
use std::time::Duration;

use crate::config::{AuthConfig, Config, DebugConfig, Driver, FastPathMode, TlsConfig, TlsVersion};
use crate::http::location::LocationBase;
use crate::server::{connect, location_base, open_port_security, PortSecurity};

/// Opens the TLS and auth files and connects to containerd as `serve` does, failing with the
/// same error, then writes one line per setting to `out`. Neither port is bound, so `check` can
/// run next to a registry that uses them.
pub async fn check(config: &Config, out: &mut impl Write) -> Result<(), String> {
    let Driver::Containerd(containerd) = &config.storage.driver;
    let PortSecurity { tls, auth } = open_port_security(config)?;
    let backend = connect(config).await?;

    let content_dir = &backend.content_dir;
    let fast_path = fast_path_summary(&content_dir.readable, containerd.fast_path, tls.is_some());
    let htpasswd_users = auth.as_ref().and_then(|authorizer| authorizer.htpasswd_user_count());
    let lines = [
        ("containerd", format!("{} (version {})", containerd.address.display(), backend.version)),
        ("namespace", containerd.namespace.clone()),
        ("root", containerd.root.clone()),
        ("contentdir", format!("{} (from {})", content_dir.path.display(), content_dir.source)),
        ("fast path", fast_path),
        ("listen", config.http.addr.to_string()),
        ("tls", tls_summary(config.http.tls.as_ref())),
        ("auth", auth_summary(config.auth.as_ref(), htpasswd_users)),
        ("debug", debug_summary(config.http.debug.as_ref())),
        ("locations", locations_summary(location_base(config, tls.is_some()))),
        ("drain", drain_summary(config.http.drain_timeout)),
        ("delete", if config.storage.delete_enabled { "enabled" } else { "disabled" }.to_owned()),
        ("read-only", if config.storage.read_only { "yes: pushes and deletes get 405" } else { "no" }.to_owned()),
    ];

    let mut report = String::new();
    for (name, value) in lines {
        report.push_str(&format!("{:<13}{value}\n", format!("{name}:")));
    }
    out.write_all(report.as_bytes()).map_err(|error| error.to_string())
}

/// Describes how blob GETs will be read, following the choice `serve` makes. sendfile cannot
/// encrypt, so with TLS `fastpath: sendfile` reads every blob with mmap.
fn fast_path_summary(readable: &Result<(), String>, mode: FastPathMode, tls: bool) -> String {
    match (readable, mode) {
        (Err(reason), _) => format!("content directory not readable ({reason}): blobs are served through gRPC"),
        (Ok(()), FastPathMode::Off) => "off (fastpath: off): blobs are served through gRPC".to_owned(),
        (Ok(()), FastPathMode::Sendfile) if tls => {
            "mmap: blobs are served from the content directory (fastpath: sendfile, but sendfile cannot encrypt TLS)"
                .to_owned()
        }
        (Ok(()), FastPathMode::Sendfile) => {
            "sendfile: blobs are served from the content directory (plain HTTP/1.1 GETs with sendfile, other reads with mmap)".to_owned()
        }
        (Ok(()), mode) => format!("{}: blobs are served from the content directory", mode.as_str()),
    }
}

fn tls_summary(tls: Option<&TlsConfig>) -> String {
    let Some(tls) = tls else { return "off".to_owned() };
    let minimum = match tls.minimum_version {
        TlsVersion::Tls12 => "tls1.2",
        TlsVersion::Tls13 => "tls1.3",
    };
    let client_certificates = if tls.client_cas.is_empty() { "not required" } else { "required" };
    format!(
        "on (minimum {minimum}, client certificates {client_certificates}; certificate {}, key {})",
        tls.certificate.display(),
        tls.key.display()
    )
}

fn auth_summary(auth: Option<&AuthConfig>, htpasswd_users: Option<usize>) -> String {
    match auth {
        None => "none: anyone who reaches the port may pull, push and delete".to_owned(),
        Some(AuthConfig::Htpasswd { realm, path }) => {
            let users = match htpasswd_users {
                Some(1) => "1 user".to_owned(),
                Some(count) => format!("{count} users"),
                None => "unusable file".to_owned(),
            };
            format!("htpasswd (realm {realm:?}, {users} in {})", path.display())
        }
        Some(AuthConfig::Token(token)) => format!(
            "token (realm {}, service {:?}, issuer {:?})",
            token.realm, token.service, token.issuer
        ),
    }
}

fn debug_summary(debug: Option<&DebugConfig>) -> String {
    let Some(debug) = debug else { return "off".to_owned() };
    match &debug.prometheus_path {
        Some(path) => format!("{} (health and metrics at {path})", debug.addr),
        None => format!("{} (health only, metrics off)", debug.addr),
    }
}

fn locations_summary(base: Option<LocationBase>) -> String {
    match base {
        None => "relative paths (http.relativeurls)".to_owned(),
        Some(LocationBase::Fixed(host)) => format!("absolute, {}://{} (http.host)", host.scheme, host.authority),
        Some(LocationBase::FromRequest { scheme }) => {
            format!("absolute, scheme and host of each request or its forwarding headers, else {scheme}")
        }
    }
}

fn drain_summary(timeout: Duration) -> String {
    if timeout.is_zero() {
        "0s: requests in flight are cut off at shutdown".to_owned()
    } else {
        format!("{}s: requests in flight may finish before exit", timeout.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_over_tls_is_mmap() {
        let summary = fast_path_summary(&Ok(()), FastPathMode::Sendfile, true);
        assert!(summary.starts_with("mmap: "), "{summary}");
        let summary = fast_path_summary(&Ok(()), FastPathMode::Sendfile, false);
        assert!(summary.starts_with("sendfile: "), "{summary}");
        let summary = fast_path_summary(&Ok(()), FastPathMode::IoUring, true);
        assert!(summary.starts_with("iouring: "), "{summary}");
        let summary = fast_path_summary(&Err("denied".to_owned()), FastPathMode::Sendfile, false);
        assert!(summary.contains("through gRPC"), "{summary}");
    }

    #[test]
    fn drain_summary_names_the_timeout() {
        assert!(drain_summary(Duration::ZERO).starts_with("0s: "));
        assert!(drain_summary(Duration::from_millis(1500)).starts_with("1.5s: "));
    }
}
