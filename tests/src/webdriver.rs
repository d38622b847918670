//! A headless Chromium driven over `WebDriver` (W3C JSON protocol, spoken
//! with the harness's own HTTP client): Debian's `chromium` and
//! `chromium-driver` packages, `chromedriver` started on a random port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::client::http_request;
use crate::util::{eventually_with, find_binary, free_port};

/// How long one `WebDriver` command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A `chromedriver` process with one headless Chromium session; both end
/// when it is dropped.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    base: String,
    session: String,
}

/// An element found on the page (its `WebDriver` reference).
#[derive(Clone, Debug)]
pub struct Element(String);

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn binary(name: &str, package: &str) -> PathBuf {
    find_binary(name, &[Path::new("/usr/bin"), Path::new("/usr/lib/chromium")]).unwrap_or_else(|| {
        panic!("{name} not found: install the Debian package `{package}` (apt-get install chromium chromium-driver)")
    })
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session.
    ///
    /// # Panics
    ///
    /// Panics, naming the Debian package, when `chromium` or
    /// `chromedriver` is missing, or when the session cannot be created.
    pub async fn start() -> Browser {
        let chromium = binary("chromium", "chromium");
        let driver = binary("chromedriver", "chromium-driver");
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", driver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser { child, base, session: String::new() };
        let status = format!("{}/status", browser.base);
        eventually_with(Duration::from_secs(30), "chromedriver ready", || {
            let status = status.clone();
            async move {
                let reply = http_request(Method::GET, &status, &[], Bytes::new(), Duration::from_secs(2)).await;
                reply.is_ok_and(|r| {
                    serde_json::from_str::<Value>(&r.body).is_ok_and(|v| v["value"]["ready"] == json!(true))
                })
            }
        })
        .await;
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium.display().to_string(),
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--window-size=1400,1000", "--no-first-run", "--disable-extensions"]
                }
            }}
        });
        let created = browser.command(Method::POST, "/session", Some(capabilities)).await;
        browser.session = created["sessionId"].as_str().expect("a WebDriver session id").to_owned();
        browser
    }

    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(serde_json::to_vec(&b).unwrap()));
        let headers = [("content-type", "application/json")];
        let reply = http_request(method.clone(), &url, &headers, body, COMMAND_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let value: Value = serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: not JSON ({e}): {}", reply.body));
        assert!(reply.status == 200, "WebDriver {method} {path}: HTTP {}: {}", reply.status, reply.body);
        value["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.command(Method::POST, &self.session_path("/url"), Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.command(Method::GET, &self.session_path("/url"), None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.command(Method::GET, &self.session_path("/title"), None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''").await.as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching a CSS `selector`, if any.
    pub async fn find(&self, selector: &str) -> Option<Element> {
        let url = format!("{}{}", self.base, self.session_path("/element"));
        let body = Bytes::from(serde_json::to_vec(&json!({ "using": "css selector", "value": selector })).unwrap());
        let reply = http_request(Method::POST, &url, &[("content-type", "application/json")], body, COMMAND_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("WebDriver find {selector}: {e}"));
        if reply.status == 404 && reply.body.contains("no such element") {
            return None;
        }
        assert!(reply.status == 200, "WebDriver find {selector}: HTTP {}: {}", reply.status, reply.body);
        let value: Value = serde_json::from_str(&reply.body).ok()?;
        value["value"][ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
    }

    /// The element matching `selector`.
    ///
    /// # Panics
    ///
    /// Panics (with the page's text) when there is none.
    pub async fn must_find(&self, selector: &str) -> Element {
        match self.find(selector).await {
            Some(element) => element,
            None => panic!("no element {selector} on {}:\n{}", self.url().await, self.text().await),
        }
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) {
        self.command(Method::POST, &self.session_path(&format!("/element/{}/click", element.0)), Some(json!({}))).await;
    }

    /// Clicks `element` (a link or a submit button) and waits until the
    /// browser shows the next page.
    pub async fn click_and_wait(&self, element: &Element) {
        self.script("window.__consoleOldPage = true; return null").await;
        self.click(element).await;
        eventually_with(COMMAND_TIMEOUT, "the next page", || async {
            let script = json!({
                "script": "return !window.__consoleOldPage && document.readyState === 'complete'",
                "args": []
            });
            let url = format!("{}{}", self.base, self.session_path("/execute/sync"));
            let body = Bytes::from(serde_json::to_vec(&script).unwrap());
            let reply =
                http_request(Method::POST, &url, &[("content-type", "application/json")], body, COMMAND_TIMEOUT).await;
            reply.is_ok_and(|r| {
                r.status == 200 && serde_json::from_str::<Value>(&r.body).is_ok_and(|v| v["value"] == json!(true))
            })
        })
        .await;
    }

    /// Types `text` into `element`.
    pub async fn type_into(&self, element: &Element, text: &str) {
        let path = self.session_path(&format!("/element/{}/value", element.0));
        self.command(Method::POST, &path, Some(json!({ "text": text }))).await;
    }

    /// Presses keys (`WebDriver` key codes, `"\u{E004}"` is Tab) on whatever
    /// has the focus.
    pub async fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let key = c.to_string();
                [json!({ "type": "keyDown", "value": key }), json!({ "type": "keyUp", "value": key })]
            })
            .collect();
        let body = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] });
        self.command(Method::POST, &self.session_path("/actions"), Some(body)).await;
    }

    /// Runs `script` in the page and returns its result.
    pub async fn script(&self, script: &str) -> Value {
        self.command(Method::POST, &self.session_path("/execute/sync"), Some(json!({ "script": script, "args": [] })))
            .await
    }

    /// Saves a PNG screenshot of the window to `path` (directories created).
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.command(Method::GET, &self.session_path("/screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver ends its Chromium when the session is deleted or
        // when it is killed; kill it and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
