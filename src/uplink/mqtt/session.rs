//! One MQTT connection, from CONNECT to its end. A fresh rumqttc event loop per connection: what
//! was unacknowledged is still in the outbox and is read again from there, never from memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use rumqttc::Outgoing;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TokioInstant;

use super::budget::{RefusalBudget, Verdict};
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
/// Acknowledged events whose removal failed (disk full, database busy) are tried again after
/// this long, so they do not sit in the outbox as a phantom backlog until the next connection.
const REMOVE_RETRY: Duration = Duration::from_secs(1);
/// Commands held in memory at most, by count and by payload bytes. A broker that keeps to our
/// Receive Maximum never sends more than 16; one that does not (mosquitto 2.0.11 was seen
/// sending thousands) gets the excess back after a reconnection, unacknowledged (`shed`).
const HELD_MAX: usize = 10_000;
const HELD_BYTES_MAX: usize = 4 << 20;
/// A command the store could not take for now (busy, disk full) is tried again after 100 ms,
/// doubling up to 30 s, before the commands behind it (they may depend on it).
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);

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
    /// Commands received and not yet acknowledged, in arrival order. At most the receive
    /// maximum we announce: the broker sends no more until we acknowledge.
    commands: VecDeque<Publish>,
    /// The first command failed for a reason that may pass; it is tried again then.
    retry_at: Option<TokioInstant>,
    retries: u32,
    /// Payload bytes in `commands`.
    held_bytes: usize,
    /// Commands dropped unacknowledged because too many were held: the broker sends them again
    /// on the next connection, which this session asks for once the held ones are done.
    shed: usize,
    budget: RefusalBudget,
    /// Signalled when the store changed (new events): wakes the select loop.
    changed: Arc<tokio::sync::Notify>,
    /// The store's count of changing calls, and the value last seen: read between commands,
    /// where the loop is not waiting on `changed`.
    writes: Arc<AtomicU32>,
    seen_writes: u32,
    /// Filled by the store thread when a removal fails.
    unremoved: Arc<Mutex<Unremoved>>,
}

