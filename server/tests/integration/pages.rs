//! Server-side rendering of the pages, on both database engines.

use crate::helpers::{built_file, set_cookie, spawn_app_with, TestOptions};

async fn the_gallery_renders_its_empty_state(options: TestOptions) {
    let app = spawn_app_with(options).await;
    let page = app.gallery_page().await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Gallery"), "{html}");
    assert!(html.contains("No pictures yet"), "{html}");
    for kind in ["js", "wasm", "css"] {
        let file = built_file(kind);
        assert!(html.contains(&file), "the page names the built {file}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_renders_on_postgres() {
    the_gallery_renders_its_empty_state(TestOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_renders_on_sqlite() {
    the_gallery_renders_its_empty_state(TestOptions::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_page_answers_404() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let page = app.get("/no/such/page").await;
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("Page not found"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_admin_token_sets_a_strict_http_only_cookie() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let response = app.sign_in(&app.admin_token).await;
    assert!(response.status().is_redirection(), "{}", response.status());
    let cookie = set_cookie(&response, "lg_admin").expect("a session cookie");
    assert!(cookie.starts_with("lg_admin="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");

    let session = cookie.split(';').next().unwrap();
    let admin = app.admin_page(session).await;
    assert!(
        admin.contains("You are signed in as the administrator."),
        "{admin}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_token_is_refused_and_sets_no_cookie() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let response = app.sign_in("not-the-token").await;
    assert_eq!(response.status(), 302, "a form post goes back to the form");
    assert_eq!(response.headers()["location"], "/admin?sign_in=failed");
    assert!(set_cookie(&response, "lg_admin").is_none());

    let explained = app.get("/admin?sign_in=failed").await.text().await.unwrap();
    assert!(
        explained.contains("That token is not right."),
        "{explained}"
    );

    let from_script = app
        .client
        .post(app.url("/api/sign_in"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(from_script.status(), 401, "a script's call gets the status");
    assert!(set_cookie(&from_script, "lg_admin").is_none());

    let forged = app.admin_page("lg_admin=not-the-token").await;
    assert!(
        forged.contains("Admin token"),
        "the sign-in form is shown again"
    );
    assert!(!forged.contains("You are signed in"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_server_functions_refuse_callers_without_a_session() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let call = |endpoint: &str, form: &[(&str, &str)], cookie: Option<&str>| {
        let mut request = app
            .client
            .post(app.url(&format!("/api/{endpoint}")))
            .form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let product = [("title", "Forged"), ("image", "https://example.com/f.png")];
    for cookie in [None, Some("lg_admin=guess")] {
        assert_eq!(
            call("create_product", &product, cookie)
                .await
                .unwrap()
                .status(),
            401
        );
        assert_eq!(
            call("admin_products", &[], cookie).await.unwrap().status(),
            401
        );
    }
    assert!(app.admin_products().await.is_empty(), "nothing was created");

    let id = app
        .create_product(&serde_json::json!({"title": "Real", "image": "https://example.com/r.png"}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .to_string();
    let renamed = [
        ("id", id.as_str()),
        ("title", "Renamed"),
        ("image", "https://example.com/r.png"),
    ];
    assert_eq!(
        call("update_product", &renamed, None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        call("delete_product", &[("id", id.as_str())], None)
            .await
            .unwrap()
            .status(),
        401
    );
    let products = app.admin_products().await;
    assert_eq!(products.len(), 1);
    assert_eq!(products[0]["title"], "Real");

    let session = app.admin_session().await;
    let updated = call("update_product", &renamed, Some(&session))
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    assert_eq!(app.admin_products().await[0]["title"], "Renamed");
    let invalid = [("title", "x"), ("image", "javascript:alert(1)")];
    let refused = call("create_product", &invalid, Some(&session))
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "validation");
    assert_eq!(body["field"], "image");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_like_posted_without_javascript_goes_back_to_the_gallery_page_it_came_from() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let id = app.create_visible_product("Dunes").await;
    let visitor = app.new_visitor().await;
    let host = app.address.to_string();
    let cases = [
        (
            format!("http://{host}/?sort=likes&after=l.0.3"),
            "/?sort=likes&after=l.0.3",
        ),
        (
            format!("http://{host}/?sort=newest&reason=gone&x=1"),
            "/?sort=newest",
        ),
        (format!("http://{host}/admin?sort=likes"), "/"),
        (format!("http://{host}.evil.example/?sort=likes"), "/"),
        ("https://evil.example/?sort=likes".to_owned(), "/"),
    ];
    for (n, (referer, back)) in cases.into_iter().enumerate() {
        let like = n % 2 == 0;
        let response = app
            .client
            .post(app.url("/api/set_like"))
            .header("cookie", &visitor.cookie)
            .header("accept", "text/html")
            .header("referer", referer.as_str())
            .form(&[("id", id.to_string()), ("like", like.to_string())])
            .send()
            .await
            .expect("request reaches the app");
        assert_eq!(response.status(), 302, "{referer}");
        assert_eq!(response.headers()["location"], back, "{referer}");
    }
    app.stop().await;
}
