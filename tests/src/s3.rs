//! A local S3-compatible server for the S3 recording storage tests: moto's
//! server mode from pypi.org (`moto[server]`, pinned in tests/s3/requirements.txt),
//! installed once into a virtualenv cached in the cargo target directory
//! (`target/s3-server/`; only the first run needs pypi.org), started on a
//! free loopback port and stopped when dropped. moto checks no signatures
//! by default: the helpers here read the bucket without real signatures.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::client::http_request;
use crate::util::{eventually_with, free_port};

/// The pinned version, also the name of the cached virtualenv.
const MOTO: &str = "moto-server-5.2.6";

/// An `Authorization` header moto takes as a signed request: moto checks
/// no signatures by default, but treats a request without one as
/// anonymous (refused on private objects).
const UNCHECKED_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIATESTSCALELITE/20260101/us-east-1/s3/aws4_request, \
                              SignedHeaders=host, Signature=0000";

/// Credentials moto accepts (any).
pub const ACCESS_KEY: &str = "AKIATESTSCALELITE";
/// Secret of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "test-secret-key-for-moto";

/// A running moto server.
#[derive(Debug)]
pub struct TestS3 {
    child: Child,
    port: u16,
}

/// The Python interpreter of a virtualenv holding moto, created on first
/// use (`target/s3-server/`).
fn python_with_moto() -> PathBuf {
    let requirements = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("s3/requirements.txt");
    crate::pypi::python(&crate::pypi::PinnedVenv {
        cache: "s3-server",
        name: MOTO,
        check: "import moto.server, flask",
        pip_options: &[],
        requirements: &requirements,
        failure: "pip could not install the PyPI package moto[server]==5.2.6 (the local S3 server of the S3 \
                  recording tests; https://pypi.org must be reachable the first time, the virtualenv is then \
                  cached in target/s3-server/)",
    })
}

impl TestS3 {
    /// Installs moto when needed and starts it with an empty bucket `bucket`.
    pub async fn start(bucket: &str) -> Self {
        let python = tokio::task::spawn_blocking(python_with_moto)
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let port = free_port();
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start moto's server");
        let s3 = Self { child, port };
        let url = format!("{}/moto-api/", s3.endpoint());
        eventually_with(Duration::from_secs(30), "moto's server answers", || {
            let url = url.clone();
            async move { http_request(Method::GET, &url, &[], Bytes::new(), Duration::from_secs(2)).await.is_ok() }
        })
        .await;
        s3.create_bucket(bucket).await;
        s3
    }

    /// Creates another bucket.
    pub async fn create_bucket(&self, bucket: &str) {
        let created = self.request(Method::PUT, &format!("/{bucket}"), Bytes::new()).await;
        assert_eq!(created.0, 200, "CreateBucket: {}", created.1);
    }

    /// The size of every object under `prefix`, by key.
    pub async fn sizes(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let (status, body) = self
            .request(Method::GET, &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"), Bytes::new())
            .await;
        assert_eq!(status, 200, "ListObjectsV2: {body}");
        body.split("<Contents>")
            .skip(1)
            .map(|item| {
                let field = |name: &str| {
                    item.split_once(&format!("<{name}>"))
                        .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
                        .map(|(value, _)| value.to_owned())
                        .unwrap_or_default()
                };
                (field("Key"), field("Size").parse().unwrap_or(0))
            })
            .collect()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment of a balancer or importer storing recordings in
    /// `bucket` here.
    pub fn env(&self, bucket: &str) -> Vec<(&'static str, String)> {
        vec![
            ("S3_RECORDING", "true".into()),
            ("S3_BUCKET_NAME", bucket.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    async fn request(&self, method: Method, path: &str, body: Bytes) -> (u16, String) {
        let url = format!("{}{path}", self.endpoint());
        let reply = http_request(method, &url, &[("authorization", UNCHECKED_AUTH)], body, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        (reply.status, reply.body)
    }

    /// Every key in `bucket` under `prefix`, sorted.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .request(Method::GET, &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"), Bytes::new())
            .await;
        assert_eq!(status, 200, "ListObjectsV2: {body}");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.replace("&amp;", "&")))
            .collect();
        keys.sort();
        keys
    }

    /// One object's bytes (lossy text) and `Content-Type`, `None` when absent.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<(String, Option<String>)> {
        let url = format!("{}/{bucket}/{key}", self.endpoint());
        let reply = http_request(
            Method::GET,
            &url,
            &[("authorization", UNCHECKED_AUTH)],
            Bytes::new(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert!(matches!(reply.status, 200 | 404), "GET {url}: {} {}", reply.status, reply.body);
        (reply.status == 200)
            .then(|| (reply.body, reply.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned)))
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
