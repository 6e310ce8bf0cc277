//! The book text store: books' full texts, kept outside the event log and addressed by their
//! SHA-256.
//!
//! A novel is 150 kB to 1.2 MB of text. In an event it would be read by every replay of its book's
//! stream and copied into every read model rebuild, so the log records only what identifies the
//! text (`BookTextSet`: hash, size, source) and the bytes live here, content-addressed: the same
//! text attached twice (or to two books) is stored once, and what is read back is checked against
//! the hash the event recorded.
//!
//! Two backends behind the `object_store` crate, the same code path for both:
//! - a local directory (the embedded default, `<data_dir>/texts`), each text written to a staging
//!   file and renamed into place by `object_store`, then fsynced here with its directory, so a
//!   stored text survives a crash once `put` returns;
//! - S3-compatible object storage (AWS S3, MinIO, Ceph, …) when scaled, where a successful PUT is
//!   durable by the service's own guarantee.
//!
//! Texts are written before the event that refers to them: a crash in between leaves an unreferenced
//! object (harmless; the same upload later finds it), never an event whose text is missing.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

pub mod testing;

/// Why the text store failed.
#[derive(Debug, thiserror::Error)]
pub enum TextStoreError {
    /// The store could not be set up from its configuration.
    #[error("text store configuration: {0}")]
    Config(String),
    /// The backend refused or failed an operation.
    #[error("text store {op} of {key} failed: {source}")]
    Backend {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// Making a local text durable failed.
    #[error("text store {op} of {path} failed: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes read back do not hash to the address they were read from.
    #[error("stored text {sha256} is corrupt: its bytes hash to {actual}")]
    Corrupt { sha256: String, actual: String },
    /// Not a SHA-256 in lowercase hex.
    #[error("{0:?} is not a SHA-256 in lowercase hex")]
    BadHash(String),
}

/// Where an S3-compatible store is and how to reach it. Credentials not given here come from the
/// environment the AWS way (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, an
/// instance profile).
#[derive(Clone, Default)]
pub struct S3Location {
    pub bucket: String,
    /// A key prefix inside the bucket (e.g. `quire/texts`); empty for the bucket's root.
    pub prefix: String,
    /// The service's URL, for S3-compatible stores other than AWS (e.g. `http://127.0.0.1:9000`).
    /// Requests are then path-style (`endpoint/bucket/key`), as such stores expect.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow `http://` endpoints (a store on the same host or private network).
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Location")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "redacted"),
            )
            .finish()
    }
}

/// A text as stored: its address and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredText {
    /// The SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    pub bytes: u64,
    /// Whether this call wrote it (false: the same text was stored before).
    pub written: bool,
}

/// The book text store. Cheap to clone.
#[derive(Clone)]
pub struct TextStore {
    objects: Arc<dyn ObjectStore>,
    /// The directory of a local store, whose writes are fsynced here.
    local_root: Option<PathBuf>,
    /// Where the store is, for logs and `/status` (no credentials).
    location: String,
}

impl std::fmt::Debug for TextStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextStore")
            .field("location", &self.location)
            .finish()
    }
}

