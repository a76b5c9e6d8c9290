//! A storm: every visitor of every web instance liking every product while an administrator
//! renames them, for fault tests to strike in the middle of. `settle` then demands exact counts
//! and titles in the catalog, every web instance and every live socket, and one more like
//! through each instance to prove every consumer still runs.

use crate::burst::{self, LiveWatch, Tally, Visitor};
use crate::process::Deployment;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Products, visitors per web instance, concurrent likes and rename rounds of a storm.
const PRODUCTS: usize = 5;
const VISITORS_PER_WEB: usize = 40;
const CONCURRENCY: usize = 8;
const RENAME_ROUNDS: usize = 12;

/// A burst under way: every visitor liking every product, and renames of all but the first
/// product (tests may rename that one themselves).
pub struct Storm {
    pub products: Vec<i64>,
    pub tally: Arc<Tally>,
    progress: Arc<AtomicUsize>,
    total: usize,
    likes: JoinHandle<BTreeMap<i64, i64>>,
    renames: JoinHandle<BTreeMap<i64, String>>,
    /// Two live sockets per web instance, by instance.
    pub watches: Vec<Vec<LiveWatch>>,
}

impl Storm {
    pub async fn start(deployment: &Deployment) -> Self {
        let catalog = deployment.catalog.address;
        let token = deployment.admin_token.clone();
        let products = burst::create_products(catalog, &token, PRODUCTS).await;
        for web in &deployment.webs {
            crate::helpers::wait_until("the products in the read model", || async {
                burst::gallery(web.address)
                    .await
                    .is_some_and(|seen| seen.len() == PRODUCTS)
            })
            .await;
        }
        // Visitors of the instances alternate, so a fault on one meets requests at once.
        let mut per_web = Vec::new();
        for web in &deployment.webs {
            per_web.push(burst::visitors(web.address, VISITORS_PER_WEB).await);
        }
        let visitors: Vec<Visitor> = (0..VISITORS_PER_WEB)
            .flat_map(|n| per_web.iter().map(move |list| list[n].clone()))
            .collect();
        let mut watches = Vec::new();
        for web in &deployment.webs {
            watches.push(vec![
                LiveWatch::open(web.address).await,
                LiveWatch::open(web.address).await,
            ]);
        }

        let tally = Arc::new(Tally::default());
        let progress = Arc::new(AtomicUsize::new(0));
        let total = visitors.len() * products.len();
        let likes = tokio::spawn({
            let (products, tally, progress) = (products.clone(), tally.clone(), progress.clone());
            async move { burst::like_all(&visitors, &products, CONCURRENCY, &tally, &progress).await }
        });
        let renames = tokio::spawn({
            let (products, tally) = (products[1..].to_vec(), tally.clone());
            async move { burst::rename_all(catalog, &token, &products, RENAME_ROUNDS, &tally).await }
        });
        Self {
            products,
            tally,
            progress,
            total,
            likes,
            renames,
            watches,
        }
    }

    /// Waits until `fraction` of the likes are settled.
    pub async fn reached(&self, fraction: f64) {
        let target = (self.total as f64 * fraction) as usize;
        crate::helpers::wait_until("the storm to get going", || async {
            self.progress.load(Ordering::SeqCst) >= target
        })
        .await;
    }

    /// New sockets for web instance `n` (its old ones died with it).
    pub async fn reopen_sockets(&mut self, n: usize, web: SocketAddr) {
        self.watches[n] = vec![LiveWatch::open(web).await, LiveWatch::open(web).await];
    }

    /// Waits for the storm to end, then for exact counts and titles everywhere, sockets
    /// included; then proves each web instance and the catalog still consume: one more like
    /// through every instance reaches everything. `first_title` is what the first product is
    /// called by the end.
    pub async fn settle(self, deployment: &Deployment, first_title: &str) {
        let likes = self.likes.await.expect("the likes ran");
        let mut titles = self.renames.await.expect("the renames ran");
        titles.insert(self.products[0], first_title.to_owned());
        let mut want = burst::expected(&likes, &titles);
        let catalog = deployment.catalog.address;
        let webs: Vec<SocketAddr> = deployment.webs.iter().map(|web| web.address).collect();
        let token = &deployment.admin_token;
        burst::wait_for_everywhere(catalog, token, &webs, &want).await;
        for watch in self.watches.iter().flatten() {
            watch.wait_for(&want).await;
        }

        let tally = Tally::default();
        for &web in &webs {
            let visitor = burst::visitors(web, 1).await;
            let progress = AtomicUsize::new(0);
            burst::like_all(&visitor, &self.products[..1], 1, &tally, &progress).await;
            want.get_mut(&self.products[0]).expect("the product").1 += 1;
        }
        burst::wait_for_everywhere(catalog, token, &webs, &want).await;
        for watch in self.watches.iter().flatten() {
            watch.wait_for(&want).await;
        }
        let miscounted =
            crate::helpers::miscounted(&deployment.catalog_database, &deployment.web_database)
                .await;
        assert_eq!(miscounted, Vec::<String>::new(), "every counter recounts");
    }
}
