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

/// Starts moto's server on a free port and returns once it listens there.
/// A port that was free a moment ago may be taken meanwhile (by another
/// test's server, which would then answer in its place): moto says
/// ` * Running on http://…` on stderr once it has bound, or exits when the
/// port is in use, and then another port is tried. Blocking.
fn start_moto(python: &std::path::Path) -> (Child, u16) {
    use std::io::BufRead;
    for _ in 0..8 {
        let port = free_port();
        let mut child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start moto's server");
        let stderr = child.stderr.take().expect("piped stderr");
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        // Reads stderr to its end (moto logs every request there), saying
        // once whether the server bound.
        std::thread::spawn(move || {
            let mut bound_tx = Some(bound_tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Running on")
                    && let Some(tx) = bound_tx.take()
                {
                    let _ = tx.send(true);
                }
            }
            if let Some(tx) = bound_tx.take() {
                let _ = tx.send(false);
            }
        });
        match bound_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(true) => return (child, port),
            Ok(false) => {
                let _ = child.wait();
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto's server did not start within 60 s");
            }
        }
    }
    panic!("moto's server could not bind a free port in 8 attempts");
}

impl TestS3 {
    /// Installs moto when needed and starts it with an empty bucket `bucket`.
    pub async fn start(bucket: &str) -> Self {
        let python = tokio::task::spawn_blocking(python_with_moto)
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let (child, port) = tokio::task::spawn_blocking(move || start_moto(&python)).await.expect("moto starts");
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

    /// [`TestS3::env`] without a key pair: credentials then come from a
    /// role (see [`FakeMetadata`]).
    pub fn role_env(&self, bucket: &str) -> Vec<(&'static str, String)> {
        let mut env = self.env(bucket);
        env.retain(|(name, _)| *name != "AWS_ACCESS_KEY_ID" && *name != "AWS_SECRET_ACCESS_KEY");
        env
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

    /// The keys of the multipart uploads open in `bucket`
    /// (`ListMultipartUploads`), sorted.
    pub async fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.request(Method::GET, &format!("/{bucket}?uploads"), Bytes::new()).await;
        assert_eq!(status, 200, "ListMultipartUploads: {body}");
        let list = scalelite_core::xml::parse(body.as_bytes()).expect("ListMultipartUploads answers XML");
        assert_eq!(list.name, "ListMultipartUploadsResult", "{body}");
        let mut keys: Vec<String> = list.children_named("Upload").filter_map(|u| u.text_at("Key")).collect();
        keys.sort();
        keys
    }

    /// Stores an object (what another writer, or an interrupted import,
    /// left in the bucket).
    pub async fn put_object(&self, bucket: &str, key: &str, body: &str) {
        let (status, reply) =
            self.request(Method::PUT, &format!("/{bucket}/{key}"), Bytes::from(body.to_owned())).await;
        assert_eq!(status, 200, "PutObject {key}: {reply}");
    }

    /// Deletes one object.
    pub async fn delete_object(&self, bucket: &str, key: &str) {
        let (status, reply) = self.request(Method::DELETE, &format!("/{bucket}/{key}"), Bytes::new()).await;
        assert!(status == 204 || status == 200, "DeleteObject {key}: {status} {reply}");
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

/// What [`S3Gate`] does with object uploads (`PUT`s of objects and parts;
/// server-side copies and every other request always pass), or, set with
/// [`S3Gate::set_part_copies`], with the parts of multipart copies
/// (`UploadPartCopy`), or, set with [`S3Gate::set_deletes`], with
/// `DeleteObjects` requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// Forwarded to the bucket.
    Pass,
    /// The next `n` are forwarded, the ones after answered 403
    /// `AccessDenied` (not retried by the client).
    FailAfter(usize),
    /// Held, unanswered, until the mode changes.
    Hold,
}

#[derive(Debug)]
struct GateState {
    /// Object uploads.
    uploads: Gated,
    /// `UploadPartCopy` requests.
    part_copies: Gated,
    /// `DeleteObjects` requests.
    deletes: Gated,
    /// `UploadPartCopy` requests forwarded to the bucket, ever.
    part_copies_forwarded: std::sync::atomic::AtomicUsize,
}

/// One kind of request [`S3Gate`] can fail or stall.
#[derive(Debug)]
struct Gated {
    mode: tokio::sync::watch::Sender<UploadMode>,
    /// Requests being held now.
    held: tokio::sync::watch::Sender<usize>,
    /// Requests passed since the mode was last set.
    passed: std::sync::atomic::AtomicUsize,
}

impl Gated {
    fn new() -> Self {
        Self {
            mode: tokio::sync::watch::channel(UploadMode::Pass).0,
            held: tokio::sync::watch::channel(0).0,
            passed: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn set(&self, mode: UploadMode) {
        self.passed.store(0, std::sync::atomic::Ordering::SeqCst);
        self.mode.send_replace(mode);
    }

    /// Holds the request while the mode is [`UploadMode::Hold`]; whether
    /// it is refused then.
    async fn refuses(&self) -> bool {
        let mut mode = self.mode.subscribe();
        if *mode.borrow_and_update() == UploadMode::Hold {
            self.held.send_modify(|n| *n += 1);
            let _ = mode.wait_for(|m| *m != UploadMode::Hold).await;
            self.held.send_modify(|n| *n -= 1);
        }
        let current = *self.mode.borrow();
        matches!(current, UploadMode::FailAfter(n)
            if self.passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= n)
    }
}

/// A proxy in front of a [`TestS3`] that can fail or stall object uploads:
/// a bucket that is slow or refuses writes, as an importer sees it.
#[derive(Debug)]
pub struct S3Gate {
    addr: std::net::SocketAddr,
    state: std::sync::Arc<GateState>,
    task: tokio::task::JoinHandle<()>,
}

impl S3Gate {
    /// Starts the proxy in front of `s3`, passing everything.
    pub async fn start(s3: &TestS3) -> Self {
        use hyper::service::service_fn;
        use std::sync::Arc;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(GateState {
            uploads: Gated::new(),
            part_copies: Gated::new(),
            deletes: Gated::new(),
            part_copies_forwarded: std::sync::atomic::AtomicUsize::new(0),
        });
        let upstream = s3.endpoint();
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (state, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (state, client, upstream) = (Arc::clone(&state), client.clone(), upstream.clone());
                        async move { Ok::<_, std::convert::Infallible>(gate(&state, &client, &upstream, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// [`TestS3::env`] through this proxy.
    pub fn env(&self, s3: &TestS3, bucket: &str) -> Vec<(&'static str, String)> {
        let mut env = s3.env(bucket);
        for (name, value) in &mut env {
            if *name == "AWS_ENDPOINT_URL" {
                *value = self.endpoint();
            }
        }
        env
    }

    /// Changes what happens to uploads (held ones follow the new mode).
    pub fn set(&self, mode: UploadMode) {
        self.state.uploads.set(mode);
    }

    /// Changes what happens to the parts of multipart copies
    /// (`UploadPartCopy`), as [`S3Gate::set`] does to uploads.
    pub fn set_part_copies(&self, mode: UploadMode) {
        self.state.part_copies.set(mode);
    }

    /// Changes what happens to `DeleteObjects` requests, as
    /// [`S3Gate::set`] does to uploads.
    pub fn set_deletes(&self, mode: UploadMode) {
        self.state.deletes.set(mode);
    }

    /// How many `UploadPartCopy` requests were forwarded to the bucket.
    pub fn part_copies_forwarded(&self) -> usize {
        self.state.part_copies_forwarded.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` uploads are held (panics after 30 s).
    pub async fn await_held(&self, n: usize) {
        let mut held = self.state.uploads.held.subscribe();
        tokio::time::timeout(Duration::from_secs(30), held.wait_for(|count| *count >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} uploads held: {} so far", *self.state.uploads.held.borrow()))
            .expect("the gate is running");
    }
}

impl Drop for S3Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request through [`S3Gate`].
async fn gate(
    state: &GateState,
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    upstream: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<http_body_util::Full<Bytes>> {
    use http_body_util::{BodyExt as _, Full};
    use std::sync::atomic::Ordering;

    let (mut parts, body) = req.into_parts();
    let copy = parts.headers.contains_key("x-amz-copy-source");
    let part_copy = parts.method == Method::PUT
        && copy
        && form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).any(|(name, _)| name == "uploadId");
    let delete = parts.method == Method::POST
        && form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).any(|(name, _)| name == "delete");
    let gated = match () {
        _ if part_copy => Some(&state.part_copies),
        _ if delete => Some(&state.deletes),
        _ if parts.method == Method::PUT && !copy => Some(&state.uploads),
        _ => None,
    };
    if let Some(gated) = gated
        && gated.refuses().await
    {
        let denied = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
                      <Message>the test gate refuses this request</Message></Error>";
        return hyper::Response::builder().status(403).body(Full::new(Bytes::from(denied))).unwrap();
    }
    if part_copy {
        state.part_copies_forwarded.fetch_add(1, Ordering::SeqCst);
    }
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{path}").parse().expect("an upstream URI");
    parts.headers.remove(http::header::HOST);
    match client.request(hyper::Request::from_parts(parts, Full::new(body))).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            hyper::Response::from_parts(parts, Full::new(body))
        }
        Err(e) => hyper::Response::builder().status(502).body(Full::new(Bytes::from(e.to_string()))).unwrap(),
    }
}

/// A request [`FakeMetadata`] got.
#[derive(Clone, Debug)]
pub struct MetadataRequest {
    /// `GET`, `PUT`.
    pub method: String,
    /// The path.
    pub path: String,
    /// All headers.
    pub headers: http::HeaderMap,
    /// The body (lossy text).
    pub body: String,
}

impl MetadataRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A parameter of a form-encoded body.
    pub fn form(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.body.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
    }
}

#[derive(Debug, Default)]
struct MetadataScript {
    /// Credentials handed out so far.
    issued: u32,
    /// Seconds until each answer's `Expiration`, in order (the last one
    /// repeats; 3600 when empty).
    expirations: Vec<i64>,
    /// Statuses to fail credentials requests with first.
    failures: Vec<u16>,
}

/// A fake of the metadata services role credentials come from, on
/// `127.0.0.1`: the ECS container endpoint (`GET /ecs/<anything>`, the
/// `Authorization` header checked against [`FakeMetadata::ECS_AUTH`]) and
/// EC2's `IMDSv2` (`PUT /latest/api/token`, then
/// `/latest/meta-data/iam/security-credentials/[<role>]` with the session
/// token), and STS's `AssumeRoleWithWebIdentity` (`POST /sts/`, a form
/// with `Action`, `Version`, `RoleArn`, `RoleSessionName` and
/// `WebIdentityToken`, unsigned; failures are answered as STS does, XML
/// with the code `InvalidIdentityToken`) and `AssumeRole` (the same form
/// without the token, signed: an `AWS4-HMAC-SHA256` `Authorization` for the
/// service `sts` is required, its signature is not checked; failures have
/// the code `AccessDenied`). The n-th credentials handed out are
/// `ASIAFAKE<n>`, `fake-secret-<n>` and `fake-session-token-<n>`. Every
/// request is recorded.
#[derive(Debug)]
pub struct FakeMetadata {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<MetadataRequest>>>,
    script: std::sync::Arc<std::sync::Mutex<MetadataScript>>,
    issued: tokio::sync::watch::Receiver<u32>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeMetadata {
    /// The container endpoint's expected `Authorization` header.
    pub const ECS_AUTH: &'static str = "Bearer fake-ecs-authorization";
    /// The `IMDSv2` session token handed out.
    pub const IMDS_TOKEN: &'static str = "fake-imds-session-token";
    /// The instance profile's role.
    pub const ROLE: &'static str = "scalelite-role";

    /// Starts the fake; `expirations` as in its script (seconds from now).
    pub async fn start(expirations: &[i64]) -> Self {
        use http_body_util::{BodyExt as _, Full};
        use hyper::service::service_fn;
        use std::sync::{Arc, Mutex};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script =
            Arc::new(Mutex::new(MetadataScript { expirations: expirations.to_vec(), ..MetadataScript::default() }));
        let (issued_tx, issued) = tokio::sync::watch::channel(0u32);
        let issued_tx = Arc::new(issued_tx);
        let (log, shared) = (Arc::clone(&requests), Arc::clone(&script));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (log, shared, issued_tx) = (Arc::clone(&log), Arc::clone(&shared), Arc::clone(&issued_tx));
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (log, shared, issued_tx) = (Arc::clone(&log), Arc::clone(&shared), Arc::clone(&issued_tx));
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let request = MetadataRequest {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                headers: parts.headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            log.lock().unwrap().push(request.clone());
                            let (status, body) = answer(&request, &shared, &issued_tx);
                            let response =
                                hyper::Response::builder().status(status).body(Full::new(Bytes::from(body))).unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, requests, script, issued, task }
    }

    /// `http://127.0.0.1:P<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<MetadataRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// How many credentials were handed out.
    pub fn issued(&self) -> u32 {
        *self.issued.borrow()
    }

    /// Waits until `n` credentials were handed out (panics after 30 s).
    pub async fn await_issued(&self, n: u32) {
        let mut issued = self.issued.clone();
        tokio::time::timeout(Duration::from_secs(30), issued.wait_for(|count| *count >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} credentials handed out: {} so far", self.issued()))
            .expect("the fake is running");
    }

    /// Fails the next credentials requests with these statuses.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.script.lock().unwrap().failures.extend_from_slice(statuses);
    }
}

fn answer(
    request: &MetadataRequest,
    script: &std::sync::Mutex<MetadataScript>,
    issued: &tokio::sync::watch::Sender<u32>,
) -> (u16, String) {
    let imds_base = "/latest/meta-data/iam/security-credentials/";
    let imds_token_ok = request.header("x-aws-ec2-metadata-token") == Some(FakeMetadata::IMDS_TOKEN);
    match (request.method.as_str(), request.path.as_str()) {
        ("PUT", "/latest/api/token") => {
            if request.header("x-aws-ec2-metadata-token-ttl-seconds").is_some_and(|ttl| ttl.parse::<u32>().is_ok()) {
                (200, FakeMetadata::IMDS_TOKEN.to_owned())
            } else {
                (400, "missing ttl".to_owned())
            }
        }
        ("GET", path) if path == imds_base => {
            if imds_token_ok {
                (200, format!("{}\n", FakeMetadata::ROLE))
            } else {
                (401, String::new())
            }
        }
        ("GET", path) if path.strip_prefix(imds_base) == Some(FakeMetadata::ROLE) => {
            if imds_token_ok {
                credentials(script, issued)
            } else {
                (401, String::new())
            }
        }
        ("GET", path) if path.starts_with("/ecs/") => {
            if request.header("authorization") == Some(FakeMetadata::ECS_AUTH) {
                credentials(script, issued)
            } else {
                (403, String::new())
            }
        }
        ("POST", "/sts/") => sts(request, script, issued),
        _ => (404, String::new()),
    }
}

/// An STS error answer: `status` with `code` and `message`.
fn sts_error(status: u16, code: &str, message: &str) -> (u16, String) {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>fake</RequestId></ErrorResponse>"
    );
    (status, body)
}

/// STS's `AssumeRoleWithWebIdentity`.
fn sts(
    request: &MetadataRequest,
    script: &std::sync::Mutex<MetadataScript>,
    issued: &tokio::sync::watch::Sender<u32>,
) -> (u16, String) {
    let error = |status: u16, code: &str| sts_error(status, code, "the fake refuses the token");
    if request.form("Action").as_deref() == Some("AssumeRole") {
        return sts_assume_role(request, script, issued);
    }
    let complete = ["RoleArn", "RoleSessionName", "WebIdentityToken"].iter().all(|name| request.form(name).is_some());
    if request.form("Action").as_deref() != Some("AssumeRoleWithWebIdentity")
        || request.form("Version").as_deref() != Some("2011-06-15")
        || !complete
        || request.header("authorization").is_some()
    {
        return error(400, "InvalidParameterValue");
    }
    let (n, expiration) = match next_credentials(script, issued) {
        Ok(next) => next,
        Err(status) => return error(status, "InvalidIdentityToken"),
    };
    let body = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleWithWebIdentityResult><Credentials><SessionToken>fake-session-token-{n}</SessionToken>\
         <SecretAccessKey>fake-secret-{n}</SecretAccessKey><Expiration>{expiration}</Expiration>\
         <AccessKeyId>ASIAFAKE{n}</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>\
         </AssumeRoleWithWebIdentityResponse>"
    );
    (200, body)
}

/// STS's `AssumeRole`, signed.
fn sts_assume_role(
    request: &MetadataRequest,
    script: &std::sync::Mutex<MetadataScript>,
    issued: &tokio::sync::watch::Sender<u32>,
) -> (u16, String) {
    let error = |status: u16, code: &str| sts_error(status, code, "the fake refuses to assume the role");
    let signed = request.header("authorization").is_some_and(|auth| {
        auth.starts_with("AWS4-HMAC-SHA256 Credential=")
            && auth.contains("/sts/aws4_request, SignedHeaders=")
            && auth.contains(", Signature=")
    });
    if !signed || request.header("x-amz-date").is_none() {
        return error(403, "MissingAuthenticationToken");
    }
    if request.form("Version").as_deref() != Some("2011-06-15")
        || request.form("RoleArn").is_none()
        || request.form("RoleSessionName").is_none()
    {
        return error(400, "InvalidParameterValue");
    }
    let (n, expiration) = match next_credentials(script, issued) {
        Ok(next) => next,
        Err(status) => return error(status, "AccessDenied"),
    };
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/fake/s</Arn></AssumedRoleUser>\
         <Credentials><AccessKeyId>ASIAFAKE{n}</AccessKeyId><SecretAccessKey>fake-secret-{n}</SecretAccessKey>\
         <SessionToken>fake-session-token-{n}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
         </AssumeRoleResult></AssumeRoleResponse>"
    );
    (200, body)
}

/// The number and expiration of the next credentials handed out, or the
/// status of the next scripted failure.
fn next_credentials(
    script: &std::sync::Mutex<MetadataScript>,
    issued: &tokio::sync::watch::Sender<u32>,
) -> Result<(u32, jiff::Timestamp), u16> {
    let mut script = script.lock().unwrap();
    if !script.failures.is_empty() {
        return Err(script.failures.remove(0));
    }
    script.issued += 1;
    let n = script.issued;
    let index = (n as usize - 1).min(script.expirations.len().saturating_sub(1));
    let expires_in = script.expirations.get(index).copied().unwrap_or(3600);
    let expiration = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + expires_in).unwrap();
    issued.send_replace(n);
    Ok((n, expiration))
}

fn credentials(script: &std::sync::Mutex<MetadataScript>, issued: &tokio::sync::watch::Sender<u32>) -> (u16, String) {
    let (n, expiration) = match next_credentials(script, issued) {
        Ok(next) => next,
        Err(status) => return (status, "{\"Code\":\"Unavailable\"}".to_owned()),
    };
    let body = serde_json::json!({
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": format!("ASIAFAKE{n}"),
        "SecretAccessKey": format!("fake-secret-{n}"),
        "Token": format!("fake-session-token-{n}"),
        "Expiration": expiration.to_string(),
    });
    (200, body.to_string())
}

impl Drop for FakeMetadata {
    fn drop(&mut self) {
        self.task.abort();
    }
}
