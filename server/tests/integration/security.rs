//! Security by default: headers on every answer, a script-nonce policy on pages, cross-site
//! requests refused, markup in titles shown as text.

use crate::helpers::{built_file, set_cookie, spawn_app_with, TestOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_nonce_policy_that_matches_their_scripts() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let page = app.gallery_page().await;
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let policy = assert_page_policy(page).await;
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("'wasm-unsafe-eval'"), "{policy}");
    assert!(!policy.contains("'unsafe-inline'"), "{policy}");

    let api = app.get("/healthz").await;
    assert_eq!(api.headers()["content-security-policy"], NOTHING_ALLOWED);
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_keep_their_policy_while_files_are_served_alongside() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let visitor = app.new_visitor().await;
    let get = |path: &str| {
        app.client
            .get(app.url(path))
            .header("cookie", &visitor.cookie)
            .send()
    };
    let stylesheet = built_file("css");
    // A browser asks for the page and its files at once; each answer keeps its own headers.
    for _ in 0..40 {
        let (gallery, admin, style, icon) = tokio::join!(
            get("/"),
            get("/admin"),
            get(&stylesheet),
            get("/favicon.svg")
        );
        assert_page_policy(gallery.unwrap()).await;
        assert_page_policy(admin.unwrap()).await;
        for file in [style.unwrap(), icon.unwrap()] {
            assert_eq!(file.status(), 200, "{}", file.url());
            assert_eq!(
                file.headers()["content-security-policy"],
                NOTHING_ALLOWED,
                "{}",
                file.url()
            );
        }
    }
    app.stop().await;
}

/// The policy of anything that is not a page.
const NOTHING_ALLOWED: &str = "default-src 'none'; frame-ancestors 'none'";

/// Asserts that `page` is HTML whose policy names a nonce that every inline script carries, and
/// no other; returns the policy.
async fn assert_page_policy(page: reqwest::Response) -> String {
    let path = page.url().path().to_owned();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("the policy of {path} names no nonce: {policy}"));
    assert!(html.contains("<script"), "{path} has scripts");
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        html.matches("nonce=\"").count(),
        "{path}: a script carries another nonce than the policy's"
    );
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(
            tag.contains(&format!("nonce=\"{nonce}\"")),
            "{path}: a script without the nonce: <script{tag}>"
        );
    }
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_from_another_site_are_refused() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let id = app.create_visible_product("Cliff").await;
    let visitor = app.new_visitor().await;
    let like_from = |origin: String| {
        app.client
            .post(app.url(&format!("/api/products/{id}/like")))
            .header("cookie", &visitor.cookie)
            .header("origin", origin)
            .send()
    };

    let forged = like_from("https://evil.example".to_owned()).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        forged.json::<serde_json::Value>().await.unwrap()["error"],
        "forbidden"
    );
    let forged_form = app
        .client
        .post(app.url("/api/set_like"))
        .header("cookie", &visitor.cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("id", id.to_string()), ("like", "true".to_owned())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged_form.status(),
        403,
        "server functions are covered too"
    );
    assert!(
        visitor.products().await.iter().all(|p| p["liked"] == false),
        "nothing was liked"
    );

    let own = like_from(format!("http://{}", app.address)).await.unwrap();
    assert_eq!(own.status(), 200, "the site's own pages may");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_a_title_is_shown_as_text_on_every_page() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let title = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    let created = app
        .create_product(&json!({"title": title, "image": "https://images.example.com/x.jpg"}))
        .await;
    assert_eq!(created.status(), 201);
    app.wait_for_gallery("the product", |html| html.contains("&lt;script&gt;alert("))
        .await;
    let gallery = app.gallery_page().await.text().await.unwrap();
    let session = app.admin_session().await;
    let admin = app.admin_page(&session).await;
    for html in [gallery, admin] {
        assert!(html.contains("&lt;script&gt;alert("), "escaped as text");
        assert!(!html.contains("<script>alert("), "never as markup");
        assert!(!html.contains("<img src=x onerror"), "never as markup");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_429_beyond_its_likes_and_new_visitors_per_minute() {
    let app = spawn_app_with(TestOptions {
        extra_args: vec![
            "--rate-limit-visitors-per-minute=3".to_owned(),
            "--rate-limit-likes-per-minute=2".to_owned(),
        ],
        ..TestOptions::embedded()
    })
    .await;
    let first = app.new_visitor().await;
    // create_visible_product spends one more new visitor on its check.
    let id = app.create_visible_product("Ridge").await;
    let _third = app.new_visitor().await;
    let refused = app.gallery_page().await;
    assert_eq!(refused.status(), 429, "a fourth new visitor in a minute");
    assert_eq!(refused.headers()["retry-after"], "60");

    assert_eq!(first.like(id).await.status(), 200);
    assert_eq!(first.unlike(id).await.status(), 200);
    let limited = first.like(id).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(
        limited.json::<serde_json::Value>().await.unwrap()["error"],
        "rate_limited"
    );
    assert!(
        first.products().await.iter().all(|p| p["liked"] == false),
        "the refused like changed nothing"
    );
    app.stop().await;
}

/// The site's files are answered without the visitor machinery: a cookieless request for the
/// stylesheet, the script or an image makes no visitor (no `Set-Cookie`), so a shared cache may
/// keep the answer: for a year for the build's files, whose names carry their hash
/// (`immutable`), revalidated by `Last-Modified` for the others; the page itself still makes one.
#[tokio::test]
async fn files_make_no_visitor_and_may_be_kept_by_shared_caches() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let year = "public, max-age=31536000, immutable";
    for (path, caching) in [
        (built_file("css"), year),
        (built_file("js"), year),
        (built_file("wasm"), year),
        ("/favicon.svg".to_owned(), "public, no-cache"),
        ("/samples/dawn.svg".to_owned(), "public, no-cache"),
    ] {
        let path = path.as_str();
        let file = app.get(path).await;
        assert_eq!(file.status(), 200, "{path}");
        assert!(
            file.headers().get("set-cookie").is_none(),
            "{path} sets no cookie"
        );
        assert_eq!(file.headers()["cache-control"], caching, "{path}");
        let modified = file.headers()["last-modified"].clone();
        let again = app
            .client
            .get(app.url(path))
            .header("if-modified-since", modified)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates");
    }
    let page = app.get("/").await;
    assert!(
        set_cookie(&page, "lg_visitor").is_some(),
        "a page still makes a visitor"
    );
}
