//! One MQTT connection, from CONNECT to its end. A fresh rumqttc event loop per connection: what
//! was unacknowledged is still in the outbox and is read again from there, never from memory.

use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use rumqttc::Outgoing;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TokioInstant;

use super::remote::{self, Checks, RequestKind};
use super::tracker::{AckBuffer, Carried, Tracker};
use super::{status, MqttSettings, EXTERNAL_CHANGE_CHECK};
use crate::engine::command::Source;
use crate::shutdown::Shutdown;
use crate::site::Site;
use crate::store::{ApplyError, OutboxEvent, StoreError};

/// Acknowledged events are removed in one transaction once this many are waiting ...
const ACK_FLUSH_EVENTS: usize = 1000;
/// ... or this long after the first of them was acknowledged.
const ACK_FLUSH_DELAY: Duration = Duration::from_millis(100);

pub struct Session<'a> {
    s: &'a MqttSettings,
    site: &'a Site,
    started: Instant,
    down: &'a watch::Sender<Option<Instant>>,
    tracker: Tracker,
    acks: AckBuffer,
    ack_deadline: Option<TokioInstant>,
    /// There may be outbox rows after `tracker.last_queued_seq`.
    more: bool,
    pub connected_at: Option<Instant>,
    client: Option<AsyncClient>,
}

impl<'a> Session<'a> {
    pub fn new(
        s: &'a MqttSettings,
        site: &'a Site,
        started: Instant,
        down: &'a watch::Sender<Option<Instant>>,
    ) -> Self {
        Session {
            s,
            site,
            started,
            down,
            tracker: Tracker::new(),
            acks: AckBuffer::default(),
            ack_deadline: None,
            more: true,
            connected_at: None,
            client: None,
        }
    }

    /// Runs until the connection fails (`Err` says why) or `stop` (`Ok`).
    pub async fn run(&mut self, stop: &mut Shutdown) -> Result<(), String> {
        let (client, eventloop) =
            AsyncClient::new(self.s.options(), super::request_capacity(self.s.inflight));
        self.client = Some(client);
        let (tx, mut rx) = mpsc::channel(256);
        let pump = Pump(tokio::spawn(pump(eventloop, tx)));
        let changed = self.site.store().changed();
        let mut heartbeat = tokio::time::interval(self.s.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut external = tokio::time::interval(EXTERNAL_CHANGE_CHECK);
        external.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            let ack_deadline = self.ack_deadline;
            let step = tokio::select! {
                _ = stop.requested() => {
                    self.goodbye(&pump).await;
                    break Ok(());
                }
                ev = rx.recv() => self.on_events(ev, &mut rx).await,
                _ = changed.notified() => { self.more = true; Ok(()) }
                _ = external.tick() => { self.more = true; Ok(()) }
                _ = heartbeat.tick(), if self.connected_at.is_some() => self.publish_status().await,
                _ = sleep_until(ack_deadline), if ack_deadline.is_some() => self.flush_acks(),
            };
            let step = match step {
                Ok(()) => self.catch_up().await,
                failed => failed,
            };
            if let Err(e) = step {
                break Err(e);
            }
        };
        // What the broker acknowledged leaves the outbox even when the connection broke.
        if let Err(e) = self.flush_acks() {
            tracing::warn!(error = %e, "removing acknowledged events");
        }
        drop(pump);
        result
    }

    /// After each wake: remove a full buffer of acknowledged rows, top up the publish window.
    async fn catch_up(&mut self) -> Result<(), String> {
        if self.acks.events >= ACK_FLUSH_EVENTS {
            self.flush_acks()?;
        }
        if self.connected_at.is_some() && self.more {
            self.fill().await?;
        }
        Ok(())
    }

    fn client(&self) -> &AsyncClient {
        self.client.as_ref().expect("set in run")
    }

