//! Recordings in an S3-compatible bucket (`S3_RECORDING`), Scalelite's
//! layout: `[<tenant prefix>]published/<format>/<record_id>/<file>` or
//! `…unpublished/…`. Requests are signed with `rusty-s3` (sans-IO, `SigV4`
//! presigned URLs) and sent with the workspace's hyper client; every request
//! is bounded in time and retried on transport errors, 5xx and 429.
//!
//! Uploads read a file in parts of at most [`PART_SIZE`] bytes (multipart
//! upload above that), so memory stays bounded whatever the file size.
//! Moves copy objects server-side: one `CopyObject` up to the single-copy
//! limit (`S3_SINGLE_COPY_LIMIT_MB`, S3's 5 GiB), a multipart copy
//! (`UploadPartCopy` of byte ranges) above it. A multipart upload or copy
//! that fails is aborted. Answers are read with the bounded
//! [`scalelite_core::xml`] parser; an `<Error>` document in a 200 answer
//! is a failure.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use rusty_s3::actions::{ListObjectsV2, ObjectIdentifier};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use scalelite_bbb_client::{HttpsClient, https_client};
use scalelite_core::config::{RecordingConfig, S3Config};
use tokio::io::AsyncReadExt;
use tracing::{error, warn};

mod credentials;
pub use credentials::REFRESH_MARGIN;

/// Files above this size go up in parts of this size (S3 allows 10 000
/// parts: 160 GB per file).
pub const PART_SIZE: usize = 16 * 1024 * 1024;
/// How long one request may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The slowest server-side copy rate waited for: a copy request may take
/// [`REQUEST_TIMEOUT`] plus its bytes at this rate.
const MIN_COPY_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;
/// S3's most parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Parts of one multipart copy copied at once.
const COPY_CONCURRENCY: usize = 4;
/// Headers of an object a multipart copy carries over to the copy (what a
/// `CopyObject` keeps by default), besides `x-amz-meta-*`.
const CARRIED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "content-type"];
/// `x-amz-meta-*` headers carried over at most.
const MAX_CARRIED_META: usize = 64;
/// How long a presigned request of ours stays valid (it is sent at once).
const SIGN_TTL: Duration = Duration::from_secs(600);
/// Attempts per request (transport errors, 5xx and 429 are retried).
const ATTEMPTS: u32 = 4;
/// Largest response body read (listings, errors).
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Keys listed under one recording prefix at most (a safety bound).
const MAX_LISTED_KEYS: usize = 1_000_000;
/// Formats that play inline; files of other formats are downloads
/// (`Content-Disposition: attachment` on the presigned URL).
const INLINE_FORMATS: [&str; 3] = ["presentation", "video", "screenshare"];

