//! Blobs in an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, moto), shared
//! by every controller that points at it. Objects are named
//! `<prefix>/<first two hex>/<key>`; requests go through the `object_store`
//! crate, which signs them and retries transient failures.

use super::blob_store::{BlobStore, ByteStream, is_valid_key};
use crate::config::S3Config;
use anyhow::Context as _;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

/// Files up to this size go up in one request; larger ones in parts of it.
const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    config: S3Config,
}

impl S3BlobStore {
    /// Connects and checks the bucket answers, so a wrong name, endpoint or
    /// credential fails at startup with a message rather than at the first
    /// upload.
    pub async fn connect(config: &S3Config) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .with_context(|| format!("configuring the S3 bucket `{}`", config.bucket))?;
        let s3 = S3BlobStore {
            store: Arc::new(store),
            config: config.clone(),
        };
        // Listing (not a HEAD of some object) tells a missing bucket from a
        // missing object.
        let probe = s3.store.list(Some(&ObjectPath::from("probe"))).next().await;
        match probe {
            None | Some(Ok(_)) => Ok(s3),
            Some(Err(e)) => Err(anyhow::anyhow!(
                "the S3 bucket `{}` at {} did not answer as expected: {e}. Check the bucket exists, \
                 the endpoint (--s3-endpoint) and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                config.bucket,
                config.endpoint.as_deref().unwrap_or("AWS")
            )),
        }
    }

    fn object_path(&self, key: &str) -> ObjectPath {
        let shard = key.get(..2).unwrap_or("xx");
        if self.config.prefix.is_empty() {
            ObjectPath::from(format!("{shard}/{key}"))
        } else {
            ObjectPath::from(format!("{}/{shard}/{key}", self.config.prefix))
        }
    }

    fn checked_path(&self, key: &str) -> std::io::Result<ObjectPath> {
        if !is_valid_key(key) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{key}` is not a blob key"),
            ));
        }
        Ok(self.object_path(key))
    }
}

fn io_error(error: object_store::Error) -> std::io::Error {
    match error {
        object_store::Error::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, error),
        other => std::io::Error::other(other),
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn put_file(&self, key: &str, file: &Path) -> std::io::Result<()> {
        let path = self.checked_path(key)?;
        let mut file = tokio::fs::File::open(file).await?;
        let size = file.metadata().await?.len();
        if size <= PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).await?;
            return self.put_bytes(key, Bytes::from(bytes)).await;
        }
        // Large files stream up in parts; memory holds a few parts at most.
        let upload = self.store.put_multipart(&path).await.map_err(io_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(io_error)?;
            writer.write(&buffer[..n]);
        }
        writer.finish().await.map_err(io_error)?;
        Ok(())
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> std::io::Result<()> {
        let path = self.checked_path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(io_error)?;
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> std::io::Result<Option<ByteStream>> {
        let path = self.checked_path(key)?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        match self.store.get_opts(&path, options).await {
            Ok(result) => Ok(Some(result.into_stream().map_err(io_error).boxed())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn delete(&self, key: &str) -> std::io::Result<()> {
        let path = self.checked_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn keys_older_than(&self, cutoff: SystemTime) -> std::io::Result<Vec<String>> {
        let prefix = (!self.config.prefix.is_empty()).then(|| ObjectPath::from(self.config.prefix.as_str()));
        let mut listing = self.store.list(prefix.as_ref());
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io_error)?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if is_valid_key(name) && SystemTime::from(meta.last_modified) < cutoff {
                keys.push(name.to_owned());
            }
        }
        Ok(keys)
    }

    fn describe(&self) -> String {
        format!(
            "S3 bucket `{}`{} at {}",
            self.config.bucket,
            if self.config.prefix.is_empty() {
                String::new()
            } else {
                format!(" (prefix `{}`)", self.config.prefix)
            },
            self.config.endpoint.as_deref().unwrap_or("AWS")
        )
    }

    async fn check_reachable(&self) -> std::io::Result<()> {
        match self.store.list(Some(&ObjectPath::from("probe"))).next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(io_error(e)),
        }
    }
}
