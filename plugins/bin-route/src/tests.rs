//! Native tests of the selector against the SDK's mock host.

use super::*;
use switchyard_sdk::mock::{MockEnv, MockTransaction};
use switchyard_sdk::{Level, MapConfig};

/// Published test cards (Luhn-valid).
const VISA: &str = "4761739001010119";
const MASTERCARD: &str = "5413330089010509";
const MASTERCARD_2_SERIES: &str = "2223000048410010";
/// Internal ranges, Luhn-valid.
const LOYALTY: &str = "6006490000000004";
const COUPON: &str = "6006500000000018";
/// In no range of the default table (Luhn-valid).
const UNROUTED: &str = "5613330089010507";

const ALL_CARDS: [&str; 6] = [
    VISA,
    MASTERCARD,
    MASTERCARD_2_SERIES,
    LOYALTY,
    COUPON,
    UNROUTED,
];

/// The settings of port 5003 in the default configuration.
fn default_5003() -> MockEnv {
    MockEnv::new()
        .with_config("bin 4", "xxx")
        .with_config("bin 51..55", "yyy")
        .with_config("bin 2221..2720", "yyy")
        .with_config("bin 600649", "loyalty")
        .with_config("bin 600650", "coupon")
        .with_config("route xxx", "query-xxx close send")
        .with_config("route yyy", "query-yyy, close, send")
        .with_config("route loyalty", "loyalty close")
        .with_config("route coupon", "coupon close")
}

fn purchase(pan: &str) -> MockTransaction {
    MockTransaction::new("0200")
        .with_field(2, pan)
        .with_field(3, "000000")
        .with_field(4, "000000001000")
        .with_field(11, "000123")
        .with_field(41, "TERM0001")
}

/// No log message shows a full test card.
fn assert_no_card_in_logs(env: &MockEnv) {
    for (_, message) in env.logs() {
        for card in ALL_CARDS {
            assert!(!message.contains(card), "{message}");
        }
    }
}

/// Runs `prepare` and, when it did not abort, `select` on one instance.
fn route_with(
    plugin: &mut BinRoute,
    env: &MockEnv,
    tx: &mut MockTransaction,
) -> Option<Vec<String>> {
    let outcome = plugin.prepare(tx, env);
    assert_ne!(outcome, Outcome::Prepared, "a selector never joins");
    assert!(tx.response().is_empty(), "no response field is set");
    let groups = match outcome {
        Outcome::NoJoin => Some(plugin.select(tx, env)),
        _ => None,
    };
    assert_no_card_in_logs(env);
    groups
}

/// [`route_with`] on a fresh instance: the groups, or `None` when aborted.
fn route(env: &MockEnv, mut tx: MockTransaction) -> (Option<Vec<String>>, MockTransaction) {
    let groups = route_with(&mut BinRoute::default(), env, &mut tx);
    (groups, tx)
}

fn groups(env: &MockEnv, tx: MockTransaction) -> Vec<String> {
    let (groups, tx) = route(env, tx);
    assert_eq!(tx.rc(), None);
    groups.expect("routed")
}

fn rc_of(env: &MockEnv, tx: MockTransaction) -> String {
    let (groups, tx) = route(env, tx);
    assert_eq!(groups, None, "aborted");
    tx.rc().expect("a result code").to_owned()
}

fn problems(config: &[(&str, &str)]) -> Vec<SettingProblem> {
    let config: MapConfig = config.iter().copied().collect();
    BinRoute::default().check_settings(&config)
}

/// The problems' keys, and whether some message mentions `text`.
fn has_problem(problems: &[SettingProblem], key: &str, text: &str) -> bool {
    problems
        .iter()
        .any(|p| p.key == key && p.message.contains(text))
}

