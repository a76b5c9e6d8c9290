//! Administrator sessions: random ids kept on the server, ended by sign-out and by time,
//! `__Host-` and `Secure` on an HTTPS site, sign-ins throttled, and no weak or logged token.

use crate::helpers::{database, set_cookie, spawn_app_with, unique, SqliteDir, TestOptions};
use crate::process::ServerProcess;
use server::config::Config;
use server::startup::{Application, StartError};

fn embedded(extra: &[&str]) -> TestOptions {
    TestOptions {
        extra_args: extra.iter().map(|arg| (*arg).to_owned()).collect(),
        ..TestOptions::embedded()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_holds_a_session_id_that_sign_out_ends_on_the_server() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let session = app.admin_session().await;
    assert!(
        !session.contains(&app.admin_token),
        "the cookie never holds the token"
    );
    let signed_in = "You are signed in as the administrator.";
    assert!(app.admin_page(&session).await.contains(signed_in));

    let out = app
        .client
        .post(app.url("/api/sign_out"))
        .header("cookie", &session)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    assert!(set_cookie(&out, "lg_admin").unwrap().contains("Max-Age=0"));
    // A copy of the cookie kept from before is worth nothing now.
    assert!(!app.admin_page(&session).await.contains(signed_in));
    let stolen = app
        .client
        .post(app.url("/api/admin_products"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_its_time_is_up() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let session = app.admin_session().await;
    let signed_in = "You are signed in as the administrator.";
    assert!(app.admin_page(&session).await.contains(signed_in));
    let db = database(&app.web_database).await;
    sqlx::query("update admin_session set expires_at_ms = 1")
        .execute(&db)
        .await
        .unwrap();
    assert!(!app.admin_page(&session).await.contains(signed_in));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_https_site_the_session_cookie_is_host_only_and_secure() {
    let app = spawn_app_with(embedded(&["--public-origins=https://gallery.example"])).await;
    let response = app.sign_in(&app.admin_token).await;
    let cookie = set_cookie(&response, "__Host-lg_admin").expect("a __Host- cookie");
    for part in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let session = cookie.split(';').next().unwrap();
    assert!(app
        .admin_page(session)
        .await
        .contains("You are signed in as the administrator."));
    let visitor = app.get("/").await;
    let visitor_cookie = set_cookie(&visitor, "lg_visitor").unwrap();
    assert!(visitor_cookie.contains("Secure"), "{visitor_cookie}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_throttled_per_address() {
    let app = spawn_app_with(embedded(&["--rate-limit-sign-ins-per-minute=10"])).await;
    for attempt in 1..=10 {
        let response = app.sign_in("a-guess-at-the-token-that-is-wrong").await;
        assert_eq!(response.status(), 302, "attempt {attempt}");
    }
    let refused = app.sign_in(&app.admin_token).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    app.stop().await;
}

fn config(args: &[&str]) -> Config {
    let mut all = vec!["live-gallery", "--site-addr=127.0.0.1:0"];
    all.extend_from_slice(args);
    <Config as clap::Parser>::try_parse_from(all).unwrap()
}

fn leptos_options() -> leptos::config::LeptosOptions {
    leptos::config::LeptosOptions::builder()
        .output_name("live-gallery")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_admin_token_stops_the_start_with_the_setting_named() {
    let dir = SqliteDir::new();
    let catalog = format!("--catalog-database-url=sqlite://{}/c.db", dir.0.display());
    let web = format!("--web-database-url=sqlite://{}/w.db", dir.0.display());
    let (_trigger, stop) = server::shutdown::channel();
    let started = Application::build(
        config(&[&catalog, &web, "--admin-token=change-me"]),
        leptos_options(),
        stop,
    )
    .await;
    match started {
        Err(StartError::Config(message)) => {
            assert!(message.contains("ADMIN_TOKEN"), "{message}");
            assert!(message.contains("32"), "{message}");
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started with a 9-character admin token"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_token_is_kept_in_an_owner_only_file_and_never_logged() {
    let dir = SqliteDir::new();
    let token_file = dir.0.join("data").join("admin-token");
    let sqlite = |name: &str| format!("sqlite://{}", dir.0.join(name).display());
    let server = ServerProcess::start(
        "embedded",
        vec![
            ("catalog-database-url".to_owned(), sqlite("catalog.db")),
            ("web-database-url".to_owned(), sqlite("web.db")),
            (
                "admin-token-file".to_owned(),
                token_file.display().to_string(),
            ),
        ],
        &dir,
    )
    .await;
    let token = std::fs::read_to_string(&token_file).expect("the token file");
    assert!(token.len() >= 32, "{token}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let log = server.log();
    assert!(!log.contains(&token), "the token is logged:\n{log}");
    assert!(log.contains(&token_file.display().to_string()), "{log}");
    let products = reqwest::Client::new()
        .get(server.url("/api/admin/products"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        products.status(),
        200,
        "the file's token is the admin token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_role_without_the_token_says_at_start_that_its_admin_pages_are_off() {
    let dir = SqliteDir::new();
    let server = ServerProcess::start(
        "web",
        vec![
            ("role".to_owned(), "web".to_owned()),
            (
                "web-database-url".to_owned(),
                format!("sqlite://{}", dir.0.join("web.db").display()),
            ),
            ("catalog-url".to_owned(), "http://127.0.0.1:9".to_owned()),
            ("bus-namespace".to_owned(), unique("lg_test")),
        ],
        &dir,
    )
    .await;
    assert!(
        server.log().contains(
            "ADMIN_TOKEN is not set: this web instance cannot reach the catalog's admin API"
        ),
        "{}",
        server.log()
    );
    let refused = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/api/sign_in"))
        .form(&[("token", "anything-at-all-anything-at-all-anything")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unavailable");
}
