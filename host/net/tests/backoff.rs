//! The reconnect schedule of endpoint links: 100 ms doubling to a cap of
//! 30 s, less up to a fifth at random.

use std::time::Duration;

use switchyard_net::Backoff;

#[test]
fn the_schedule_doubles_from_100_ms_to_the_30_s_cap() {
    let b = Backoff::default();
    let ms: Vec<u128> = (0..12).map(|n| b.nominal(n).as_millis()).collect();
    assert_eq!(
        ms,
        [
            100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
        ]
    );
    assert_eq!(b.nominal(u32::MAX), Duration::from_secs(30), "no overflow");
}

#[test]
fn jitter_takes_off_at_most_a_fifth() {
    let b = Backoff {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(2),
    };
    assert_eq!(b.delay(0, 0.0), Duration::from_millis(250));
    assert_eq!(b.delay(1, 1.0), Duration::from_millis(400));
    assert_eq!(b.delay(5, 0.5), Duration::from_millis(1800));
    for n in 0..40 {
        let d = b.jittered(n);
        assert!(
            d <= b.nominal(n) && d >= b.nominal(n).mul_f64(0.8),
            "{n}: {d:?}"
        );
    }
    // Spread: not every draw the same.
    let draws: std::collections::HashSet<Duration> = (0..20).map(|_| b.jittered(3)).collect();
    assert!(draws.len() > 1, "{draws:?}");
}