/// A failed bucket operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// The request could not be sent or timed out (after retries).
    #[error("S3 request {0}: {1}")]
    Transport(&'static str, String),
    /// The bucket answered an error status.
    #[error("S3 request {0}: HTTP {1}: {2}")]
    Status(&'static str, u16, String),
    /// A local file could not be read.
    #[error("reading {0}: {1}")]
    File(PathBuf, io::Error),
    /// An answer could not be understood.
    #[error("S3 request {0}: unexpected answer: {1}")]
    Answer(&'static str, String),
    /// No credentials to sign with (the role's could not be fetched).
    #[error("S3 credentials: {0}")]
    Credentials(String),
}

impl From<S3Error> for io::Error {
    fn from(e: S3Error) -> Self {
        io::Error::other(e)
    }
}

/// The bucket recordings live in, shared (cheap to clone).
#[derive(Clone)]
pub struct S3Storage {
    inner: Arc<Inner>,
}

struct Inner {
    bucket: Bucket,
    credentials: credentials::Provider,
    client: HttpsClient,
    presigned_ttl: Duration,
    tenant_prefix: Option<String>,
    /// Objects above this size are copied in parts.
    single_copy_limit: u64,
    /// The part size of a multipart copy.
    copy_part_size: u64,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage").field("bucket", &self.inner.bucket.name()).finish_non_exhaustive()
    }
}

impl S3Storage {
    /// The bucket of `S3_RECORDING`, `None` when it is off. The settings
    /// were checked when the configuration was read; a bucket that still
    /// cannot be addressed is logged and left off.
    pub fn from_recordings(config: &RecordingConfig) -> Option<Self> {
        let s3 = config.s3.as_ref()?;
        Self::new(s3).map_err(|e| error!(error = %e, "S3_RECORDING: the bucket cannot be used")).ok()
    }

    /// A client for the configured bucket.
    pub fn new(config: &S3Config) -> Result<Self, String> {
        let endpoint = config.endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region));
        let endpoint = endpoint.parse().map_err(|e| format!("S3 endpoint {endpoint:?}: {e}"))?;
        let style = if config.path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = Bucket::new(endpoint, style, config.bucket.clone(), config.region.clone())
            .map_err(|e| format!("S3 bucket {:?}: {e}", config.bucket))?;
        let credentials = credentials::Provider::new(&config.credentials);
        Ok(Self {
            inner: Arc::new(Inner {
                bucket,
                credentials,
                client: https_client(Duration::from_secs(10)),
                presigned_ttl: config.presigned_url_ttl,
                tenant_prefix: config.tenant_prefix.clone(),
                single_copy_limit: config.single_copy_limit,
                copy_part_size: config.copy_part_size.max(1),
            }),
        })
    }

    /// The credentials to sign with now (a role's are fetched when there
    /// are none yet or they are about to expire).
    async fn credentials(&self) -> Result<Arc<Credentials>, S3Error> {
        self.inner.credentials.get().await.map_err(S3Error::Credentials)
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        self.inner.bucket.name()
    }

    /// `[<tenant prefix>]<published|unpublished>/<format>/<record_id>/`.
    pub fn recording_prefix(&self, tenant: Option<&str>, published: bool, format: &str, record_id: &str) -> String {
        let tenant_prefix = match (&self.inner.tenant_prefix, tenant) {
            (Some(template), Some(tenant)) if !tenant.is_empty() => {
                let mut prefix = template.replace("{tenant}", &sanitize_segment(tenant));
                if !prefix.is_empty() && !prefix.ends_with('/') {
                    prefix.push('/');
                }
                prefix
            }
            _ => String::new(),
        };
        let state = if published { "published" } else { "unpublished" };
        format!("{tenant_prefix}{state}/{format}/{record_id}/")
    }

    /// A presigned `GET` URL for one file of a recording, valid for
    /// `S3_PRESIGNED_URL_TTL`; files of download formats come with
    /// `Content-Disposition: attachment`. Signed with the current
    /// credentials (a role's session token included).
    pub async fn presigned_get(&self, key: &str, format: &str) -> Result<String, S3Error> {
        let credentials = self.credentials().await?;
        let mut action = self.inner.bucket.get_object(Some(&credentials), key);
        if !INLINE_FORMATS.contains(&format) {
            action.query_mut().insert("response-content-disposition", "attachment");
        }
        Ok(action.sign(self.inner.presigned_ttl).to_string())
    }

    /// Uploads every regular file under `dir` as `<prefix><relative path>`.
    /// Symbolic links and other special files are skipped.
    /// Returns the keys written, sorted.
    pub async fn upload_dir(&self, dir: &Path, prefix: &str) -> Result<std::collections::BTreeSet<String>, S3Error> {
        let files = {
            let owned = dir.to_path_buf();
            tokio::task::spawn_blocking(move || list_files(&owned))
                .await
                .map_err(|e| S3Error::File(dir.to_path_buf(), io::Error::other(e)))?
                .map_err(|e| S3Error::File(dir.to_path_buf(), e))?
        };
        let mut keys = std::collections::BTreeSet::new();
        for (path, relative) in files {
            let key = format!("{prefix}{relative}");
            self.upload_file(&path, &key).await?;
            keys.insert(key);
        }
        Ok(keys)
    }

    /// Uploads one file with Scalelite's content type and disposition.
    pub async fn upload_file(&self, path: &Path, key: &str) -> Result<(), S3Error> {
        let file_err = |e| S3Error::File(path.to_path_buf(), e);
        let mut file = tokio::fs::File::open(path).await.map_err(file_err)?;
        let len = file.metadata().await.map_err(file_err)?.len();
        let (content_type, disposition) = content_headers(key);
        let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
        headers.extend(disposition.map(|d| ("content-disposition".to_owned(), d.to_owned())));
        if len <= PART_SIZE as u64 {
            let body = read_part(&mut file, PART_SIZE).await.map_err(file_err)?;
            let (url, headers) = self.sign(rusty_s3::Method::Put, key, &[], headers).await?;
            self.send("PutObject", Method::PUT, &url, &headers, body).await?;
            return Ok(());
        }
        let upload_id = self.create_multipart_upload(key, headers).await?;
        let parts = self.upload_parts(&mut file, key, &upload_id).await;
        self.finish_multipart_upload(key, &upload_id, parts).await
    }

    /// Starts a multipart upload of `key` with these headers (content type
    /// and the like); its upload id.
    async fn create_multipart_upload(&self, key: &str, headers: Vec<(String, String)>) -> Result<String, S3Error> {
        // Signed here rather than with rusty-s3's `CreateMultipartUpload`,
        // which sends `?uploads=1`: AWS takes it, but S3-compatible servers
        // (moto) want `?uploads` as AWS's SDKs send it.
        let (url, headers) = self.sign(rusty_s3::Method::Post, key, &[("uploads", "")], headers).await?;
        let answer = self.send("CreateMultipartUpload", Method::POST, &url, &headers, Bytes::new()).await?;
        let root = parse_answer("CreateMultipartUpload", &answer, "InitiateMultipartUploadResult")?;
        let upload_id = root.text_at("UploadId").map(|id| id.trim().to_owned()).unwrap_or_default();
        if upload_id.is_empty() || upload_id.len() > 1024 {
            return Err(S3Error::Answer("CreateMultipartUpload", "no UploadId".into()));
        }
        Ok(upload_id)
    }

    /// Completes a multipart upload with the parts' `ETag`s, in order, or
    /// aborts it when `parts` failed or the bucket refuses to complete it:
    /// no upload is left open (unless the abort fails too, which is logged).
    async fn finish_multipart_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Result<Vec<String>, S3Error>,
    ) -> Result<(), S3Error> {
        let completed = match parts {
            Ok(etags) => self.complete_multipart_upload(key, upload_id, &etags).await,
            Err(e) => Err(e),
        };
        if let Err(e) = completed {
            let aborted = match self.credentials().await {
                Ok(credentials) => {
                    let action = self.inner.bucket.abort_multipart_upload(Some(&credentials), key, upload_id);
                    let url = action.sign(SIGN_TTL).to_string();
                    self.send("AbortMultipartUpload", Method::DELETE, &url, &[], Bytes::new()).await
                }
                Err(no_credentials) => Err(no_credentials),
            };
            if let Err(abort) = aborted {
                warn!(key, error = %abort, "could not abort a failed multipart upload");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn complete_multipart_upload(&self, key: &str, upload_id: &str, etags: &[String]) -> Result<(), S3Error> {
        let credentials = self.credentials().await?;
        let action = self.inner.bucket.complete_multipart_upload(
            Some(&credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGN_TTL).to_string();
        let body = action.body();
        let answer = self.send("CompleteMultipartUpload", Method::POST, &url, &[], Bytes::from(body)).await?;
        // S3 may answer 200 with an error document.
        parse_answer("CompleteMultipartUpload", &answer, "CompleteMultipartUploadResult")?;
        Ok(())
    }

    async fn upload_parts(
        &self,
        file: &mut tokio::fs::File,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<String>, S3Error> {
        let mut etags = Vec::new();
        for part_number in 1..=10_000u16 {
            let body = read_part(file, PART_SIZE).await.map_err(|e| S3Error::File(key.into(), e))?;
            if body.is_empty() {
                break;
            }
            let credentials = self.credentials().await?;
            let action = self.inner.bucket.upload_part(Some(&credentials), key, part_number, upload_id);
            let url = action.sign(SIGN_TTL).to_string();
            let (headers, _) = self.exchange("UploadPart", Method::PUT, &url, &[], body, REQUEST_TIMEOUT).await?;
            let etag = headers.get(http::header::ETAG).and_then(|v| v.to_str().ok());
            etags.push(etag.ok_or(S3Error::Answer("UploadPart", "no ETag".into()))?.to_owned());
        }
        Ok(etags)
    }

    /// Every key under `prefix` (paged by the bucket).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        Ok(self.list_sized(prefix).await?.into_iter().map(|(key, _)| key).collect())
    }

    /// Every key under `prefix` with its size.
    pub async fn list_sized(&self, prefix: &str) -> Result<Vec<(String, u64)>, S3Error> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let credentials = self.credentials().await?;
            let mut action = ListObjectsV2::new(&self.inner.bucket, Some(&credentials));
            action.with_prefix(prefix);
            if let Some(token) = &token {
                action.with_continuation_token(token.as_str());
            }
            let url = action.sign(SIGN_TTL).to_string();
            let answer = self.send("ListObjectsV2", Method::GET, &url, &[], Bytes::new()).await?;
            let page = ListObjectsV2::parse_response(&String::from_utf8_lossy(&answer))
                .map_err(|e| S3Error::Answer("ListObjectsV2", e.to_string()))?;
            keys.extend(page.contents.into_iter().map(|c| (c.key, c.size.unwrap_or(0))));
            if keys.len() > MAX_LISTED_KEYS {
                return Err(S3Error::Answer(
                    "ListObjectsV2",
                    format!("more than {MAX_LISTED_KEYS} keys under {prefix}"),
                ));
            }
            match page.next_continuation_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    /// The bytes of a recording's objects under both state prefixes (what
    /// deleting it removes); what cannot be listed counts as nothing.
    pub async fn recording_size(&self, recording: &crate::recordings::RecordingSummary) -> u64 {
        let mut total = 0;
        for format in &recording.formats {
            for published in [true, false] {
                let prefix =
                    self.recording_prefix(recording.tenant_id.as_deref(), published, format, &recording.record_id);
                match self.list_sized(&prefix).await {
                    Ok(objects) => total += objects.iter().map(|(_, size)| size).sum::<u64>(),
                    Err(error) => warn!(%error, prefix, "cannot measure a recording in the bucket"),
                }
            }
        }
        total
    }

    /// Deletes these keys (1000 per request).
    pub async fn delete_keys(&self, keys: &[String]) -> Result<(), S3Error> {
        for chunk in keys.chunks(1000) {
            let objects: Vec<ObjectIdentifier> = chunk.iter().map(|k| ObjectIdentifier::new(k.clone())).collect();
            let credentials = self.credentials().await?;
            let mut action = self.inner.bucket.delete_objects(Some(&credentials), objects.iter());
            action.set_quiet(true);
            let url = action.sign(SIGN_TTL).to_string();
            let (body, md5) = action.body_with_md5();
            let answer = self
                .send("DeleteObjects", Method::POST, &url, &[("content-md5".to_owned(), md5)], Bytes::from(body))
                .await?;
            // Quiet mode lists only the keys that failed (some servers
            // answer nothing at all when none did).
            if answer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let root = parse_answer("DeleteObjects", &answer, "DeleteResult")?;
            if let Some(error) = root.children_named("Error").next() {
                return Err(S3Error::Answer("DeleteObjects", error_summary(error)));
            }
        }
        Ok(())
    }

    /// Deletes everything under `prefix`; how many objects were removed.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, S3Error> {
        let keys = self.list(prefix).await?;
        self.delete_keys(&keys).await?;
        Ok(keys.len())
    }

    /// Moves everything under `from` to `to` (server-side copies, then the
    /// sources are deleted); how many objects moved. When a copy fails the
    /// sources are all kept and the copies this call made are deleted
    /// again (as far as the bucket lets).
    pub async fn move_prefix(&self, from: &str, to: &str) -> Result<usize, S3Error> {
        let objects = self.list_sized(from).await?;
        let mut moved = Vec::with_capacity(objects.len());
        let mut copies = Vec::with_capacity(objects.len());
        for (key, size) in objects {
            // A listing under `from` holds only keys under it; anything else
            // from an odd server is left alone.
            let Some(rest) = key.strip_prefix(from) else {
                warn!(key, from, "the bucket listed a key outside the prefix asked for; not moved");
                continue;
            };
            let target = format!("{to}{rest}");
            if let Err(e) = self.copy_object(&key, &target, size).await {
                if let Err(cleanup) = self.delete_keys(&copies).await {
                    warn!(from, to, error = %cleanup, "could not delete the copies of a failed move");
                }
                return Err(e);
            }
            copies.push(target);
            moved.push(key);
        }
        self.delete_keys(&moved).await?;
        Ok(moved.len())
    }

    /// Copies `source` to `target` server-side, keeping its content type
    /// and metadata: one `CopyObject` when `size` (as listed) is within the
    /// single-copy limit, a multipart copy above it.
    async fn copy_object(&self, source: &str, target: &str, size: u64) -> Result<(), S3Error> {
        if size > self.inner.single_copy_limit {
            self.multipart_copy(source, target).await
        } else {
            self.single_copy(source, target, size).await
        }
    }

    /// One `CopyObject` (`size` bounds how long it may take).
    async fn single_copy(&self, source: &str, target: &str, size: u64) -> Result<(), S3Error> {
        let copy_source = self.copy_source(source);
        let headers = vec![("x-amz-copy-source".to_owned(), copy_source)];
        let (url, headers) = self.sign(rusty_s3::Method::Put, target, &[], headers).await?;
        let answer =
            self.exchange("CopyObject", Method::PUT, &url, &headers, Bytes::new(), copy_timeout(size)).await?.1;
        // S3 may answer 200 with an error document.
        parse_answer("CopyObject", &answer, "CopyObjectResult")?;
        Ok(())
    }

    /// `CreateMultipartUpload` of `target` with `source`'s content headers
    /// and metadata, `UploadPartCopy` of its byte ranges (a few at once),
    /// then `CompleteMultipartUpload`; aborted on any failure.
    async fn multipart_copy(&self, source: &str, target: &str) -> Result<(), S3Error> {
        let (size, etag, carried) = self.head_for_copy(source).await?;
        if size <= self.inner.single_copy_limit {
            // It changed since it was listed.
            return self.single_copy(source, target, size).await;
        }
        let upload_id = self.create_multipart_upload(target, carried).await?;
        let copy_source = self.copy_source(source);
        let parts = futures::stream::iter(copy_parts(size, self.inner.copy_part_size))
            .map(|range| self.copy_part(target, &upload_id, &copy_source, etag.as_deref(), range))
            .buffered(COPY_CONCURRENCY)
            .try_collect::<Vec<String>>()
            .await;
        self.finish_multipart_upload(target, &upload_id, parts).await
    }

    /// `source`'s size, `ETag` and the headers a copy of it carries over
    /// (`HEAD`).
    async fn head_for_copy(&self, source: &str) -> Result<(u64, Option<String>, Vec<(String, String)>), S3Error> {
        let credentials = self.credentials().await?;
        let url = self.inner.bucket.head_object(Some(&credentials), source).sign(SIGN_TTL).to_string();
        let (headers, _) = self.exchange("HeadObject", Method::HEAD, &url, &[], Bytes::new(), REQUEST_TIMEOUT).await?;
        let size = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or(S3Error::Answer("HeadObject", "no Content-Length".into()))?;
        let mut carried = Vec::new();
        let mut meta = 0;
        for (name, value) in &headers {
            let name = name.as_str();
            let is_meta = name.starts_with("x-amz-meta-");
            if !(CARRIED_HEADERS.contains(&name) || (is_meta && meta < MAX_CARRIED_META)) {
                continue;
            }
            // Visible ASCII only, whitespace runs as one space (as signed).
            let Some(value) = value.to_str().ok().map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")) else {
                warn!(key = source, header = name, "a header that is not ASCII is not carried over to the copy");
                continue;
            };
            if value.is_empty() {
                continue;
            }
            meta += usize::from(is_meta);
            carried.push((name.to_owned(), value));
        }
        let etag = headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|e| !e.is_empty() && e.len() <= 256 && !e.contains(char::is_whitespace))
            .map(str::to_owned);
        Ok((size, etag, carried))
    }

    /// `UploadPartCopy` of bytes `first..=last` of the copy source, as long
    /// as it still has `ETag` `source_etag` (parts of one version only); the
    /// part's `ETag`.
    async fn copy_part(
        &self,
        target: &str,
        upload_id: &str,
        copy_source: &str,
        source_etag: Option<&str>,
        (part, first, last): (u64, u64, u64),
    ) -> Result<String, S3Error> {
        let part_number = part.to_string();
        let query = [("partNumber", part_number.as_str()), ("uploadId", upload_id)];
        let mut headers = vec![
            ("x-amz-copy-source".to_owned(), copy_source.to_owned()),
            ("x-amz-copy-source-range".to_owned(), format!("bytes={first}-{last}")),
        ];
        headers.extend(source_etag.map(|etag| ("x-amz-copy-source-if-match".to_owned(), etag.to_owned())));
        let (url, headers) = self.sign(rusty_s3::Method::Put, target, &query, headers).await?;
        let timeout = copy_timeout(last - first + 1);
        let (_, answer) = self.exchange("UploadPartCopy", Method::PUT, &url, &headers, Bytes::new(), timeout).await?;
        // S3 may answer 200 with an error document.
        let root = parse_answer("UploadPartCopy", &answer, "CopyPartResult")?;
        let etag = root.text_at("ETag").map(|e| e.trim().to_owned()).unwrap_or_default();
        if etag.is_empty() || etag.len() > 256 {
            return Err(S3Error::Answer("UploadPartCopy", "no ETag".into()));
        }
        Ok(etag)
    }

    /// `x-amz-copy-source` of a key of this bucket.
    fn copy_source(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket(), encode_key(key))
    }

    /// A presigned URL for `method` on `key` with this query and these
    /// headers signed (sorted, as `SigV4` wants them); the headers to send.
    async fn sign(
        &self,
        method: rusty_s3::Method,
        key: &str,
        query: &[(&str, &str)],
        mut headers: Vec<(String, String)>,
    ) -> Result<(String, Vec<(String, String)>), S3Error> {
        headers.sort();
        let mut query = query.to_vec();
        query.sort_unstable();
        let credentials = self.credentials().await?;
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            self.inner.bucket.object_url(key),
            credentials.key(),
            credentials.secret(),
            credentials.token(),
            self.inner.bucket.region(),
            SIGN_TTL.as_secs(),
            query.iter().copied(),
            headers.iter().map(|(name, value)| (name.as_str(), value.as_str())),
        )
        .to_string();
        Ok((url, headers))
    }

    /// Sends one request (with retries); the body of a 2xx answer.
    async fn send(
        &self,
        what: &'static str,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Bytes, S3Error> {
        self.exchange(what, method, url, headers, body, REQUEST_TIMEOUT).await.map(|(_, body)| body)
    }

    /// Sends one request (with retries, each attempt bounded by `timeout`);
    /// the headers and body of a 2xx answer.
    async fn exchange(
        &self,
        what: &'static str,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<(http::HeaderMap, Bytes), S3Error> {
        let mut last = S3Error::Transport(what, "not sent".into());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
            }
            let mut request = Request::builder().method(method.clone()).uri(url);
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let request = request
                .header(http::header::CONTENT_LENGTH, body.len())
                .body(Full::new(body.clone()))
                .map_err(|e| S3Error::Transport(what, e.to_string()))?;
            let outcome = tokio::time::timeout(timeout, async {
                let response = self.inner.client.request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok::<_, String>((status, headers, body))
            })
            .await;
            match outcome {
                Err(_) => last = S3Error::Transport(what, format!("no answer within {timeout:?}")),
                Ok(Err(e)) => last = S3Error::Transport(what, e),
                Ok(Ok((status, headers, body))) if status.is_success() => return Ok((headers, body)),
                Ok(Ok((status, _, body))) => {
                    let error = S3Error::Status(what, status.as_u16(), truncate(&body));
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Err(error);
                    }
                    last = error;
                }
            }
        }
        Err(last)
    }
}

