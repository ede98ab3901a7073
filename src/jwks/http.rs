//! Fetching a JWKS over HTTPS, and OpenID Connect discovery. Plain Rust, no PostgreSQL: only
//! the background worker (`worker`) calls this; no backend ever touches the network.
//!
//! Transport rules: https only (also for every redirect, at most `MAX_REDIRECTS` hops);
//! certificates verified against the system trust store (the first of the distributions' known
//! bundle paths that exists, `SYSTEM_CA_BUNDLES`) or, when
//! `pg_jwt.jwks_ca_file` is set, that file alone; DNS, connect and total timeouts; a size cap on the
//! body, and one on every byte a fetch reads from the network (`RAW_BUDGET`: TLS, headers, chunk
//! framing and bodies, redirects and discovery included) and on its time (`FETCH_DEADLINE`);
//! no proxy from the environment. Client: `ureq` 2 with rustls (pure Rust TLS, blocking,
//! no async runtime: the worker fetches one document at a time and has nothing else to do).

use pg_jwt_core::{Json, KeySet};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest response accepted (the shared-memory buffer for the key set is this large).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_REDIRECTS: u32 = 3;
/// Bytes one fetch may read from the servers it talks to, as they arrive on the socket: TLS
/// handshakes and records, so headers, chunk framing and bodies of every response (redirects,
/// discovery and key set). The body cap alone bounds only the decoded body: ureq 2 collects a
/// chunked response's size line, and every header line (up to 101 of 100 KiB each, and lines
/// it cannot parse without limit), before any cap applies, so an endless size line grew the
/// worker's memory at the link's speed for the whole 10 s deadline (gigabytes; the worker's
/// crash then restarts the cluster). Two capped bodies fit with room.
pub const RAW_BUDGET: u64 = 2 * 1024 * 1024;
/// How long one fetch may use the network in all (discovery and key set, each with its name
/// resolution and its request): ureq's total timeout is checked between reads, and each read's
/// socket timeout starts again at every byte, so a server trickling records (a certificate,
/// TLS 1.3 session tickets, which give no plaintext) held a fetch thread for ever.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(2 * (DNS_TIMEOUT.as_secs() + TOTAL_TIMEOUT.as_secs()));
/// Name resolution is bounded too: ureq's connect timeout starts after it, and the system
/// resolver may wait far longer than this on an unreachable DNS server.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// The system resolver, run on a helper thread and given up on after `DNS_TIMEOUT` (the helper
/// ends when the resolver returns; its answer is dropped).
struct BoundedResolver;

impl ureq::Resolver for BoundedResolver {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
        use std::net::ToSocketAddrs;
        let (tx, rx) = std::sync::mpsc::channel();
        let name = netloc.to_owned();
        std::thread::Builder::new().name("pg_jwt dns".into()).spawn(move || {
            let _ = tx.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        })?;
        match rx.recv_timeout(DNS_TIMEOUT) {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("name resolution took longer than {} s", DNS_TIMEOUT.as_secs()),
            )),
        }
    }
}
/// Where distributions keep the system's trusted CA certificates as one PEM bundle, in the
/// order tried (the first that exists is used): Debian, Ubuntu, Alpine (and Arch, Gentoo);
/// RHEL, Rocky, Alma, Fedora, CentOS; openSUSE and SLES; Alpine's and the BSDs' other name.
/// `pg_jwt.jwks_ca_file` overrides them all.
const SYSTEM_CA_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/var/lib/ca-certificates/ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The CA file to trust: `pg_jwt.jwks_ca_file` if set, else the first of `candidates` that
/// exists (the first, to name in the error, if none does).
fn ca_bundle<'a>(ca_file: Option<&'a str>, candidates: &[&'a str]) -> &'a str {
    if let Some(f) = ca_file.filter(|p| !p.is_empty()) {
        return f;
    }
    candidates
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).is_file())
        .or_else(|| candidates.first().copied())
        .unwrap_or_default()
}

/// A key set that was fetched and imported under the strict rules.
pub struct Fetched {
    /// The JWKS text as received (what goes to shared memory and the data directory).
    pub text: String,
    /// The `kid`s it holds.
    pub kids: Vec<String>,
    /// How long the server says it may be cached (`Cache-Control: max-age`, `Expires`), if it
    /// says so; the caller clamps it.
    pub max_age: Option<Duration>,
    /// The URI the key set came from (after discovery).
    pub uri: String,
}