#[test]
fn routes_the_default_5003_cards() {
    let env = default_5003();
    for (pan, name, expected) in [
        (VISA, "xxx", ["query-xxx", "close", "send"]),
        (MASTERCARD, "yyy", ["query-yyy", "close", "send"]),
        (MASTERCARD_2_SERIES, "yyy", ["query-yyy", "close", "send"]),
    ] {
        let (selected, tx) = route(&env, purchase(pan));
        assert_eq!(selected.expect("routed"), expected, "{name}");
        assert_eq!(tx.vars().get("ROUTE").map(String::as_str), Some(name));
        assert_eq!(tx.rc(), None);
    }
    assert_eq!(groups(&env, purchase(LOYALTY)), ["loyalty", "close"]);
    assert_eq!(groups(&env, purchase(COUPON)), ["coupon", "close"]);
}

#[test]
fn the_mastercard_ranges_end_where_they_should() {
    let env = default_5003();
    for (pan, routed) in [
        ("5100000000000008", true),
        ("5599999999999999", true),
        ("5000000000000000", false),
        ("5600000000000000", false),
        ("2221000000000009", true),
        ("2720999999999999", true),
        ("2220999999999999", false),
        ("2721000000000000", false),
    ] {
        let (groups, _) = route(&env, purchase(pan));
        assert_eq!(groups.is_some(), routed, "{}", mask_pan(pan.as_bytes()));
    }
}

#[test]
fn one_host_call_reads_the_request_and_one_sets_the_variable() {
    let env = default_5003();
    let mut plugin = BinRoute::default();
    let mut tx = purchase(VISA).with_field(35, format!("{VISA}=2512101"));
    assert_eq!(plugin.prepare(&mut tx, &env), Outcome::NoJoin);
    assert_eq!(tx.calls(), 2);
    assert_eq!(tx.fields_read(), [2, 3, 35]);
    plugin.select(&mut tx, &env);
    assert_eq!(tx.calls(), 2, "select asks the host nothing");
    assert!(env.logs().is_empty());
}

#[test]
fn settings_are_read_once_per_instance() {
    let env = default_5003();
    let mut plugin = BinRoute::default();
    for pan in [VISA, MASTERCARD, LOYALTY, UNROUTED] {
        route_with(&mut plugin, &env, &mut purchase(pan));
    }
    assert_eq!(env.config_calls(), 1);

    // Checked settings are kept: no second read.
    let env = default_5003();
    let mut plugin = BinRoute::default();
    assert!(plugin.check_settings(&env).is_empty());
    assert!(plugin.plan().is_some());
    route_with(&mut plugin, &env, &mut purchase(VISA));
    assert_eq!(env.config_calls(), 1);
}

#[test]
fn the_most_specific_entry_wins() {
    let env = MockEnv::new()
        .with_config("bin 4", "xxx")
        .with_config("bin 476173", "other")
        .with_config("bin 47617390..47617399", "narrow")
        .with_config("route xxx", "query-xxx")
        .with_config("route other", "query-other")
        .with_config("route narrow", "query-narrow");
    assert_eq!(groups(&env, purchase("4111111111111111")), ["query-xxx"]);
    assert_eq!(groups(&env, purchase("4761731234567897")), ["query-other"]);
    assert_eq!(groups(&env, purchase(VISA)), ["query-narrow"]);
}

#[test]
fn no_match_is_15_with_the_masked_card_logged() {
    let env = default_5003();
    assert_eq!(rc_of(&env, purchase(UNROUTED)), "15");
    assert!(env.logged(Level::Debug, "561333******0507"));
    // Amex is not in the default table.
    assert_eq!(rc_of(&env, purchase("378282246310005")), "15");

    let env = default_5003().with_config("no_match_rc", "05");
    assert_eq!(rc_of(&env, purchase(UNROUTED)), "05");
}

#[test]
fn a_request_without_a_usable_card_number_is_no_match() {
    let env = default_5003();
    assert_eq!(rc_of(&env, purchase(VISA).without_field(2)), "15");
    assert!(env.logged(Level::Debug, "no card number"));
    assert_eq!(rc_of(&env, purchase("47617390010101X9")), "15");
    assert_eq!(rc_of(&env, purchase("")), "15");
    assert_eq!(
        rc_of(&env, MockTransaction::new("0800").with_field(70, "301")),
        "15"
    );
    // A PAN shorter than every entry.
    let env = MockEnv::new()
        .with_config("bin 476173", "xxx")
        .with_config("route xxx", "query-xxx");
    assert_eq!(rc_of(&env, purchase("47617")), "15");
}

