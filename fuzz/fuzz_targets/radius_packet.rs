//! Any datagram through the RADIUS decoder and everything that reads through it: no panic.
#![no_main]

use hotspot_edge::radius::packet::{attr, chap_ok, pap_password, vendor, Packet};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-radius-secret-0123";

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::parse(data) {
        let _ = p.attrs().count();
        let _ = p.message_authenticator(SECRET);
        let _ = p.request_authenticator_ok(SECRET);
        let _ = p.response_ok(&[0; 16], SECRET);
        let _ = p.vsa(vendor::MIKROTIK, vendor::MIKROTIK_RATE_LIMIT);
        let _ = (p.u32(attr::ACCT_STATUS_TYPE), p.ipv4(attr::FRAMED_IP_ADDRESS), p.text(attr::USER_NAME));
        if let Some(v) = p.attr(attr::USER_PASSWORD) {
            let _ = pap_password(v, &p.authenticator(), SECRET);
        }
        if let Some(v) = p.attr(attr::CHAP_PASSWORD) {
            let _ = chap_ok(v, &p.authenticator(), b"pw");
        }
    }
});
