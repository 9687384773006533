//! A small hostile Git LFS server for the tests (issue 20): HTTPS with rustls in the test
//! process, on 127.0.0.1, with the certificate of an `HttpsServer` (so the mirror's `ca_file`
//! trusts both), keep-alive connections, and a handler the test writes that decides each
//! answer: a batch answer, a redirect, a 429 with `Retry-After`, or no answer at all (with or
//! without reading the request body). It records every request it got. Dropping it shuts every
//! connection down and stops its threads.

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A request's head, as the handler sees it.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    pub path: String,
    /// (lowercased name, value)
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
pub enum Reply {
    /// Read the body (Content-Length) and ask the handler again with it.
    ReadBody,
    /// Answer: status, extra headers, body.
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Never answer, after reading the body.
    Stall,
    /// Never answer, and never read the body.
    StallUnread,
    /// After reading the body: a 200 head announcing 1000 bytes of body, then one byte every
    /// 300 ms (a server that keeps the connection busy without ever finishing).
    Trickle,
    /// After reading the body: the head of an answer that never ends, a byte every 200 ms for
    /// at most 15 s (every read moves; a client bounding only each read waits that long). When
    /// the client hangs up first, `seen` gets a `(client hung up)` entry for the request.
    TrickleHead,
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Which connection (0, 1, ...) and how many requests it had served before this one.
    pub connection: usize,
    pub nth_on_connection: usize,
    pub authorization: bool,
}

type Handler = dyn Fn(&Head, Option<&[u8]>) -> Reply + Send + Sync;

pub struct HostileLfs {
    pub port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl HostileLfs {
    /// Serves HTTPS with `https`'s server certificate; `handler` answers every request.
    pub fn start(
        https: &HttpsServer,
        handler: impl Fn(&Head, Option<&[u8]>) -> Reply + Send + Sync + 'static,
    ) -> HostileLfs {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let dir = https.ca_file.parent().expect("ca_file has a directory");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("server.crt"))
                .expect("server.crt")
                .map(|c| c.expect("certificate"))
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (stop, seen, sockets) = (stop.clone(), seen.clone(), sockets.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((sock, _)) => {
                            let _ = sock.set_nonblocking(false);
                            if let Ok(c) = sock.try_clone() {
                                sockets.lock().unwrap().push(c);
                            }
                            let (config, handler, seen, stop) =
                                (config.clone(), handler.clone(), seen.clone(), stop.clone());
                            let id = n;
                            n += 1;
                            std::thread::spawn(move || {
                                serve(sock, id, config, &*handler, &seen, &stop)
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        HostileLfs {
            port,
            stop,
            seen,
            sockets,
            accept: Some(accept),
        }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HostileLfs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    sock: TcpStream,
    connection: usize,
    config: Arc<rustls::ServerConfig>,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut io = BufReader::new(rustls::StreamOwned::new(conn, sock));
    let stall = || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for nth in 0.. {
        let mut line = String::new();
        if io.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if io.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let head = Head {
            method,
            path,
            headers,
        };
        seen.lock().unwrap().push(Seen {
            method: head.method.clone(),
            path: head.path.clone(),
            connection,
            nth_on_connection: nth,
            authorization: head.header("authorization").is_some(),
        });
        let mut reply = handler(&head, None);
        if matches!(
            reply,
            Reply::ReadBody | Reply::Stall | Reply::Trickle | Reply::TrickleHead
        ) {
            let len: usize = head
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if io.read_exact(&mut body).is_err() {
                return;
            }
            if matches!(reply, Reply::ReadBody) {
                reply = handler(&head, Some(&body));
            }
        }
        match reply {
            Reply::Answer(code, extra, body) => {
                let mut out = format!(
                    "HTTP/1.1 {code} Hostile\r\nContent-Length: {}\r\nContent-Type: application/vnd.git-lfs+json\r\n",
                    body.len()
                )
                .into_bytes();
                for (k, v) in extra {
                    out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&body);
                let w = io.get_mut();
                if w.write_all(&out).and_then(|_| w.flush()).is_err() {
                    return;
                }
            }
            Reply::Trickle => {
                let w = io.get_mut();
                let head = "HTTP/1.1 200 Hostile\r\nContent-Length: 1000\r\nContent-Type: application/vnd.git-lfs+json\r\n\r\n";
                if w.write_all(head.as_bytes())
                    .and_then(|_| w.flush())
                    .is_err()
                {
                    return;
                }
                while !stop.load(Ordering::Relaxed) {
                    if w.write_all(b" ").and_then(|_| w.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                return;
            }
            Reply::TrickleHead => {
                let w = io.get_mut();
                let t0 = std::time::Instant::now();
                for b in b"HTTP/1.1 200 Hostile\r\nX-Slow: "
                    .iter()
                    .chain([b'a'; 1000].iter())
                {
                    if stop.load(Ordering::Relaxed) || t0.elapsed() > Duration::from_secs(15) {
                        return;
                    }
                    if w.write_all(&[*b]).and_then(|_| w.flush()).is_err() {
                        seen.lock().unwrap().push(Seen {
                            method: "(client hung up)".into(),
                            path: head.path.clone(),
                            connection,
                            nth_on_connection: nth,
                            authorization: false,
                        });
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                return;
            }
            Reply::ReadBody | Reply::Stall | Reply::StallUnread => {
                stall();
                return;
            }
        }
    }
}

/// The answer to a batch request `body`: every object asked about, with `actions(oid, size)`
/// as its `actions` (null: none, the server has it).
pub fn batch_answer(body: &[u8], actions: impl Fn(&str, u64) -> serde_json::Value) -> Vec<u8> {
    let req: serde_json::Value = serde_json::from_slice(body).expect("batch request is JSON");
    let objects: Vec<serde_json::Value> = req["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            let oid = o["oid"].as_str().expect("oid");
            let size = o["size"].as_u64().expect("size");
            serde_json::json!({"oid": oid, "size": size, "actions": actions(oid, size)})
        })
        .collect();
    serde_json::json!({"transfer": "basic", "objects": objects})
        .to_string()
        .into_bytes()
}
