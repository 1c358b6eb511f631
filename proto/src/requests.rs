//! Shorthands for requests that many clients build the same way, so a field added to the
//! message later is defaulted in one place.

use crate::pb;

impl pb::ReleaseRequest {
    /// Release whatever endpoint `id` holds.
    pub fn endpoint(id: impl Into<String>) -> pb::ReleaseRequest {
        pb::ReleaseRequest {
            target: Some(pb::release_request::Target::Endpoint(id.into())),
            ..Default::default()
        }
    }

    /// Release whichever endpoint holds `address`.
    pub fn address(address: impl Into<String>) -> pb::ReleaseRequest {
        pb::ReleaseRequest {
            target: Some(pb::release_request::Target::Address(address.into())),
            ..Default::default()
        }
    }

    /// Only if the holder carries all `labels` (see `if_labels` in ipam.proto).
    pub fn if_labels<K, V>(mut self, labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.if_labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }
}
