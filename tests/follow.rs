//! Several nodes on one PostgreSQL database follow each other's plugin
//! swaps (issue 12): two switches in this process (`node-a`, `node-b`, their
//! own data directories, one database, one KEK), plugin `tag` wired twice
//! (version A tags DE44 `AA`, version B `BB`). A swap on node A is live on
//! node B within the follow interval; a rollback on node B is followed by
//! node A; a node started later catches up before it serves. Every
//! response is `AA` or `BB`: a transaction never mixes versions.
//!
//! Needs `SWITCHYARD_TEST_PG` (scripts/test starts a server); skipped
//! without it unless `SWITCHYARD_PG_TESTS=required`.

use std::path::Path;
use std::time::{Duration, Instant};

use switchyard::admin::client::AdminClient;
use switchyard::client::RequestSpec;
use switchyard_tests::{TEST_PAN, TestSwitch, tag_config, tag_wasm};

/// A fresh database on the test server, or `None` (skipped).
fn fresh_database(name: &str) -> Option<String> {
    let base = match std::env::var("SWITCHYARD_TEST_PG") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("SWITCHYARD_PG_TESTS").as_deref() != Ok("required"),
                "SWITCHYARD_PG_TESTS=required but SWITCHYARD_TEST_PG is not set"
            );
            eprintln!("skipped: SWITCHYARD_TEST_PG not set");
            return None;
        }
    };
    let db = format!("sy_tests_{name}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        let out = std::process::Command::new("psql")
            .args([base.as_str(), "-q", "-c", &sql])
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (head, _) = base.rsplit_once('/').expect("a URL with a database");
    Some(format!("{head}/{db}"))
}

fn node_config(data: &Path, node: &str, url: &str) -> switchyard::config::Config {
    let mut c = tag_config(data, None);
    c.switch.node_id = node.into();
    c.store.url = Some(url.into());
    c
}

fn admin_client(sw: &TestSwitch) -> AdminClient {
    let admin = sw.switch.admin().expect("the admin API runs");
    let token = switchyard::admin::token::read(admin.token_path()).unwrap();
    AdminClient::new(
        &format!("https://{}", admin.addr()),
        token,
        admin.token_path().display().to_string(),
        admin.cert_path(),
    )
    .unwrap()
}

/// DE44 of one purchase on `sw`.
async fn tags(sw: &TestSwitch, stan: u32) -> String {
    let r = sw
        .exchange(5001, &RequestSpec::financial("0200", TEST_PAN, 1_000, stan))
        .await;
    assert_eq!(r.get_str(39), Some("00"));
    r.get_str(44).unwrap_or("").to_owned()
}

/// Probes `sw` until it answers `want` (at most 10 s); how long it took.
async fn until_tagged(sw: &TestSwitch, want: &str, stan: &mut u32) -> Duration {
    let from = Instant::now();
    loop {
        *stan += 1;
        let got = tags(sw, *stan).await;
        assert!(
            got == "AA" || got == "BB",
            "a transaction mixed versions: {got}"
        );
        if got == want {
            return from.elapsed();
        }
        assert!(
            from.elapsed() < Duration::from_secs(10),
            "still {got}, not {want}, after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_on_one_node_is_followed_by_the_others() {
    let Some(url) = fresh_database("follow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b, data_c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let a = TestSwitch::start(node_config(&data_a, "node-a", &url)).await;
    for d in [&data_b, &data_c] {
        std::fs::create_dir_all(d.join("keys")).unwrap();
        std::fs::copy(data_a.join("keys/kek.key"), d.join("keys/kek.key")).unwrap();
    }
    let b = TestSwitch::start(node_config(&data_b, "node-b", &url)).await;
    let mut stan = 1000;
    assert_eq!(tags(&a, 1).await, "AA");
    assert_eq!(tags(&b, 2).await, "AA");

    let wasm_b = std::fs::read(tag_wasm('B')).unwrap();
    let swapped = admin_client(&a)
        .swap("tag", wasm_b, Some("follow-test"))
        .await
        .expect("the swap is accepted");
    assert!(swapped.changed);
    assert_eq!(tags(&a, 3).await, "BB");
    let took = until_tagged(&b, "BB", &mut stan).await;
    eprintln!("node-b followed node-a's swap in {} ms", took.as_millis());

    let rolled = admin_client(&b)
        .rollback("tag", Some("follow-test"))
        .await
        .expect("the rollback is accepted");
    assert!(rolled.changed);
    assert_eq!(tags(&b, 4).await, "AA");
    let took = until_tagged(&a, "AA", &mut stan).await;
    eprintln!(
        "node-a followed node-b's rollback in {} ms",
        took.as_millis()
    );

    // Swapped again on A; a node started afterwards serves B at once.
    admin_client(&a)
        .swap(
            "tag",
            std::fs::read(tag_wasm('B')).unwrap(),
            Some("follow-test"),
        )
        .await
        .expect("the swap is accepted");
    let c = TestSwitch::start(node_config(&data_c, "node-c", &url)).await;
    assert_eq!(
        tags(&c, 5).await,
        "BB",
        "a later node catches up before serving"
    );
    until_tagged(&b, "BB", &mut stan).await;

    for sw in [c, b, a] {
        sw.switch.shutdown().await.unwrap();
    }
}
