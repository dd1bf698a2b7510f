//! Framing against iso8583sim's own TCP host and client over loopback (`2b`, `4a`, and `2b`
//! with a TPDU): our codec talks to their server, their client talks to a server built on our
//! codec that answers the way a listener does (TPDU swapped, keep-alives ignored).
//! Needs `.venv` from `scripts/test`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use switchyard_iso8583::tpdu::Tpdu;
use switchyard_iso8583::{Message, Mti, Spec};
use switchyard_net::Framing;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "framing interop needs iso8583sim in .venv: run scripts/test, or set SWITCHYARD_PYTHON"
    );
    venv
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sim_peer.py")
}

const CASES: [(&str, &str, Option<&str>); 3] = [
    ("2b", "2b", None),
    ("4a", "4a", None),
    ("2b+tpdu", "2b", Some("6000010002")),
];

#[tokio::test]
async fn our_codec_talks_to_iso8583sims_host() {
    let spec = Spec::iso87_ascii();
    for (ours, header, tpdu) in CASES {
        let mut child = Command::new(python())
            .arg(script())
            .args(["serve", header])
            .args(tpdu)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the host prints its port");
        let framing = Framing::parse(ours).unwrap();
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut link = Framed::new(stream, framing.codec(8192));
        let mut m = Message::new(Mti::new("0800").unwrap());
        m.set(7, "1123101010");
        m.set(11, "000009");
        m.set(70, "301");
        let mut out = BytesMut::new();
        if let Some(t) = tpdu {
            out.extend_from_slice(Tpdu::from_hex(t).unwrap().as_bytes());
        }
        spec.encode_into(&m, &mut out).unwrap();
        link.send(out.freeze()).await.unwrap();
        let reply = link.next().await.expect("a reply").unwrap().freeze();
        let body = match tpdu {
            Some(t) => {
                let (got, body) = Tpdu::split(reply).unwrap();
                assert_eq!(got, Tpdu::from_hex(t).unwrap().swap(), "{ours}");
                body
            }
            None => reply,
        };
        let r = spec.decode(body).unwrap();
        assert_eq!((r.mti_str(), r.get_str(39)), ("0810", Some("00")), "{ours}");
        assert_eq!(r.get_str(11), Some("000009"));
        drop(child.stdin.take());
        child.wait().unwrap();
    }
}

#[tokio::test]
async fn iso8583sims_client_talks_to_our_codec() {
    let spec = Spec::iso87_ascii();
    for (ours, header, tpdu) in CASES {
        let framing = Framing::parse(ours).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let spec = spec.clone();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut link = Framed::new(stream, framing.codec(8192));
            let mut answered = 0;
            while let Some(frame) = link.next().await {
                let frame = frame.unwrap().freeze();
                if frame.is_empty() {
                    continue; // keep-alive
                }
                let (reply_tpdu, body) = if framing.tpdu() {
                    let (t, body) = Tpdu::split(frame).unwrap();
                    (Some(t.swap()), body)
                } else {
                    (None, frame)
                };
                let req = spec.decode(body).unwrap();
                let mut resp = Message::new(req.mti().response().unwrap());
                for f in [7, 11, 70] {
                    if let Some(v) = req.get_bytes(f) {
                        resp.set(f, v.clone());
                    }
                }
                resp.set(39, Bytes::from_static(b"00"));
                let mut out = BytesMut::new();
                if let Some(t) = reply_tpdu {
                    out.extend_from_slice(t.as_bytes());
                }
                spec.encode_into(&resp, &mut out).unwrap();
                link.send(out.freeze()).await.unwrap();
                answered += 1;
            }
            answered
        });
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python())
                .arg(script())
                .args(["send", &port.to_string(), header])
                .args(tpdu)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{ours}: iso8583sim client failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "0810 00\n0210 00\n",
            "{ours}"
        );
        assert_eq!(server.await.unwrap(), 2, "{ours}");
    }
    let _ = std::io::stdout().flush();
}
