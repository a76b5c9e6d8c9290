//! How the web service reaches the catalog for admin commands: in-process when both roles share
//! a process, otherwise the catalog's HTTP API at `CATALOG_URL` with the admin token.

use crate::auth::AdminToken;
use crate::catalog::CatalogStore;
use app::domain::{ProductDraft, ProductId, ValidationError};
use app::wire::{AppError, Product};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Where the catalog's admin API keeps its products.
const PRODUCTS: &str = "/api/admin/products";

/// The catalog, as seen from the web service.
#[derive(Clone)]
pub enum CatalogClient {
    /// Both roles run in this process.
    Local(CatalogStore),
    /// The catalog's HTTP API.
    Remote {
        base_url: String,
        token: AdminToken,
        http: reqwest::Client,
    },
    /// `--role web` without `CATALOG_URL`: admin commands cannot be served.
    Missing,
}

impl CatalogClient {
    /// The catalog at `base_url`, reached with `http` (see `tls::catalog_http_client`).
    pub fn remote(base_url: &str, token: AdminToken, http: reqwest::Client) -> Self {
        Self::Remote {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }

    pub async fn list(&self) -> Result<Vec<Product>, AppError> {
        match self {
            Self::Local(store) => Ok(store.list().await?),
            _ => self.call(Method::GET, PRODUCTS, None).await,
        }
    }

    pub async fn create(&self, draft: &ProductDraft) -> Result<Product, AppError> {
        match self {
            Self::Local(store) => Ok(store.create(draft).await?),
            _ => self.call(Method::POST, PRODUCTS, Some(body(draft))).await,
        }
    }

    pub async fn update(&self, id: ProductId, draft: &ProductDraft) -> Result<Product, AppError> {
        match self {
            Self::Local(store) => Ok(store.update(id, draft).await?),
            _ => {
                self.call(Method::PUT, &format!("{PRODUCTS}/{id}"), Some(body(draft)))
                    .await
            }
        }
    }

    pub async fn delete(&self, id: ProductId) -> Result<(), AppError> {
        match self {
            Self::Local(store) => Ok(store.delete(id).await?),
            _ => self
                .call::<Value>(Method::DELETE, &format!("{PRODUCTS}/{id}"), None)
                .await
                .map(drop),
        }
    }

    /// Asks the catalog for an authoritative resync; returns how many products it sends.
    pub async fn resync(&self) -> Result<u64, AppError> {
        match self {
            Self::Local(store) => Ok(store.resync().await?.products),
            _ => {
                let answer: Value = self.call(Method::POST, "/api/admin/resync", None).await?;
                Ok(answer["products"].as_u64().unwrap_or(0))
            }
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, AppError> {
        let Self::Remote {
            base_url,
            token,
            http,
        } = self
        else {
            tracing::error!("admin command on a web role without CATALOG_URL");
            return Err(AppError::Unavailable);
        };
        let mut request = http
            .request(method, format!("{base_url}{path}"))
            .bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|err| {
            tracing::error!(error = %crate::error::chain(&err), "catalog unreachable");
            AppError::Unavailable
        })?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return serde_json::from_value(Value::Null).map_err(|_| AppError::Internal);
        }
        let payload: Value = response.json().await.map_err(|_| AppError::Unavailable)?;
        match status {
            s if s.is_success() => serde_json::from_value(payload).map_err(|_| AppError::Internal),
            StatusCode::NOT_FOUND => Err(AppError::NotFound),
            StatusCode::UNPROCESSABLE_ENTITY => {
                let text = |key: &str| payload[key].as_str().unwrap_or_default().to_owned();
                Err(AppError::Validation(ValidationError {
                    field: text("field"),
                    reason: text("message"),
                }))
            }
            StatusCode::UNAUTHORIZED => {
                tracing::error!(
                    "the catalog refused this service's admin token: ADMIN_TOKEN differs"
                );
                Err(AppError::Internal)
            }
            _ => Err(AppError::Unavailable),
        }
    }
}

fn body(draft: &ProductDraft) -> Value {
    json!({ "title": draft.title.as_str(), "image": draft.image.as_str() })
}
