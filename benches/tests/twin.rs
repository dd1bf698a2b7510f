//! The native-twin harness answers exactly as the WASM switch does: the
//! end-to-end comparison of `scripts/bench-report` compares like with like.

use std::sync::Arc;
use std::time::Duration;

use switchyard::client::{Connection, RequestSpec};
use switchyard::switch::NativeSteps;
use switchyard::{StartOptions, Switch};
use switchyard_benches::native_twin;
use switchyard_iso8583::Message;
use switchyard_tests::{BAD_LUHN_PAN, TEST_PAN, default_config, shared_data_dir};

async fn start(native: bool) -> Switch {
    let native_steps: Option<NativeSteps> = native.then(|| Arc::new(native_twin) as NativeSteps);
    Switch::start(
        default_config(&shared_data_dir()),
        StartOptions {
            ephemeral_ports: true,
            native_steps,
            ..StartOptions::default()
        },
    )
    .await
    .expect("the switch starts")
}

/// Approved, over the local limit, a bad check digit, no expiry, a network
/// management request: one of each response path on 5001.
fn requests(stan: u32) -> Vec<RequestSpec> {
    let approve = RequestSpec::financial("0200", TEST_PAN, 1_000, stan);
    let over = RequestSpec::financial("0200", TEST_PAN, 600_000, stan + 1);
    let mut luhn = RequestSpec::financial("0200", TEST_PAN, 1_000, stan + 2);
    luhn.pan = Some(BAD_LUHN_PAN.into());
    let mut expiry = RequestSpec::financial("0100", TEST_PAN, 1_000, stan + 3);
    expiry.expiry = None;
    let echo = RequestSpec {
        mti: "0800".into(),
        pan: None,
        amount_minor: None,
        stan: stan + 4,
        expiry: None,
        terminal: Some("TERM0001".into()),
        fields: vec![(70, "301".into())],
        omit: Vec::new(),
    };
    vec![approve, over, luhn, expiry, echo]
}

/// What the comparison looks at: MTI, response code, and which fields the
/// response carries (approval codes and times differ run to run).
fn shape(m: &Message) -> (String, Option<String>, Vec<u16>) {
    (
        m.mti().as_str().to_owned(),
        m.get_str(39).map(str::to_owned),
        m.field_numbers().collect(),
    )
}

async fn answers(native: bool, stan: u32) -> Vec<(String, Option<String>, Vec<u16>)> {
    let switch = start(native).await;
    let mut conn = Connection::connect(switch.addr_of_port(5001).unwrap())
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in requests(stan) {
        let m = conn
            .exchange(&r.build().unwrap(), Duration::from_secs(10))
            .await
            .expect("a response");
        out.push(shape(&m));
    }
    switch.shutdown().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_twins_answer_as_the_wasm_plugins_do() {
    let wasm = answers(false, 1000).await;
    let native = answers(true, 2000).await;
    let codes: Vec<_> = wasm.iter().map(|s| s.1.clone()).collect();
    assert_eq!(codes[0].as_deref(), Some("00"), "{wasm:?}");
    assert!(codes.iter().any(|c| c.as_deref() != Some("00")), "{wasm:?}");
    assert_eq!(native, wasm);
}
