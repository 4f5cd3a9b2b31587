//! Tokens created through the API: their scopes, their hashes on disk, creation and revocation.
//!
//! A token reads `ign_<id>_<secret>`: the id finds the record, the SHA-256 of the whole token
//! is compared in constant time with the stored one. The secret (256 random bits) is shown
//! once, at creation; only hashes are written, to `<data-dir>/tokens.json` (mode 0600,
//! replaced by write-then-rename so a crash never leaves half a file).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Scope, Scopes};
use crate::registry::is_valid_plugin_name;

const TOKENS_FILE: &str = "tokens.json";
const PREFIX: &str = "ign_";
const MAX_NAME_CHARS: usize = 64;

/// What a caller asks for when creating a token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A label for people: who or what uses the token (1-64 printable characters).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// `admin`, `read` and/or `trigger`.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// Plugins a `trigger` token may run (`"*"` for all); required with `trigger`, refused without.
    #[serde(default)]
    pub plugins: Vec<String>,
}

/// A stored token, without its secret.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub plugins: BTreeSet<String>,
    pub created_at_ms: u64,
    /// SHA-256 of the whole token, hex.
    #[serde(rename = "sha256")]
    #[schema(rename = "sha256")]
    digest: String,
}

impl TokenRecord {
    pub fn scopes(&self) -> Scopes {
        Scopes::of(&self.scopes, &self.plugins)
    }
}

/// Why a token was not created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("no token with id {0:?}")]
    NotFound(String),
    #[error("{0} tokens exist already (limits.max_tokens): revoke some first")]
    TooMany(usize),
    #[error("cannot store the tokens: {0:#}")]
    Storage(anyhow::Error),
}

pub struct TokenStore {
    path: PathBuf,
    max: usize,
    records: RwLock<BTreeMap<String, TokenRecord>>,
}

impl TokenStore {
    pub fn open(data_dir: &Path, max: usize) -> anyhow::Result<Self> {
        let path = data_dir.join(TOKENS_FILE);
        let records = match std::fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<TokenRecord> = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not a valid token file; restore it from a backup or delete it to revoke every token", path.display()))?;
                list.into_iter().map(|r| (r.id.clone(), r)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Self { path, max, records: RwLock::new(records) })
    }

    /// The record whose token this is, if any.
    pub fn verify(&self, presented: &str) -> Option<TokenRecord> {
        let id = presented.strip_prefix(PREFIX)?.split('_').next()?;
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        let record = records.get(id)?;
        let digest = hex::encode(Sha256::digest(presented.as_bytes()));
        bool::from(digest.as_bytes().ct_eq(record.digest.as_bytes())).then(|| record.clone())
    }

    /// Creates a token: its record and the token itself, which is not kept.
    pub fn create(&self, request: NewToken) -> Result<(TokenRecord, String), TokenError> {
        let (scopes, plugins) = validate(request.scopes, request.plugins)?;
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(TokenError::Invalid(format!("name must be 1-{MAX_NAME_CHARS} printable characters")));
        }
        let id = hex::encode(rand::random::<[u8; 8]>());
        let token = format!("{PREFIX}{id}_{}", hex::encode(rand::random::<[u8; 32]>()));
        let record = TokenRecord {
            id: id.clone(),
            name,
            scopes,
            plugins,
            created_at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            digest: hex::encode(Sha256::digest(token.as_bytes())),
        };
        let mut records = self.records.write().unwrap_or_else(|e| e.into_inner());
        if records.len() >= self.max {
            return Err(TokenError::TooMany(records.len()));
        }
        let mut next = records.clone();
        next.insert(id, record.clone());
        self.save(&next)?;
        *records = next;
        Ok((record, token))
    }

    pub fn list(&self) -> Vec<TokenRecord> {
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<TokenRecord> = records.values().cloned().collect();
        list.sort_by_key(|r| r.created_at_ms);
        list
    }

    /// Revokes a token at once: the next request carrying it gets 401.
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, TokenError> {
        let mut records = self.records.write().unwrap_or_else(|e| e.into_inner());
        let mut next = records.clone();
        let record = next.remove(id).ok_or_else(|| TokenError::NotFound(id.to_owned()))?;
        self.save(&next)?;
        *records = next;
        Ok(record)
    }

    fn save(&self, records: &BTreeMap<String, TokenRecord>) -> Result<(), TokenError> {
        let list: Vec<&TokenRecord> = records.values().collect();
        let bytes = serde_json::to_vec_pretty(&list).map_err(|e| TokenError::Storage(e.into()))?;
        write_private_atomic(&self.path, &bytes).map_err(TokenError::Storage)
    }
}

