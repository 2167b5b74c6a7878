//! A RouterOS API simulator: speaks the real wire protocol over TCP, so hotspot-edge's real
//! client (mikrotik-rs) is tested against it, and the demo and benchmarks run without a router.
//! Faults can be injected: dropped connections, stalls, slow replies, garbage bytes, `!fatal`,
//! and refusing connections (router down). docs/routeros-simulator.md lists where it may differ
//! from a real router.

pub mod model;

use std::net::SocketAddr;
// Not AtomicU64: 32-bit MIPS has no 64-bit atomics.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use super::wire::{decode_sentence, encode_sentence};
pub use model::Model;
use model::{Request, Sentence};

/// What an operator of the simulator can do to its open connections.
#[derive(Debug, Clone)]
enum ConnSignal {
    Drop,
    Garbage,
    Fatal(String),
}

#[derive(Debug, Clone, Default)]
struct Faults {
    /// Put `.tag=` first in replies instead of last (real routers put it last).
    tag_first: bool,
    /// Wait this long before every reply.
    delay: Duration,
    /// Wait this long between the sentences of one reply (a slow router streaming a long print).
    row_gap: Duration,
    /// Stop answering until this instant (the socket stays open: a half-dead router).
    stall_until: Option<tokio::time::Instant>,
    /// Accept connections and close them at once (router rebooting, API service off).
    refuse: bool,
}

struct Inner {
    model: Mutex<Model>,
    faults: Mutex<Faults>,
    signals: broadcast::Sender<ConnSignal>,
    commands: AtomicUsize,
}

/// A running simulator; cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Simulator {
    /// Binds `addr` (port 0 for any) and serves the plain API until the runtime stops.
    pub async fn start(addr: &str, model: Model) -> std::io::Result<Simulator> {
        Self::start_with(addr, model, None).await
    }

    /// Like [`Simulator::start`], serving API-SSL with this TLS configuration.
    pub async fn start_tls(
        addr: &str,
        model: Model,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> std::io::Result<Simulator> {
        Self::start_with(addr, model, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(
        addr: &str,
        model: Model,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let (signals, _) = broadcast::channel(16);
        let sim = Simulator {
            inner: Arc::new(Inner {
                model: Mutex::new(model),
                faults: Mutex::new(Faults::default()),
                signals,
                commands: AtomicUsize::new(0),
            }),
            addr: listener.local_addr()?,
        };
        let s = sim.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        let _ = stream.set_nodelay(true);
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            if lock(&s.inner.faults).refuse {
                                return;
                            }
                            match tls {
                                Some(acceptor) => {
                                    if let Ok(stream) = acceptor.accept(stream).await {
                                        s.serve(stream).await
                                    }
                                }
                                None => s.serve(stream).await,
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "simulator accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(sim)
    }

    /// The simulated router's state, to inspect or change (traffic, time, devices).
    pub fn model(&self) -> MutexGuard<'_, Model> {
        lock(&self.inner.model)
    }

    pub fn set_tag_first(&self, yes: bool) {
        lock(&self.inner.faults).tag_first = yes;
    }
    pub fn set_delay(&self, d: Duration) {
        lock(&self.inner.faults).delay = d;
    }
    /// Sends each sentence of a reply on its own, `d` apart.
    pub fn set_row_gap(&self, d: Duration) {
        lock(&self.inner.faults).row_gap = d;
    }
    pub fn stall_for(&self, d: Duration) {
        lock(&self.inner.faults).stall_until = Some(tokio::time::Instant::now() + d);
    }
    pub fn set_refuse(&self, yes: bool) {
        lock(&self.inner.faults).refuse = yes;
        if yes {
            self.drop_connections();
        }
    }
    pub fn drop_connections(&self) {
        let _ = self.inner.signals.send(ConnSignal::Drop);
    }
    pub fn send_garbage(&self) {
        let _ = self.inner.signals.send(ConnSignal::Garbage);
    }
    pub fn send_fatal(&self, reason: &str) {
        let _ = self.inner.signals.send(ConnSignal::Fatal(reason.into()));
    }
    /// API commands answered so far.
    pub fn commands(&self) -> usize {
        self.inner.commands.load(Ordering::Relaxed)
    }
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let mut signals = self.inner.signals.subscribe();
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        let mut logged_in = false;
        loop {
            tokio::select! {
                sig = signals.recv() => match sig {
                    Ok(ConnSignal::Drop) | Err(broadcast::error::RecvError::Closed) => return,
                    Ok(ConnSignal::Garbage) => {
                        let _ = stream.write_all(&[0xF9, 0xFF, 0x13, 0x37, 0x00, 0xFE]).await;
                    }
                    Ok(ConnSignal::Fatal(reason)) => {
                        let _ = stream.write_all(&encode_sentence(&["!fatal", reason.as_str()])).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                },
                n = stream.read(&mut chunk) => {
                    let n = match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    loop {
                        let (words, used) = match decode_sentence(&buf) {
                            Ok(Some(x)) => x,
                            Ok(None) => break,
                            // A peer that breaks framing gets the connection closed, as RouterOS does.
                            Err(_) => return,
                        };
                        buf.drain(..used);
                        if words.is_empty() {
                            continue;
                        }
                        let words: Vec<String> =
                            words.iter().map(|w| String::from_utf8_lossy(w).into_owned()).collect();
                        let (replies, close) = self.answer(&words, &mut logged_in);
                        if !self.write_replies(&mut stream, &words, replies).await || close {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn answer(&self, words: &[String], logged_in: &mut bool) -> (Vec<Sentence>, bool) {
        self.inner.commands.fetch_add(1, Ordering::Relaxed);
        let req = Request::parse(words);
        let trap = |m: &str| {
            vec![
                vec!["!trap".to_string(), format!("=message={m}")],
                vec!["!done".to_string()],
            ]
        };
        match req.command.as_str() {
            "/login" => {
                let name = req.attrs.get("name").map(String::as_str).unwrap_or("");
                let pw = req.attrs.get("password").map(String::as_str).unwrap_or("");
                if self.model().login_ok(name, pw) {
                    *logged_in = true;
                    (vec![vec!["!done".into()]], false)
                } else {
                    (trap("invalid user name or password (6)"), false)
                }
            }
            _ if !*logged_in => (trap("not logged in"), false),
            "/cancel" => (vec![vec!["!done".into()]], false),
            "/quit" => (
                vec![vec![
                    "!fatal".into(),
                    "session terminated on request".into(),
                ]],
                true,
            ),
            _ => (self.model().handle(&req), false),
        }
    }

    /// Writes replies with the request's tag echoed verbatim; false when the socket is gone.
    async fn write_replies<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        words: &[String],
        replies: Vec<Sentence>,
    ) -> bool {
        let tag = words.iter().find(|w| w.starts_with(".tag=")).cloned();
        let (delay, stall, tag_first, row_gap) = {
            let f = lock(&self.inner.faults);
            (f.delay, f.stall_until, f.tag_first, f.row_gap)
        };
        if let Some(until) = stall {
            tokio::time::sleep_until(until).await;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut out = Vec::new();
        for mut s in replies {
            if let Some(t) = &tag {
                if tag_first {
                    s.insert(1.min(s.len()), t.clone());
                } else {
                    s.push(t.clone());
                }
            }
            out.extend_from_slice(&encode_sentence(&s));
            if !row_gap.is_zero() {
                if stream.write_all(&out).await.is_err() {
                    return false;
                }
                out.clear();
                tokio::time::sleep(row_gap).await;
            }
        }
        stream.write_all(&out).await.is_ok()
    }
}