/// The parts of a multipart copy of `size` bytes: part number, first and
/// last byte. Parts are `part_size` bytes (the last one less), larger when
/// `size` would need more than [`MAX_PARTS`].
fn copy_parts(size: u64, part_size: u64) -> impl Iterator<Item = (u64, u64, u64)> {
    let part_size = part_size.max(size.div_ceil(MAX_PARTS)).max(1);
    (0..size.div_ceil(part_size)).map(move |i| (i + 1, i * part_size, ((i + 1) * part_size).min(size) - 1))
}

/// How long a server-side copy of `bytes` may take.
fn copy_timeout(bytes: u64) -> Duration {
    REQUEST_TIMEOUT + Duration::from_secs(bytes / MIN_COPY_BYTES_PER_SEC)
}

/// The root element of an answer, which must be `expected`: an `<Error>`
/// document (S3 answers some requests 200 with one) or anything else is
/// an error.
fn parse_answer(what: &'static str, answer: &[u8], expected: &str) -> Result<scalelite_core::xml::Element, S3Error> {
    let root = scalelite_core::xml::parse(answer).map_err(|_| S3Error::Answer(what, truncate(answer)))?;
    if root.name == expected {
        return Ok(root);
    }
    if root.name == "Error" {
        return Err(S3Error::Answer(what, error_summary(&root)));
    }
    Err(S3Error::Answer(what, truncate(answer)))
}