fn validate(scopes: Vec<Scope>, plugins: Vec<String>) -> Result<(BTreeSet<Scope>, BTreeSet<String>), TokenError> {
    let scopes: BTreeSet<Scope> = scopes.into_iter().collect();
    if scopes.is_empty() {
        return Err(TokenError::Invalid("scopes must name at least one of \"admin\", \"read\", \"trigger\"".into()));
    }
    let plugins: BTreeSet<String> = plugins.into_iter().collect();
    match (scopes.contains(&Scope::Trigger), plugins.is_empty()) {
        (true, true) => Err(TokenError::Invalid("a trigger token needs \"plugins\": the plugin names it may run, or [\"*\"] for all".into())),
        (false, false) => Err(TokenError::Invalid("\"plugins\" applies to the trigger scope only: add \"trigger\" to scopes or drop plugins".into())),
        _ => {
            if let Some(bad) = plugins.iter().find(|p| p.as_str() != "*" && !is_valid_plugin_name(p)) {
                return Err(TokenError::Invalid(format!("{bad:?} is not a plugin name (1-64 of a-z, 0-9, '-', '_') nor \"*\"")));
            }
            Ok((scopes, plugins))
        }
    }
}

fn write_private_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (TokenStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ignareo-tokens-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        (TokenStore::open(&dir, 3).unwrap(), dir)
    }

    fn new(scopes: &[Scope], plugins: &[&str]) -> NewToken {
        NewToken { name: "ci".into(), scopes: scopes.to_vec(), plugins: plugins.iter().map(|p| p.to_string()).collect() }
    }

    #[test]
    fn created_tokens_verify_survive_a_reopen_and_die_when_revoked() {
        let (tokens, dir) = store();
        let (record, token) = tokens.create(new(&[Scope::Trigger], &["hello"])).unwrap();
        assert_eq!(tokens.verify(&token).unwrap().id, record.id);
        assert!(tokens.verify(&format!("{token}0")).is_none());
        assert!(tokens.verify(&token.replace(&record.id, "0000000000000000")).is_none());
        let stored = std::fs::read_to_string(dir.join(TOKENS_FILE)).unwrap();
        assert!(!stored.contains(token.rsplit('_').next().unwrap()), "the secret is never written");
        let reopened = TokenStore::open(&dir, 3).unwrap();
        assert!(reopened.verify(&token).is_some());
        reopened.revoke(&record.id).unwrap();
        assert!(reopened.verify(&token).is_none());
        assert!(TokenStore::open(&dir, 3).unwrap().verify(&token).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_requests_and_the_cap_are_refused() {
        let (tokens, dir) = store();
        assert!(matches!(tokens.create(new(&[], &[])), Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.create(new(&[Scope::Trigger], &[])), Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.create(new(&[Scope::Read], &["hello"])), Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.create(new(&[Scope::Trigger], &["../etc"])), Err(TokenError::Invalid(_))));
        for _ in 0..3 {
            tokens.create(new(&[Scope::Read], &[])).unwrap();
        }
        assert!(matches!(tokens.create(new(&[Scope::Read], &[])), Err(TokenError::TooMany(3))));
        assert!(matches!(tokens.revoke("nope"), Err(TokenError::NotFound(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