impl TextStore {
    /// A store in the directory `dir`, created if missing.
    pub fn local(dir: impl Into<PathBuf>) -> Result<Self, TextStoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| TextStoreError::Io {
            op: "creating",
            path: dir.clone(),
            source,
        })?;
        // object_store needs the absolute path; a relative data_dir stays usable.
        let dir = dir.canonicalize().map_err(|source| TextStoreError::Io {
            op: "resolving",
            path: dir.clone(),
            source,
        })?;
        let objects = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| TextStoreError::Config(format!("{}: {e}", dir.display())))?;
        Ok(Self {
            objects: Arc::new(objects),
            location: format!("file://{}", dir.display()),
            local_root: Some(dir),
        })
    }

    /// A store in an S3-compatible bucket.
    pub fn s3(at: &S3Location) -> Result<Self, TextStoreError> {
        if at.bucket.is_empty() {
            return Err(TextStoreError::Config("the bucket name is empty".into()));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&at.bucket)
            .with_allow_http(at.allow_http);
        if let Some(endpoint) = &at.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &at.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &at.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &at.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let s3 = builder
            .build()
            .map_err(|e| TextStoreError::Config(format!("bucket {}: {e}", at.bucket)))?;
        let prefix = at.prefix.trim_matches('/');
        let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        let location = match &at.endpoint {
            Some(endpoint) => format!(
                "{}/{}/{prefix}",
                without_credentials(endpoint).trim_end_matches('/'),
                at.bucket
            ),
            None => format!("s3://{}/{prefix}", at.bucket),
        };
        Ok(Self {
            objects,
            local_root: None,
            location: location.trim_end_matches('/').to_owned(),
        })
    }

    /// Where the store is (no credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The SHA-256 of `text` in lowercase hex: the address `put` stores it under.
    pub fn address_of(text: &[u8]) -> String {
        hex(&Sha256::digest(text))
    }

    /// Stores `text` under its SHA-256 and returns the address. A text stored before is not
    /// written again. Once this returns, the text is durable.
    #[tracing::instrument(name = "texts.put", skip_all, fields(bytes = text.len(), location = %self.location))]
    pub async fn put(&self, text: Bytes) -> Result<StoredText, TextStoreError> {
        let bytes = text.len() as u64;
        let sha256 = {
            let text = text.clone();
            tokio::task::spawn_blocking(move || Self::address_of(&text))
                .await
                .expect("hashing does not panic")
        };
        let key = key_of(&sha256);
        match self.objects.head(&key).await {
            Ok(meta) if meta.size == bytes => {
                return Ok(StoredText {
                    sha256,
                    bytes,
                    written: false,
                });
            }
            // A different size under a content address is a torn or foreign object: replace it.
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(TextStoreError::Backend {
                    op: "head",
                    key: key.to_string(),
                    source,
                });
            }
        }
        self.objects
            .put(&key, PutPayload::from_bytes(text))
            .await
            .map_err(|source| TextStoreError::Backend {
                op: "put",
                key: key.to_string(),
                source,
            })?;
        if let Some(root) = &self.local_root {
            sync_local(root, &key).await?;
        }
        Ok(StoredText {
            sha256,
            bytes,
            written: true,
        })
    }

    /// The text stored under `sha256`, checked against it; `None` if there is none.
    #[tracing::instrument(name = "texts.get", skip(self), fields(location = %self.location))]
    pub async fn get(&self, sha256: &str) -> Result<Option<Bytes>, TextStoreError> {
        if !is_sha256(sha256) {
            return Err(TextStoreError::BadHash(sha256.to_owned()));
        }
        let key = key_of(sha256);
        let backend = |op, source| TextStoreError::Backend {
            op,
            key: key.to_string(),
            source,
        };
        let found = match self.objects.get(&key).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(backend("get", source)),
        };
        let text = found.bytes().await.map_err(|e| backend("get", e))?;
        let actual = {
            let text = text.clone();
            tokio::task::spawn_blocking(move || Self::address_of(&text))
                .await
                .expect("hashing does not panic")
        };
        if actual != sha256 {
            return Err(TextStoreError::Corrupt {
                sha256: sha256.to_owned(),
                actual,
            });
        }
        Ok(Some(text))
    }

    /// Whether a text is stored under `sha256`.
    pub async fn contains(&self, sha256: &str) -> Result<bool, TextStoreError> {
        if !is_sha256(sha256) {
            return Err(TextStoreError::BadHash(sha256.to_owned()));
        }
        let key = key_of(sha256);
        match self.objects.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(TextStoreError::Backend {
                op: "head",
                key: key.to_string(),
                source,
            }),
        }
    }
}

/// `url` without a user name or password, for logs.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(an endpoint that is not a URL)".to_owned(),
    }
}

/// Whether `s` is a SHA-256 in lowercase hex.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key of a text: `ab/ab12….txt`, fanned out by the hash's first byte so that no directory
/// (or listing) holds every text.
fn key_of(sha256: &str) -> Path {
    Path::from(format!("{}/{sha256}.txt", &sha256[..2]))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Flushes a text `object_store` wrote under `root` to disk, with the directory entry its rename
/// made: `object_store`'s local backend renames a staging file into place but does not fsync.
async fn sync_local(root: &FsPath, key: &Path) -> Result<(), TextStoreError> {
    let file = root.join(key.as_ref());
    tokio::task::spawn_blocking(move || {
        let sync = |path: &FsPath| {
            std::fs::File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|source| TextStoreError::Io {
                    op: "syncing",
                    path: path.to_owned(),
                    source,
                })
        };
        sync(&file)?;
        let dir = file.parent().expect("a key has a directory");
        sync(dir)?;
        sync(dir.parent().expect("the fan-out directory is in the root"))
    })
    .await
    .expect("syncing does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_sha256_in_lowercase_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            TextStore::address_of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256(&TextStore::address_of(b"")));
        assert!(!is_sha256(&"A".repeat(64)));
        assert!(!is_sha256("abc"));
        assert_eq!(
            key_of(&TextStore::address_of(b"abc")).as_ref(),
            "ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.txt"
        );
    }

    #[test]
    fn locations_never_show_credentials() {
        assert_eq!(
            without_credentials("http://key:secret@127.0.0.1:9000"),
            "http://127.0.0.1:9000/"
        );
    }
}
