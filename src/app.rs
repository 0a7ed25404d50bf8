//! Wiring: builds every component from a [`Config`] and runs them until shutdown.
//!
//! `run` takes bound listeners and a cancellation token, so tests bind port 0 and stop
//! the app at will, and `main` only turns signals into `token.cancel()`. Shutdown order:
//! readiness turns 503, the public listener stops accepting and finishes its requests,
//! the worker stops claiming and finishes its deliveries (all within
//! `server.shutdown_timeout_seconds`), then the admin listener and the store close.
//! Queued work stays on disk.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    delivery::Worker,
    health::Health,
    http::{AdminState, IngestState, admin_router, ingest_router},
    sources::Registry,
    store::Store,
    vendasta,
};

/// The two listening sockets.
#[derive(Debug)]
pub struct Listeners {
    pub ingest: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds both addresses from the config.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            ingest: bind(config.server.listen_address, "server.listen_address").await?,
            admin: bind(config.admin.listen_address, "admin.listen_address").await?,
        })
    }

    pub fn ingest_addr(&self) -> std::io::Result<SocketAddr> {
        self.ingest.local_addr()
    }

    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }
}

async fn bind(address: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {key} = {address}: is another process using it?")
    })
}

/// Every long-lived component, built and ready to run.
#[derive(Debug)]
pub struct App {
    config: Config,
    wake: Arc<Notify>,
    store: Store,
    worker: Worker,
    health: Health,
    ingest: Arc<IngestState>,
}

impl App {
    /// Opens the store (running migrations) and builds the routes, client and worker.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = Store::connect(&config.store.url, config.store.pool_size)
            .await
            .context("cannot open store.url")?;
        let routes = Registry::from_config(&config).map_err(anyhow::Error::msg)?;
        let wake = Arc::new(Notify::new());
        store.forward_new_work(Arc::clone(&wake));
        // The worker beats at least once a second; allow for a slow store call.
        let health = Health::new(Duration::from_secs(30).max(config.delivery.poll_interval() * 10));
        let upstream = vendasta::Upstream::new(&config, &health)
            .context("cannot set up the Vendasta upstream")?;
        let worker = Worker::new(
            &config,
            store.clone(),
            routes.clone(),
            upstream,
            Arc::clone(&wake),
            health.clone(),
        )
        .context("cannot set up the HubSpot client")?;
        let ingest = Arc::new(IngestState {
            routes,
            store: store.clone(),
            wake: Arc::clone(&wake),
            max_body_bytes: config.server.max_body_bytes,
            body_read_timeout: config.server.request_read_timeout(),
        });
        Ok(Self {
            config,
            wake,
            store,
            worker,
            health,
            ingest,
        })
    }

    /// The store, for tests and tools.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The worker, for tests that drive it by hand.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Serves and delivers until `shutdown` is cancelled, then drains and returns.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let drain_budget = self.config.server.shutdown_timeout();
        // The bound addresses, not the configured ones: with port 0 only these say where to connect.
        let ingest_addr = listeners.ingest_addr()?;
        let admin_addr = listeners.admin_addr()?;
        // Not `axum::serve`: both listeners need a header-read timeout (see `http::server`).
        // The admin listener's is the public one's, so a client dripping its headers to
        // the port the orchestrator probes cannot hold connections there either.
        let admin_stop = CancellationToken::new();
        let admin = tokio::spawn(crate::http::serve(
            listeners.admin,
            admin_router(Arc::new(AdminState {
                store: self.store.clone(),
                health: self.health.clone(),
                token: self.config.admin.token.clone(),
                wake: Arc::clone(&self.wake),
            })),
            self.config.server.request_read_timeout(),
            admin_stop.clone(),
        ));
        let ingest = tokio::spawn(crate::http::serve(
            listeners.ingest,
            ingest_router(Arc::clone(&self.ingest)),
            self.config.server.request_read_timeout(),
            shutdown.clone(),
        ));
        let worker = tokio::spawn(self.worker.clone().run(shutdown.clone()));
        let retention = tokio::spawn(crate::retention::run(
            self.store.clone(),
            self.config.store.retention(),
            shutdown.clone(),
        ));
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            ingest = %ingest_addr,
            admin = %admin_addr,
            routes = self.config.routes.len(),
            "Bridge started."
        );

        let mut ingest = ingest;
        let early_exit = tokio::select! {
            () = shutdown.cancelled() => None,
            result = &mut ingest => Some(result),
        };
        // From here on we are draining, whether asked to or because ingest failed.
        self.health.start_draining();
        shutdown.cancel();
        tracing::info!(
            budget_seconds = drain_budget.as_secs(),
            "Shutting down: draining requests and deliveries."
        );
        let drained = tokio::time::timeout(drain_budget, async {
            let ingest_result = match early_exit {
                Some(result) => result,
                None => ingest.await,
            };
            let worker_result = worker.await;
            (ingest_result, worker_result)
        })
        .await;
        admin_stop.cancel();
        let outcome = match drained {
            Ok((ingest_result, worker_result)) => {
                worker_result.context("the delivery worker panicked")?;
                ingest_result
                    .context("the ingest server panicked")?
                    .context("the ingest server failed")?;
                Ok(())
            }
            Err(_) => {
                tracing::warn!(
                    budget_seconds = drain_budget.as_secs(),
                    "Drain budget ran out; unfinished deliveries stay leased and are retried after restart."
                );
                Ok(())
            }
        };
        if let Ok(Err(error)) = admin.await {
            tracing::warn!(error = %error, "The admin server failed while stopping.");
        }
        // Cancelled with everything else; a batch in progress is short, so wait for it.
        if retention.await.is_err() {
            tracing::warn!("The retention task panicked.");
        }
        self.store.close().await;
        tracing::info!("Bridge stopped.");
        outcome
    }
}
