//! A real `nginx` (Debian's package) for tests, running the site
//! configuration shipped in `docker/nginx/scalelite.conf.template` in front
//! of a [`crate::TestApp`].
//!
//! nginx runs in the foreground as one process (`daemon off`,
//! `master_process off`) on a free port of 127.0.0.1, with its
//! configuration, pid file, logs and temporary files in a fresh temporary
//! directory. It is killed when the value is dropped.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpStream;

use crate::util::{StartError, Starting, await_ready, find_binary, free_port, log_tail, wait_child};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The site template of `docker/nginx/`.
pub const SITE_TEMPLATE: &str = include_str!("../../docker/nginx/scalelite.conf.template");

/// The variables [`SITE_TEMPLATE`] expects.
pub const SITE_VARIABLES: [&str; 5] =
    ["NGINX_LISTEN", "SCALELITE_API_HOST", "SCALELITE_API_PORT", "RECORDING_PUBLISH_DIR", "PLAYBACK_PLAYER_ROOT"];

/// Where the shipped site sends requests and finds files.
#[derive(Clone, Debug)]
pub struct SiteSettings {
    /// The `scalelite-api` to proxy to.
    pub api: SocketAddr,
    /// `RECORDING_PUBLISH_DIR`.
    pub publish_dir: PathBuf,
    /// The directory holding `playback/presentation/2.3`.
    pub player_root: PathBuf,
}

/// Renders [`SITE_TEMPLATE`] as `envsubst` would with `values` (every
/// variable of [`SITE_VARIABLES`] must be given).
///
/// # Panics
///
/// Panics when a variable is missing or the template holds an unknown one.
pub fn render_site(values: &[(&str, String)]) -> String {
    let mut site = SITE_TEMPLATE.to_owned();
    for name in SITE_VARIABLES {
        let (_, value) = values.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no value for ${{{name}}}"));
        site = site.replace(&format!("${{{name}}}"), value);
    }
    // Comments may name the variables; directives must not keep any.
    let leftover = site.lines().filter(|l| !l.trim_start().starts_with('#')).find(|l| l.contains("${"));
    assert!(leftover.is_none(), "unknown template variable in: {leftover:?}");
    site
}

/// A running nginx.
#[derive(Debug)]
pub struct TestNginx {
    port: u16,
    dir: TempDir,
    child: Mutex<Option<Child>>,
}

impl TestNginx {
    /// Starts nginx with the shipped site, rendered for `settings`.
    ///
    /// # Panics
    ///
    /// Panics when `nginx` is not installed or does not come up.
    pub async fn scalelite(settings: &SiteSettings) -> Self {
        let settings = settings.clone();
        Self::start(move |listen| {
            render_site(&[
                ("NGINX_LISTEN", listen.to_owned()),
                ("SCALELITE_API_HOST", settings.api.ip().to_string()),
                ("SCALELITE_API_PORT", settings.api.port().to_string()),
                ("RECORDING_PUBLISH_DIR", settings.publish_dir.display().to_string()),
                ("PLAYBACK_PLAYER_ROOT", settings.player_root.display().to_string()),
            ])
        })
        .await
    }

    /// Starts nginx with the http-context configuration `site(listen)`
    /// returns for a listen address such as `127.0.0.1:PORT`.
    ///
    /// # Panics
    ///
    /// Panics when `nginx` is not installed or does not come up.
    pub async fn start(site: impl Fn(&str) -> String) -> Self {
        let binary = find_binary("nginx", &[Path::new("/usr/sbin"), Path::new("/usr/bin")])
            .unwrap_or_else(|| panic!("nginx not found: install the Debian package `nginx` (apt-get install nginx)"));
        let dir = tempfile::Builder::new().prefix("test-nginx-").tempdir().expect("temp dir for nginx");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(dir.path().join("site.conf"), site(&format!("127.0.0.1:{port}"))).expect("write site.conf");
            std::fs::write(dir.path().join("nginx.conf"), main_config(dir.path())).expect("write nginx.conf");
            match spawn_and_wait(&binary, dir.path(), port).await {
                Ok(child) => return Self { port, dir, child: Mutex::new(Some(child)) },
                Err(StartError::PortInUse) => last_error = format!("port {port} already in use"),
                Err(StartError::Other(message)) => panic!("{message}"),
            }
        }
        panic!("nginx could not bind a free port: {last_error}");
    }

    /// `http://127.0.0.1:P`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the configuration and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The error log so far (for assertion messages).
    pub fn error_log(&self) -> String {
        log_tail(&self.dir.path().join("error.log"), 8000)
    }
}

impl Drop for TestNginx {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).ok().flatten();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The main configuration: foreground, one process, everything in `dir`.
fn main_config(dir: &Path) -> String {
    let d = dir.display();
    let mime = Path::new("/etc/nginx/mime.types");
    let types = if mime.exists() {
        format!("include {};", mime.display())
    } else {
        "types { text/html html; text/xml xml; image/svg+xml svg; audio/ogg ogg; application/javascript js; }"
            .to_owned()
    };
    format!(
        "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  {types}
  default_type application/octet-stream;
  access_log {d}/access.log;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  include {d}/site.conf;
}}
"
    )
}

async fn spawn_and_wait(binary: &Path, dir: &Path, port: u16) -> Result<Child, StartError> {
    let log_path = dir.join("error.log");
    let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .map_err(|e| StartError::Other(format!("cannot open nginx's stderr log: {e}")))?;
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(&log_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| StartError::Other(format!("cannot run {}: {e}", binary.display())))?;
    let starting = Starting { name: "nginx", port, log: &log_path, log_start, timeout: START_TIMEOUT };
    let ready = || async move { TcpStream::connect(("127.0.0.1", port)).await.is_ok() };
    let stop = |child: &mut Child| {
        let _ = child.kill();
        wait_child(child, Duration::from_secs(5));
    };
    await_ready(child, &starting, Duration::from_millis(10), ready, stop).await.map_err(|e| match e {
        StartError::Other(message) => {
            StartError::Other(format!("{message}\nstderr:\n{}", log_tail(&dir.join("stderr.log"), 4000)))
        }
        port_in_use => port_in_use,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_template_renders_completely() {
        let site = render_site(&SITE_VARIABLES.map(|n| (n, format!("<{n}>"))));
        assert!(site.contains("proxy_pass http://<SCALELITE_API_HOST>:<SCALELITE_API_PORT>;"));
        assert!(site.contains("alias <RECORDING_PUBLISH_DIR>/;"));
        // nginx's own variables are left alone.
        assert!(site.contains("$http_x_forwarded_proto"));
    }
}
