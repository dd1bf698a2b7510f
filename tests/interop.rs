//! Interop with an independent ISO 8583 implementation, pyiso8583 4.0.1
//! (`specs.default`), installed into `.venv` by `scripts/test`:
//! - requests encoded by pyiso8583 and sent over TCP to the real switch,
//!   responses decoded by pyiso8583;
//! - our encoding compared byte for byte with pyiso8583's for the same
//!   fields, and each side decoding the other's bytes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};
use switchyard::client::UtcTime;
use switchyard_iso8583::{Bytes, ContentType, Message, Mti, Spec};
use switchyard_tests::{BAD_LUHN_PAN, TEST_PAN, TestSwitch, default_config, shared_data_dir};

/// The Python with pyiso8583: `SWITCHYARD_PYTHON`, or the repository's `.venv`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "interop tests need pyiso8583: run scripts/test (it creates .venv), or set SWITCHYARD_PYTHON"
    );
    venv
}

fn pyiso(args: &[&str], input: &Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/pyiso.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pyiso8583 {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A pyiso8583 field dict → our message (binary fields are hex there).
fn to_message(spec: &Spec, dict: &Map<String, Value>) -> Message {
    let mut m = Message::new(Mti::new(dict["t"].as_str().unwrap()).unwrap());
    for (k, v) in dict {
        if k == "t" {
            continue;
        }
        let n: u16 = k.parse().unwrap();
        let text = v.as_str().unwrap();
        let value = if spec.field(n).unwrap().content() == ContentType::B {
            hex_decode(text)
        } else {
            text.as_bytes().to_vec()
        };
        m.set(n, Bytes::from(value));
    }
    m
}

/// Our message → a pyiso8583 field dict.
fn to_dict(spec: &Spec, m: &Message) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("t".into(), m.mti().as_str().into());
    for (n, v) in m.fields() {
        let text = if spec.field(n).unwrap().content() == ContentType::B {
            v.iter().map(|b| format!("{b:02X}")).collect()
        } else {
            String::from_utf8(v.to_vec()).unwrap()
        };
        d.insert(n.to_string(), text.into());
    }
    d
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn financial(mti: &str, pan: &str, amount: &str, stan: &str) -> Value {
    let now = UtcTime::now();
    json!({
        "t": mti, "2": pan, "3": "000000", "4": amount, "7": now.de7(), "11": stan,
        "12": now.de12(), "13": now.de13(), "14": now.yymm_plus(24), "18": "5999",
        "22": "012", "25": "00", "37": "000000123456", "41": "TERM0001",
        "42": "MERCHANT0000001", "43": "SWITCHYARD TEST MERCHANT   AMSTERDAM  NL",
        "49": "978"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiso8583_client_over_tcp() {
    let sw = TestSwitch::start(default_config(&shared_data_dir())).await;
    for port in [5001u16, 5002] {
        // Other STANs per port: the same original on another listener of
        // the tenant would be a duplicate (94).
        let stan = |n: u32| format!("{:06}", u32::from(port) * 10 + n);
        let requests = json!([
            financial("0200", TEST_PAN, "000000010000", &stan(1)),
            financial("0100", TEST_PAN, "000000600000", &stan(2)),
            financial("0200", BAD_LUHN_PAN, "000000010000", &stan(3)),
            {"t": "0800", "7": UtcTime::now().de7(), "11": stan(4), "70": "301"},
        ]);
        let addr = sw.addr(port);
        let responses = pyiso(
            &["exchange", "127.0.0.1", &addr.port().to_string()],
            &requests,
        );
        let r = responses.as_array().unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0]["t"], "0210");
        assert_eq!(r[0]["11"], stan(1));
        assert_eq!(r[0]["39"], "00", "port {port}: {}", r[0]);
        assert_eq!(r[0]["38"].as_str().unwrap().len(), 6);
        for f in ["3", "4", "7", "12", "13", "37", "41", "42", "49"] {
            assert_eq!(r[0][f], requests[0][f], "port {port}: DE{f}");
        }
        assert!(r[0].get("2").is_none() && r[0].get("14").is_none());
        assert_eq!(r[1]["t"], "0110");
        // Local auth has a 5,000.00 limit; the simulator approves ...00.
        assert_eq!(r[1]["39"], if port == 5001 { "61" } else { "00" });
        assert_eq!(r[2]["39"], "14");
        assert!(r[2].get("38").is_none());
        assert_eq!(r[3]["t"], "0810");
        assert_eq!(r[3]["39"], "00");
        assert_eq!(r[3]["70"], "301");
    }
}

#[test]
fn encoding_is_byte_identical_to_pyiso8583() {
    let spec = Spec::iso87_ascii();
    let messages = [
        financial("0200", TEST_PAN, "000000010000", "000001"),
        json!({"t": "0800", "7": "1123101010", "11": "000002", "70": "301"}),
        // Secondary bitmap, LLLVAR, binary fields, an empty LLVAR.
        json!({
            "t": "0100", "2": "4111111111111111", "3": "300000", "4": "000000000001",
            "11": "000003", "32": "123456", "41": "TERM0002", "48": "PRIVATE DATA: ~!@#$%^&*()",
            "60": "", "64": "0123456789ABCDEF", "90": "020000000100000000000000000000000000000000",
            "100": "99", "102": "ACCOUNT-1", "128": "FEDCBA9876543210"
        }),
        json!({"t": "0210", "3": "000000", "4": "000000001000", "11": "000004",
               "38": "A1B2C3", "39": "00", "41": "TERM0001"}),
    ];
    for dict in &messages {
        let theirs = pyiso(&["encode"], dict);
        let theirs = hex_decode(theirs["hex"].as_str().unwrap());
        let ours = spec
            .encode(&to_message(&spec, dict.as_object().unwrap()))
            .unwrap();
        assert_eq!(
            &ours[..],
            &theirs[..],
            "MTI {}: our bytes differ from pyiso8583's",
            dict["t"]
        );
        // Each decodes the other's bytes to the same fields.
        let decoded = spec.decode(Bytes::from(theirs.clone())).unwrap();
        assert_eq!(
            Value::Object(to_dict(&spec, &decoded)),
            *dict,
            "we decode theirs"
        );
        let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        let back = pyiso(&["decode"], &json!({ "hex": hex }));
        assert_eq!(back, *dict, "they decode ours");
    }
}
