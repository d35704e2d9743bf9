//! The TLS side of a `rediss://` remote: the redis client built with the CA and client
//! certificate files of [`RemoteTls`], and failures explained in terms of those settings.
//!
//! Nothing here runs unless the configured URL is `rediss://` and a lookup reached the network
//! (an L1 miss): the files are read, and rustls (ring provider) set up, only when the first
//! connection is made. Which roots are trusted without a CA file is fixed at build time: the
//! bundled Mozilla roots (webpki-roots), so a static binary in a scratch container verifies the
//! same way as on a full distribution and no system store is read (see README).

use crate::config::{ENV_REMOTE_CA_FILE, ENV_REMOTE_CLIENT_CERT, ENV_REMOTE_CLIENT_KEY, RemoteTls};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// Largest certificate or key file read: a CA bundle of every public root is ~250 KB.
const MAX_PEM_BYTES: u64 = 4 << 20;

/// A redis client for the `rediss://` `url` under `tls`. `Err` is a message naming the
/// setting at fault (an unreadable or malformed file).
pub fn client(url: &str, tls: &RemoteTls) -> Result<redis::Client, String> {
    let root_cert = match &tls.ca_file {
        Some(p) => Some(read_pem(ENV_REMOTE_CA_FILE, p, "CERTIFICATE")?),
        None => None,
    };
    let client_tls = match &tls.client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read_pem(ENV_REMOTE_CLIENT_CERT, cert, "CERTIFICATE")?,
            client_key: read_pem(ENV_REMOTE_CLIENT_KEY, key, "PRIVATE KEY")?,
        }),
        None => None,
    };
    // redis-rs's own switch for "verify nothing" is this URL fragment; users cannot write it
    // (config refuses fragments), only TRIFECTA_AST_REMOTE_TLS_INSECURE adds it.
    let url = if tls.insecure {
        format!("{url}#insecure")
    } else {
        url.to_string()
    };
    let certs = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    redis::Client::build_with_tls(url.as_str(), certs).map_err(|e| format!("TLS setup: {e}"))
}

/// Read a PEM file named by `setting`: a regular file (opened non-blocking, so a FIFO cannot
/// hang the process), at most [`MAX_PEM_BYTES`], holding at least one `-----BEGIN …{label}`.
fn read_pem(setting: &str, path: &str, label: &str) -> Result<Vec<u8>, String> {
    let fail = |why: String| format!("{setting}={path}: {why}");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    let meta = f.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut pem = Vec::new();
    f.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| fail(e.to_string()))?;
    if pem.len() as u64 > MAX_PEM_BYTES {
        return Err(fail(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    // `label` ends the header: `-----BEGIN PRIVATE KEY-----`, `-----BEGIN EC PRIVATE KEY-----`.
    let marker = format!("{label}-----");
    let has_block = memchr::memmem::find(&pem, b"-----BEGIN ").is_some()
        && memchr::memmem::find(&pem, marker.as_bytes()).is_some();
    if !has_block {
        return Err(fail(format!("no PEM {label} block in it")));
    }
    Ok(pem)
}

/// `message` of a failed TLS connect, with what to do about the common certificate errors.
pub fn explain(message: &str, tls: &RemoteTls) -> String {
    let hint = if message.contains("UnknownIssuer") {
        match &tls.ca_file {
            Some(p) => format!(
                "the server's certificate does not chain to the CA in {ENV_REMOTE_CA_FILE}={p}"
            ),
            None => format!(
                "the server's certificate does not chain to a public root: set \
                 {ENV_REMOTE_CA_FILE} to its CA"
            ),
        }
    } else if message.contains("Expired") || message.contains("NotValidYet") {
        "the server's certificate is outside its validity dates (or this machine's clock is)".into()
    } else if message.contains("not valid for name") {
        "the host in TRIFECTA_AST_REMOTE is not a name the server's certificate is for".into()
    } else if message.contains("CertificateRequired") || message.contains("certificate required") {
        format!(
            "the server requires a client certificate: set {ENV_REMOTE_CLIENT_CERT} and {ENV_REMOTE_CLIENT_KEY}"
        )
    } else {
        return format!("rediss:// connect failed: {message}");
    };
    format!("rediss:// connect failed: {message} ({hint})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_files_are_checked_before_use() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let p = good.to_str().unwrap();
        assert!(read_pem("X", p, "CERTIFICATE").is_ok());
        // A key file is not a certificate.
        let e = read_pem("X", p, "PRIVATE KEY").unwrap_err();
        assert!(e.contains("no PEM PRIVATE KEY block"), "{e}");
        let junk = d.path().join("junk");
        std::fs::write(&junk, "hello").unwrap();
        assert!(read_pem("X", junk.to_str().unwrap(), "CERTIFICATE").is_err());
        let e = read_pem("X", d.path().to_str().unwrap(), "CERTIFICATE").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let missing = d.path().join("missing");
        let e = read_pem(
            "TRIFECTA_AST_REMOTE_CA_FILE",
            missing.to_str().unwrap(),
            "CERTIFICATE",
        )
        .unwrap_err();
        assert!(e.starts_with("TRIFECTA_AST_REMOTE_CA_FILE="), "{e}");
    }

    #[test]
    fn failures_say_which_setting_to_look_at_and_only_when_it_applies() {
        let none = RemoteTls::default();
        let unknown = "invalid peer certificate: UnknownIssuer";
        assert!(explain(unknown, &none).ends_with("set TRIFECTA_AST_REMOTE_CA_FILE to its CA)"));
        let with_ca = RemoteTls {
            ca_file: Some("/etc/ca.pem".into()),
            ..RemoteTls::default()
        };
        assert!(
            explain(unknown, &with_ca).contains("CA in TRIFECTA_AST_REMOTE_CA_FILE=/etc/ca.pem")
        );
        let alert = "received fatal alert: CertificateRequired";
        assert!(explain(alert, &none).contains("TRIFECTA_AST_REMOTE_CLIENT_CERT"));
        // A failure that is not about certificates gets no certificate hint.
        let auth = "WRONGPASS: invalid username-password pair";
        assert_eq!(
            explain(auth, &with_ca),
            "rediss:// connect failed: WRONGPASS: invalid username-password pair"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = read_pem("X", fifo.to_str().unwrap(), "CERTIFICATE").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