/// `<Code>: <Message>` of an S3 `<Error>` element, bounded.
fn error_summary(error: &scalelite_core::xml::Element) -> String {
    let code = error.text_at("Code").unwrap_or_default();
    let message = error.text_at("Message").unwrap_or_default();
    let summary = format!("{}: {}", code.trim(), message.trim());
    summary.chars().take(512).collect()
}

/// Reads up to `max` bytes (less only at the end of the file).
async fn read_part(file: &mut tokio::fs::File, max: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(max.min(1024 * 1024));
    (&mut *file).take(max as u64).read_to_end(&mut buf).await?;
    Ok(Bytes::from(buf))
}

/// Regular files under `dir`, with their `/`-separated relative paths
/// (symbolic links are not followed).
fn list_files(dir: &Path) -> io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, relative)) = stack.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            let kind = entry.file_type()?;
            let child = format!("{relative}{name}");
            if kind.is_dir() {
                stack.push((entry.path(), format!("{child}/")));
            } else if kind.is_file() {
                out.push((entry.path(), child));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Scalelite's content type by extension, and `attachment` for `.pdf` and
/// `.ogg` files.
fn content_headers(key: &str) -> (&'static str, Option<&'static str>) {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let content_type = match ext.as_str() {
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "json" => "application/json",
        "js" => "application/javascript",
        "css" => "text/css",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webm" => "video/webm",
        "mp4" | "m4v" => "video/mp4",
        "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "opus" => "audio/opus",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "vtt" => "text/vtt",
        "srt" => "application/x-subrip",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    };
    let disposition = matches!(ext.as_str(), "pdf" | "ogg").then_some("attachment");
    (content_type, disposition)
}

/// A tenant id as one key segment: characters other than letters, digits,
/// `-`, `_` and `.` become `_` (and `.`/`..` alone are not kept).
fn sanitize_segment(raw: &str) -> String {
    let s: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if s == "." || s == ".." { "_".into() } else { s }
}

/// Percent-encodes a key for `x-amz-copy-source` (`/` kept).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn truncate(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_headers_follow_scalelite() {
        assert_eq!(content_headers("a/b/metadata.xml"), ("application/xml", None));
        assert_eq!(content_headers("a/b/audio.OGG"), ("audio/ogg", Some("attachment")));
        assert_eq!(content_headers("a/b/notes.pdf"), ("application/pdf", Some("attachment")));
        assert_eq!(content_headers("a/b/noext"), ("application/octet-stream", None));
    }

    #[test]
    fn tenant_ids_stay_one_segment() {
        assert_eq!(sanitize_segment("t-1"), "t-1");
        assert_eq!(sanitize_segment("../x/y"), ".._x_y");
        assert_eq!(sanitize_segment(".."), "_");
    }

    #[test]
    fn copies_are_split_into_parts_s3_takes() {
        let parts: Vec<_> = copy_parts(10, 4).collect();
        assert_eq!(parts, [(1, 0, 3), (2, 4, 7), (3, 8, 9)]);
        assert_eq!(copy_parts(8, 4).collect::<Vec<_>>(), [(1, 0, 3), (2, 4, 7)]);
        assert_eq!(copy_parts(0, 4).count(), 0);
        // 5 TiB in 512 MiB parts is 10 000 of them; beyond, parts grow.
        let tib = 1u64 << 40;
        assert_eq!(copy_parts(5 * tib, 512 << 20).count(), 10_000);
        let parts: Vec<_> = copy_parts(5 * tib + 1, 512 << 20).collect();
        assert_eq!(parts.len(), 10_000);
        assert_eq!(parts.last().unwrap().2, 5 * tib);
        assert!(parts.windows(2).all(|w| w[1].1 == w[0].2 + 1), "contiguous");
    }

    #[test]
    fn answers_must_be_the_expected_document() {
        let ok = br#"<?xml version="1.0" encoding="UTF-8"?>
            <CopyPartResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ETag>&quot;abc&quot;</ETag></CopyPartResult>"#;
        let root = parse_answer("UploadPartCopy", ok, "CopyPartResult").unwrap();
        assert_eq!(root.text_at("ETag").as_deref(), Some("\"abc\""));
        // A 200 answer with an error document, another document, no XML.
        let error = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>";
        let e = parse_answer("CompleteMultipartUpload", error, "CompleteMultipartUploadResult").unwrap_err();
        assert!(e.to_string().contains("InternalError: try again"), "{e}");
        assert!(parse_answer("CopyObject", b"<Other/>", "CopyObjectResult").is_err());
        assert!(parse_answer("CopyObject", b"", "CopyObjectResult").is_err());
        let deep = "<a>".repeat(10_000);
        assert!(parse_answer("CopyObject", deep.as_bytes(), "CopyObjectResult").is_err());
    }

    #[test]
    fn copies_may_take_longer_for_more_bytes() {
        assert_eq!(copy_timeout(0), REQUEST_TIMEOUT);
        assert_eq!(copy_timeout(5 << 30), REQUEST_TIMEOUT + Duration::from_secs(320));
    }

    #[test]
    fn copy_sources_are_encoded() {
        assert_eq!(encode_key("published/p/r-1/a b+c.xml"), "published/p/r-1/a%20b%2Bc.xml");
    }
}
