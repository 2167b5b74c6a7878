//! The deadline timer's tick: grants that ended, users that expired, vouchers that lapsed.

use super::decision::*;
use super::*;

impl Cx<'_> {
    pub(super) fn tick(&mut self) -> Result<Value, EngineError> {
        let due = self
            .ledger
            .users_with_due_grants(self.now.timeline_ms, TICK_SLICE)?;
        let before = self.out.events.len();
        for uid in &due {
            if let Some(mut user) = self.ledger.user_by_id(*uid)? {
                self.settle(&mut user)?;
            }
        }
        let vouchers = self.ledger.vouchers_due(self.now.timeline_ms, TICK_SLICE)?;
        let expired_vouchers = vouchers.len();
        for mut v in vouchers {
            v.state = VoucherState::Expired;
            self.ledger.update_voucher(&v)?;
            self.emit(Event::VoucherExpired {
                code: v.code.clone(),
            });
        }
        let users_expired = self.out.events[before..]
            .iter()
            .filter(|e| matches!(e, Event::UserExpired { .. }))
            .count();
        Ok(json!({
            "users-checked": due.len(),
            "users-expired": users_expired,
            "vouchers-expired": expired_vouchers,
            "more": due.len() == TICK_SLICE || expired_vouchers == TICK_SLICE,
        }))
    }
}