/// Everything needed to fetch.
pub struct Source<'a> {
    /// `pg_jwt.jwks_uri`: an https URL, or `discover`.
    pub jwks_uri: &'a str,
    /// `pg_jwt.issuer` (needed for discovery, which must name the same issuer).
    pub issuer: Option<&'a str>,
    /// `pg_jwt.jwks_ca_file`, if set.
    pub ca_file: Option<&'a str>,
}

/// Fetches and imports the key set. Errors are one line without key bytes.
pub fn fetch(source: &Source<'_>) -> Result<Fetched, String> {
    let agent = &agent(source.ca_file)?;
    let uri = if source.jwks_uri == "discover" {
        discover(&agent, source.issuer)?
    } else {
        source.jwks_uri.to_owned()
    };
    require_https(&uri, "pg_jwt.jwks_uri")?;
    let (body, max_age) = get(&agent, &uri)?;
    let set = KeySet::parse(&body).map_err(|e| format!("the key set from {uri} does not import: {e}"))?;
    if set.holds_secrets {
        // Whoever can read the URL could sign tokens with a secret (oct) key served there.
        return Err(format!(
            "the key set from {uri} holds a secret (oct) key: a fetched key set must be public keys only"
        ));
    }
    let kids = set.kids().into_iter().map(str::to_owned).collect();
    let text = String::from_utf8(body).map_err(|_| format!("the key set from {uri} is not UTF-8"))?;
    Ok(Fetched {
        text,
        kids,
        max_age,
        uri,
    })
}

/// An `https://` URL of printable ASCII (no space or control character: a discovered
/// `jwks_uri` is the provider's text, and it reaches the server log) with something after the
/// scheme.
pub fn is_https(uri: &[u8]) -> bool {
    uri.iter().all(u8::is_ascii_graphic)
        && uri.len() > 8
        && uri.get(..8).is_some_and(|p| p.eq_ignore_ascii_case(b"https://"))
}

fn require_https(uri: &str, what: &str) -> Result<(), String> {
    if is_https(uri.as_bytes()) {
        Ok(())
    } else {
        Err(format!("{what} must be an https:// URL"))
    }
}

/// OpenID Connect discovery: `<issuer>/.well-known/openid-configuration`, whose `issuer` must
/// equal `pg_jwt.issuer` exactly (OIDC Discovery 4.3) and whose `jwks_uri` must be https.
fn discover(agent: &Client, issuer: Option<&str>) -> Result<String, String> {
    let issuer = issuer
        .filter(|i| !i.is_empty())
        .ok_or("pg_jwt.jwks_uri = 'discover' needs pg_jwt.issuer")?;
    require_https(issuer, "pg_jwt.issuer (for discovery)")?;
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let (body, _) = get(agent, &url)?;
    let doc = Json::parse(&body).map_err(|_| format!("the discovery document at {url} is not valid JSON"))?;
    if doc.get("issuer").and_then(Json::as_str) != Some(issuer) {
        return Err(format!("the discovery document at {url} names another issuer"));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Json::as_str)
        .ok_or_else(|| format!("the discovery document at {url} has no jwks_uri"))?;
    require_https(jwks_uri, "the discovered jwks_uri")?;
    Ok(jwks_uri.to_owned())
}

/// An HTTPS client for one fetch, and what is left of its `RAW_BUDGET`.
struct Client {
    agent: ureq::Agent,
    left: Arc<AtomicU64>,
}

/// The TLS connector of a fetch: ureq's rustls connection over the socket, whose reads count
/// against the fetch's budget and deadline (`Capped`). With `https_only`, every connection of
/// the agent is one of these.
struct CappedTls {
    config: Arc<rustls::ClientConfig>,
    left: Arc<AtomicU64>,
    deadline: Instant,
}

impl ureq::TlsConnector for CappedTls {
    fn connect(&self, dns_name: &str, io: Box<dyn ureq::ReadWrite>) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let capped = Box::new(Capped {
            inner: io,
            left: Arc::clone(&self.left),
            deadline: self.deadline,
        });
        ureq::TlsConnector::connect(&self.config, dns_name, capped)
    }
}