    /// Handles `first` and whatever else is already waiting (up to a bound), so a burst of
    /// acks costs one pass through the select loop.
    async fn on_events(
        &mut self,
        first: Option<Result<Event, ConnectionError>>,
        rx: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
    ) -> Result<(), String> {
        let mut next = first;
        for _ in 0..256 {
            match next {
                Some(Ok(ev)) => self.on_event(ev).await?,
                Some(Err(e)) => return Err(describe(&e)),
                None => return Err("the MQTT event loop ended".into()),
            }
            match rx.try_recv() {
                Ok(ev) => next = Some(ev),
                Err(_) => break,
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, ev: Event) -> Result<(), String> {
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) => {
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                self.connected_at = Some(Instant::now());
                self.down.send_if_modified(|d| d.take().is_some());
                super::record_state(self.site, "mqtt", "up", "").await;
                if self.s.command_key.is_some() {
                    self.client()
                        .try_subscribe(self.s.topics.commands.clone(), QoS::AtLeastOnce)
                        .map_err(|e| format!("subscribe: {e}"))?;
                }
                self.publish_status().await?;
                self.more = true;
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let accepted = matches!(
                    ack.reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                );
                match self.tracker.acked(ack.pkid) {
                    Some(Carried::Events { first, last, count }) if accepted => {
                        if self.acks.is_empty() {
                            self.ack_deadline = Some(TokioInstant::now() + ACK_FLUSH_DELAY);
                        }
                        self.acks.push(first, last, count);
                    }
                    Some(Carried::Events { first, last, .. }) => {
                        // Kept in the outbox; a new connection sends it again, after a backoff.
                        return Err(format!(
                            "the broker refused events {first}..{last} on {}: {:?} (check its ACL: docs/mqtt.md)",
                            self.s.topics.events, ack.reason
                        ));
                    }
                    Some(Carried::Other) if !accepted => {
                        tracing::error!(reason = ?ack.reason, "the broker refused a reply or status publish (check its ACL: docs/mqtt.md)");
                    }
                    _ => {}
                }
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                for code in &ack.return_codes {
                    if !matches!(code, SubscribeReasonCode::Success(_)) {
                        let msg = format!(
                            "the broker refused our subscription to {}: {code:?}; remote commands cannot arrive (check its ACL: docs/mqtt.md)",
                            self.s.topics.commands
                        );
                        tracing::error!("{msg}");
                        super::record_state(self.site, "mqtt", "up", &msg).await;
                    }
                }
            }
            Event::Incoming(Packet::Publish(p)) => self.on_command(p).await?,
            Event::Incoming(Packet::Disconnect(d)) => {
                return Err(format!("the broker disconnected us: {:?}", d.reason_code));
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => self.tracker.written(pkid),
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => self.tracker.collided(pkid),
            _ => {}
        }
        Ok(())
    }

    /// Hands the next outbox rows to the client, up to the publish window.
    async fn fill(&mut self) -> Result<(), String> {
        // Twice rumqttc's in-flight limit: the next messages wait in its request channel, so
        // each PubAck releases one at once instead of after an outbox read.
        let window = 2 * self.s.inflight as usize;
        let room = window.saturating_sub(self.tracker.event_messages());
        // Top up by half windows: one outbox read per ack would cost a store round trip each.
        if room == 0 || (room < window.div_ceil(2) && self.tracker.event_messages() > 0) {
            return Ok(());
        }
        let limit = room * self.s.batch;
        let after = self.tracker.last_queued_seq;
        let site = self.s.site.clone();
        let rows = self
            .site
            .store()
            .run(move |s| s.outbox_after(&site, after, limit as i64))
            .await
            .map_err(|e| format!("reading the outbox: {e}"))?;
        self.more = rows.len() == limit;
        for msg in group(&rows, self.s.batch, self.s.batch_bytes) {
            let (first, last) = (msg[0].seq, msg[msg.len() - 1].seq);
            let payload = if self.s.batch == 1 {
                msg[0].json.clone()
            } else {
                crate::store::json_array(msg)
            };
            self.client()
                .try_publish(
                    self.s.topics.events.clone(),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .map_err(|e| format!("publish: {e}"))?;
            self.tracker.queued(Carried::Events {
                first,
                last,
                count: msg.len(),
            });
        }
        Ok(())
    }

    fn flush_acks(&mut self) -> Result<(), String> {
        self.ack_deadline = None;
        if self.acks.is_empty() {
            return Ok(());
        }
        let ranges = self.acks.take();
        // Not awaited: the fsync would stall publishing. The store runs it before any later
        // outbox read; if it is lost in a crash the events are sent again, same ids.
        self.site
            .store()
            .enqueue(move |s| {
                if let Err(e) = s.outbox_remove(&ranges) {
                    tracing::warn!(error = %e, "removing acknowledged events");
                }
            })
            .map_err(|e| e.to_string())
    }

    async fn publish_status(&mut self) -> Result<(), String> {
        let v = status::heartbeat(self.site, &self.s.site, self.started).await?;
        self.publish_other(&self.s.topics.status.clone(), v.to_string(), true)
    }

    fn publish_other(&mut self, topic: &str, payload: String, retain: bool) -> Result<(), String> {
        self.client()
            .try_publish(topic.to_string(), QoS::AtLeastOnce, retain, payload)
            .map_err(|e| format!("publish to {topic}: {e}"))?;
        self.tracker.queued(Carried::Other);
        Ok(())
    }

    /// A command: checked, applied (stored in the inbox in the same transaction), answered, and
    /// only then acknowledged to the broker. A store failure leaves it unacknowledged: the
    /// broker delivers it again on the next connection.
    async fn on_command(&mut self, p: Publish) -> Result<(), String> {
        if p.topic.as_ref() != self.s.topics.commands.as_bytes() {
            tracing::warn!(topic = %String::from_utf8_lossy(&p.topic), "message on a topic we did not subscribe to; ignored");
            return self.ack(&p);
        }
        let Some(key) = self.s.command_key.clone() else {
            return self.ack(&p);
        };
        let now = self
            .site
            .read(|_, now| Ok(*now))
            .await
            .map_err(|e| e.to_string())?;
        let checks = Checks {
            key: key.expose().as_bytes(),
            site: &self.s.site,
            max_bytes: self.s.command_max_bytes,
            max_age_ms: self.s.command_max_age_ms,
        };
        let reply = match remote::check(&p.payload, &checks, &now) {
            Err(r) => {
                tracing::warn!(id = ?r.id, code = r.code, error = %r.message, "remote command refused");
                remote::reply_error(r.id.as_deref(), r.code, &r.message)
            }
            Ok(req) => match self.execute(&req.id, req.kind).await {
                Ok(result) => remote::reply_ok(&req.id, &result),
                Err(Executed::Refused(code, message)) => {
                    tracing::info!(id = %req.id, code = %code, error = %message, "remote command refused");
                    remote::reply_error(Some(&req.id), &code, &message)
                }
                Err(Executed::Failed(e)) => return Err(e),
            },
        };
        self.publish_other(&self.s.topics.replies.clone(), reply, false)?;
        self.ack(&p)
    }

    fn ack(&self, p: &Publish) -> Result<(), String> {
        self.client()
            .try_ack(p)
            .map_err(|e| format!("acknowledging a command: {e}"))
    }

    async fn execute(&mut self, id: &str, kind: RequestKind) -> Result<Value, Executed> {
        let failed = |e: String| Executed::Failed(e);
        match kind {
            RequestKind::Apply(cmd) => {
                match self
                    .site
                    .apply(Source::Mqtt, Some(id.to_string()), cmd)
                    .await
                {
                    Ok(a) => {
                        if !a.replayed {
                            tracing::info!(result = %a.result, "remote command applied");
                        }
                        Ok(a.result)
                    }
                    Err(ApplyError::Rejected(r)) => {
                        Err(Executed::Refused(r.code.as_str().to_string(), r.message))
                    }
                    // Left unacknowledged: the broker delivers it again once the store is back.
                    Err(ApplyError::Store(e)) if e.is_transient() => {
                        Err(failed(format!("applying a command: {e}")))
                    }
                    // It would fail the same way on every delivery, blocking the commands
                    // behind it: answered with the error and acknowledged.
                    Err(ApplyError::Store(e)) => {
                        tracing::error!(id = %id, error = %e, "remote command failed in the store; answered and acknowledged");
                        Err(Executed::Refused(
                            "store-error".into(),
                            format!("the site could not store this command: {e}"),
                        ))
                    }
                }
            }
            RequestKind::StatusGet => status::heartbeat(self.site, &self.s.site, self.started)
                .await
                .map_err(failed),
            RequestKind::SessionsList(q) => {
                let limit = q.limit.clamp(1, 1000);
                self.site
                    .store()
                    .call(move |s| -> Result<Result<Value, Executed>, StoreError> {
                        let user = match &q.user {
                            Some(name) => match s.user_id(name)? {
                                Some(id) => Some(id),
                                None => {
                                    return Ok(Err(Executed::Refused(
                                        "not-found".into(),
                                        format!("unknown user {name:?}"),
                                    )))
                                }
                            },
                            None => None,
                        };
                        Ok(Ok(s.view_sessions(user, !q.all, limit)?.to_json()))
                    })
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(|e| failed(e.to_string()))?
            }
        }
    }

    /// A clean stop: say `offline` ourselves (the will is only for when we vanish), then
    /// disconnect and give the event loop a moment to send both.
    async fn goodbye(&mut self, pump: &Pump) {
        let _ = self.flush_acks();
        if self.connected_at.is_some() {
            let _ = self.publish_other(
                &self.s.topics.status.clone(),
                status::offline(&self.s.site),
                true,
            );
            let _ = self.client().try_disconnect();
            let deadline = TokioInstant::now() + Duration::from_secs(2);
            while !pump.0.is_finished() && TokioInstant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

enum Executed {
    Refused(String, String),
    Failed(String),
}

/// Splits rows into messages of at most `batch` events and `max_bytes` (a single larger event
/// goes alone).
pub fn group(rows: &[OutboxEvent], batch: usize, max_bytes: usize) -> Vec<&[OutboxEvent]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in rows.iter().enumerate() {
        let n = i - start;
        if n > 0 && (n == batch || bytes + r.json.len() + 1 > max_bytes) {
            out.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += r.json.len() + 1;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

async fn sleep_until(t: Option<TokioInstant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Owns the event loop: polls it and forwards what it yields. Aborted with the session.
struct Pump(tokio::task::JoinHandle<()>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::Sender<Result<Event, ConnectionError>>) {
    loop {
        let ev = eventloop.poll().await;
        let failed = ev.is_err();
        if tx.send(ev).await.is_err() || failed {
            return;
        }
    }
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?} (check [mqtt] username, password, client certificate, client-id)")
        }
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(sizes: &[usize]) -> Vec<OutboxEvent> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| OutboxEvent {
                seq: i as i64 + 1,
                json: "x".repeat(*n),
            })
            .collect()
    }

    #[test]
    fn batches_respect_count_and_size() {
        let r = rows(&[10, 10, 10, 10, 10]);
        let g: Vec<usize> = group(&r, 2, 1000).iter().map(|m| m.len()).collect();
        assert_eq!(g, vec![2, 2, 1]);
        let g: Vec<usize> = group(&r, 10, 25).iter().map(|m| m.len()).collect();
        assert_eq!(g, vec![2, 2, 1]);
        let big = rows(&[5, 100, 5]);
        let g: Vec<usize> = group(&big, 10, 50).iter().map(|m| m.len()).collect();
        assert_eq!(g, vec![1, 1, 1], "an event over the limit goes alone");
        assert!(group(&[], 3, 10).is_empty());
    }
}
