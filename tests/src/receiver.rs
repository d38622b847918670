//! `Receiver`: a front-end (or Keycloak) endpoint for callbacks from the
//! balancer. It answers with scripted statuses (then 200) and records every
//! request it got.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// `POST`, ...
    pub method: String,
    /// The path (without query).
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// `signed_parameters` of a form body (recording-ready callbacks).
    pub signed_parameters: Option<String>,
    /// All headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Received {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as form fields.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// An HTTP endpoint on `127.0.0.1` that records requests.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Answers the first requests with `statuses`, then 200; body `ok`.
    pub async fn start(statuses: &[u16]) -> Self {
        Self::start_with(statuses, "ok").await
    }

    /// Answers the first requests with `statuses`, then 200; every answer
    /// carries `body` (`application/json` when it starts with `{`).
    pub async fn start_with(statuses: &[u16], body: impl Into<Bytes>) -> Self {
        let body: Bytes = body.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(statuses.iter().copied().collect::<VecDeque<_>>()));
        let (log, script) = (Arc::clone(&requests), Arc::clone(&statuses));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (log, script, body) = (Arc::clone(&log), Arc::clone(&script), body.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (log, script, reply) = (Arc::clone(&log), Arc::clone(&script), body.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let signed_parameters = form_urlencoded::parse(&body)
                                .find(|(k, _)| k == "signed_parameters")
                                .map(|(_, v)| v.into_owned());
                            log.lock().unwrap().push(Received {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                query: parts.uri.query().map(str::to_owned),
                                content_type: parts
                                    .headers
                                    .get(http::header::CONTENT_TYPE)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                                signed_parameters,
                                headers: parts.headers,
                                body,
                            });
                            let status = script.lock().unwrap().pop_front().unwrap_or(200);
                            let content_type = if reply.starts_with(b"{") { "application/json" } else { "text/plain" };
                            let response = Response::builder()
                                .status(status)
                                .header(http::header::CONTENT_TYPE, content_type)
                                .body(Full::new(reply))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, requests, statuses, task }
    }

    /// `http://127.0.0.1:P<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Queues more statuses to answer with.
    pub fn answer(&self, statuses: &[u16]) {
        self.statuses.lock().unwrap().extend(statuses.iter().copied());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
