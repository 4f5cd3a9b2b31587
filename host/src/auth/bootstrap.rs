//! The bootstrap admin token: the one token that exists before any other can be created.
//!
//! It comes from the configuration, or is generated at first start and kept in the data
//! directory (mode 0600). Only its SHA-256 is held in memory, and presented tokens are
//! compared in constant time. It cannot be revoked through the API: change the
//! configuration (or delete the file) and restart.

use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const TOKEN_FILE: &str = "admin-token";

pub struct AdminToken {
    digest: [u8; 32],
}

/// Where the token came from, so the server can tell the operator once.
pub enum TokenSource {
    Configured,
    Stored,
    /// Freshly generated: print it, it is not shown again.
    Generated(String),
}

impl AdminToken {
    pub fn resolve(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<(Self, TokenSource)> {
        if let Some(token) = configured {
            return Ok((Self::new(token.trim()), TokenSource::Configured));
        }
        let path = data_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => Ok((Self::new(token.trim()), TokenSource::Stored)),
            Ok(_) => {
                anyhow::bail!("{} is empty: delete it to generate a new token, or set IGNAREO_TOKEN", path.display())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = hex::encode(rand::random::<[u8; 32]>());
                write_private(&path, &token)
                    .with_context(|| format!("cannot store the admin token in {}", path.display()))?;
                Ok((Self::new(&token), TokenSource::Generated(token)))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn new(token: &str) -> Self {
        Self { digest: Sha256::digest(token.as_bytes()).into() }
    }

    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn generated_once_then_reused() {
        let dir = TempDir::new();
        let (first, source) = AdminToken::resolve(None, dir.path()).unwrap();
        let TokenSource::Generated(token) = source else { panic!("expected a generated token") };
        let (second, source) = AdminToken::resolve(None, dir.path()).unwrap();
        assert!(matches!(source, TokenSource::Stored));
        assert!(first.verify(&token) && second.verify(&token));
        assert!(!second.verify("wrong"));
    }
}
