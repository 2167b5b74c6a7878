//! Facts the daemon reports (the outbox). The JSON form is documented in docs/events.md: the
//! envelope is built by the store (id, site, seq), the payload is this enum.

use serde::Serialize;

/// An event's payload. Serialised as `{"type": "...", "payload": {...}}` by [`Event::split`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "payload", rename_all = "kebab-case")]
pub enum Event {
    #[serde(rename = "payment.recorded", rename_all = "kebab-case")]
    PaymentRecorded {
        payment: i64,
        provider: String,
        reference: String,
        phone: Option<String>,
        amount: u64,
        currency: String,
        plan: String,
        user: String,
        grant: i64,
    },
    #[serde(rename = "user.created", rename_all = "kebab-case")]
    UserCreated {
        user: String,
        phone: Option<String>,
        mac: Option<String>,
    },
    #[serde(rename = "user.expired", rename_all = "kebab-case")]
    UserExpired { user: String },
    #[serde(rename = "user.suspended", rename_all = "kebab-case")]
    UserSuspended { user: String, reason: String },
    #[serde(rename = "user.resumed", rename_all = "kebab-case")]
    UserResumed { user: String },
    #[serde(rename = "grant.added", rename_all = "kebab-case")]
    GrantAdded {
        grant: i64,
        user: String,
        plan: String,
        source: String,
        validity: String,
        time_ms: i64,
        data_bytes: Option<u64>,
    },
    #[serde(rename = "grant.started", rename_all = "kebab-case")]
    GrantStarted {
        grant: i64,
        user: String,
        /// Estimated wall-clock end (RFC 3339) for `wall` grants; absent for `uptime` grants.
        ends_at: Option<String>,
    },
    #[serde(rename = "grant.ended", rename_all = "kebab-case")]
    GrantEnded {
        grant: i64,
        user: String,
        /// `time` or `data`.
        reason: String,
        bytes_used: u64,
    },
    #[serde(rename = "voucher.batch-generated", rename_all = "kebab-case")]
    VoucherBatchGenerated {
        batch: String,
        plan: String,
        count: usize,
        codes: Vec<String>,
        expires_at: Option<String>,
    },
    #[serde(rename = "voucher.batch-imported", rename_all = "kebab-case")]
    VoucherBatchImported {
        batch: String,
        plan: String,
        count: usize,
        expires_at: Option<String>,
    },
    #[serde(rename = "voucher.redeemed", rename_all = "kebab-case")]
    VoucherRedeemed {
        code: String,
        user: String,
        grant: i64,
    },
    #[serde(rename = "voucher.revoked", rename_all = "kebab-case")]
    VoucherRevoked { code: String },
    #[serde(rename = "voucher.expired", rename_all = "kebab-case")]
    VoucherExpired { code: String },
    #[serde(rename = "plan.upserted", rename_all = "kebab-case")]
    PlanUpserted { plan: serde_json::Value },
    #[serde(rename = "plan.removed", rename_all = "kebab-case")]
    PlanRemoved { plan: String },
    #[serde(rename = "session.started", rename_all = "kebab-case")]
    SessionStarted {
        session: i64,
        user: String,
        nas_session_id: String,
        mac: Option<String>,
        ip: Option<String>,
    },
    #[serde(rename = "session.ended", rename_all = "kebab-case")]
    SessionEnded {
        session: i64,
        user: String,
        reason: String,
        bytes_in: u64,
        bytes_out: u64,
        duration_ms: i64,
    },
    /// The outbox was over its size limit and these telemetry events were dropped unsent
    /// (never money events): the cloud sees a seq gap it can account for.
    #[serde(rename = "outbox.dropped", rename_all = "kebab-case")]
    OutboxDropped {
        count: u64,
        first_seq: i64,
        last_seq: i64,
    },
    /// An operator said the wall clock is right (`clock reset-high-water`): the high-water mark
    /// came down from `from` to `to`, and wall time is trusted again from `to`.
    #[serde(rename = "clock.high-water-reset", rename_all = "kebab-case")]
    ClockHighWaterReset {
        from: String,
        to: String,
        by: String,
    },
}

impl Event {
    /// The event's type name and its payload, as stored in the outbox.
    pub fn split(&self) -> (String, serde_json::Value) {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        let ty = v
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("unknown")
            .to_string();
        let payload = v
            .get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or(serde_json::Value::Null);
        (ty, payload)
    }

    /// Money events are never dropped from the outbox (see docs/events.md).
    pub fn is_money(&self) -> bool {
        matches!(
            self,
            Event::PaymentRecorded { .. }
                | Event::GrantAdded { .. }
                | Event::VoucherBatchGenerated { .. }
                | Event::VoucherBatchImported { .. }
                | Event::VoucherRedeemed { .. }
                | Event::VoucherRevoked { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_into_type_and_kebab_case_payload() {
        let (ty, p) = Event::GrantEnded {
            grant: 3,
            user: "u".into(),
            reason: "time".into(),
            bytes_used: 10,
        }
        .split();
        assert_eq!(ty, "grant.ended");
        assert_eq!(
            p,
            serde_json::json!({"grant": 3, "user": "u", "reason": "time", "bytes-used": 10})
        );
    }
}
