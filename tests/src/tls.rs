//! Certificates for TLS-only test servers, made with Debian's `openssl`
//! command: a certificate authority and a server certificate it signed for
//! `localhost`, `127.0.0.1` and `::1`.
//!
//! Every [`TestCa`] is a new authority, so a second one stands for "a CA the
//! client does not trust".

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::util::{find_binary, random_string};

/// A fresh certificate authority and a server certificate it issued, as PEM
/// files in a temporary directory (removed on drop).
#[derive(Debug)]
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// Makes a new CA (P-256, valid two days) and a server certificate for
    /// `localhost`, `127.0.0.1` and `::1` signed by it.
    ///
    /// # Panics
    ///
    /// Panics, naming the Debian package, when `openssl` is not installed,
    /// and when a command fails.
    pub fn generate() -> Self {
        let openssl = find_binary("openssl", &[Path::new("/usr/bin")]).unwrap_or_else(|| {
            panic!("openssl not found: install the Debian package `openssl` (apt-get install openssl)")
        });
        let dir = tempfile::Builder::new().prefix("test-ca-").tempdir().expect("cannot create a directory for certs");
        let run = |args: &[&str]| {
            let output = Command::new(&openssl)
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", openssl.display()));
            assert!(output.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        };
        // A name of its own: another CA's certificates must not even claim it
        // as their issuer.
        let subject = format!("/CN=Scalelite test CA {}", random_string(12, b"0123456789abcdef"));
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run(&[
            &["req", "-x509"][..],
            &key,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", &subject],
            &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat());
        run(&[&["req"][..], &key, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat());
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("cannot write server.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        Self { dir }
    }

    /// The CA certificate (PEM): what a client must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM), for `localhost`, `127.0.0.1`, `::1`.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server certificate's private key (PEM, unencrypted).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_ca_and_a_server_certificate() {
        let ca = TestCa::generate();
        for file in [ca.ca_file(), ca.cert_file(), ca.key_file()] {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.starts_with("-----BEGIN"), "{}: {text}", file.display());
        }
        let other = TestCa::generate();
        assert_ne!(std::fs::read(ca.ca_file()).unwrap(), std::fs::read(other.ca_file()).unwrap());
    }
}
