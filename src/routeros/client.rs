//! One logged-in API connection over mikrotik-rs, with a timeout on every command and typed
//! errors. The crate's known gaps are handled here or above (docs: shared protocols.md §3):
//! it never reconnects and a half-open socket hangs (so every command has a timeout and the
//! supervisor rebuilds the connection), and with the tag last it reports a successful `add` as a
//! protocol-error trap (so writes are confirmed by a `print`, see `backend`).

use std::collections::BTreeMap;
use std::time::Duration;

use mikrotik_rs::proto::command::Command as ApiCommand;
use mikrotik_rs::{CommandBuilder, Event, MikrotikDevice};

/// A row as `print` returns it: attribute name to value (empty values kept as "").
pub type Row = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("router unreachable: {0}")]
    Unreachable(String),
    #[error("router did not answer {command} within {ms} ms")]
    Timeout { command: String, ms: u64 },
    #[error("router refused {command}: {message}")]
    Trap { command: String, message: String },
    #[error("router closed the session (!fatal {0})")]
    Fatal(String),
    #[error("router login refused for {user}: {message}")]
    Login { user: String, message: String },
    #[error("{0}")]
    Unconfirmed(String),
}

impl RouterError {
    /// Errors that mean the connection is gone or stuck: rebuild it, and do not count the
    /// attempt against a job (the router did not say no).
    pub fn is_link(&self) -> bool {
        matches!(
            self,
            RouterError::Unreachable(_) | RouterError::Timeout { .. } | RouterError::Fatal(_)
        )
    }
}

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
#[derive(Clone, Debug)]
pub struct ApiClient {
    device: MikrotikDevice,
    timeout: Duration,
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
        let builder = MikrotikDevice::builder(addr).credentials(user, Some(password));
        let attempt = async {
            match tls {
                Some(t) => {
                    builder
                        .tls_config(t.config.clone(), t.server_name.clone())
                        .connect()
                        .await
                }
                None => builder.connect().await,
            }
        };
        let device = match tokio::time::timeout(timeout, attempt).await {
            Err(_) => {
                return Err(RouterError::Unreachable(format!(
                    "{addr}: no connection and login within {} ms",
                    timeout.as_millis()
                )))
            }
            Ok(Err(mikrotik_rs::DeviceError::Authentication { response })) => {
                return Err(RouterError::Login {
                    user: user.into(),
                    message: response.message,
                })
            }
            Ok(Err(e @ mikrotik_rs::DeviceError::Login(_))) => {
                return Err(RouterError::Login {
                    user: user.into(),
                    message: e.to_string(),
                })
            }
            Ok(Err(e)) => return Err(RouterError::Unreachable(format!("{addr}: {e}"))),
            Ok(Ok(d)) => d,
        };
        Ok(ApiClient { device, timeout })
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
        let mut rx = self
            .device
            .send_command(call.build())
            .await
            .map_err(|e| RouterError::Unreachable(e.to_string()))?;
        let collect = async {
            let mut rows = Vec::new();
            loop {
                match rx.recv().await {
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
        };
        match tokio::time::timeout(self.timeout, collect).await {
            Ok(r) => r,
            Err(_) => Err(RouterError::Timeout {
                command: call.path.clone(),
                ms: self.timeout.as_millis() as u64,
            }),
        }
    }
}