#[test]
fn track_2_gives_the_card_number_when_de2_is_absent() {
    let env = default_5003();
    let swiped = |track: String| purchase(VISA).without_field(2).with_field(35, track);
    assert_eq!(
        groups(&env, swiped(format!("{MASTERCARD}=25121010000000000000"))),
        ["query-yyy", "close", "send"]
    );
    assert_eq!(
        groups(&env, swiped(format!("{LOYALTY}D2512101"))),
        ["loyalty", "close"]
    );
    assert_eq!(
        groups(&env, swiped(format!(";{COUPON}=2512?"))),
        ["coupon", "close"]
    );
    assert_eq!(rc_of(&env, swiped(format!("{UNROUTED}=2512"))), "15");
    assert!(env.logged(Level::Debug, "561333******0507"));
    // DE2 wins over track 2.
    let both = purchase(VISA).with_field(35, format!("{MASTERCARD}=2512"));
    assert_eq!(groups(&env, both), ["query-xxx", "close", "send"]);
}

#[test]
fn type_rules_come_before_the_bin_table() {
    let env = default_5003()
        .with_config("type 08xx *", "network")
        .with_config("type xx00 31xxxx", "inquiry")
        .with_config("type 0200 31xxxx", "pos-inquiry")
        .with_config("route network", "echo")
        .with_config("route inquiry", "balance close")
        .with_config("route pos-inquiry", "pos-balance close");
    let echo = MockTransaction::new("0800").with_field(70, "301");
    let (groups_of_echo, tx) = route(&env, echo);
    assert_eq!(groups_of_echo.as_deref(), Some(&["echo".to_owned()][..]));
    assert_eq!(tx.vars().get("ROUTE").map(String::as_str), Some("network"));

    let inquiry = |mti: &str| {
        MockTransaction::new(mti)
            .with_field(2, VISA)
            .with_field(3, "310000")
    };
    assert_eq!(groups(&env, inquiry("0100")), ["balance", "close"]);
    assert_eq!(groups(&env, inquiry("0200")), ["pos-balance", "close"]);
    // No DE3: `31xxxx` does not match; the BIN table decides.
    let no_de3 = purchase(MASTERCARD).without_field(3);
    assert_eq!(groups(&env, no_de3), ["query-yyy", "close", "send"]);
    assert_eq!(groups(&env, purchase(VISA)), ["query-xxx", "close", "send"]);
}

#[test]
fn the_variable_is_configurable_and_can_be_turned_off() {
    let env = default_5003().with_config("variable", "CARD_ROUTE");
    let (_, tx) = route(&env, purchase(MASTERCARD));
    assert_eq!(tx.vars().get("CARD_ROUTE").map(String::as_str), Some("yyy"));
    assert!(!tx.vars().contains_key("ROUTE"));

    let env = default_5003().with_config("variable", "");
    let mut tx = purchase(MASTERCARD);
    let groups = route_with(&mut BinRoute::default(), &env, &mut tx);
    assert_eq!(groups.map(|g| g.len()), Some(3));
    assert!(tx.vars().is_empty());
    assert_eq!(tx.calls(), 1, "only the request is read");
}

#[test]
fn an_empty_route_selects_no_group() {
    let env = default_5003().with_config("route coupon", "");
    assert!(groups(&env, purchase(COUPON)).is_empty());
    assert!(env.logs().is_empty());
}

