//! Errors that retrying cannot fix (a constraint the data breaks, a read-only database) are told
//! from passing ones: the event is tried a few times, then dead-lettered with its reason, and the
//! queue moves on; the dead letters show in `/metrics`, are replayed once the cause is fixed, and
//! are bounded by the broker policy the README and `compose.yaml` apply.

use crate::helpers::{
    catalog_era, publish_events, rabbitmq_bus, rabbitmqctl, spawn_app, spawn_app_with, unique,
    vhost, wait_until, Engine, TestOptions, ABOVE_ANY_CLOCK,
};
use server::bus::{Envelope, Topology, DEAD_LETTER_REASON};
use server::events::{LikeCount, LikeCounts, LikesEvent};
use std::time::Duration;

/// A count the catalog's database refuses for good (the tests add a rule against it).
const REFUSED: i64 = 777;

/// `likes` for product `id`, at a version above any the web database gives, so that nothing it
/// announces meanwhile takes the place of the test's counts.
fn count(id: i64, likes: i64, epoch: i64) -> Envelope<LikesEvent> {
    Envelope::new(LikesEvent::Counted(LikeCounts {
        counted_at_ms: 1_764_633_600_000,
        counts: vec![LikeCount {
            id: app::domain::ProductId::from_stored(id),
            likes,
            version: ABOVE_ANY_CLOCK,
            epoch,
        }],
    }))
}

/// Runs `sql` on the app's catalog database.
async fn alter_catalog(url: &str, sql: &str) {
    let pool = crate::helpers::database(url).await;
    sqlx::query(sql)
        .execute(&pool)
        .await
        .expect("the catalog's database takes the change");
    pool.close().await;
}

/// A count the catalog's database refuses for good sits between two good ones: the good ones are
/// taken, the refused one reaches the dead-letter queue with the database's reason.
async fn a_lasting_error_is_dead_lettered_and_the_queue_moves_on(
    engine: Engine,
    refusal: &str,
    fix: &str,
) {
    let app = spawn_app_with(TestOptions {
        engine,
        ..TestOptions::default()
    })
    .await;
    let ids = [
        app.create_visible_product("Tarn").await,
        app.create_visible_product("Fell").await,
        app.create_visible_product("Scree").await,
    ];
    let (epoch, _) = catalog_era(&app.catalog_database).await;
    alter_catalog(
        &app.catalog_database,
        &refusal.replace("{likes}", &REFUSED.to_string()),
    )
    .await;
    let dead_letters = Topology::new(app.namespace.as_str())
        .catalog_likes(10)
        .dead_letters();
    let mut dead = rabbitmq_bus()
        .subscribe(&dead_letters)
        .await
        .expect("subscribe");

    publish_events(
        &format!("{}.web", app.namespace),
        &[
            count(ids[0], 1, epoch),
            count(ids[1], REFUSED, epoch),
            count(ids[2], 2, epoch),
        ],
    )
    .await;
    wait_until("both good counts taken", || async {
        let counts = app.catalog_likes().await;
        counts.get(&ids[0]) == Some(&1) && counts.get(&ids[2]) == Some(&2)
    })
    .await;
    let refused = tokio::time::timeout(Duration::from_secs(30), dead.next())
        .await
        .expect("dead-lettered in time")
        .expect("subscription open");
    let reason = &refused.headers[DEAD_LETTER_REASON];
    assert!(
        reason.starts_with("lasting database error after 5 tries"),
        "{reason}"
    );
    let envelope: serde_json::Value = serde_json::from_slice(&refused.payload).unwrap();
    assert_eq!(envelope["data"]["counts"][0]["likes"], REFUSED);
    // Left unsettled, the letter goes back to the dead-letter queue when its reader goes.
    drop(refused);
    drop(dead);
    wait_until("the dead letter counted in /metrics", || async {
        dead_letter_count(&app).await == 1.0
    })
    .await;

    // The cause is fixed; the administrator replays the dead letters and the count is taken.
    alter_catalog(&app.catalog_database, fix).await;
    let replayed = app
        .client
        .post(app.url("/api/admin/dead-letters/catalog.likes/replay"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    assert_eq!(
        replayed.json::<serde_json::Value>().await.unwrap()["replayed"],
        1
    );
    wait_until("the replayed count taken", || async {
        app.catalog_likes().await.get(&ids[1]) == Some(&REFUSED)
    })
    .await;
    wait_until("no dead letter left in /metrics", || async {
        dead_letter_count(&app).await == 0.0
    })
    .await;
    let unknown = app
        .client
        .post(app.url("/api/admin/dead-letters/elsewhere/replay"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

/// `live_gallery_dead_letters` of the app's like queue in its `/metrics`.
async fn dead_letter_count(app: &crate::helpers::TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let queue = format!("queue=\"{}.catalog.likes.dead-letter\"", app.namespace);
    crate::process::metric(&text, "live_gallery_dead_letters", &queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_violation_on_postgresql_is_dead_lettered_and_the_queue_moves_on() {
    a_lasting_error_is_dead_lettered_and_the_queue_moves_on(
        Engine::Postgres,
        "alter table product add constraint refused check (likes <> {likes})",
        "alter table product drop constraint refused",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_error_on_sqlite_is_dead_lettered_and_the_queue_moves_on() {
    a_lasting_error_is_dead_lettered_and_the_queue_moves_on(
        Engine::Sqlite,
        "create trigger refused before update on product when new.likes = {likes} \
         begin select raise(abort, 'refused'); end",
        "drop trigger refused",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_queues_are_bounded_by_a_policy_keeping_the_newest() {
    let app = spawn_app().await;
    // The README's policy (`max-length` with `overflow: drop-head`), on this test's queues only
    // and with a small length. A policy, unlike queue arguments, applies to queues that exist.
    let policy = unique("lg_test_dead_letters");
    let pattern = format!("^{}\\..*\\.dead-letter$", app.namespace);
    rabbitmqctl(&[
        "set_policy",
        "-p",
        &vhost(),
        "--apply-to",
        "queues",
        &policy,
        &pattern,
        r#"{"max-length":5,"overflow":"drop-head"}"#,
    ])
    .await;
    let broken: Vec<server::bus::OutgoingMessage> = (0..8)
        .map(|n| server::bus::OutgoingMessage {
            routing_key: "likes.counted".to_owned(),
            message_id: format!("broken-{n}"),
            payload: format!("not an event {n}").into_bytes(),
        })
        .collect();
    rabbitmq_bus()
        .publish(&format!("{}.web", app.namespace), &broken)
        .await
        .expect("published");
    wait_until("the bounded dead-letter queue in /metrics", || async {
        dead_letter_count(&app).await == 5.0
    })
    .await;
    let mut dead = rabbitmq_bus()
        .subscribe(
            &Topology::new(app.namespace.as_str())
                .catalog_likes(10)
                .dead_letters(),
        )
        .await
        .expect("subscribe");
    for n in 3..8 {
        let letter = tokio::time::timeout(Duration::from_secs(10), dead.next())
            .await
            .expect("a dead letter")
            .expect("subscription open");
        assert_eq!(
            letter.message_id,
            Some(format!("broken-{n}")),
            "the oldest went first"
        );
        letter.ack().await.expect("ack");
    }
    rabbitmqctl(&["clear_policy", "-p", &vhost(), &policy]).await;
    app.stop().await;
}
