//! The catalog's answer to a web service asking for every product (`resync.requested`).

use crate::bus::consumer::{HandleError, Handler};
use crate::bus::Envelope;

/// Answers `resync.requested` with an authoritative resync.
pub struct ResyncHandler {
    pub store: super::CatalogStore,
}

impl Handler for ResyncHandler {
    type Event = crate::events::ResyncEvent;
    const NAME: &'static str = "resync";

    #[tracing::instrument(name = "answer_resync", skip_all, fields(event_id = %envelope.id))]
    async fn handle(&self, envelope: Envelope<Self::Event>) -> Result<(), HandleError> {
        // Repeating this is harmless (a later generation only confirms the same products), so
        // no dedupe record.
        self.store
            .resync()
            .await
            .map_err(|err| HandleError::Retry(Box::new(err)))?;
        Ok(())
    }
}
