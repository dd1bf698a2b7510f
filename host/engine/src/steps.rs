//! Host steps that need nothing from the outside world.
//!
//! - [`Close`] builds the response of the default wire contract: MTI + 10,
//!   the echoed fields, DE39, DE38 only on approval, never DE35/45/52.
//!   An ISO 8583:1993 request (`1xxx`) is answered the same way (1100 →
//!   1110, 1200 → 1210, 1420 → 1430, 1804 → 1814), with its function code
//!   (DE24) echoed too; DE39 is the 1987 response code here, and a listener
//!   whose spec has a three-digit DE39 writes it as the 1993 action code.
//! - [`LogStep`] logs a one-line summary of the transaction (PAN masked).
//!
//! Both are jPOS *abort participants*: they also run when the transaction
//! aborts, so a declined request still gets its response.

use switchyard_iso8583::{Message, mask_pan};

use crate::context::Context;
use crate::participant::{Failure, Outcome, Participant};
use crate::rc;

/// Request fields echoed in every response when present.
pub const ECHOED_FIELDS: [u16; 10] = [3, 4, 7, 11, 12, 13, 37, 41, 42, 49];

/// Fields that never leave the switch towards an acquirer.
pub const NEVER_RETURNED: [u16; 3] = [35, 45, 52];

/// Network-management information code in ISO 8583:1987 (echoed on 08xx).
const DE_NMIC: u16 = 70;
/// Function code in ISO 8583:1993 (echoed on every 1xxx).
const DE_FUNCTION_CODE: u16 = 24;
const DE_AUTH_CODE: u16 = 38;
const DE_RESPONSE_CODE: u16 = 39;

/// Completes `response` for `request` with result code `code`: sets the MTI,
/// echoes [`ECHOED_FIELDS`] (and DE70 on a 1987 network management request
/// (08xx), DE24 on any ISO 8583:1993 request (1xxx)) unless a participant
/// already set them, sets DE39, keeps DE38 only on approval and drops
/// [`NEVER_RETURNED`].
pub fn complete_response(request: &Message, code: &str, response: &mut Message) {
    let mti = request.mti();
    response.set_mti(mti.response().unwrap_or(mti));
    for f in ECHOED_FIELDS {
        echo(request, response, f);
    }
    match mti.as_bytes() {
        [b'0', b'8', ..] => echo(request, response, DE_NMIC),
        [b'1', ..] => echo(request, response, DE_FUNCTION_CODE),
        _ => {}
    }
    response.set(
        DE_RESPONSE_CODE,
        bytes::Bytes::copy_from_slice(code.as_bytes()),
    );
    if code != rc::APPROVED {
        response.remove(DE_AUTH_CODE);
    }
    for f in NEVER_RETURNED {
        response.remove(f);
    }
}

fn echo(request: &Message, response: &mut Message, field: u16) {
    if !response.contains(field)
        && let Some(v) = request.get_bytes(field)
    {
        response.set(field, v.clone());
    }
}

/// Answers a request that a participant's failure left without a response:
/// when the pipeline failed (`ctx.failure` is set) before any `send` was
/// chosen — a group selector that trapped or ran past its deadline chooses
/// nothing, so neither `close` nor `send` of its groups runs — the acquirer
/// still gets the failure's result code (96 unless one was set) instead of
/// silence and a timeout. True when it answered. A pipeline that ran
/// without failing and chose not to respond is left as it is.
pub fn answer_failed(ctx: &mut Context) -> bool {
    if ctx.respond || ctx.failure.is_none() || ctx.request.mti().response().is_none() {
        return false;
    }
    let code = ctx.result_code().unwrap_or(rc::SYSTEM_ERROR).to_owned();
    let mut response = std::mem::take(&mut ctx.response);
    complete_response(&ctx.request, &code, &mut response);
    ctx.response = response;
    ctx.respond = true;
    true
}

/// Builds the response (see [`complete_response`]) in the second phase:
/// result code `00` when committed and none was set, `96` when aborted and
/// none was set.
#[derive(Debug, Default, Clone, Copy)]
pub struct Close;

impl Close {
    fn finish(ctx: &mut Context, default_code: &'static str) {
        if ctx.result_code().is_none() {
            ctx.set_result_code(default_code);
        }
        let code = ctx.result_code().unwrap_or(default_code).to_owned();
        let mut response = std::mem::take(&mut ctx.response);
        complete_response(&ctx.request, &code, &mut response);
        ctx.response = response;
    }
}

impl Participant for Close {
    fn prepare(&self, _ctx: &mut Context) -> Result<Outcome, Failure> {
        Ok(Outcome::PREPARED)
    }

    fn prepare_for_abort(&self, _ctx: &mut Context) -> Option<Result<Outcome, Failure>> {
        Some(Ok(Outcome::PREPARED))
    }

    fn commit(&self, ctx: &mut Context) -> Result<(), Failure> {
        Close::finish(ctx, rc::APPROVED);
        Ok(())
    }

    fn abort(&self, ctx: &mut Context) -> Result<(), Failure> {
        Close::finish(ctx, rc::SYSTEM_ERROR);
        Ok(())
    }
}

/// Logs the transaction's summary at info level in the second phase.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogStep;

impl LogStep {
    fn log(ctx: &Context, verdict: &str) {
        let pan = ctx.request.get_str(2).map(mask_pan).unwrap_or_default();
        tracing::info!(
            listener = ctx.listener(),
            tenant = &**ctx.tenant(),
            mti = ctx.request.mti().as_str(),
            stan = ctx.request.get_str(11).unwrap_or(""),
            pan = %pan,
            amount = ctx.request.get_str(4).unwrap_or(""),
            rc = ctx.result_code().unwrap_or(""),
            verdict,
            "transaction"
        );
    }
}

