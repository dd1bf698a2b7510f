//! The `test-tag-a` and `test-tag-b` participants: two versions of one
//! plugin for the hot-swap tests, built from this one source file (the
//! `test-tag-b` crate points its `[lib] path` here). Each appends its tag —
//! the last letter of its package name, `A` or `B` — to DE44 of the
//! response ("additional response data").
//!
//! A pipeline with two participants of the same plugin answers `AA` or
//! `BB`; a response with `AB` or `BA` would show a transaction that saw two
//! versions of the plugin, which the registry's pinned generations forbid.
//!
//! It prepares without joining; it aborts with 96 only if the host refuses
//! DE44 (a listener whose spec lacks it).

use switchyard_sdk::{Env, Outcome, Participant, Transaction, rc};

/// Additional response data (ans..25 in ISO 8583:1987).
pub const TAG_FIELD: u16 = 44;

/// This version's tag: the last letter of the package name, upper case.
pub const TAG: u8 = {
    let name = env!("CARGO_PKG_NAME").as_bytes();
    name[name.len() - 1].to_ascii_uppercase()
};

/// Appends [`TAG`] to DE44 of the response.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tag;

impl Participant for Tag {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        let mut tags = tx
            .response_field(TAG_FIELD)
            .map(|t| t.into_owned())
            .unwrap_or_default();
        tags.push(TAG);
        match tx.set_response_field(TAG_FIELD, &tags) {
            Ok(()) => Outcome::NoJoin,
            Err(reason) => {
                env.error(&format!("tag: cannot set DE44: {reason}"));
                tx.set_result_code(rc::SYSTEM_ERROR);
                Outcome::Aborted
            }
        }
    }
}

switchyard_sdk::export_participant!(Tag);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    #[test]
    fn appends_its_tag_to_de44() {
        let env = MockEnv::new();
        let mut tx = MockTransaction::new("0200");
        assert_eq!(Tag.prepare(&mut tx, &env), Outcome::NoJoin);
        assert_eq!(Tag.prepare(&mut tx, &env), Outcome::NoJoin);
        let tag = char::from(TAG);
        assert!(tag == 'A' || tag == 'B', "{tag}");
        assert_eq!(
            tx.response().get(&TAG_FIELD).map(Vec::as_slice),
            Some(format!("{tag}{tag}").as_bytes())
        );
    }
}