#[test]
fn select_on_an_instance_that_did_not_prepare_chooses_again() {
    let env = default_5003();
    let mut plugin = BinRoute::default();
    assert_eq!(
        plugin.select(&mut purchase(LOYALTY), &env),
        ["loyalty", "close"]
    );
    // `select` takes the route `prepare` chose, once.
    assert_eq!(plugin.prepare(&mut purchase(VISA), &env), Outcome::NoJoin);
    assert_eq!(plugin.select(&mut purchase(COUPON), &env).len(), 3);
    assert_eq!(
        plugin.select(&mut purchase(COUPON), &env),
        ["coupon", "close"]
    );
    assert!(plugin.select(&mut purchase(UNROUTED), &env).is_empty());
    assert!(env.logged(Level::Warn, "no group selected"));
    assert_no_card_in_logs(&env);
}

#[test]
fn the_default_settings_are_accepted() {
    let env = default_5003()
        .with_config("type 08xx *", "network")
        .with_config("type 0100 *", "network")
        .with_config("route network", "echo")
        .with_config("no_match_rc", "Z1")
        .with_config("variable", "X");
    assert!(BinRoute::default().check_settings(&env).is_empty());
    assert!(
        BinRoute::default()
            .check_settings(&MockEnv::new())
            .is_empty()
    );
}

#[test]
fn check_settings_reports_every_bad_bin_entry() {
    let found = problems(&[
        ("bin 4x", "xxx"),
        ("bin 55..51", "xxx"),
        ("bin 51..550", "xxx"),
        ("bin", "xxx"),
        ("bin ..5", "xxx"),
        ("bin 12345678901234567890", "xxx"),
        ("bin 6", "nowhere"),
        ("bin 3", " "),
        ("bin 37", "query-xxx close"),
        ("bin 9x", "nowhere"),
        ("route xxx", "query-xxx"),
    ]);
    for (key, text) in [
        ("bin 4x", "not a digit"),
        ("bin 55..51", "low bound above the high bound"),
        ("bin 51..550", "bounds of 2 and 3 digits"),
        ("bin", "no digits"),
        ("bin ..5", "no digits"),
        ("bin 12345678901234567890", "20 digits"),
        ("bin 6", "no `route nowhere` setting"),
        ("bin 3", "expects the name of a route"),
        ("bin 37", "expects one route name"),
        ("bin 9x", "not a digit"),
        ("bin 9x", "no `route nowhere` setting"),
    ] {
        assert!(has_problem(&found, key, text), "{key}: {text}: {found:#?}");
    }
    assert_eq!(found.len(), 11, "{found:#?}");
}

#[test]
fn check_settings_names_both_overlapping_entries() {
    let found = problems(&[
        ("bin 51..55", "yyy"),
        ("bin 55", "other"),
        ("bin 4", "xxx"),
        ("bin 4..4", "xxx"),
        ("bin 555", "other"),
        ("bin 56..59", "other"),
        ("route yyy", "a"),
        ("route xxx", "b"),
        ("route other", "c"),
    ]);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(has_problem(&found, "bin 55", "overlaps `bin 51..55`"));
    assert!(has_problem(&found, "bin 4..4", "overlaps `bin 4`"));
    assert!(has_problem(&found, "bin 55", "(2 digits)"));
}

#[test]
fn check_settings_reports_bad_type_rules() {
    let found = problems(&[
        ("type 020 *", "net"),
        ("type 0200", "net"),
        ("type 0200 31000A", "net"),
        ("type", "net"),
        ("type 0800 *", "nowhere"),
        ("type 0200 *", "net"),
        ("type * 3100xx", "net"),
        ("type 0100 *", "net"),
        ("route net", "echo"),
    ]);
    for (key, text) in [
        ("type 020 *", "bad MTI pattern"),
        ("type 0200", "has 1 patterns"),
        ("type 0200 31000A", "bad DE3 pattern"),
        ("type", "has 0 patterns"),
        ("type 0800 *", "no `route nowhere` setting"),
        ("type * 3100xx", "`type 0200 *`"),
        ("type 0100 *", "`type * 3100xx`"),
    ] {
        assert!(has_problem(&found, key, text), "{key}: {text}: {found:#?}");
    }
    assert_eq!(found.len(), 7, "{found:#?}");
}

