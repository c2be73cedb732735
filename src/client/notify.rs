//! The admin API's notification channels and deliveries (`/v1/admin/notifications`).

use reqwest::Method;

use super::{segment, Client, ClientError, ClientResult};
use crate::wire::notify::{
    ChannelCreated, ChannelList, ChannelRequest, DeliveryList, DeliveryQueued,
};

impl Client {
    pub async fn create_channel(&self, req: &ChannelRequest) -> ClientResult<ChannelCreated> {
        self.post("/v1/admin/notifications", req).await
    }

    pub async fn list_channels(&self) -> ClientResult<ChannelList> {
        self.get("/v1/admin/notifications").await
    }

    /// Removes a channel (204, no body).
    pub async fn delete_channel(&self, id: &str) -> ClientResult<()> {
        let path = format!("/v1/admin/notifications/{}", segment(id));
        let resp = self
            .request(Method::DELETE, &path)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        Err(ClientError::from_answer(status, &bytes, None))
    }

    pub async fn test_channel(&self, id: &str) -> ClientResult<DeliveryQueued> {
        let path = format!("/v1/admin/notifications/{}/test", segment(id));
        self.post(&path, &serde_json::json!({})).await
    }

    /// Deliveries in `state` (pending, failed, delivered), of one channel or all.
    pub async fn list_deliveries(
        &self,
        state: &str,
        channel: Option<&str>,
        limit: i64,
    ) -> ClientResult<DeliveryList> {
        let mut path = format!(
            "/v1/admin/notifications/deliveries?state={}&limit={limit}",
            segment(state)
        );
        if let Some(c) = channel {
            path.push_str(&format!("&channel={}", segment(c)));
        }
        self.get(&path).await
    }

    pub async fn retry_delivery(&self, id: i64) -> ClientResult<DeliveryQueued> {
        let path = format!("/v1/admin/notifications/deliveries/{id}/retry");
        self.post(&path, &serde_json::json!({})).await
    }
}
