//! An endpoint link against a host in this test, with a native formatter
//! (no WebAssembly): echoes on an idle link, down at once when the host
//! goes away, requests failing fast as not sent while down, reconnect by
//! itself with backoff, and no echo from a formatter that builds none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use switchyard_engine::iso8583::{Message, Mti};
use switchyard_engine::ports::Upstream;
use switchyard_engine::{Context, Failure, FailureKind, Formatter, Outbound};
use switchyard_net::{
    Backoff, Endpoint, EndpointOptions, ExchangeError, Framing, LinkStatus, Links,
};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Payload `MTI|STAN`; the reply's key is its own payload. `echo`: whether
/// it builds an 0800.
struct Plain {
    echo: bool,
}

impl Formatter for Plain {
    fn format_request(&self, ctx: &mut Context) -> Result<Outbound, Failure> {
        let mti = ctx.request.mti().as_str().to_owned();
        if mti == "0800" && !self.echo {
            return Err(Failure::new(
                FailureKind::Rejected,
                "no 0800 in this format",
            ));
        }
        let stan = ctx.request.get_str(11).unwrap_or("000000").to_owned();
        let reply_mti = format!("{}{}", &mti[..2], "10");
        Ok(Outbound {
            payload: format!("{mti}|{stan}").into_bytes(),
            key: format!("{reply_mti}|{stan}"),
        })
    }

    fn reply_key(&self, reply: &[u8]) -> Result<String, Failure> {
        Ok(String::from_utf8_lossy(reply).into_owned())
    }

    fn parse_response(&self, ctx: &mut Context, _reply: &[u8]) -> Result<(), Failure> {
        ctx.set_result_code("00");
        Ok(())
    }
}