impl Participant for LogStep {
    fn prepare(&self, _ctx: &mut Context) -> Result<Outcome, Failure> {
        Ok(Outcome::PREPARED_READ_ONLY)
    }

    fn prepare_for_abort(&self, _ctx: &mut Context) -> Option<Result<Outcome, Failure>> {
        Some(Ok(Outcome::PREPARED_READ_ONLY))
    }

    fn commit(&self, ctx: &mut Context) -> Result<(), Failure> {
        LogStep::log(ctx, "committed");
        Ok(())
    }

    fn abort(&self, ctx: &mut Context) -> Result<(), Failure> {
        LogStep::log(ctx, "aborted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_iso8583::Mti;

    #[test]
    fn a_failure_that_chose_no_send_is_answered_with_96() {
        let mut request = Message::new(Mti::new("0200").unwrap());
        request.set(11, bytes::Bytes::from_static(b"000123"));
        request.set(41, bytes::Bytes::from_static(b"TERM0001"));
        let mut ctx = Context::new("t".into(), "l".into(), 5001, request);
        // No failure: a pipeline may choose not to respond.
        assert!(!answer_failed(&mut ctx));
        assert!(!ctx.respond);
        ctx.failure = Some("by-port: deadline of 50 ms exceeded".into());
        ctx.set_result_code(rc::SYSTEM_ERROR);
        assert!(answer_failed(&mut ctx));
        assert!(ctx.respond);
        assert_eq!(ctx.response.mti().as_str(), "0210");
        assert_eq!(ctx.response.get_str(39), Some("96"));
        assert_eq!(ctx.response.get_str(11), Some("000123"));
        // Once answered, never twice.
        assert!(!answer_failed(&mut ctx));
    }

    fn request() -> Message {
        let mut m = Message::new(Mti::new("0200").unwrap());
        m.set(2, &b"4761739001010119"[..]);
        m.set(3, &b"000000"[..]);
        m.set(4, &b"000000001000"[..]);
        m.set(11, &b"000001"[..]);
        m.set(35, &b"4761739001010119D22122011758928889"[..]);
        m.set(41, &b"TERM0001"[..]);
        m
    }

    #[test]
    fn approval_echoes_and_keeps_auth_code() {
        let mut resp = Message::default();
        resp.set(38, &b"A1B2C3"[..]);
        complete_response(&request(), "00", &mut resp);
        assert_eq!(resp.mti().as_str(), "0210");
        assert_eq!(resp.get(39), Some(&b"00"[..]));
        assert_eq!(resp.get(38), Some(&b"A1B2C3"[..]));
        assert_eq!(resp.get(4), Some(&b"000000001000"[..]));
        assert_eq!(resp.get(41), Some(&b"TERM0001"[..]));
        assert!(!resp.contains(2));
        assert!(!resp.contains(35));
    }

    #[test]
    fn decline_drops_auth_code_and_card_data() {
        let mut resp = Message::default();
        resp.set(38, &b"A1B2C3"[..]);
        resp.set(35, &b"1234"[..]);
        complete_response(&request(), "61", &mut resp);
        assert_eq!(resp.get(39), Some(&b"61"[..]));
        assert!(!resp.contains(38));
        assert!(!resp.contains(35));
    }

    #[test]
    fn close_defaults_to_00_on_commit_and_96_on_abort() {
        let mut ctx = Context::new("t".into(), "l".into(), 5001, request());
        Close.commit(&mut ctx).unwrap();
        assert_eq!(ctx.response.get(39), Some(&b"00"[..]));
        let mut ctx = Context::new("t".into(), "l".into(), 5001, request());
        Close.abort(&mut ctx).unwrap();
        assert_eq!(ctx.response.get(39), Some(&b"96"[..]));
    }

    #[test]
    fn echo_response_for_network_management() {
        let mut req = Message::new(Mti::new("0800").unwrap());
        req.set(7, &b"1123101010"[..]);
        req.set(11, &b"000007"[..]);
        req.set(70, &b"301"[..]);
        let mut resp = Message::default();
        complete_response(&req, "00", &mut resp);
        assert_eq!(resp.mti().as_str(), "0810");
        assert_eq!(resp.get(70), Some(&b"301"[..]));
        assert_eq!(resp.get(39), Some(&b"00"[..]));
    }

    #[test]
    fn iso_8583_1993_requests_get_their_response_mti_and_function_code() {
        for (request_mti, function, response_mti) in [
            ("1100", "100", "1110"),
            ("1200", "200", "1210"),
            ("1201", "200", "1210"),
            ("1420", "400", "1430"),
            ("1421", "400", "1430"),
            ("1804", "831", "1814"),
        ] {
            let mut req = Message::new(Mti::new(request_mti).unwrap());
            req.set(11, &b"000007"[..]);
            req.set(24, function.as_bytes().to_vec());
            req.set(70, &b"840"[..]);
            let mut resp = Message::default();
            complete_response(&req, "00", &mut resp);
            assert_eq!(resp.mti().as_str(), response_mti, "{request_mti}");
            assert_eq!(resp.get(24), Some(function.as_bytes()), "{request_mti}");
            assert_eq!(resp.get(11), Some(&b"000007"[..]), "{request_mti}");
            // DE70 is a country code in 1993, not a network code to echo.
            assert!(!resp.contains(70), "{request_mti}");
        }
        // In 1987, DE24 (the network international identifier) is not
        // echoed by the default contract.
        let mut req = request();
        req.set(24, &b"001"[..]);
        let mut resp = Message::default();
        complete_response(&req, "00", &mut resp);
        assert!(!resp.contains(24));
    }
}