#[test]
fn check_settings_reports_bad_routes_codes_and_unknown_keys() {
    let found = problems(&[
        ("route", "echo"),
        ("route a b", "echo"),
        ("route xxx", "query-xxx"),
        ("route  xxx", "query-xxx again"),
        ("no_match_rc", "150"),
        ("bins 4", "xxx"),
        ("Bin 4", "xxx"),
        ("limit", "5000.00"),
    ]);
    for (key, text) in [
        ("route", "one-word name"),
        ("route a b", "one-word name"),
        ("route  xxx", "a second time"),
        ("no_match_rc", "2 letters or digits"),
        ("bins 4", "not a setting of bin-route"),
        ("Bin 4", "not a setting of bin-route"),
        ("limit", "not a setting of bin-route"),
    ] {
        assert!(has_problem(&found, key, text), "{key}: {text}: {found:#?}");
    }
    assert_eq!(found.len(), 7, "{found:#?}");
    for code in ["", "1", "1 ", "é1", "-1"] {
        assert_eq!(problems(&[("no_match_rc", code)]).len(), 1, "{code:?}");
    }
}

#[test]
fn bad_settings_at_transaction_time_are_96_with_an_error_log() {
    let env = default_5003().with_config("bin 5", "nowhere");
    let mut plugin = BinRoute::default();
    for _ in 0..2 {
        let mut tx = purchase(VISA);
        assert_eq!(plugin.prepare(&mut tx, &env), Outcome::Aborted);
        assert_eq!(tx.rc(), Some(rc::SYSTEM_ERROR));
        assert!(tx.vars().is_empty());
    }
    assert!(env.logged(Level::Error, "setting `bin 5` names route `nowhere`"));
    assert_eq!(env.config_calls(), 1, "parsed once, bad or not");
    assert!(plugin.select(&mut purchase(VISA), &env).is_empty());
    assert!(plugin.plan().is_none());

    // The problem found by check_settings is the one reported later.
    let mut plugin = BinRoute::default();
    let env = MockEnv::new().with_config("no_match_rc", "150");
    assert_eq!(plugin.check_settings(&env).len(), 1);
    let mut tx = purchase(VISA);
    assert_eq!(plugin.prepare(&mut tx, &env), Outcome::Aborted);
    assert_eq!(tx.rc(), Some(rc::SYSTEM_ERROR));
    assert!(env.logged(Level::Error, "setting `no_match_rc`"));
}

/// xorshift64*: a small deterministic generator for the table tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` random entries of 4 to `longest` digits (mostly 4 to 9), no two
/// of the same length overlapping, each with one of `routes` routes.
fn random_table(
    rng: &mut XorShift,
    count: usize,
    longest: u64,
    routes: u32,
) -> Vec<(BinRange, RouteId)> {
    let mut entries: Vec<(BinRange, RouteId)> = Vec::with_capacity(count);
    while entries.len() < count {
        let len = match rng.below(10) {
            0 => 10 + rng.below(longest - 9) as u32,
            _ => 4 + rng.below(6) as u32,
        };
        let top = 10u64.pow(len);
        let lo = rng.below(top);
        let span = match rng.below(3) {
            0 => 0,
            1 => rng.below(10),
            _ => rng.below(top / 10_000 + 1),
        };
        let hi = (lo + span).min(top - 1);
        let width = len as usize;
        let pattern = format!("{lo:0width$}..{hi:0width$}");
        let range = BinRange::parse(&pattern).expect("a generated pattern");
        if entries.iter().all(|(other, _)| !other.overlaps(&range)) {
            let route = RouteId(rng.below(u64::from(routes)) as u32);
            entries.push((range, route));
        }
    }
    entries
}

