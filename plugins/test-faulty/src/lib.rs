//! The `test-faulty` participant: misbehaves on demand, for the host's
//! failure tests (traps, deadlines, memory limits must turn into RC 96 and
//! never take down the switch).
//!
//! Settings:
//! - `mode`: what to do when triggered: `trap` (an `unreachable`
//!   instruction), `panic`, `loop` (spins forever), `oom` (allocates without
//!   end), `recurse` (unbounded recursion), `ok` (prepared, joins),
//!   `remember` (answers DE44 with the DE41 of the previous transaction this
//!   instance saw, or `none`: shows what an instance keeps between
//!   transactions), `leak` (keeps 512 KiB more of linear memory per call:
//!   a slow leak for the recycling policy). Required:
//!   a missing or unknown mode is logged as an error and aborts with 96 when
//!   triggered.
//! - `trigger_suffix`: it misbehaves only when DE4 ends with this; default
//!   `13`. An empty suffix triggers on every request with DE4.
//!
//! Not triggered (no DE4, or another suffix): prepared without joining.

use std::hint::black_box;

use switchyard_sdk::{Config, Env, Log, Outcome, Participant, Transaction, field, rc};

/// The suffix of DE4 that triggers the misbehaviour by default.
pub const DEFAULT_TRIGGER_SUFFIX: &str = "13";

/// What the participant does when triggered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Executes an `unreachable` instruction.
    Trap,
    /// Panics (with `panic = "abort"`: traps after a message on stderr).
    Panic,
    /// Spins forever, until the host's deadline interrupts it.
    Loop,
    /// Allocates and touches memory until the host's limit is reached.
    Oom,
    /// Recurses until the stack is exhausted.
    Recurse,
    /// Behaves: prepared, and joins.
    Ok,
    /// Answers DE44 with the previous transaction's DE41.
    Remember,
    /// Keeps 512 KiB more memory per call.
    Leak,
}

impl Mode {
    /// Reads a `mode` setting.
    pub fn parse(text: &str) -> Option<Mode> {
        Some(match text.trim() {
            "trap" => Mode::Trap,
            "panic" => Mode::Panic,
            "loop" => Mode::Loop,
            "oom" => Mode::Oom,
            "recurse" => Mode::Recurse,
            "ok" => Mode::Ok,
            "remember" => Mode::Remember,
            "leak" => Mode::Leak,
            _ => return None,
        })
    }
}

/// What `prepare` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not triggered: prepared, no join.
    Pass,
    /// Triggered: misbehave this way.
    Misbehave(Mode),
    /// Triggered, but `mode` is missing or unknown: abort with 96.
    BadMode,
}

/// Decides from the request and the settings; reads `mode` only when
/// triggered.
pub fn decide(tx: &impl Transaction, env: &(impl Config + Log)) -> Decision {
    let Some(amount) = tx.request_field(field::AMOUNT) else {
        return Decision::Pass;
    };
    let suffix = env.get("trigger_suffix");
    let suffix = suffix.as_deref().unwrap_or(DEFAULT_TRIGGER_SUFFIX);
    if !amount.ends_with(suffix.as_bytes()) {
        return Decision::Pass;
    }
    match env.get("mode") {
        Some(mode) => match Mode::parse(&mode) {
            Some(mode) => Decision::Misbehave(mode),
            None => {
                env.error(&format!(
                    "test-faulty: unknown `mode` {mode:?}: trap, panic, loop, oom, recurse or ok"
                ));
                Decision::BadMode
            }
        },
        None => {
            env.error("test-faulty: no `mode` configured");
            Decision::BadMode
        }
    }
}

/// The failure-test participant. Keeps state only for `remember` and `leak`.
#[derive(Clone, Debug, Default)]
pub struct TestFaulty {
    remembered: Option<Vec<u8>>,
    hoard: Vec<Vec<u8>>,
}

/// Bytes `leak` keeps per call.
pub const LEAK_PER_CALL: usize = 512 << 10;

impl Participant for TestFaulty {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        match decide(tx, env) {
            Decision::Pass => Outcome::NoJoin,
            Decision::BadMode => {
                tx.set_result_code(rc::SYSTEM_ERROR);
                Outcome::Aborted
            }
            Decision::Misbehave(Mode::Ok) => Outcome::Prepared,
            Decision::Misbehave(Mode::Remember) => {
                let seen = tx.request_field(field::TERMINAL_ID).map(|t| t.into_owned());
                let previous = self.remembered.take().unwrap_or_else(|| b"none".to_vec());
                self.remembered = seen;
                match tx.set_response_field(44, &previous) {
                    Ok(()) => Outcome::NoJoin,
                    Err(e) => {
                        env.error(&format!("test-faulty: DE44 refused: {e}"));
                        Outcome::Aborted
                    }
                }
            }
            Decision::Misbehave(Mode::Leak) => {
                let mut block = vec![0u8; LEAK_PER_CALL];
                // Touch every page so the memory is really used.
                for page in block.chunks_mut(4096) {
                    page[0] = 1;
                }
                self.hoard.push(black_box(block));
                Outcome::NoJoin
            }
            Decision::Misbehave(mode) => {
                env.warn(&format!("test-faulty: misbehaving on purpose: {mode:?}"));
                misbehave(mode)
            }
        }
    }
}

