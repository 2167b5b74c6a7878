//! One logged-in API connection over mikrotik-rs, with a timeout on every command's silence and typed
//! errors. The crate's known gaps are handled here or above (docs: shared protocols.md §3):
//! it never reconnects and a half-open socket hangs (so every command has a timeout and the
//! supervisor rebuilds the connection), and with the tag last it reports a successful `add` as a
//! protocol-error trap (so writes are confirmed by a `print`, see `backend`).
//! The socket is driven here, over the crate's sans-IO core, so that replies are flow-controlled
//! (see [`ApiClient`]).

use std::collections::BTreeMap;
use std::time::Duration;

use mikrotik_rs::proto::command::Command as ApiCommand;
use mikrotik_rs::proto::connection::{Connection, Event};
use mikrotik_rs::proto::error::LoginError;
use mikrotik_rs::proto::handshake::{Handshaking, LoginProgress};
use mikrotik_rs::proto::tag::Tag;
use mikrotik_rs::CommandBuilder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A row as `print` returns it: attribute name to value (empty values kept as "").
pub type Row = BTreeMap<String, String>;

/// The RouterOS adapter reports failures in the NAS port's terms (the enforcer acts on
/// `is_link` without knowing which NAS it drives).
pub use crate::nas::NasError as RouterError;

/// A command to send: path, attributes, queries and the property list.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub path: String,
    pub attrs: Vec<(String, String)>,
    pub queries: Vec<(String, String)>,
    pub proplist: Vec<String>,
}

impl Call {
    pub fn new(path: &str) -> Self {
        Call {
            path: path.into(),
            ..Default::default()
        }
    }
    pub fn attr(mut self, k: &str, v: impl Into<String>) -> Self {
        self.attrs.push((k.into(), v.into()));
        self
    }
    pub fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.queries.push((k.into(), v.into()));
        self
    }
    pub fn props(mut self, p: &[&str]) -> Self {
        self.proplist = p.iter().map(|s| s.to_string()).collect();
        self
    }
    fn build(&self) -> ApiCommand {
        let mut b = CommandBuilder::new().command(&self.path);
        for (k, v) in &self.attrs {
            b = b.attribute(k, Some(v));
        }
        for (k, v) in &self.queries {
            b = b.query_equal(k, v);
        }
        if !self.proplist.is_empty() {
            b = b.attribute(".proplist", Some(&self.proplist.join(",")));
        }
        b.build()
    }
}

/// A logged-in connection. Cloning shares it.
///
/// The connection is driven by our own task over mikrotik-rs's sans-IO protocol core
/// (`mikrotik_rs::proto`), not by the crate's `MikrotikDevice`: that one hands each command's
/// replies to an unbounded queue, so a `print` of 10,000 active sessions was parsed into 10,000
/// hash maps and held until we read them (~11 MB of a 20 MB heap at 10,000 devices). Here each
/// command gets a queue of [`REPLY_QUEUE`] rows and the task stops reading the socket while a
/// reader is behind: TCP then holds the router back.
#[derive(Clone, Debug)]
pub struct ApiClient {
    requests: mpsc::Sender<Request>,
    timeout: Duration,
    /// When the connection last made progress (bytes from the router, or a row handed to a
    /// reader).
    heard: Heard,
}

/// When the connection last made progress. A command's timeout is on this, not on its own
/// replies alone: the router answers commands in turn on one stream, so a command queued behind
/// a print of 10,000 sessions hears nothing for a while although the router is talking.
#[derive(Clone, Debug)]
struct Heard(std::sync::Arc<std::sync::Mutex<tokio::time::Instant>>);

