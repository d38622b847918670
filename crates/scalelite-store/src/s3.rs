//! Recordings in an S3-compatible bucket (`S3_RECORDING`), Scalelite's
//! layout: `[<tenant prefix>]published/<format>/<record_id>/<file>` or
//! `…unpublished/…`. Requests are signed with `rusty-s3` (sans-IO, `SigV4`
//! presigned URLs) and sent with the workspace's hyper client; every request
//! is bounded in time and retried on transport errors, 5xx and 429.
//!
//! Uploads read a file in parts of at most [`PART_SIZE`] bytes (multipart
//! upload above that), so memory stays bounded whatever the file size.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2, ObjectIdentifier};
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
        if len <= PART_SIZE as u64 {
            let body = read_part(&mut file, PART_SIZE).await.map_err(file_err)?;
            let credentials = self.credentials().await?;
            let mut action = self.inner.bucket.put_object(Some(&credentials), key);
            action.headers_mut().insert("content-type", content_type);
            if let Some(d) = disposition {
                action.headers_mut().insert("content-disposition", d);
            }
            let url = action.sign(SIGN_TTL).to_string();
            let mut headers = vec![("content-type", content_type.to_owned())];
            headers.extend(disposition.map(|d| ("content-disposition", d.to_owned())));
            self.send("PutObject", Method::PUT, &url, &headers, body).await?;
            return Ok(());
        }
        // Signed here rather than with rusty-s3's `CreateMultipartUpload`,
        // which sends `?uploads=1`: AWS takes it, but S3-compatible servers
        // (moto) want `?uploads` as AWS's SDKs send it.
        let mut signed_headers = Vec::with_capacity(2);
        signed_headers.extend(disposition.map(|d| ("content-disposition", d)));
        signed_headers.push(("content-type", content_type));
        let credentials = self.credentials().await?;
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Post,
            self.inner.bucket.object_url(key),
            credentials.key(),
            credentials.secret(),
            credentials.token(),
            self.inner.bucket.region(),
            SIGN_TTL.as_secs(),
            std::iter::once(("uploads", "")),
            signed_headers.iter().copied(),
        )
        .to_string();
        let mut headers = vec![("content-type", content_type.to_owned())];
        headers.extend(disposition.map(|d| ("content-disposition", d.to_owned())));
        let answer = self.send("CreateMultipartUpload", Method::POST, &url, &headers, Bytes::new()).await?;
        let created = CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&answer))
            .map_err(|e| S3Error::Answer("CreateMultipartUpload", e.to_string()))?;
        let upload_id = created.upload_id().to_owned();
        match self.upload_parts(&mut file, key, &upload_id).await {
            Ok(etags) => {
                let credentials = self.credentials().await?;
                let action = self.inner.bucket.complete_multipart_upload(
                    Some(&credentials),
                    key,
                    &upload_id,
                    etags.iter().map(String::as_str),
                );
                let url = action.sign(SIGN_TTL).to_string();
                let body = action.body();
                let answer = self.send("CompleteMultipartUpload", Method::POST, &url, &[], Bytes::from(body)).await?;
                // S3 may answer 200 with an error document.
                if String::from_utf8_lossy(&answer).contains("<Error>") {
                    return Err(S3Error::Answer("CompleteMultipartUpload", truncate(&answer)));
                }
                Ok(())
            }
            Err(e) => {
                let aborted = match self.credentials().await {
                    Ok(credentials) => {
                        let action = self.inner.bucket.abort_multipart_upload(Some(&credentials), key, &upload_id);
                        let url = action.sign(SIGN_TTL).to_string();
                        self.send("AbortMultipartUpload", Method::DELETE, &url, &[], Bytes::new()).await
                    }
                    Err(no_credentials) => Err(no_credentials),
                };
                if let Err(abort) = aborted {
                    warn!(key, error = %abort, "could not abort a failed multipart upload");
                }
                Err(e)
            }
        }
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
            let (etag, _) = self.exchange("UploadPart", Method::PUT, &url, &[], body).await?;
            etags.push(etag.ok_or(S3Error::Answer("UploadPart", "no ETag".into()))?);
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
            let answer =
                self.send("DeleteObjects", Method::POST, &url, &[("content-md5", md5)], Bytes::from(body)).await?;
            let text = String::from_utf8_lossy(&answer);
            if text.contains("<Error>") {
                return Err(S3Error::Answer("DeleteObjects", truncate(&answer)));
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
    /// sources are deleted); how many objects moved.
    pub async fn move_prefix(&self, from: &str, to: &str) -> Result<usize, S3Error> {
        let keys = self.list(from).await?;
        for key in &keys {
            // A listing under `from` holds only keys under it; anything else
            // from an odd server is left alone.
            let Some(rest) = key.strip_prefix(from) else {
                warn!(key, from, "the bucket listed a key outside the prefix asked for; not moved");
                continue;
            };
            let target = format!("{to}{rest}");
            let source = format!("/{}/{}", self.bucket(), encode_key(key));
            let credentials = self.credentials().await?;
            let mut action = self.inner.bucket.put_object(Some(&credentials), &target);
            action.headers_mut().insert("x-amz-copy-source", source.clone());
            let url = action.sign(SIGN_TTL).to_string();
            let answer =
                self.send("CopyObject", Method::PUT, &url, &[("x-amz-copy-source", source)], Bytes::new()).await?;
            if String::from_utf8_lossy(&answer).contains("<Error>") {
                return Err(S3Error::Answer("CopyObject", truncate(&answer)));
            }
        }
        let moved: Vec<String> = keys.into_iter().filter(|k| k.starts_with(from)).collect();
        self.delete_keys(&moved).await?;
        Ok(moved.len())
    }

    /// Sends one request (with retries); the body of a 2xx answer.
    async fn send(
        &self,
        what: &'static str,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Bytes, S3Error> {
        self.exchange(what, method, url, headers, body).await.map(|(_, body)| body)
    }

    /// Sends one request (with retries); the `ETag` and body of a 2xx answer.
    async fn exchange(
        &self,
        what: &'static str,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<(Option<String>, Bytes), S3Error> {
        let mut last = S3Error::Transport(what, "not sent".into());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
            }
            let mut request = Request::builder().method(method.clone()).uri(url);
            for (name, value) in headers {
                request = request.header(*name, value.as_str());
            }
            let request = request
                .header(http::header::CONTENT_LENGTH, body.len())
                .body(Full::new(body.clone()))
                .map_err(|e| S3Error::Transport(what, e.to_string()))?;
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let response = self.inner.client.request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let etag = response.headers().get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok::<_, String>((status, etag, body))
            })
            .await;
            match outcome {
                Err(_) => last = S3Error::Transport(what, format!("no answer within {REQUEST_TIMEOUT:?}")),
                Ok(Err(e)) => last = S3Error::Transport(what, e),
                Ok(Ok((status, etag, body))) if status.is_success() => return Ok((etag, body)),
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
    fn copy_sources_are_encoded() {
        assert_eq!(encode_key("published/p/r-1/a b+c.xml"), "published/p/r-1/a%20b%2Bc.xml");
    }
}
