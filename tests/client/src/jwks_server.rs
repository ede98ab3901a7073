//! An HTTPS server on 127.0.0.1 for the key-fetcher tests: it mints its own CA and server
//! certificate when it starts, serves what the test tells it per path (a JWKS it can change,
//! an error status, garbage, a huge or slow body, a redirect, a closed connection), and counts
//! the requests per path.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server answers on a path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this body and, if given, this Cache-Control header.
    Body {
        body: String,
        cache_control: Option<String>,
    },
    /// This HTTP status, empty body.
    Status(u16),
    /// 200 with 10 MiB of data.
    Huge,
    /// 200, then the body one byte per second.
    Slow,
    /// 200, chunked, then one chunk-size line that never ends (64 MiB of hex digits, as fast as
    /// the reader takes them).
    EndlessChunkSize,
    /// 302 to this location.
    Redirect(String),
    /// Close the connection before answering.
    Close,
}

pub struct JwksServer {
    pub port: u16,
    dir: PathBuf,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, u64>>>,
    stop: Arc<AtomicBool>,
}

/// A CA certificate in PEM and a leaf certificate and key (DER) for 127.0.0.1 signed by it.
fn mint() -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "pg_jwt test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    (
        ca_cert.pem(),
        leaf_cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
}

/// A PEM file with a CA that signed nothing this server presents (for the wrong-CA test).
pub fn unrelated_ca_pem() -> String {
    mint().0
}

impl JwksServer {
    pub fn start() -> JwksServer {
        let (ca_pem, cert, key) = mint();
        let dir = std::env::temp_dir().join(format!("pgjwt-jwks-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o755);
        std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
        set_mode(&dir.join("ca.pem"), 0o644);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (replies, hits, stop) = (Arc::clone(&replies), Arc::clone(&hits), Arc::clone(&stop));
            std::thread::spawn(move || {
                // Bounded: the loop ends when the server is dropped.
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            let (config, replies, hits) =
                                (Arc::clone(&config), Arc::clone(&replies), Arc::clone(&hits));
                            std::thread::spawn(move || serve(tcp, config, &replies, &hits));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        JwksServer {
            port,
            dir,
            replies,
            hits,
            stop,
        }
    }

    /// The CA file to give `pg_jwt.jwks_ca_file` (readable by the server's OS user).
    pub fn ca_file(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// A file with another CA, in the same readable directory.
    pub fn wrong_ca_file(&self) -> String {
        let path = self.dir.join("other-ca.pem");
        std::fs::write(&path, unrelated_ca_pem()).unwrap();
        set_mode(&path, 0o644);
        path.display().to_string()
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub fn set_body(&self, path: &str, body: &str) {
        self.set(
            path,
            Reply::Body {
                body: body.to_owned(),
                cache_control: None,
            },
        );
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    replies: &Mutex<HashMap<String, Reply>>,
    hits: &Mutex<HashMap<String, u64>>,
) {
    tcp.set_nonblocking(false).ok();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = replies
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or(Reply::Status(404));
    let _ = match reply {
        Reply::Body { body, cache_control } => {
            let cc = cache_control
                .map(|c| format!("Cache-Control: {c}\r\n"))
                .unwrap_or_default();
            write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{cc}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        Reply::Status(code) => write!(
            tls,
            "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Huge => {
            let size = 10 * 1024 * 1024;
            let chunk = vec![b' '; 64 * 1024];
            let mut r = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            for _ in 0..(size / chunk.len()) {
                if r.is_err() {
                    break;
                }
                r = tls.write_all(&chunk);
            }
            r
        }
        Reply::EndlessChunkSize => {
            let digits = vec![b'1'; 64 * 1024];
            let mut r = write!(
                tls,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            for _ in 0..1024 {
                if r.is_err() {
                    break;
                }
                r = tls.write_all(&digits);
            }
            r
        }
        Reply::Slow => {
            let mut r = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
            );
            for _ in 0..30 {
                if r.is_err() {
                    break;
                }
                r = tls.write_all(b" ").and_then(|_| tls.flush());
                std::thread::sleep(Duration::from_secs(1));
            }
            r
        }
        Reply::Redirect(location) => write!(
            tls,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Close => return,
    };
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
