//! Catalog epochs and authoritative resyncs: a catalog made anew, a product frozen by a bogus
//! version, and a restore from backups all end with every gallery showing exactly the catalog's
//! products, and with like counts that stay exact.

use crate::helpers::{
    catalog_era, publish_events, spawn_app_with, unique, wait_until, TestOptions, Visitor,
};
use app::domain::{ImageUrl, ProductId, ProductTitle};
use serde_json::{json, Value};
use server::bus::Envelope;
use server::events::{CatalogEvent, ProductSnapshot};

/// Every product the visitor's gallery shows, as (title, likes, liked), newest first.
async fn shown(visitor: &Visitor) -> Vec<(String, i64, bool)> {
    visitor
        .products()
        .await
        .iter()
        .map(|p| {
            (
                p["title"].as_str().unwrap().to_owned(),
                p["likes"].as_i64().unwrap(),
                p["liked"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn titles(products: &[(String, i64, bool)]) -> Vec<&str> {
    products.iter().map(|(title, ..)| title.as_str()).collect()
}

/// The id of the product titled `title` in the visitor's gallery.
async fn id_of(visitor: &Visitor, title: &str) -> i64 {
    visitor
        .products()
        .await
        .iter()
        .find(|p| p["title"] == title)
        .and_then(|p| p["id"].as_i64())
        .unwrap_or_else(|| panic!("{title} is shown"))
}

fn image() -> Value {
    json!("https://images.example.com/p.jpg")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_made_anew_replaces_the_old_products_and_the_likes_of_them() {
    let old_catalog = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let web = spawn_app_with(old_catalog.sibling("web")).await;
    for title in ["Old one", "Old two", "Old three"] {
        let created = old_catalog
            .create_product(&json!({"title": title, "image": image()}))
            .await;
        assert_eq!(created.status(), 201);
    }
    let visitor = web.new_visitor().await;
    wait_until("the three old products", || async {
        visitor.products().await.len() == 3
    })
    .await;
    let old_one = id_of(&visitor, "Old one").await;
    assert_eq!(visitor.like(old_one).await.status(), 200);
    wait_until("the like counted by the old catalog", || async {
        shown(&visitor)
            .await
            .contains(&("Old one".to_owned(), 1, true))
    })
    .await;
    old_catalog.stop().await;

    // The catalog's database is lost and made anew: its ids start again at 1.
    let new_catalog = spawn_app_with(web.sibling("catalog")).await;
    for title in ["New one", "New two"] {
        let created = new_catalog
            .create_product(&json!({"title": title, "image": image()}))
            .await;
        assert_eq!(created.status(), 201);
    }
    wait_until("exactly the new catalog's products", || async {
        titles(&shown(&visitor).await) == ["New two", "New one"]
    })
    .await;
    let products = shown(&visitor).await;
    assert!(
        products
            .iter()
            .all(|(_, likes, liked)| *likes == 0 && !liked),
        "the old like was of another product: {products:?}"
    );
    let new_one = id_of(&visitor, "New one").await;
    assert_eq!(new_one, old_one, "the new catalog gave the id out again");
    assert_eq!(visitor.like(new_one).await.status(), 200);
    wait_until("the new like counted once", || async {
        new_catalog.catalog_likes().await.get(&new_one) == Some(&1)
            && shown(&visitor)
                .await
                .contains(&("New one".to_owned(), 1, true))
    })
    .await;
    assert_eq!(
        crate::helpers::miscounted(&new_catalog.catalog_database, &web.web_database).await,
        Vec::<String>::new()
    );
    new_catalog.stop().await;
    web.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authoritative_resync_repairs_a_frozen_product_and_removes_what_the_catalog_lacks() {
    let catalog = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let web = spawn_app_with(TestOptions {
        extra_args: vec![format!("--catalog-url=http://{}", catalog.address)],
        ..catalog.sibling("web")
    })
    .await;
    let dunes = web_created(&catalog, "Dunes").await;
    web_created(&catalog, "Bay").await;
    let visitor = web.new_visitor().await;
    wait_until("both products", || async {
        visitor.products().await.len() == 2
    })
    .await;

    // Events the catalog never published: a copy of Dunes with the highest version there is,
    // and a product it does not have.
    let (epoch, generation) = catalog_era(&catalog.catalog_database).await;
    let bogus = |id: i64, title: &str, version: i64| {
        Envelope::new(CatalogEvent::ProductUpdated(ProductSnapshot {
            id: ProductId::from_stored(id),
            title: ProductTitle::parse(title).unwrap(),
            image: ImageUrl::parse("https://images.example.com/p.jpg").unwrap(),
            version,
            epoch,
            generation,
        }))
    };
    publish_events(
        &format!("{}.catalog", web.namespace),
        &[bogus(dunes, "Frozen", i64::MAX), bogus(9_999, "Ghost", 1)],
    )
    .await;
    wait_until("the bogus events applied", || async {
        titles(&shown(&visitor).await) == ["Ghost", "Bay", "Frozen"]
    })
    .await;

    // The administrator's button: the server function reaches the catalog's admin API.
    let session = web.admin_session().await;
    let asked = web
        .client
        .post(web.url("/api/resync_gallery"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    assert_eq!(asked.json::<Value>().await.unwrap(), json!(2));
    wait_until("exactly the catalog's products", || async {
        titles(&shown(&visitor).await) == ["Bay", "Dunes"]
    })
    .await;

    // Dunes is no longer frozen: the catalog's next change shows.
    let renamed = catalog
        .admin(reqwest::Method::PUT, &format!("/{dunes}"))
        .json(&json!({"title": "Dunes at dusk", "image": image()}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    wait_until("the rename", || async {
        titles(&shown(&visitor).await) == ["Bay", "Dunes at dusk"]
    })
    .await;

    // The admin API asks for one too, with the token only.
    let refused = web
        .client
        .post(catalog.url("/api/admin/resync"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let accepted = web
        .client
        .post(catalog.url("/api/admin/resync"))
        .bearer_auth(&catalog.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    assert_eq!(accepted.json::<Value>().await.unwrap()["products"], 2);
    web.stop().await;
    catalog.stop().await;
}

/// Creates a product in the catalog; returns its id.
async fn web_created(catalog: &crate::helpers::TestApp, title: &str) -> i64 {
    let created = catalog
        .create_product(&json!({"title": title, "image": image()}))
        .await;
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Runs a PostgreSQL client tool (`pg_dump`, `pg_restore`) and insists it succeeds.
async fn pg_tool(program: &str, args: &[&str]) {
    let (name, list): (String, Vec<String>) = (
        program.to_owned(),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    let output =
        tokio::task::spawn_blocking(move || std::process::Command::new(name).args(list).output())
            .await
            .expect("the tool's thread ends")
            .unwrap_or_else(|err| panic!("{program} runs: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_databases_restored_from_backups_end_exact_after_a_resync() {
    let backups = crate::helpers::SqliteDir::new();
    let app = spawn_app_with(TestOptions::default()).await;
    let kept = app.create_visible_product("Kept").await;
    let gone = app.create_visible_product("Gone later").await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(kept).await.status(), 200);
    wait_until("the like counted", || async {
        shown(&visitor)
            .await
            .contains(&("Kept".to_owned(), 1, true))
    })
    .await;

    // The README's procedure: the web database first, then the catalog's, while running.
    let web_dump = backups.0.join("web.dump");
    let catalog_dump = backups.0.join("catalog.dump");
    for (url, file) in [
        (&app.web_database, &web_dump),
        (&app.catalog_database, &catalog_dump),
    ] {
        pg_tool(
            "pg_dump",
            &["--format=custom", "--file", file.to_str().unwrap(), url],
        )
        .await;
    }

    // After the backups: a new product, the like taken back and given again, one deletion.
    let late = app.create_visible_product(&unique("Too late")).await;
    assert_eq!(visitor.unlike(kept).await.status(), 200);
    assert_eq!(visitor.like(kept).await.status(), 200);
    assert_eq!(visitor.like(late).await.status(), 200);
    let deleted = app
        .admin(reqwest::Method::DELETE, &format!("/{gone}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    wait_until("the changes after the backups shown", || async {
        visitor.products().await.len() == 2
    })
    .await;
    let (namespace, token) = (app.namespace.clone(), app.admin_token.clone());
    let (catalog_db, web_db) = (app.catalog_database.clone(), app.web_database.clone());
    app.stop().await;

    // Both databases are lost and restored from the backups.
    for (url, file) in [(&web_db, &web_dump), (&catalog_db, &catalog_dump)] {
        pg_tool(
            "pg_restore",
            &[
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--dbname",
                url,
                file.to_str().unwrap(),
            ],
        )
        .await;
    }
    let restored = spawn_app_with(TestOptions {
        join: Some((namespace, token)),
        catalog_database: Some(catalog_db),
        web_database: Some(web_db),
        ..TestOptions::default()
    })
    .await;
    let resync = restored
        .client
        .post(restored.url("/api/admin/resync"))
        .bearer_auth(&restored.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resync.status(), 202);
    wait_until("exactly the backed-up products", || async {
        shown(&visitor_of(&restored, &visitor)).await
            == [
                ("Gone later".to_owned(), 0, false),
                ("Kept".to_owned(), 1, true),
            ]
    })
    .await;

    // Likes go on exactly: taking the like back and giving it again counts once.
    let again = visitor_of(&restored, &visitor);
    assert_eq!(again.unlike(kept).await.status(), 200);
    assert_eq!(again.like(gone).await.status(), 200);
    wait_until("the new likes counted by the catalog", || async {
        let counts = restored.catalog_likes().await;
        counts.get(&kept) == Some(&0) && counts.get(&gone) == Some(&1)
    })
    .await;
    // The restored catalog gives out again the id of the product made after the backup; the
    // new product is a product of its own, liked by nobody.
    let after = restored.create_visible_product("After the restore").await;
    assert_eq!(
        after, late,
        "the id made after the backup is given out again"
    );
    let products = shown(&again).await;
    assert_eq!(products[0], ("After the restore".to_owned(), 0, false));
    assert_eq!(restored.miscounted().await, Vec::<String>::new());
    restored.stop().await;
}

/// The web database alone restored from a backup, while the catalog keeps counts of a higher
/// version than the backup holds (the likes made since): the restored database's counts win in
/// the catalog, in the gallery and on a socket, and likes go on counting exactly from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_web_database_wins_over_newer_counts_seen_before_the_restore() {
    let backups = crate::helpers::SqliteDir::new();
    let app = spawn_app_with(TestOptions::default()).await;
    let id = app.create_visible_product("Cairn").await;
    let (ann, bob) = (app.new_visitor().await, app.new_visitor().await);
    assert_eq!(ann.like(id).await.status(), 200);
    assert_eq!(bob.like(id).await.status(), 200);
    let web_dump = backups.0.join("web.dump");
    pg_tool(
        "pg_dump",
        &[
            "--format=custom",
            "--file",
            web_dump.to_str().unwrap(),
            &app.web_database,
        ],
    )
    .await;

    // After the backup: Bob takes his back, two more visitors like it.
    assert_eq!(bob.unlike(id).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(app.new_visitor().await.like(id).await.status(), 200);
    }
    wait_until("three likes in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&3)
    })
    .await;
    let newest_before: i64 = app
        .admin_products()
        .await
        .iter()
        .find(|p| p["id"] == id)
        .expect("the product")["likes_version"]
        .as_i64()
        .expect("a version");
    let (namespace, token) = (app.namespace.clone(), app.admin_token.clone());
    let (catalog_db, web_db) = (app.catalog_database.clone(), app.web_database.clone());
    app.stop().await;

    pg_tool(
        "pg_restore",
        &[
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--dbname",
            &web_db,
            web_dump.to_str().unwrap(),
        ],
    )
    .await;
    let restored = spawn_app_with(TestOptions {
        join: Some((namespace, token)),
        catalog_database: Some(catalog_db),
        web_database: Some(web_db),
        ..TestOptions::default()
    })
    .await;
    // The backup's two likes (Ann's, Bob's), though the catalog had seen three at a higher
    // version.
    wait_until("the restored count in the catalog", || async {
        restored.catalog_likes().await.get(&id) == Some(&2)
    })
    .await;
    let reader = restored.new_visitor().await;
    assert!(shown(&reader)
        .await
        .contains(&("Cairn".to_owned(), 2, false)));
    let mut live = restored.connect_live().await.expect("a live socket");

    // Likes go on from the restored state: Bob's like is there again, and a new one counts.
    let bob = visitor_of(&restored, &bob);
    assert_eq!(
        bob.like(id).await.status(),
        409,
        "the backup holds Bob's like"
    );
    let answered = reader.like(id).await;
    assert_eq!(answered.status(), 200);
    let answered: Value = answered.json().await.unwrap();
    assert_eq!(answered["likes"], 3);
    assert!(answered["likes_version"].as_i64().unwrap() > newest_before);
    assert_eq!(live.next_count_of(id).await, 3);
    wait_until("the new like in the catalog", || async {
        restored.catalog_likes().await.get(&id) == Some(&3)
    })
    .await;
    assert_eq!(restored.miscounted().await, Vec::<String>::new());
    restored.stop().await;
}

/// The same visitor (cookie) on another app of the same deployment.
fn visitor_of(app: &crate::helpers::TestApp, visitor: &Visitor) -> Visitor {
    app.visitor_with_cookie(&visitor.cookie)
}
