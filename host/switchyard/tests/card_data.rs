//! Card data never leaks through errors (issue 9, item 3): 2,000 misparsed requests with test
//! PANs and track data, sent to the real binary over TCP with its log at DEBUG; no reply and no
//! log line carries 13 digits in a row of a PAN, nor track data.

mod common;

#[path = "../../net/tests/support/card_corpus.rs"]
mod card_corpus;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use switchyard_iso8583::{Bytes, Message, Mti, Spec};

const FRAMES: usize = 2000;

fn config() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("card-data");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, common::free_ports_config("127.0.0.1:0")).unwrap();
    path
}

/// The address of listener `local` (port 5001), from the log; every line read is kept.
fn local_addr(log: &mpsc::Receiver<String>, lines: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Ok(line) = log.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        lines.push(line.clone());
        if line.contains("serving") && common::field(&line, "port=").as_deref() == Some("5001") {
            return common::field(&line, "addr=").expect("serving names its address");
        }
    }
    panic!("the switch never logged listener local; log: {lines:#?}");
}

fn write_frame(s: &mut TcpStream, body: &[u8]) {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    s.write_all(&out).unwrap();
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 2];
    s.read_exact(&mut header)
        .expect("a reply within the read timeout");
    let mut body = vec![0; u16::from_be_bytes(header) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

fn stop(child: Child, log: &mpsc::Receiver<String>, lines: &mut Vec<String>) {
    common::stop_clean(child, log, lines);
}

#[test]
fn misparsed_requests_leak_no_card_data_into_replies_or_logs() {
    let config = config();
    let (child, log) = common::spawn_run_with(&config, &[("RUST_LOG", "debug")], &[]);
    let mut lines = Vec::new();
    let addr = local_addr(&log, &mut lines);
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.set_nodelay(true).unwrap();

    let spec = Spec::iso87_ascii();
    let mut rng = card_corpus::Rng::new(0x5eed_0009);
    let (mut sent, mut decodable, mut replies, mut rc30) = (0, 0, 0, 0);
    for _ in 0..FRAMES * 5 {
        if sent == FRAMES {
            break;
        }
        let item = card_corpus::item(&mut rng);
        let frame = Bytes::from(item.frame.clone());
        // A corruption that still decodes is a valid request, not a misparse: skipped.
        let Err(error) = spec.decode(frame.clone()) else {
            decodable += 1;
            continue;
        };
        let expected = switchyard_net::reject::reject(&spec, &frame, &error).reply;
        write_frame(&mut conn, &item.frame);
        sent += 1;
        let Some(expected) = expected else {
            continue;
        };
        let reply = read_frame(&mut conn);
        replies += 1;
        if let Some(leak) = card_corpus::leak_any(&reply) {
            panic!(
                "reply to [{}] carries {leak:?}: {:?}",
                item.corruption,
                String::from_utf8_lossy(&reply)
            );
        }
        assert_eq!(
            reply,
            spec.encode(&expected).unwrap().to_vec(),
            "[{}]: not the reply expected",
            item.corruption
        );
        let m = spec.decode(Bytes::from(reply)).unwrap();
        rc30 += usize::from(m.get_str(39) == Some("30"));
    }
    assert_eq!(sent, FRAMES, "the corpus yields enough undecodable frames");
    // Nothing was answered that should not have been: the next reply is the echo's.
    let mut echo = Message::new(Mti::new("0800").unwrap());
    echo.set(7, Bytes::from_static(b"1202120000"));
    echo.set(11, Bytes::from_static(b"999999"));
    echo.set(70, Bytes::from_static(b"301"));
    write_frame(&mut conn, &spec.encode(&echo).unwrap());
    let answer = spec.decode(Bytes::from(read_frame(&mut conn))).unwrap();
    assert_eq!(answer.mti().as_str(), "0810");
    assert_eq!(answer.get_str(11), Some("999999"));
    drop(conn);
    stop(child, &log, &mut lines);

    let mut rejected_lines = 0;
    for line in &lines {
        if let Some(leak) = card_corpus::leak_any(line.as_bytes()) {
            panic!("log line carries {leak:?}: {line}");
        }
        rejected_lines += usize::from(line.contains("undecodable"));
    }
    println!(
        "{sent} misparsed frames sent ({decodable} corrupted frames that still decoded skipped): \
         {replies} replies checked, {rc30} with RC 30; {} log lines checked \
         ({rejected_lines} about undecodable frames)",
        lines.len()
    );
    assert_eq!(rc30, replies);
    assert!(replies > FRAMES / 4, "only {replies} replies");
    assert_eq!(rejected_lines, sent, "one line per undecodable frame");
}
