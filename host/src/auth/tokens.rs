//! Tokens created through the API: their scopes, their hashes in the store, creation and
//! revocation.
//!
//! A token reads `ign_<id>_<secret>`: the id finds the record, the SHA-256 of the whole token
//! is compared in constant time with the stored one. The secret (256 random bits) is shown
//! once, at creation; only hashes are written, to the store. A `tokens.json` left by an
//! earlier version in the data directory is imported once, then renamed `tokens.json.imported`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use parking_lot::RwLock;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Scope;
use crate::store::{Store, StoreError, TokenRecord};
use crate::task::{NAME_RULE, epoch_ms, is_valid_name};

/// Where earlier versions kept the tokens.
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

/// Why a token was not created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("no token with id {0:?}")]
    NotFound(String),
    #[error("{0} tokens exist already (limits.max_tokens): revoke some first")]
    TooMany(usize),
    #[error("{0}; retry later")]
    Storage(#[from] StoreError),
}

pub struct TokenStore {
    store: Arc<dyn Store>,
    max: usize,
    records: RwLock<BTreeMap<String, TokenRecord>>,
    /// Held while a token is created or revoked, so that the store and the records take
    /// changes in the same order.
    edits: tokio::sync::Mutex<()>,
}

impl TokenStore {
    /// The tokens in the store; those of a `tokens.json` in `data_dir` are imported first.
    pub async fn open(store: Arc<dyn Store>, data_dir: &Path, max: usize) -> anyhow::Result<Self> {
        import_file(store.as_ref(), data_dir).await?;
        let records = store.tokens()?.into_iter().map(|r| (r.id.clone(), r)).collect();
        Ok(Self { store, max, records: RwLock::new(records), edits: tokio::sync::Mutex::new(()) })
    }

    /// The record whose token this is, if any.
    pub fn verify(&self, presented: &str) -> Option<TokenRecord> {
        let id = presented.strip_prefix(PREFIX)?.split('_').next()?;
        let records = self.records.read();
        let record = records.get(id)?;
        let digest = hex::encode(Sha256::digest(presented.as_bytes()));
        bool::from(digest.as_bytes().ct_eq(record.digest.as_bytes())).then(|| record.clone())
    }

    /// Creates a token: its record and the token itself, which is not kept.
    pub async fn create(&self, request: NewToken) -> Result<(TokenRecord, String), TokenError> {
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
            created_at_ms: epoch_ms(SystemTime::now()),
            digest: hex::encode(Sha256::digest(token.as_bytes())),
        };
        let _edit = self.edits.lock().await;
        let count = self.records.read().len();
        if count >= self.max {
            return Err(TokenError::TooMany(count));
        }
        self.store.put_token(record.clone()).await?;
        self.records.write().insert(id, record.clone());
        Ok((record, token))
    }

    /// The record of a live token, by id.
    pub fn get(&self, id: &str) -> Option<TokenRecord> {
        self.records.read().get(id).cloned()
    }

    pub fn list(&self) -> Vec<TokenRecord> {
        let records = self.records.read();
        let mut list: Vec<TokenRecord> = records.values().cloned().collect();
        list.sort_by_key(|r| r.created_at_ms);
        list
    }

    /// Revokes a token at once: the next request carrying it gets 401.
    pub async fn revoke(&self, id: &str) -> Result<TokenRecord, TokenError> {
        let _edit = self.edits.lock().await;
        if !self.records.read().contains_key(id) {
            return Err(TokenError::NotFound(id.to_owned()));
        }
        self.store.delete_token(id.to_owned()).await?;
        let removed = self.records.write().remove(id);
        removed.ok_or_else(|| TokenError::NotFound(id.to_owned()))
    }
}

/// Moves the tokens of an earlier version's `tokens.json` into the store, then renames the
/// file so that it is not imported again (nor revoked tokens brought back).
async fn import_file(store: &dyn Store, data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join(TOKENS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let list: Vec<TokenRecord> = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a valid token file; restore it from a backup or delete it to revoke its tokens",
            path.display()
        )
    })?;
    let count = list.len();
    for record in list {
        store.put_token(record).await?;
    }
    let imported = path.with_extension("json.imported");
    std::fs::rename(&path, &imported)
        .with_context(|| format!("cannot rename {} after importing it", path.display()))?;
    tracing::info!(tokens = count, from = %imported.display(), "tokens imported into the store");
    Ok(())
}

