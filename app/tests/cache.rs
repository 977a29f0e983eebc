//! The cache on the machine's Redis: two app nodes on one database share it, a write on
//! one is seen at once by the other (the invalidation reaches Redis); with Redis away,
//! reads go to the database and writes still succeed, without waiting on Redis.

use std::time::{Duration, Instant};

use videopick_app::accounts::SignUp;
use videopick_app::channels::{ChannelPatch, NewChannel};
use videopick_app::{App, AppConfig, Cache, Db};

fn prefix() -> String {
    format!(
        "vp-test-{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_redis_cache_and_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let p = prefix();
    let ttl = Duration::from_secs(30);
    let node = |db: Db| {
        App::with_cache(
            db,
            Cache::redis("redis://127.0.0.1:6379", &p, ttl).unwrap(),
            AppConfig::default(),
        )
    };
    let a = node(Db::open(&url).await.unwrap());
    let b = node(Db::open(&url).await.unwrap());
    assert!(a.cache().is_redis());

    let me = a
        .sign_up(SignUp {
            username: "node_user".into(),
            email: "n@example.com".into(),
            password: "correct horse".into(),
        })
        .await
        .unwrap();
    a.create_channel(
        &me.user,
        NewChannel {
            slug: "shared".into(),
            name: "Before".into(),
            description: String::new(),
            record: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(a.channel("shared").await.unwrap().name, "Before");
    assert_eq!(b.channel("shared").await.unwrap().name, "Before");
    // The entry is in Redis, under the prefix.
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let cached: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{p}channel:shared"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(cached.is_some());

    // A write on B; A reads the new name at once (not after the TTL).
    b.update_channel(
        &me.user,
        "shared",
        ChannelPatch {
            name: Some("After".into()),
            ..ChannelPatch::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(a.channel("shared").await.unwrap().name, "After");
    // A live session started on A shows in B's live list at once.
    a.stream_started("live", "shared").await.unwrap();
    assert_eq!(b.live_now().await.unwrap()[0].slug, "shared");
    let _: () = redis::cmd("DEL")
        .arg(format!("{p}channel:shared"))
        .arg(format!("{p}live"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_away_reads_bypass_the_cache_and_writes_succeed() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let cache = Cache::redis("redis://127.0.0.1:1", &prefix(), Duration::from_secs(30)).unwrap();
    let app = App::with_cache(
        Db::open_in(dir.path()).await.unwrap(),
        cache,
        AppConfig::default(),
    );
    let t = Instant::now();
    let me = app
        .sign_up(SignUp {
            username: "no_redis".into(),
            email: "r@example.com".into(),
            password: "correct horse".into(),
        })
        .await
        .unwrap();
    app.create_channel(
        &me.user,
        NewChannel {
            slug: "no-redis".into(),
            name: "One".into(),
            description: String::new(),
            record: None,
        },
    )
    .await
    .unwrap();
    for i in 0..20 {
        let name = format!("Name {i}");
        app.update_channel(
            &me.user,
            "no-redis",
            ChannelPatch {
                name: Some(name.clone()),
                ..ChannelPatch::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(app.channel("no-redis").await.unwrap().name, name);
    }
    // One failed connection attempt, then Redis is bypassed without waiting on it.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