/// Answers `MTI|STAN` with `MTI+10|STAN`; counts echoes.
async fn host(
    listener: TcpListener,
    stop: CancellationToken,
    echoes: Arc<std::sync::atomic::AtomicU32>,
) {
    loop {
        let (conn, _) = tokio::select! {
            _ = stop.cancelled() => return,
            c = listener.accept() => c.unwrap(),
        };
        let (stop, echoes) = (stop.clone(), echoes.clone());
        tokio::spawn(async move {
            let mut framed = Framed::new(conn, Framing::parse("nac").unwrap().codec(1024));
            loop {
                let frame = tokio::select! {
                    _ = stop.cancelled() => return,
                    f = framed.next() => match f { Some(Ok(f)) => f, _ => return },
                };
                let text = String::from_utf8_lossy(&frame).into_owned();
                let (mti, stan) = text.split_once('|').unwrap();
                if mti == "0800" {
                    echoes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let reply = format!("{}10|{stan}", &mti[..2]);
                if framed.send(bytes::Bytes::from(reply)).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn bind(addr: std::net::SocketAddr) -> TcpListener {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(addr).unwrap();
    s.listen(16).unwrap()
}

fn endpoint(addr: std::net::SocketAddr, echo: bool, links: &Links) -> Endpoint {
    Endpoint::new(
        EndpointOptions {
            name: "test".into(),
            address: addr.to_string(),
            timeout: Duration::from_millis(500),
            framing: Framing::parse("nac").unwrap(),
            max_frame: 1024,
            tls: None,
            echo_interval: Some(Duration::from_millis(100)),
            reconnect: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(400),
            },
        },
        Arc::new(Plain { echo }),
        None,
        links.clone(),
    )
}

fn request(stan: u32) -> Outbound {
    Outbound {
        payload: format!("0200|{stan:06}").into_bytes(),
        key: format!("0210|{stan:06}"),
    }
}

/// A transaction (0200, STAN `stan`) through the `query-endpoint` path:
/// answered, its upstream leg, how long it took.
async fn query(e: &Endpoint, stan: u32) -> (bool, Option<Upstream>, Duration) {
    let mut m = Message::new(Mti::new("0200").unwrap());
    m.set(11, format!("{stan:06}").into_bytes());
    let mut ctx = Context::new("t".into(), "l".into(), 0, m);
    let t0 = Instant::now();
    let answered = e.query(&mut ctx, None).await.unwrap();
    (
        answered,
        ctx.upstream.as_ref().map(|u| u.result),
        t0.elapsed(),
    )
}

async fn wait_for(e: &Endpoint, status: LinkStatus, limit: Duration) -> Duration {
    let t0 = Instant::now();
    while e.state().status != status {
        assert!(
            t0.elapsed() < limit,
            "not {status} after {limit:?}: {:?}",
            e.state()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_down_fail_fast_and_back_by_itself() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await;
    let addr = listener.local_addr().unwrap();
    let echoes = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let stop = CancellationToken::new();
    tokio::spawn(host(listener, stop.clone(), echoes.clone()));
    let links = Links::default();
    let e = endpoint(addr, true, &links);
    assert_eq!(e.state().status, LinkStatus::Idle);
    assert_eq!(&e.exchange(request(1)).await.unwrap()[..], b"0210|000001");
    assert_eq!(e.state().status, LinkStatus::Up);

    tokio::time::sleep(Duration::from_millis(550)).await;
    let s = e.state();
    assert!(s.echoes_answered >= 3 && s.echoes_answered <= 6, "{s:?}");
    assert!(echoes.load(std::sync::atomic::Ordering::Relaxed) >= 3);

    stop.cancel();
    let down = wait_for(&e, LinkStatus::Down, Duration::from_secs(2)).await;
    let (answered, upstream, fast) = query(&e, 2).await;
    println!("down after {down:?}; a transaction while down failed in {fast:?}");
    assert!(!answered);
    assert_eq!(upstream, Some(Upstream::NotSent));
    assert!(fast < Duration::from_millis(250), "{fast:?}");
    // A store-and-forward delivery waits for the link, within its timeout.
    let t0 = Instant::now();
    let r = e.exchange(request(4)).await;
    assert!(matches!(r, Err(ExchangeError::NotSent(_))), "{r:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );

    let stop = CancellationToken::new();
    tokio::spawn(host(bind(addr).await, stop.clone(), echoes.clone()));
    let back = wait_for(&e, LinkStatus::Up, Duration::from_secs(5)).await;
    println!("up again {back:?} after the host restarted");
    assert_eq!(&e.exchange(request(3)).await.unwrap()[..], b"0210|000003");
    let s = e.state();
    assert_eq!(s.connects, 2, "{s:?}");
    assert_eq!(s.failed_attempts, 0);
    stop.cancel();
    links.shutdown.cancel();
    links.tasks.close();
    tokio::time::timeout(Duration::from_secs(5), links.tasks.wait())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formatter_without_an_echo_keeps_the_link_up_without_one() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await;
    let addr = listener.local_addr().unwrap();
    let echoes = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let stop = CancellationToken::new();
    tokio::spawn(host(listener, stop.clone(), echoes.clone()));
    let links = Links::default();
    let e = endpoint(addr, false, &links);
    e.exchange(request(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = e.state();
    assert_eq!((s.status, s.echoes_sent), (LinkStatus::Up, 0), "{s:?}");
    assert_eq!(echoes.load(std::sync::atomic::Ordering::Relaxed), 0);
    stop.cancel();
    links.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_the_first_request_then_fast() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let links = Links::default();
    let e = endpoint(addr, true, &links);
    let (answered, upstream, _) = query(&e, 1).await;
    assert_eq!((answered, upstream), (false, Some(Upstream::NotSent)));
    assert_eq!(e.state().status, LinkStatus::Down);
    assert!(e.state().last_error.is_some());
    let (answered, upstream, took) = query(&e, 2).await;
    assert_eq!((answered, upstream), (false, Some(Upstream::NotSent)));
    assert!(took < Duration::from_millis(250), "{took:?}");
    links.shutdown.cancel();
}