/// Does the harm. Never returns for any mode but [`Mode::Ok`].
pub fn misbehave(mode: Mode) -> Outcome {
    match mode {
        Mode::Trap => trap(),
        Mode::Panic => panic!("test-faulty: panicking on purpose"),
        Mode::Loop => spin(),
        Mode::Oom => hoard(),
        Mode::Recurse => {
            black_box(recurse(black_box(0)));
            unreachable!("unbounded recursion returned")
        }
        Mode::Ok | Mode::Remember | Mode::Leak => Outcome::Prepared,
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

fn spin() -> ! {
    let mut spins = 0u64;
    loop {
        spins = black_box(spins.wrapping_add(1));
    }
}

fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Filled with a non-zero byte so that every page is touched.
        let chunk = vec![0xA5u8; 1 << 20];
        hoard.push(black_box(chunk));
        black_box(&hoard);
    }
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // A frame that lives in memory, so that no optimisation makes it a loop.
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return frame[31];
    }
    recurse(black_box(frame[0] + 1)).wrapping_add(black_box(frame[31]))
}

switchyard_sdk::export_participant!(TestFaulty);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::Level;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    /// The published test card; passes Luhn.
    const TEST_PAN: &str = "4761739001010119";
    /// The test card with its check digit changed: fails Luhn.
    const BAD_LUHN_PAN: &str = "4761739001010118";

    fn purchase(amount: &str) -> MockTransaction {
        MockTransaction::new("0200")
            .with_field(2, TEST_PAN)
            .with_field(4, amount)
    }

    fn env(mode: &str) -> MockEnv {
        MockEnv::new().with_config("mode", mode)
    }

    #[test]
    fn every_mode_is_read() {
        for (text, mode) in [
            ("trap", Mode::Trap),
            ("panic", Mode::Panic),
            ("loop", Mode::Loop),
            ("oom", Mode::Oom),
            ("recurse", Mode::Recurse),
            ("ok", Mode::Ok),
        ] {
            assert_eq!(Mode::parse(text), Some(mode));
            let decision = decide(&purchase("000000001013"), &env(text));
            assert_eq!(decision, Decision::Misbehave(mode));
        }
        assert_eq!(Mode::parse("explode"), None);
    }

    #[test]
    fn only_the_trigger_suffix_triggers() {
        let env = env("trap");
        assert_eq!(decide(&purchase("000000001000"), &env), Decision::Pass);
        assert_eq!(decide(&purchase("000000001031"), &env), Decision::Pass);
        assert_eq!(decide(&MockTransaction::new("0800"), &env), Decision::Pass);
        let tx = MockTransaction::new("0200").with_field(2, BAD_LUHN_PAN);
        assert_eq!(decide(&tx, &env), Decision::Pass);

        let env = env.with_config("trigger_suffix", "77");
        assert_eq!(decide(&purchase("000000001013"), &env), Decision::Pass);
        assert_eq!(
            decide(&purchase("000000001077"), &env),
            Decision::Misbehave(Mode::Trap)
        );
    }

    #[test]
    fn not_triggered_is_prepared_without_joining() {
        let mut tx = purchase("000000001000");
        assert_eq!(
            TestFaulty::default().prepare(&mut tx, &env("trap")),
            Outcome::NoJoin
        );
        assert_eq!(tx.rc(), None);
        assert_eq!(tx.fields_read(), vec![4]);
    }

    #[test]
    fn ok_mode_prepares_and_joins() {
        let mut tx = purchase("000000001013");
        assert_eq!(
            TestFaulty::default().prepare(&mut tx, &env("ok")),
            Outcome::Prepared
        );
        assert_eq!(tx.rc(), None);
    }

    #[test]
    fn a_missing_or_unknown_mode_is_a_system_error() {
        for env in [MockEnv::new(), env("explode")] {
            let mut tx = purchase("000000001013");
            assert_eq!(
                TestFaulty::default().prepare(&mut tx, &env),
                Outcome::Aborted
            );
            assert_eq!(tx.rc(), Some(rc::SYSTEM_ERROR));
            assert!(env.logged(Level::Error, "test-faulty"));
        }
    }

    #[test]
    #[should_panic(expected = "panicking on purpose")]
    fn panic_mode_panics() {
        let mut tx = purchase("000000001013");
        TestFaulty::default().prepare(&mut tx, &env("panic"));
    }
}

#[cfg(test)]
mod stateful_tests {
    use super::*;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    fn env(mode: &str) -> MockEnv {
        MockEnv::new()
            .with_config("mode", mode)
            .with_config("trigger_suffix", "")
    }

    #[test]
    fn remember_answers_the_previous_terminal() {
        let mut p = TestFaulty::default();
        let mut tx = MockTransaction::new("0200")
            .with_field(4, "000000001000")
            .with_field(41, "TERMAAAA");
        p.prepare(&mut tx, &env("remember"));
        assert_eq!(
            tx.response().get(&44).map(Vec::as_slice),
            Some(&b"none"[..])
        );
        let mut tx = MockTransaction::new("0200")
            .with_field(4, "000000001000")
            .with_field(41, "TERMBBBB");
        p.prepare(&mut tx, &env("remember"));
        assert_eq!(
            tx.response().get(&44).map(Vec::as_slice),
            Some(&b"TERMAAAA"[..])
        );
    }

    #[test]
    fn leak_keeps_memory() {
        let mut p = TestFaulty::default();
        let mut tx = MockTransaction::new("0200").with_field(4, "000000001000");
        for _ in 0..3 {
            assert_eq!(p.prepare(&mut tx, &env("leak")), Outcome::NoJoin);
        }
        assert_eq!(p.hoard.len(), 3);
    }
}