impl Heard {
    fn new() -> Self {
        Heard(std::sync::Arc::new(std::sync::Mutex::new(
            tokio::time::Instant::now(),
        )))
    }
    fn now(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
    }
    fn quiet_for(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// Rows a command may have parsed but not yet read. Small: a reader turns each row into what it
/// keeps as it arrives.
const REPLY_QUEUE: usize = 32;
/// Bytes read from the socket at a time; the protocol core parses at most this much ahead.
const READ_CHUNK: usize = 8192;

#[derive(Debug)]
struct Request {
    command: ApiCommand,
    replies: mpsc::Sender<Event>,
}

/// API-SSL settings: the rustls configuration and the name to expect in the certificate.
#[derive(Clone, Debug)]
pub struct TlsTarget {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl ApiClient {
    /// Connects (plain TCP) and logs in, all within `timeout`.
    pub async fn connect_plain(
        addr: &str,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<ApiClient, RouterError> {
        Self::connect(addr, user, password, timeout, None).await
    }

    /// Connects (API-SSL when `tls` is given, else plain TCP) and logs in, within `timeout`.
    pub async fn connect(
        addr: &str,
        user: &str,
        password: &str,
        timeout: Duration,
        tls: Option<&TlsTarget>,
    ) -> Result<ApiClient, RouterError> {
        let unreachable = |e: &dyn std::fmt::Display| unreachable(addr, e);
        let heard = Heard::new();
        let attempt = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| unreachable(&e))?;
            tcp.set_nodelay(true).map_err(|e| unreachable(&e))?;
            match tls {
                Some(t) => {
                    let connector = tokio_rustls::TlsConnector::from(t.config.clone());
                    let stream = connector
                        .connect(t.server_name.clone(), tcp)
                        .await
                        .map_err(|e| unreachable(&e))?;
                    login_and_spawn(stream, addr, user, password, heard.clone()).await
                }
                None => login_and_spawn(tcp, addr, user, password, heard.clone()).await,
            }
        };
        let requests = match tokio::time::timeout(timeout, attempt).await {
            Err(_) => {
                return Err(RouterError::Unreachable(format!(
                    "{addr}: no connection and login within {} ms",
                    timeout.as_millis()
                )))
            }
            Ok(r) => r?,
        };
        Ok(ApiClient {
            requests,
            timeout,
            heard,
        })
    }

    /// The same connection with another per-command timeout.
    pub fn with_timeout(api: ApiClient, timeout: Duration) -> ApiClient {
        ApiClient { timeout, ..api }
    }

    /// Sends one command and gathers its rows until `!done` (or `!empty`).
    pub async fn run(&self, call: &Call) -> Result<Vec<Row>, RouterError> {
        self.run_map(call, Some).await
    }

    /// Like [`ApiClient::run`], turning each row into what the caller keeps as it arrives (a
    /// print of 10,000 active sessions is never held as 10,000 maps at once).
    pub async fn run_map<T>(
        &self,
        call: &Call,
        mut keep: impl FnMut(Row) -> Option<T>,
    ) -> Result<Vec<T>, RouterError> {
        let (replies, mut rx) = mpsc::channel(REPLY_QUEUE);
        let request = Request {
            command: call.build(),
            replies,
        };
        if self.requests.send(request).await.is_err() {
            return Err(RouterError::Unreachable(format!(
                "connection closed before {}",
                call.path
            )));
        }
        // The timeout is on silence, not on the whole command: the connection must make
        // progress at least this often (see [`Heard`]). A half-open socket is found as before,
        // and a print of 10,000 active sessions from a slow router (or under emulation) is not
        // cut off while it streams, nor are the commands answered after it.
        let mut rows = Vec::new();
        let mut wait = self.timeout;
        loop {
            let event = match tokio::time::timeout(wait, rx.recv()).await {
                Ok(event) => event,
                Err(_) => {
                    let quiet = self.heard.quiet_for();
                    if quiet >= self.timeout {
                        return Err(RouterError::Timeout {
                            command: call.path.clone(),
                            ms: self.timeout.as_millis() as u64,
                        });
                    }
                    wait = self.timeout - quiet;
                    continue;
                }
            };
            wait = self.timeout;
            match event {
                Some(Event::Reply { response, .. }) => rows.extend(keep(
                    response
                        .attributes
                        .into_iter()
                        .map(|(k, v)| (k, v.unwrap_or_default()))
                        .collect(),
                )),
                Some(Event::Done { .. }) | Some(Event::Empty { .. }) => return Ok(rows),
                Some(Event::Trap { response, .. }) => {
                    return Err(RouterError::Trap {
                        command: call.path.clone(),
                        message: response.message,
                    })
                }
                Some(Event::Fatal { reason }) => return Err(RouterError::Fatal(reason)),
                None => {
                    return Err(RouterError::Unreachable(format!(
                        "connection lost during {}",
                        call.path
                    )))
                }
            }
        }
    }
}

/// The router at `addr` could not be reached or talked to.
fn unreachable(addr: &str, e: &dyn std::fmt::Display) -> RouterError {
    RouterError::Unreachable(format!("{addr}: {e}"))
}

/// Logs in over `stream` (mikrotik-rs's handshake state machine) and starts the task that owns
/// the connection; returns where to send it commands.
async fn login_and_spawn<S>(
    mut stream: S,
    addr: &str,
    user: &str,
    password: &str,
    heard: Heard,
) -> Result<mpsc::Sender<Request>, RouterError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let unreachable = |e: &dyn std::fmt::Display| unreachable(addr, e);
    let login_failed = |e: LoginError| match e {
        LoginError::Authentication(trap) => RouterError::Login {
            user: user.into(),
            message: trap.message,
        },
        other => RouterError::Login {
            user: user.into(),
            message: other.to_string(),
        },
    };
    let mut hs = Handshaking::new(user, Some(password)).map_err(|e| unreachable(&e))?;
    let mut buf = vec![0u8; 4096];
    let conn = loop {
        while let Some(t) = hs.poll_transmit() {
            stream
                .write_all(&t.data)
                .await
                .map_err(|e| unreachable(&e))?;
        }
        let n = stream.read(&mut buf).await.map_err(|e| unreachable(&e))?;
        if n == 0 {
            return Err(unreachable(&"connection closed during login"));
        }
        hs.receive(&buf[..n]).map_err(|e| unreachable(&e))?;
        match hs.advance().map_err(login_failed)? {
            LoginProgress::Pending(h) => hs = h,
            LoginProgress::Complete(done) => break done.into_connection(),
        }
    };
    let (requests, inbox) = mpsc::channel(16);
    heard.now();
    tokio::spawn(drive(stream, conn, inbox, heard));
    Ok(requests)
}

/// Owns one logged-in connection: sends the commands it is given and hands each reply to its
/// command's queue, waiting while that queue is full. Ends when the socket closes or fails, or
/// when every [`ApiClient`] is gone; dropping the queues then tells the readers.
async fn drive<S>(stream: S, mut conn: Connection, mut inbox: mpsc::Receiver<Request>, heard: Heard)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut readers: std::collections::HashMap<Tag, mpsc::Sender<Event>> = Default::default();
    loop {
        while let Some(t) = conn.poll_transmit() {
            if wr.write_all(&t.data).await.is_err() {
                return;
            }
        }
        tokio::select! {
            biased;
            request = inbox.recv() => match request {
                Some(Request { command, replies }) => match conn.send_command(command) {
                    Ok(tag) => {
                        readers.insert(tag, replies);
                    }
                    Err(_) => return,
                },
                None => {
                    conn.cancel_all();
                    while let Some(t) = conn.poll_transmit() {
                        let _ = wr.write_all(&t.data).await;
                    }
                    let _ = wr.shutdown().await;
                    return;
                }
            },
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    heard.now();
                    if conn.receive(&buf[..n]).is_err() {
                        return;
                    }
                    while let Some(event) = conn.poll_event() {
                        hand_over(&mut readers, &mut conn, event).await;
                        // A reader that is behind holds the socket; its rows are progress.
                        heard.now();
                    }
                }
            },
        }
    }
}

/// Gives an event to the reader of its command. A reader that has gone (timed out) gets its
/// command cancelled on the router and the rest of its rows dropped.
async fn hand_over(
    readers: &mut std::collections::HashMap<Tag, mpsc::Sender<Event>>,
    conn: &mut Connection,
    event: Event,
) {
    match &event {
        Event::Reply { tag, .. } => {
            let tag = *tag;
            if let Some(reader) = readers.get(&tag) {
                if reader.send(event).await.is_err() {
                    readers.remove(&tag);
                    let _ = conn.cancel_command(tag);
                }
            }
        }
        Event::Done { tag } | Event::Empty { tag } | Event::Trap { tag, .. } => {
            if let Some(reader) = readers.remove(tag) {
                let _ = reader.send(event).await;
            }
        }
        Event::Fatal { .. } => {
            // The connection is over; readers that miss this line see their queue close.
            for (_, reader) in readers.drain() {
                let _ = reader.try_send(event.clone());
            }
        }
    }
}
