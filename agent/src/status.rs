//! The agent's status record in etcd (`Keys::agent_status`): what it last applied and whether
//! that converged, so `romanactl host status` and tests see an agent's view without logging
//! into the host. The record type lives in core ([`AgentStatus`]) so services can serve it.

use std::time::Duration;

pub use romana_core::AgentStatus;
use romana_store::{Store, StoreError};
use tokio::sync::watch;

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

/// Puts statuses from a task of its own, so that an etcd write (a few ms, more when etcd is
/// busy) never delays the agent's next round: with every change written from the loop, the
/// next change waited for the last one's status. Only the newest status is written when
/// several queue up; a failed write is retried a second later (or when a newer one comes).
/// Dropping it ends the task; a status not written by then is lost, like one written just
/// before a crash.
pub struct StatusSink {
    tx: watch::Sender<Option<AgentStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusSink {
    pub fn spawn(writer: StatusWriter) -> StatusSink {
        let (tx, mut rx) = watch::channel(None::<AgentStatus>);
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                loop {
                    let Some(status) = rx.borrow_and_update().clone() else {
                        break;
                    };
                    let Err(e) = writer.put(&status).await else {
                        break;
                    };
                    tracing::warn!(error = %e, "cannot write the agent status; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        changed = rx.changed() => if changed.is_err() { return },
                    }
                }
            }
        });
        StatusSink { tx, task }
    }

    pub fn send(&self, status: AgentStatus) {
        self.tx.send_replace(Some(status));
    }
}

impl Drop for StatusSink {
    fn drop(&mut self) {
        self.task.abort();
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
