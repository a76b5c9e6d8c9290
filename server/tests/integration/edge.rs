//! The edge: clients behind trusted proxies, requests from other sites, timeouts of slow
//! clients, JSON errors and private answers, probes on their own address, and what a socket may
//! make the server hold.

use crate::helpers::{set_cookie, spawn_app_with, unique, SqliteDir, TestOptions};
use crate::process::ServerProcess;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn embedded(extra: &[&str]) -> TestOptions {
    TestOptions {
        extra_args: extra.iter().map(|arg| (*arg).to_owned()).collect(),
        ..TestOptions::embedded()
    }
}

/// The status of a first visit to `/` that names `forwarded` as its client.
async fn first_visit(app: &crate::helpers::TestApp, forwarded: &str) -> u16 {
    app.client
        .get(app.url("/"))
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let app = spawn_app_with(embedded(&[
        "--trusted-proxies=10.0.0.0/8,127.0.0.1",
        "--rate-limit-visitors-per-minute=3",
    ]))
    .await;
    // Many visitors behind one proxy: each has its own allowance.
    for n in 1..=10 {
        assert_eq!(first_visit(&app, &format!("198.51.100.{n}")).await, 200);
    }
    // One client past its allowance is refused, however many proxies it came through.
    for _ in 0..3 {
        assert_eq!(first_visit(&app, "203.0.113.7, 10.0.0.2").await, 200);
    }
    assert_eq!(first_visit(&app, "203.0.113.7").await, 429);
    // An IPv6 client is its /64.
    for host in 1..=3 {
        assert_eq!(
            first_visit(&app, &format!("2001:db8:1:2::{host}")).await,
            200
        );
    }
    assert_eq!(first_visit(&app, "2001:db8:1:2::ffff").await, 429);
    assert_eq!(first_visit(&app, "2001:db8:1:3::1").await, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(embedded(&["--rate-limit-visitors-per-minute=3"])).await;
    for n in 1..=3 {
        assert_eq!(first_visit(&app, &format!("198.51.100.{n}")).await, 200);
    }
    assert_eq!(
        first_visit(&app, "198.51.100.99").await,
        429,
        "a client cannot name itself someone else"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_changing_request_from_another_site_is_refused_with_or_without_cookies() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let id = app.create_visible_product("Dune").await;
    let like = |headers: &[(&'static str, &'static str)]| {
        let mut request = app
            .client
            .post(app.url(&format!("/api/products/{id}/like")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for forged in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
    ] {
        let response = like(forged).await.unwrap();
        assert_eq!(response.status(), 403, "{forged:?}");
        assert!(
            set_cookie(&response, "lg_visitor").is_none(),
            "no visitor made"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
    }
    assert_eq!(app.catalog_likes().await.get(&id).copied().unwrap_or(0), 0);
    // Not a browser (curl, the load generator): no Origin, no Sec-Fetch-Site.
    assert_eq!(like(&[]).await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_subdomain_cannot_use_the_admin_session() {
    let app = spawn_app_with(embedded(&["--public-origins=https://gallery.example"])).await;
    let response = app.sign_in(&app.admin_token).await;
    let cookie = set_cookie(&response, "__Host-lg_admin").expect("a session cookie");
    let session = cookie.split(';').next().unwrap().to_owned();
    let create = |origin: &'static str, fetch_site: &'static str| {
        app.client
            .post(app.url("/api/create_product"))
            .header("cookie", &session)
            .header("origin", origin)
            .header("sec-fetch-site", fetch_site)
            .header("accept", "text/html")
            .form(&[
                ("title", "Planted"),
                ("image", "https://images.example.com/p.jpg"),
            ])
            .send()
    };
    let forged = create("https://shop.gallery.example", "same-site")
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(app.admin_products().await.is_empty(), "nothing was created");
    // The site's own form post, without JavaScript, still works.
    let own = create("https://gallery.example", "same-origin")
        .await
        .unwrap();
    assert_eq!(own.status(), 302, "{:?}", own.text().await);
    assert_eq!(app.admin_products().await.len(), 1);
    app.stop().await;
}

/// Connects to `app` and sends `bytes` without finishing the request.
async fn half_request(address: std::net::SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads what the server sends until it closes the connection.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_half_a_request_is_disconnected() {
    let app = spawn_app_with(embedded(&[
        "--header-timeout=500",
        "--request-timeout=1000",
    ]))
    .await;
    let id = app.create_visible_product("Slow").await;
    // Half a head.
    let mut head = half_request(app.address, b"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/").await;
    let closed = tokio::time::timeout(Duration::from_secs(20), until_closed(&mut head)).await;
    assert!(closed.is_ok(), "a half-sent head holds its connection");
    // A head, and half a body.
    let request = format!(
        "PUT /api/admin/products/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":",
        app.admin_token
    );
    let mut body = half_request(app.address, request.as_bytes()).await;
    let answer = tokio::time::timeout(Duration::from_secs(20), until_closed(&mut body))
        .await
        .expect("a half-sent body holds its connection");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"timeout""#), "{answer}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_requests_in_flight_only_up_to_its_limit() {
    let app = spawn_app_with(embedded(&[
        "--request-timeout=600000",
        "--shutdown-timeout=1000",
    ]))
    .await;
    let request = format!(
        "POST /api/admin/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.admin_token
    );
    let _in_flight = half_request(app.address, request.as_bytes()).await;
    // The request is in the handler, waiting for its body, once the product list answers.
    assert_eq!(app.admin_products().await.len(), 0);
    // `stop` fails the test unless the app stops within 15 s.
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_error_is_json() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let cases = [
        (reqwest::Method::POST, "/api/products/%FF/like", 400),
        (reqwest::Method::GET, "/api/admin/products/%FF", 400),
        (reqwest::Method::PATCH, "/api/products/1/like", 405),
        (reqwest::Method::DELETE, "/api/admin/products", 405),
        (reqwest::Method::GET, "/api/no-such-thing", 404),
        (reqwest::Method::POST, "/api/set_like", 400),
    ];
    for (method, path, status) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{method} {path}: {body}");
        assert!(body["message"].is_string(), "{method} {path}: {body}");
    }
    // A server function's own error has the same shape.
    let unauthorized = app
        .client
        .post(app.url("/api/admin_products"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let body: serde_json::Value = unauthorized.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert!(body["message"].is_string(), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_answers_are_never_kept_by_shared_caches() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let first = app.get("/").await;
    assert!(set_cookie(&first, "lg_visitor").is_some());
    assert_eq!(first.headers()["cache-control"], "private, no-store");
    let visitor = app.new_visitor().await;
    for path in ["/", "/api/products", "/admin"] {
        let response = app
            .client
            .get(app.url(path))
            .header("cookie", &visitor.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["cache-control"],
            "private, no-store",
            "{path}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_can_live_on_an_address_of_their_own() {
    let internal = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let app = spawn_app_with(embedded(&[&format!("--internal-addr={internal}")])).await;
    for path in ["/metrics", "/readyz"] {
        let public = app.get(path).await;
        assert_eq!(public.status(), 404, "{path} on the public listener");
        let private = reqwest::get(format!("http://{internal}{path}"))
            .await
            .unwrap();
        assert_eq!(private.status(), 200, "{path} on the internal listener");
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_compressed_for_clients_that_take_it() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    for (accepted, expected) in [
        ("br", Some("br")),
        ("gzip", Some("gzip")),
        ("identity", None),
    ] {
        let page = app
            .client
            .get(app.url("/"))
            .header("accept-encoding", accepted)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(
            page.headers()
                .get("content-encoding")
                .map(|value| value.to_str().unwrap()),
            expected,
            "{accepted}"
        );
        let vary = page.headers()["vary"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(vary.contains("accept-encoding"), "{vary}");
    }
    app.stop().await;
}

/// Resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Opens a WebSocket on `server` by hand and announces a 16 MiB binary frame on it.
async fn announce_huge_frame(server: &ServerProcess) -> TcpStream {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 101");
    // FIN + binary, masked, 64-bit length.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(16u64 * 1024 * 1024).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&header).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_cannot_make_the_server_hold_more_than_a_few_kib() {
    const SOCKETS: usize = 40;
    const TRICKLE: usize = 2 * 1024 * 1024;
    let dir = SqliteDir::new();
    let sqlite = |name: &str| format!("sqlite://{}", dir.0.join(name).display());
    let server = ServerProcess::start(
        "web",
        vec![
            ("catalog-database-url".to_owned(), sqlite("catalog.db")),
            ("web-database-url".to_owned(), sqlite("web.db")),
            ("admin-token".to_owned(), unique("token")),
            ("live-max-per-address".to_owned(), "0".to_owned()),
        ],
        &dir,
    )
    .await;
    // Warm up what a first socket and a first page make, then measure.
    drop(announce_huge_frame(&server).await);
    reqwest::get(server.url("/")).await.unwrap();
    let before = resident_kib(server.pid());

    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(announce_huge_frame(&server).await);
    }
    // Every socket trickles up to 2 MiB of its frame, while all stay open.
    let chunk = vec![0x55u8; 8 * 1024];
    for _ in 0..TRICKLE / chunk.len() {
        let mut writing = 0;
        for stream in sockets.iter_mut() {
            let sent = tokio::time::timeout(Duration::from_millis(200), stream.write_all(&chunk));
            if matches!(sent.await, Ok(Ok(()))) {
                writing += 1;
            }
        }
        if writing == 0 {
            break;
        }
    }
    let grown_kib = resident_kib(server.pid()).saturating_sub(before);
    for stream in &mut sockets {
        tokio::time::timeout(Duration::from_secs(20), until_closed(stream))
            .await
            .expect("the server closes a socket that announces a huge frame");
    }
    assert!(
        grown_kib < (SOCKETS as u64) * 64,
        "{SOCKETS} sockets announcing 16 MiB frames grew the server by {grown_kib} KiB"
    );
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the server still answers");
}
