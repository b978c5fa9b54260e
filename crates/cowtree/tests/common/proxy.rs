//! A TCP proxy on loopback in front of the S3 server, which the test steers while commands
//! run through it: it can delay every chunk of every response, cut connections in the middle
//! of a request or response (one connection in N, after a random number of bytes), or be down (every
//! connection, new or open, closed at once). It counts what it did, so that a test can show
//! its faults really happened.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cowtree_testutil::XorShift;

/// What the proxy does now, and what it did.
#[derive(Default)]
pub struct Faults {
    /// Close every connection at once, and every open one at its next chunk.
    pub down: AtomicBool,
    /// Cut one connection in this many (0: none), after a random number of bytes (both
    /// ways) below [`Faults::cut_within`].
    pub cut_one_in: AtomicU64,
    /// The bytes (both ways) a cut connection passes before it is cut.
    pub cut_within: AtomicU64,
    /// Sleep this long before passing each chunk of a response.
    pub delay_ms: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections cut in the middle of a response, or closed while down.
    pub cuts: AtomicU64,
    stop: AtomicBool,
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`, for `remote add --endpoint`.
    pub endpoint: String,
    pub faults: Arc<Faults>,
    port: u16,
}

impl Proxy {
    /// A proxy to `upstream` (`http://HOST:PORT`), passing everything until told otherwise.
    pub fn start(upstream: &str, seed: u64) -> Proxy {
        let to = upstream
            .strip_prefix("http://")
            .expect("an http:// endpoint")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Faults {
            cut_within: AtomicU64::new(1 << 20),
            ..Faults::default()
        });
        let f = faults.clone();
        let rng = Arc::new(Mutex::new(XorShift::new(seed)));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if f.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                f.connections.fetch_add(1, Ordering::SeqCst);
                if f.down.load(Ordering::SeqCst) {
                    f.cuts.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let cut_after = {
                    let n = f.cut_one_in.load(Ordering::SeqCst);
                    let mut r = rng.lock().unwrap();
                    (n > 0 && r.below(n) == 0)
                        .then(|| r.below(f.cut_within.load(Ordering::SeqCst).max(1)))
                };
                let (f, to) = (f.clone(), to.clone());
                std::thread::spawn(move || relay(client, &to, &f, cut_after));
            }
        });
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            faults,
            port,
        }
    }

    pub fn set_down(&self, down: bool) {
        self.faults.down.store(down, Ordering::SeqCst);
    }

    pub fn cuts(&self) -> u64 {
        self.faults.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.faults.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Passes one connection both ways, chunk by chunk: responses delayed, the connection cut
/// once `cut_after` bytes (both ways together) have passed when set, or closed when the proxy
/// goes down.
fn relay(client: TcpStream, to: &str, f: &Arc<Faults>, cut_after: Option<u64>) {
    let Ok(server) = TcpStream::connect(to) else {
        return;
    };
    let passed = Arc::new(AtomicU64::new(0));
    let up = (
        client.try_clone(),
        server.try_clone(),
        f.clone(),
        passed.clone(),
    );
    if let (Ok(c), Ok(s), f, passed) = up {
        std::thread::spawn(move || pump(c, s, &f, cut_after, &passed, false));
    }
    pump(server, client, f, cut_after, &passed, true);
}

/// Copies `from` to `to` (`response`: the server's side, delayed) until either ends, the
/// proxy goes down, or the connection has passed `cut_after` bytes: then both are shut.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    f: &Faults,
    cut_after: Option<u64>,
    passed: &AtomicU64,
    response: bool,
) {
    let mut buf = vec![0u8; 64 << 10];
    let close = |a: &TcpStream, b: &TcpStream| {
        f.cuts.fetch_add(1, Ordering::SeqCst);
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = f.delay_ms.load(Ordering::SeqCst);
        if response && delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if f.down.load(Ordering::SeqCst) {
            return close(&from, &to);
        }
        let before = passed.fetch_add(n as u64, Ordering::SeqCst);
        if let Some(at) = cut_after
            && before + n as u64 > at
        {
            let _ = to.write_all(&buf[..at.saturating_sub(before) as usize]);
            return close(&from, &to);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
