//! The shared token store against a real PostgreSQL (`PASARELA_TEST_PG`, default the local server):
//! one fetch serves every task of two "replicas" (two stores, two pools), a 401 reported by many
//! callers causes one refetch, a token is refreshed before it ends, and the stored row is encrypted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::vendors::tokens::FetchedToken;
use secrecy::{ExposeSecret, SecretString};

mod common;

use common::{SECRET_KEY, TestDb};

struct Fixture {
    db: TestDb,
    stores: Vec<Arc<TokenStore>>,
}

async fn fixture(replicas: usize, margin: Duration) -> Fixture {
    let db = TestDb::create("pasarela_tok").await;
    let stores = (0..replicas)
        .map(|_| {
            let key = SecretKey::from_base64(&SecretString::from(SECRET_KEY)).unwrap();
            Arc::new(TokenStore::new(db.pool(4), key, margin))
        })
        .collect();
    Fixture { db, stores }
}

impl Fixture {
    async fn drop_database(self) {
        drop(self.stores);
        self.db.drop().await;
    }
}

/// A vendor that counts its token fetches and takes a while to answer, so callers pile up.
/// What the counting vendor's fetch returns.
type FetchFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<FetchedToken, String>> + Send>>;

fn vendor(
    fetches: Arc<AtomicUsize>,
    lifetime: Duration,
) -> impl Fn(Option<secrecy::SecretString>) -> FetchFuture + Clone {
    move |_previous| {
        let fetches = fetches.clone();
        Box::pin(async move {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(FetchedToken {
                value: format!("tok-{n}-secretvalue").into(),
                lifetime,
            })
        })
    }
}

#[tokio::test]
async fn one_fetch_serves_every_task_of_two_replicas_and_a_401_causes_one_more() {
    let f = fixture(2, Duration::from_secs(60)).await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let fetch = vendor(fetches.clone(), Duration::from_secs(3600));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = f.stores[i % 2].clone();
        let fetch = fetch.clone();
        tasks.push(tokio::spawn(async move {
            store.token("numrot", fetch).await.unwrap()
        }));
    }
    let tokens: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one fetch for 100 callers"
    );
    assert!(
        tokens
            .iter()
            .all(|t| t.value.expose_secret() == "tok-1-secretvalue")
    );

    // The row is encrypted: the token's text is nowhere in it.
    let pool = f.db.pool(1);
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT ciphertext, generation FROM vendor_tokens WHERE vendor = 'numrot'",
            &[],
        )
        .await
        .unwrap();
    let ciphertext: Vec<u8> = row.get(0);
    assert!(!String::from_utf8_lossy(&ciphertext).contains("secretvalue"));
    assert_eq!(row.get::<_, i64>(1), 1);

    // Twenty callers on both replicas report a 401 on the same token: one refetch.
    let stale = tokens[0].clone();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = f.stores[i % 2].clone();
        let fetch = fetch.clone();
        let stale = stale.clone();
        tasks.push(tokio::spawn(async move {
            store.invalidate("numrot", &stale).await.unwrap();
            store.token("numrot", fetch).await.unwrap()
        }));
    }
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap().value.expose_secret(), "tok-2-secretvalue");
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one refetch for twenty 401s"
    );
    f.drop_database().await;
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_ends_and_a_failed_fetch_is_the_callers_error() {
    // A 3 s token with a 2 s margin is fresh for one second.
    let f = fixture(1, Duration::from_secs(2)).await;
    let store = &f.stores[0];
    let fetches = Arc::new(AtomicUsize::new(0));
    let fetch = vendor(fetches.clone(), Duration::from_secs(3));
    let first = store.token("gestopago", fetch.clone()).await.unwrap();
    let again = store.token("gestopago", fetch.clone()).await.unwrap();
    assert_eq!(first.generation, again.generation);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let renewed = store.token("gestopago", fetch.clone()).await.unwrap();
    assert_eq!(renewed.generation, first.generation + 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    let refused = store
        .token("signing", |_| async {
            Err::<FetchedToken, _>("credentials not registered".to_string())
        })
        .await;
    assert!(matches!(
        refused,
        Err(pasarela_shared::vendors::tokens::TokenError::Fetch(ref e)) if e == "credentials not registered"
    ));
    f.drop_database().await;
}