/// A random PAN of 8 to 19 digits; every other one starts inside a random
/// entry.
fn random_pan(rng: &mut XorShift, entries: &[(BinRange, RouteId)]) -> String {
    let len = 8 + rng.below(12) as usize;
    let mut pan = String::with_capacity(19);
    if rng.below(2) == 0 {
        let (range, _) = entries[rng.below(entries.len() as u64) as usize];
        let (lo, hi) = range.bounds();
        let width = range.digits();
        pan.push_str(&format!("{:0width$}", lo + rng.below(hi - lo + 1)));
    }
    while pan.len() < len {
        pan.push(char::from(b'0' + rng.below(10) as u8));
    }
    pan
}

/// The most specific matching entry, by a scan of every entry.
fn brute_force(entries: &[(BinRange, RouteId)], pan: &[u8]) -> Option<RouteId> {
    entries
        .iter()
        .filter(|(range, _)| range.matches(pan))
        .max_by_key(|(range, _)| range.digits())
        .map(|&(_, route)| route)
}

#[test]
fn ten_thousand_ranges_route_like_a_linear_scan() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    // Entries up to 12 digits: every PAN takes the segment search; up to
    // 19: the levels longer than 12 digits first.
    for longest in [12, 19] {
        let entries = random_table(&mut rng, 10_000, longest, 50);
        let table = BinTable::build(&entries).expect("no overlaps");
        assert_eq!(table.len(), 10_000);
        let mut matched = 0;
        for _ in 0..3_000 {
            let pan = random_pan(&mut rng, &entries);
            let expected = brute_force(&entries, pan.as_bytes());
            assert_eq!(table.lookup(pan.as_bytes()), expected, "{pan}");
            matched += usize::from(expected.is_some());
        }
        assert!(
            (1_500..2_900).contains(&matched),
            "most lookups hit an entry, some miss: {matched}"
        );
    }
}

#[test]
fn ten_thousand_ranges_through_the_settings() {
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    let entries = random_table(&mut rng, 10_000, 12, 20);
    let mut config: Vec<(String, String)> = entries
        .iter()
        .map(|(range, route)| (format!("bin {range}"), format!("r{}", route.0)))
        .collect();
    config.extend((0..20).map(|r| (format!("route r{r}"), format!("group-{r} close send"))));
    let plan = Plan::from_entries(&config).expect("good settings");
    assert_eq!(plan.bins().len(), 10_000);
    for _ in 0..2_000 {
        let pan = random_pan(&mut rng, &entries);
        let expected = brute_force(&entries, pan.as_bytes()).map(|id| format!("r{}", id.0));
        let got = plan
            .route_for(Some(b"0200"), Some(b"000000"), Some(pan.as_bytes()))
            .and_then(|id| plan.route(id))
            .map(|route| route.name.clone());
        assert_eq!(got, expected);
    }
}

#[test]
fn group_names_split_on_spaces_and_commas() {
    assert_eq!(group_names(" a  b,c ,, d\t"), ["a", "b", "c", "d"]);
    assert!(group_names("").is_empty());
}

#[test]
fn pan_of_prefers_de2_and_reads_track_2() {
    assert_eq!(pan_of(Some(b"4"), Some(b"5=1")), Some(&b"4"[..]));
    assert_eq!(pan_of(None, Some(b"5413=2512")), Some(&b"5413"[..]));
    assert_eq!(pan_of(None, Some(b"5413D2512")), Some(&b"5413"[..]));
    assert_eq!(pan_of(None, Some(b";5413=2512?")), Some(&b"5413"[..]));
    assert_eq!(pan_of(None, Some(b"5413")), Some(&b"5413"[..]));
    assert_eq!(pan_of(None, None), None);
}

#[test]
fn targets_are_every_group_a_route_splices() {
    use switchyard_sdk::Selector;
    let env = MockEnv::new()
        .with_config("bin 4", "visa")
        .with_config("route visa", "query-xxx close send")
        .with_config("bin 5", "mc")
        .with_config("route mc", "query-yyy, close send");
    let targets = BinRoute::default().targets(&env);
    assert_eq!(targets, ["close", "query-xxx", "query-yyy", "send"]);
}
