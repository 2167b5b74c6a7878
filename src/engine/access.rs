//! Who may be online: one rule for a RADIUS Access-Request and for a session the router reports,
//! so that a login the RADIUS server accepts is never refused when its accounting Start arrives
//! (and the other way round). Pure: the caller gathers the facts.

use crate::domain::Mac;
use crate::engine::model::UserState;
use crate::engine::{RejectCode, Rejection};

/// What is known of a user at the moment of a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    pub state: UserState,
    /// The device the account is tied to (`[users] bind-mac`).
    pub bound_mac: Option<&'a Mac>,
    /// A running or queued grant exists.
    pub has_grant: bool,
    /// Data left on the grant in use; `None` for no data cap.
    pub data_left: Option<u64>,
    /// Sessions open now, and how many the plan allows.
    pub sessions: u32,
    pub devices: u32,
}

/// A refused login is a [`Rejection`] like any refused command, its message in words a
/// customer understands (RADIUS Reply-Message).
fn refuse(code: RejectCode, message: impl Into<String>) -> Result<(), Rejection> {
    Err(Rejection {
        code,
        message: message.into(),
    })
}

/// May a device with `mac` log in now? Checked in the order a customer would want to hear it.
pub fn admit(f: &Facts<'_>, mac: Option<&Mac>) -> Result<(), Rejection> {
    match f.state {
        UserState::Suspended => return refuse(RejectCode::Suspended, "this account is suspended"),
        UserState::Expired => return refuse(RejectCode::Expired, "your time has run out"),
        UserState::Active => {}
    }
    if let (Some(bound), Some(m)) = (f.bound_mac, mac) {
        if bound != m {
            return refuse(
                RejectCode::MacNotAllowed,
                "this account is tied to another device",
            );
        }
    }
    if !f.has_grant {
        return refuse(RejectCode::NoEntitlement, "your time has run out");
    }
    if f.data_left == Some(0) {
        return refuse(RejectCode::NoEntitlement, "your data has run out");
    }
    if f.sessions >= f.devices {
        return refuse(
            RejectCode::TooManyDevices,
            format!("this account is already in use on {} device(s)", f.sessions),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            state: UserState::Active,
            bound_mac: None,
            has_grant: true,
            data_left: None,
            sessions: 0,
            devices: 1,
        }
    }

    #[test]
    fn refusals_in_order() {
        let mac = Mac::parse("AA:BB:CC:DD:EE:01").unwrap();
        let other = Mac::parse("AA:BB:CC:DD:EE:02").unwrap();
        assert_eq!(admit(&facts(), Some(&mac)), Ok(()));
        let code = |f: Facts<'_>, m: Option<&Mac>| admit(&f, m).unwrap_err().code;
        let f = Facts {
            state: UserState::Suspended,
            has_grant: false,
            ..facts()
        };
        assert_eq!(code(f, None), RejectCode::Suspended);
        let f = Facts {
            state: UserState::Expired,
            ..facts()
        };
        assert_eq!(code(f, None), RejectCode::Expired);
        let f = Facts {
            bound_mac: Some(&mac),
            sessions: 5,
            ..facts()
        };
        assert_eq!(code(f.clone(), Some(&other)), RejectCode::MacNotAllowed);
        assert_eq!(code(f, Some(&mac)), RejectCode::TooManyDevices);
        let f = Facts {
            has_grant: false,
            ..facts()
        };
        assert_eq!(code(f, None), RejectCode::NoEntitlement);
        let f = Facts {
            data_left: Some(0),
            ..facts()
        };
        assert_eq!(
            admit(&f, None).unwrap_err().message,
            "your data has run out"
        );
        let f = Facts {
            sessions: 1,
            devices: 2,
            ..facts()
        };
        assert_eq!(admit(&f, None), Ok(()));
    }
}
