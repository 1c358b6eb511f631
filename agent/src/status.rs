//! The agent's status record in etcd (`Keys::agent_status`): what it last applied and whether
//! that converged, so `romanactl host status` and tests see an agent's view without logging
//! into the host. The record type lives in core ([`AgentStatus`]) so services can serve it.

pub use romana_core::AgentStatus;
use romana_store::{Store, StoreError};

/// Writes and reads status records through the store.
#[derive(Clone, Debug)]
pub struct StatusWriter {
    store: Store,
}

impl StatusWriter {
    pub fn new(store: Store) -> StatusWriter {
        StatusWriter { store }
    }

    pub async fn put(&self, status: &AgentStatus) -> Result<(), StoreError> {
        let key = self.store.keys().agent_status(&status.host);
        self.store.put(&key, status).await.map(|_| ())
    }

    pub async fn get(&self, host: &str) -> Result<Option<AgentStatus>, StoreError> {
        let key = self.store.keys().agent_status(host);
        Ok(self.store.get(&key).await?.map(|v| v.value))
    }
}

#[cfg(test)]
mod tests {
    use romana_store::{KeyRef, Keys};

    #[test]
    fn status_key_parses_as_agent_status_which_the_state_ignores() {
        let keys = Keys::default();
        assert_eq!(
            keys.parse(keys.agent_status("h1").path()),
            Some(KeyRef::AgentStatus("h1".into()))
        );
    }
}
