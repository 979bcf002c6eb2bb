//! Private keys, each read and decrypted once per run however many hosts use it (decrypting an
//! OpenSSH key runs bcrypt-pbkdf, which is deliberately slow).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh::keys::PrivateKey;

use super::error::SshError;
use super::secret::Secret;

#[derive(Debug, Default)]
pub struct KeyRing {
    passphrase: Option<Secret>,
    loaded: Mutex<HashMap<PathBuf, Arc<PrivateKey>>>,
}

impl KeyRing {
    /// `passphrase` decrypts every encrypted key (ed25519, ecdsa and rsa alike).
    pub fn new(passphrase: Option<Secret>) -> Self {
        KeyRing {
            passphrase,
            loaded: Mutex::default(),
        }
    }

    /// The key at `path`, loading it on first use.
    pub fn load(&self, path: &Path) -> Result<Arc<PrivateKey>, SshError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = loaded.get(path) {
            return Ok(key.clone());
        }
        let passphrase = self.passphrase.as_ref().map(Secret::expose);
        let key = russh::keys::load_secret_key(path, passphrase).map_err(|e| {
            let reason = match e {
                russh::keys::Error::KeyIsEncrypted => "it is encrypted; give its passphrase \
                    (KINIT_SSH_PASSPHRASE, or run from a terminal to be asked), or load it into \
                    ssh-agent"
                    .to_string(),
                russh::keys::Error::IO(io) => io.to_string(),
                other if passphrase.is_some() => format!("{other} (wrong passphrase?)"),
                other => other.to_string(),
            };
            SshError::KeyLoad {
                path: path.to_path_buf(),
                reason,
            }
        })?;
        let key = Arc::new(key);
        loaded.insert(path.to_path_buf(), key.clone());
        Ok(key)
    }
}

/// Whether the key at `path` needs a passphrase (so a command can ask before any host is
/// contacted). Unreadable files answer false: loading reports them properly later.
pub fn is_encrypted(path: &Path) -> bool {
    matches!(
        russh::keys::load_secret_key(path, None),
        Err(russh::keys::Error::KeyIsEncrypted)
    )
}