fn validate(scopes: Vec<Scope>, plugins: Vec<String>) -> Result<(BTreeSet<Scope>, BTreeSet<String>), TokenError> {
    let scopes: BTreeSet<Scope> = scopes.into_iter().collect();
    if scopes.is_empty() {
        return Err(TokenError::Invalid("scopes must name at least one of \"admin\", \"read\", \"trigger\"".into()));
    }
    let plugins: BTreeSet<String> = plugins.into_iter().collect();
    match (scopes.contains(&Scope::Trigger), plugins.is_empty()) {
        (true, true) => Err(TokenError::Invalid(
            "a trigger token needs \"plugins\": the plugin names it may run, or [\"*\"] for all".into(),
        )),
        (false, false) => Err(TokenError::Invalid(
            "\"plugins\" applies to the trigger scope only: add \"trigger\" to scopes or drop plugins".into(),
        )),
        _ => {
            if let Some(bad) = plugins.iter().find(|p| p.as_str() != "*" && !is_valid_name(p)) {
                return Err(TokenError::Invalid(format!("{bad:?} is not a plugin name ({NAME_RULE}) nor \"*\"")));
            }
            Ok((scopes, plugins))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::StoreConfig;
    use crate::store::SqliteStore;
    use crate::testing::TempDir;

    async fn open(dir: &Path) -> TokenStore {
        let store = SqliteStore::open(&dir.join("ignareo.db"), &StoreConfig::default(), 10).unwrap();
        TokenStore::open(Arc::new(store), dir, 3).await.unwrap()
    }

    fn new(scopes: &[Scope], plugins: &[&str]) -> NewToken {
        NewToken {
            name: "ci".into(),
            scopes: scopes.to_vec(),
            plugins: plugins.iter().map(std::string::ToString::to_string).collect(),
        }
    }

    #[tokio::test]
    async fn created_tokens_verify_survive_a_reopen_and_die_when_revoked() {
        let temp = TempDir::new();
        let dir = temp.path();
        let tokens = open(dir).await;
        let (record, token) = tokens.create(new(&[Scope::Trigger], &["hello"])).await.unwrap();
        assert_eq!(tokens.verify(&token).unwrap().id, record.id);
        assert!(tokens.verify(&format!("{token}0")).is_none());
        assert!(tokens.verify(&token.replace(&record.id, "0000000000000000")).is_none());
        drop(tokens);
        let stored = std::fs::read(dir.join("ignareo.db")).unwrap();
        let secret = token.rsplit('_').next().unwrap();
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is never written");
        let reopened = open(dir).await;
        assert!(reopened.verify(&token).is_some());
        reopened.revoke(&record.id).await.unwrap();
        assert!(reopened.verify(&token).is_none());
        drop(reopened);
        assert!(open(dir).await.verify(&token).is_none());
    }

    #[tokio::test]
    async fn tokens_of_an_earlier_tokens_file_are_imported_once() {
        let temp = TempDir::new();
        let dir = temp.path();
        let tokens = open(dir).await;
        let (record, token) = tokens.create(new(&[Scope::Read], &[])).await.unwrap();
        drop(tokens);
        std::fs::remove_file(dir.join("ignareo.db")).unwrap();
        std::fs::write(dir.join(TOKENS_FILE), serde_json::to_vec(&[&record]).unwrap()).unwrap();
        let imported = open(dir).await;
        assert_eq!(imported.verify(&token).unwrap().id, record.id);
        assert!(!dir.join(TOKENS_FILE).exists() && dir.join("tokens.json.imported").exists());
        imported.revoke(&record.id).await.unwrap();
        drop(imported);
        assert!(open(dir).await.verify(&token).is_none(), "a revoked token does not come back from the old file");
    }

    #[tokio::test]
    async fn bad_requests_and_the_cap_are_refused() {
        let temp = TempDir::new();
        let dir = temp.path();
        let tokens = open(dir).await;
        assert!(matches!(tokens.create(new(&[], &[])).await, Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.create(new(&[Scope::Trigger], &[])).await, Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.create(new(&[Scope::Read], &["hello"])).await, Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.create(new(&[Scope::Trigger], &["../etc"])).await, Err(TokenError::Invalid(_))));
        for _ in 0..3 {
            tokens.create(new(&[Scope::Read], &[])).await.unwrap();
        }
        assert!(matches!(tokens.create(new(&[Scope::Read], &[])).await, Err(TokenError::TooMany(3))));
        assert!(matches!(tokens.revoke("nope").await, Err(TokenError::NotFound(_))));
    }
}