/// Acknowledged ranges the store could not remove yet.
#[derive(Default)]
struct Unremoved {
    ranges: Vec<(i64, i64)>,
    /// Removal is failing: said once in the log, and once when it works again.
    failing: bool,
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
            commands: VecDeque::new(),
            retry_at: None,
            retries: 0,
            held_bytes: 0,
            shed: 0,
            budget: RefusalBudget::new(Instant::now()),
            changed: site.store().changed(),
            writes: site.store().writes(),
            seen_writes: 0,
            unremoved: Arc::default(),
        }
    }

    /// Runs until the connection fails (`Err` says why) or `stop` (`Ok`).
    pub async fn run(&mut self, stop: &mut Shutdown) -> Result<(), String> {
        let (client, eventloop) =
            AsyncClient::new(self.s.options(), super::request_capacity(self.s.inflight));
        self.client = Some(client);
        // Unbounded so the event loop is polled whatever the session is doing (a bounded
        // channel stalled it behind a burst of commands, and with it every publish and ack:
        // the link dropped). Bounded in fact by the protocol: incoming commands by the receive
        // maximum, acks and outgoing notices by our own publish window.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pump = Pump(tokio::spawn(pump(eventloop, tx)));
        let changed = self.changed.clone();
        let mut heartbeat = tokio::time::interval(self.s.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut external = tokio::time::interval(EXTERNAL_CHANGE_CHECK);
        external.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            let ack_deadline = self.ack_deadline;
            let retry_at = self.retry_at;
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
                _ = sleep_until(retry_at), if retry_at.is_some() => { self.retry_at = None; Ok(()) }
            };
            let step = match step {
                Ok(()) => self.catch_up(&mut rx).await,
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
        report_dropped(self.budget.unreported());
        drop(pump);
        result
    }

    /// After each wake: remove a full buffer of acknowledged rows, answer the commands that
    /// are waiting, top up the publish window.
    async fn catch_up(&mut self, rx: &mut Events) -> Result<(), String> {
        if self.acks.events >= ACK_FLUSH_EVENTS {
            self.flush_acks()?;
        }
        if self.ack_deadline.is_none() && !self.unremoved_lock().ranges.is_empty() {
            self.ack_deadline = Some(TokioInstant::now() + REMOVE_RETRY);
        }
        self.run_commands(rx).await?;
        if self.connected_at.is_some() && self.more {
            self.fill().await?;
        }
        Ok(())
    }

    /// Handles the waiting commands in order until one must wait for the store.
    async fn run_commands(&mut self, rx: &mut Events) -> Result<(), String> {
        while self.retry_at.is_none() {
            let Some(p) = self.commands.front().cloned() else {
                if self.shed > 0 {
                    return Err(format!(
                        "the broker sent {} commands more than we can hold ({HELD_MAX} or {} MiB; we announce a Receive Maximum of {}); reconnecting so that it sends them again",
                        self.shed,
                        HELD_BYTES_MAX >> 20,
                        super::RECEIVE_MAXIMUM
                    ));
                }
                return Ok(());
            };
            match self.on_command(&p).await? {
                Handled::Done => {
                    self.commands.pop_front();
                    self.held_bytes -= p.payload.len();
                    self.retries = 0;
                    // Events go out between commands, not after the whole queue: a burst of
                    // commands must not hold back what the site is doing meanwhile. The acks
                    // that came in meanwhile first, so the publish window is known.
                    if let Ok(ev) = rx.try_recv() {
                        self.on_events(Some(ev), rx).await?;
                    }
                    if self.store_changed() {
                        self.more = true;
                    }
                    if self.connected_at.is_some() && self.more {
                        self.fill().await?;
                    }
                }
                Handled::Later(error) => {
                    self.retries += 1;
                    let wait = crate::backoff::backoff(self.retries, RETRY_FIRST, RETRY_MAX);
                    tracing::warn!(error = %error, attempt = self.retries, retry_in_ms = wait.as_millis() as u64,
                        waiting = self.commands.len(), "a remote command could not be stored now; trying again");
                    self.retry_at = Some(TokioInstant::now() + wait);
                }
            }
        }
        Ok(())
    }

    fn client(&self) -> &AsyncClient {
        self.client.as_ref().expect("set in run")
    }

    /// Whether the store changed since the last look (this process's writes).
    fn store_changed(&mut self) -> bool {
        let now = self.writes.load(Ordering::Acquire);
        std::mem::replace(&mut self.seen_writes, now) != now
    }

    /// Handles `first` and whatever else is already waiting (up to a bound), so a burst of
    /// acks costs one pass through the select loop.
    async fn on_events(
        &mut self,
        first: Option<Result<Event, ConnectionError>>,
        rx: &mut Events,
    ) -> Result<(), String> {
        let mut next = first;
        // Bounded so the select loop gets a turn; an event is taken from the channel only when
        // it will be handled (taking one and then leaving the loop lost it: every 256th event,
        // a command never answered or an ack that left its events in the outbox).
        for handled in 1..=256 {
            match next {
                Some(Ok(ev)) => self.on_event(ev).await?,
                Some(Err(e)) => return Err(describe(&e)),
                None => return Err("the MQTT event loop ended".into()),
            }
            if handled == 256 {
                break;
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
                        .subscribe(self.s.topics.commands.clone(), QoS::AtLeastOnce)
                        .await
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
            Event::Incoming(Packet::Publish(p)) => {
                if self.commands.len() >= HELD_MAX
                    || self.held_bytes + p.payload.len() > HELD_BYTES_MAX
                {
                    self.shed += 1;
                } else {
                    self.held_bytes += p.payload.len();
                    self.commands.push_back(p);
                }
            }
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
            .run(move |s| s.outbox_after(&site, after, crate::units::sql_count(limit)))
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
            // Awaited: waits for room in the request channel, which the event loop drains as
            // the broker acknowledges (the pump polls it meanwhile).
            self.client()
                .publish(
                    self.s.topics.events.clone(),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .map_err(|e| format!("publish: {e}"))?;
            self.tracker.queued(Carried::Events {
                first,
                last,
                count: msg.len(),
            });
        }
        Ok(())
    }

    fn unremoved_lock(&self) -> std::sync::MutexGuard<'_, Unremoved> {
        // Poisoned only if a store closure panicked mid-push; the ranges are still valid.
        self.unremoved.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flush_acks(&mut self) -> Result<(), String> {
        self.ack_deadline = None;
        let mut ranges = self.acks.take();
        ranges.append(&mut self.unremoved_lock().ranges);
        if ranges.is_empty() {
            return Ok(());
        }
        let unremoved = self.unremoved.clone();
        // Not awaited: the fsync would stall publishing. The store runs it before any later
        // outbox read; if it is lost in a crash the events are sent again, same ids. If it
        // fails, the ranges come back and are tried again (`REMOVE_RETRY`).
        self.site
            .store()
            .enqueue(move |s| {
                let result = s.outbox_remove(&ranges);
                let mut u = unremoved.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(_) if u.failing => {
                        u.failing = false;
                        tracing::info!("acknowledged events are being removed from the outbox again");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !u.failing {
                            tracing::warn!(error = %e, "removing acknowledged events failed; trying again every second (they are not sent again)");
                        }
                        u.failing = true;
                        u.ranges.extend(ranges);
                    }
                }
            })
            .map_err(|e| e.to_string())
    }

    async fn publish_status(&mut self) -> Result<(), String> {
        let v = status::heartbeat(self.site, &self.s.site, self.started).await?;
        self.publish_other(&self.s.topics.status.clone(), v.to_string(), true)
            .await
    }

    async fn publish_other(
        &mut self,
        topic: &str,
        payload: String,
        retain: bool,
    ) -> Result<(), String> {
        self.client()
            .publish(topic.to_string(), QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| format!("publish to {topic}: {e}"))?;
        self.tracker.queued(Carried::Other);
        Ok(())
    }

    /// A command: checked, applied (stored in the inbox in the same transaction), answered, and
    /// only then acknowledged to the broker. A store failure that may pass leaves it waiting
    /// (`Later`), unacknowledged, at the head of the queue.
    async fn on_command(&mut self, p: &Publish) -> Result<Handled, String> {
        if p.topic.as_ref() != self.s.topics.commands.as_bytes() {
            tracing::warn!(topic = %String::from_utf8_lossy(&p.topic), "message on a topic we did not subscribe to; ignored");
            return self.ack(p).await;
        }
        let Some(key) = self.s.command_key.clone() else {
            return self.ack(p).await;
        };
        let now = match self.site.read(|_, now| Ok(*now)).await {
            Ok(now) => now,
            Err(e) => return Ok(Handled::Later(format!("reading the clock: {e}"))),
        };
        let checks = Checks {
            key: key.expose().as_bytes(),
            site: &self.s.site,
            max_bytes: self.s.command_max_bytes,
            max_age_ms: self.s.command_max_age_ms,
        };
        let reply = match remote::check(&p.payload, &checks, &now) {
            Err(r) if !r.signed => match self.budget.take(Instant::now()) {
                Verdict::Answer => {
                    tracing::warn!(code = r.code, error = %r.message, "unsigned message on the commands topic refused");
                    Some(remote::reply_error(None, r.code, &r.message))
                }
                Verdict::Drop { report } => {
                    report_dropped(report.unwrap_or(0));
                    None
                }
            },
            Err(r) => {
                tracing::warn!(id = ?r.id, code = r.code, error = %r.message, "remote command refused");
                Some(remote::reply_error(r.id.as_deref(), r.code, &r.message))
            }
            Ok(req) => match self.execute(&req.id, req.kind).await {
                Ok(result) => Some(remote::reply_ok(&req.id, &result)),
                Err(Executed::Refused(code, message)) => {
                    tracing::info!(id = %req.id, code = %code, error = %message, "remote command refused");
                    Some(remote::reply_error(Some(&req.id), &code, &message))
                }
                Err(Executed::Later(e)) => return Ok(Handled::Later(e)),
            },
        };
        if let Some(reply) = reply {
            self.publish_other(&self.s.topics.replies.clone(), reply, false)
                .await?;
        }
        self.ack(p).await
    }

    async fn ack(&self, p: &Publish) -> Result<Handled, String> {
        self.client()
            .ack(p)
            .await
            .map_err(|e| format!("acknowledging a command: {e}"))?;
        Ok(Handled::Done)
    }

    async fn execute(&mut self, id: &str, kind: RequestKind) -> Result<Value, Executed> {
        // A read that fails is answered with the error: asking again is the cloud's choice.
        let read_failed = |e: String| {
            Executed::Refused(
                "store-error".into(),
                format!("the site could not read its state: {e}"),
            )
        };
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
                    // Left unacknowledged and tried again (`Handled::Later`).
                    Err(ApplyError::Store(e)) if e.is_transient() => {
                        Err(Executed::Later(format!("applying a command: {e}")))
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
            RequestKind::ClockResetHighWater => {
                let clock = self.site.clock().clone();
                let by = format!("mqtt {id}");
                match self
                    .site
                    .store()
                    .run(move |s| s.reset_clock_high_water(clock.as_ref(), &by))
                    .await
                {
                    Ok(Ok(r)) => {
                        tracing::warn!(from = %r.from, to = %r.to, "clock high-water mark reset by a remote command");
                        Ok(serde_json::to_value(&r).unwrap_or_default())
                    }
                    Ok(Err(why)) => Err(Executed::Refused("clock-untrusted".into(), why)),
                    Err(e) if e.is_transient() => {
                        Err(Executed::Later(format!("resetting the clock: {e}")))
                    }
                    Err(e) => Err(Executed::Refused(
                        "store-error".into(),
                        format!("the site could not store this: {e}"),
                    )),
                }
            }
            RequestKind::StatusGet => status::heartbeat(self.site, &self.s.site, self.started)
                .await
                .map_err(read_failed),
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
                    .map_err(|e| read_failed(e.to_string()))?
                    .map_err(|e| read_failed(e.to_string()))?
            }
        }
    }

    /// A clean stop: say `offline` ourselves (the will is only for when we vanish), then
    /// disconnect and give the event loop a moment to send both.
    async fn goodbye(&mut self, pump: &Pump) {
        let _ = self.flush_acks();
        if self.connected_at.is_some() {
            // Not awaited: a stop must not wait on a stalled connection.
            if self
                .client()
                .try_publish(
                    self.s.topics.status.clone(),
                    QoS::AtLeastOnce,
                    true,
                    status::offline(&self.s.site),
                )
                .is_ok()
            {
                self.tracker.queued(Carried::Other);
            }
            let _ = self.client().try_disconnect();
            let deadline = TokioInstant::now() + Duration::from_secs(2);
            while !pump.0.is_finished() && TokioInstant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

type Events = mpsc::UnboundedReceiver<Result<Event, ConnectionError>>;

enum Executed {
    Refused(String, String),
    /// The store could not take it now: the same command is tried again later.
    Later(String),
}

enum Handled {
    /// Answered (or refused without a reply) and acknowledged.
    Done,
    /// Not applied and not acknowledged; why.
    Later(String),
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

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>) {
    loop {
        let ev = eventloop.poll().await;
        let failed = ev.is_err();
        if tx.send(ev).is_err() || failed {
            return;
        }
    }
}

fn report_dropped(dropped: u64) {
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "unsigned messages on the commands topic refused without a reply (a flood: check who can publish there, docs/mqtt.md)"
        );
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
                seq: crate::units::sql_count(i) + 1,
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
