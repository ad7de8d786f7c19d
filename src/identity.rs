//! The server's identity (certificate chain and key, PEM) and the
//! development pair: a throw-away CA and a `localhost` leaf signed by it.
//! The TLS sessions and the server take it; `h2lab certs` ([`crate::certs`])
//! writes a fresh pair with it.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// File names that `h2lab certs` writes and that `certs/` holds.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "localhost.pem";
pub const KEY_FILE: &str = "localhost-key.pem";

/// The names the development leaf is valid for.
pub const DEV_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The committed development pair, compiled in so that a TLS server starts
/// from any directory without `--cert`/`--key`.
pub const DEV_CA_PEM: &[u8] = include_bytes!("../certs/ca.pem");
const DEV_CERT_PEM: &[u8] = include_bytes!("../certs/localhost.pem");
const DEV_KEY_PEM: &[u8] = include_bytes!("../certs/localhost-key.pem");

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} exists already (pass --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("--cert and --key go together: give both or neither")]
    HalfPair,
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain (leaf first) and its private key, both PEM.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Identity")
            .field("cert_pem_len", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The compiled-in development pair for `localhost`, `127.0.0.1`, `::1`.
    pub fn development() -> Self {
        Self {
            cert_pem: DEV_CERT_PEM.to_vec(),
            key_pem: DEV_KEY_PEM.to_vec(),
        }
    }

    /// Reads a pair from PEM files; with neither path, the development pair.
    pub fn load(cert: Option<&Path>, key: Option<&Path>) -> Result<Self, CertError> {
        let read = |what, path: &Path| {
            fs::read(path).map_err(|source| CertError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        match (cert, key) {
            (None, None) => Ok(Self::development()),
            (Some(cert), Some(key)) => Ok(Self {
                cert_pem: read("certificate", cert)?,
                key_pem: read("private key", key)?,
            }),
            _ => Err(CertError::HalfPair),
        }
    }
}

/// The PEM texts of a freshly generated development pair.
pub struct DevPair {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a new CA and a `localhost` leaf (ECDSA P-256) signed by it.
/// The CA's key is not kept: the pair is for development only.
pub fn generate() -> Result<DevPair, CertError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "h2lab development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut params = CertificateParams::new(DEV_NAMES.map(String::from).to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let leaf = params.signed_by(&key, &ca)?;
    Ok(DevPair {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes a fresh pair into `dir` (created if needed) and returns the paths
/// written. Existing files are kept unless `force`.
pub fn write_pair(dir: &Path, force: bool) -> Result<Vec<PathBuf>, CertError> {
    let paths: Vec<PathBuf> = [CA_FILE, CERT_FILE, KEY_FILE]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    if !force {
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            return Err(CertError::Exists(p.clone()));
        }
    }
    let pair = generate()?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CertError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(write_err(dir))?;
    for (path, text) in paths
        .iter()
        .zip([&pair.ca_pem, &pair.cert_pem, &pair.key_pem])
    {
        fs::write(path, text).map_err(write_err(path))?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_pair_is_refused() {
        let p = Path::new("x.pem");
        assert!(matches!(
            Identity::load(Some(p), None),
            Err(CertError::HalfPair)
        ));
        assert!(matches!(
            Identity::load(None, Some(p)),
            Err(CertError::HalfPair)
        ));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Identity::load(Some(Path::new("/nonexistent/c.pem")), Some(Path::new("k")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("certificate /nonexistent/c.pem"), "{err}");
    }

    #[test]
    fn generated_pair_is_pem() {
        let pair = generate().unwrap();
        assert!(pair.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