/// The socket under TLS: a read fails once the fetch's budget is spent or its deadline passed,
/// and waits at most until the deadline.
struct Capped {
    inner: Box<dyn ureq::ReadWrite>,
    left: Arc<AtomicU64>,
    deadline: Instant,
}

impl std::fmt::Debug for Capped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capped").field("inner", &self.inner).finish()
    }
}

impl Capped {
    /// The time left to the fetch's deadline (never zero: an error once it has passed).
    fn time_left(&self) -> std::io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "the fetch took too long"))
    }
}

/// The shorter of the socket's timeout (ureq's, per request, when it set one) and `left`.
fn shorter(set: Option<Duration>, left: Duration) -> Duration {
    set.filter(|d| !d.is_zero()).map_or(left, |d| d.min(left))
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.left.load(Ordering::Relaxed);
        if left == 0 {
            return Err(std::io::Error::other(BUDGET_SPENT));
        }
        let time = self.time_left()?;
        if let Some(socket) = self.inner.socket() {
            // ureq sets its own read timeout (what is left of its request's); this read waits
            // no longer than that, nor past the fetch's deadline.
            socket.set_read_timeout(Some(shorter(socket.read_timeout()?, time)))?;
        }
        let room = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..room).unwrap_or_default())?;
        // One thread reads a fetch's connections, one at a time: load and store do not race.
        self.left.store(left.saturating_sub(n as u64), Ordering::Relaxed);
        Ok(n)
    }
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A server that stops reading cannot hold a write past the deadline either.
        let time = self.time_left()?;
        if let Some(socket) = self.inner.socket() {
            socket.set_write_timeout(Some(shorter(socket.write_timeout()?, time)))?;
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ureq::ReadWrite for Capped {
    // ureq sets its read and write timeouts (the deadline) on the socket.
    fn socket(&self) -> Option<&std::net::TcpStream> {
        self.inner.socket()
    }
}

const BUDGET_SPENT: &str = "the responses are larger than the fetch allows";

fn agent(ca_file: Option<&str>) -> Result<Client, String> {
    let path = ca_bundle(ca_file, &SYSTEM_CA_BUNDLES);
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the CA file {path}: {}", e.kind()))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut added = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|_| format!("the CA file {path} is not valid PEM"))?;
        if roots.add(cert).is_ok() {
            added += 1;
        }
    }
    if added == 0 {
        return Err(format!("the CA file {path} holds no usable certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let left = Arc::new(AtomicU64::new(RAW_BUDGET));
    let tls = CappedTls {
        config: Arc::new(config),
        left: Arc::clone(&left),
        deadline: Instant::now() + FETCH_DEADLINE,
    };
    let agent = ureq::AgentBuilder::new()
        .tls_connector(Arc::new(tls))
        .https_only(true)
        // ureq 2 counts the first response among its `redirects`: MAX_REDIRECTS hops are
        // MAX_REDIRECTS + 1.
        .redirects(MAX_REDIRECTS + 1)
        .resolver(BoundedResolver)
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .user_agent(concat!("pg_jwt/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(Client { agent, left })
}

/// GET with the size cap; the body and the server's caching lifetime.
fn get(client: &Client, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
    let spent = || client.left.load(Ordering::Relaxed) == 0;
    let over = || format!("{url}: {BUDGET_SPENT} ({RAW_BUDGET} bytes with headers and redirects)");
    let response = client.agent.get(url).call().map_err(|e| match e {
        _ if spent() => over(),
        ureq::Error::Status(code, _) => format!("{url} answered HTTP {code}"),
        // ureq's transport messages name the URL themselves.
        ureq::Error::Transport(t) => transport_error(&t),
    })?;
    let max_age = max_age(
        response.header("cache-control"),
        response.header("expires"),
        response.header("date"),
    );
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| match () {
            _ if spent() => over(),
            _ => format!("{url}: reading the body failed ({})", e.kind()),
        })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(format!("{url}: the body is larger than {MAX_BODY_BYTES} bytes"));
    }
    Ok((body, max_age))
}

fn transport_error(t: &ureq::Transport) -> String {
    // ureq's messages name the kind (DNS, connection, TLS, insecure redirect, timeout) without
    // any of the body, but may quote a few bytes the server sent (a status line it could not
    // parse): control characters are escaped, so the line reaches the log and jwt_jwks_status()
    // on one line and with no terminal escape in it.
    printable_line(&t.to_string())
}

/// `s` with every character but printable ASCII and the space (control characters, newlines,
/// bidirectional overrides) escaped as `\u{..}`; nothing cut.
fn printable_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c.is_ascii_graphic() || c == ' ') {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The caching lifetime a response allows: `Cache-Control: max-age` first (`no-cache` or
/// `no-store` give zero), else `Expires` relative to `Date` (or now).
pub fn max_age(cache_control: Option<&str>, expires: Option<&str>, date: Option<&str>) -> Option<Duration> {
    if let Some(cc) = cache_control {
        for directive in cc.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return Some(Duration::ZERO);
            }
            if let Some(v) = lower.strip_prefix("max-age=") {
                if let Ok(secs) = v.trim_matches('"').parse::<u64>() {
                    return Some(Duration::from_secs(secs));
                }
            }
        }
    }
    let expires = httpdate::parse_http_date(expires?).ok()?;
    let now = date
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    Some(expires.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_error_reaches_the_log_on_one_line_without_control_characters() {
        // What ureq quoted of a status line a hostile provider sent: ESC c (a terminal reset), CR.
        let line = printable_line("unable to parse status as u16 (\u{1b}c\r)\nnext");
        assert_eq!(line, "unable to parse status as u16 (\\u{1b}c\\u{d})\\u{a}next");
        assert!(!line.chars().any(char::is_control));
        assert_eq!(printable_line("a\u{202e}b"), "a\\u{202e}b");
    }

    #[test]
    fn cache_control_and_expires() {
        assert_eq!(
            max_age(Some("public, max-age=300"), None, None),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age(Some("Max-Age=\"60\""), None, None),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(Some("no-store"), None, None), Some(Duration::ZERO));
        assert_eq!(
            max_age(
                None,
                Some("Wed, 21 Oct 2015 07:30:00 GMT"),
                Some("Wed, 21 Oct 2015 07:28:00 GMT")
            ),
            Some(Duration::from_secs(120))
        );
        assert_eq!(max_age(None, Some("garbage"), None), None);
        assert_eq!(max_age(None, None, None), None);
    }

    #[test]
    fn the_system_trust_store_is_found_on_any_distribution() {
        let dir = std::env::temp_dir().join(format!("pg_jwt_ca_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rhel = dir.join("tls-ca-bundle.pem");
        std::fs::write(&rhel, "x").unwrap();
        let missing = dir.join("ca-certificates.crt");
        let (missing, rhel) = (missing.to_str().unwrap(), rhel.to_str().unwrap());
        // The first candidate that exists, whatever its place in the list.
        assert_eq!(ca_bundle(None, &[missing, rhel]), rhel);
        assert_eq!(ca_bundle(Some(""), &[missing, rhel]), rhel);
        // The setting overrides them.
        assert_eq!(ca_bundle(Some("/etc/mine.pem"), &[missing, rhel]), "/etc/mine.pem");
        // None exists: the first, so that the error names a path.
        assert_eq!(ca_bundle(None, &[missing]), missing);
        std::fs::remove_dir_all(&dir).unwrap();
        // This machine's own store is among the known ones.
        assert!(SYSTEM_CA_BUNDLES.iter().any(|p| std::path::Path::new(p).is_file()));
    }

    #[test]
    fn only_https() {
        assert!(require_https("https://id.example.com/jwks", "x").is_ok());
        assert!(require_https("HTTPS://id.example.com/jwks", "x").is_ok());
        for bad in [
            "http://id.example.com/jwks",
            "https://",
            "file:///etc/passwd",
            "discover",
            "https://id.example.com/jwks\nLOG:  forged",
            "https://id.example.com/a b",
        ] {
            assert!(require_https(bad, "x").is_err(), "{bad}");
        }
    }
}

/// Runs `work` on a thread of its own with every signal blocked there (PostgreSQL's handlers
/// must run on the worker's own thread).
pub fn spawn_blocked<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only read and write the
    // sets given. The thread inherits the blocked mask; the worker's own mask is restored at
    // once, so its handlers (SIGTERM, SIGHUP, latch wakeups) keep running on its thread only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let spawned = std::thread::Builder::new().name("pg_jwt fetch".into()).spawn(work);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}
