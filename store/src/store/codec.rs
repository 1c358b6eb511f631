//! Values as etcd holds them: JSON bounded by [`crate::MAX_WRITE_BYTES`], with their key's
//! revisions; and the key-range arithmetic of prefix lists.

use etcd_client::KeyValue;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::StoreError;
use crate::store::Versioned;

pub(crate) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        key: key.to_string(),
        source,
    })?;
    if key.len() + bytes.len() > crate::MAX_WRITE_BYTES {
        return Err(StoreError::TooLarge {
            key: key.to_string(),
            size: key.len() + bytes.len(),
            limit: crate::MAX_WRITE_BYTES,
        });
    }
    Ok(bytes)
}

pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: key.to_string(),
        source,
    })
}

pub(crate) fn versioned<T: DeserializeOwned>(kv: &KeyValue) -> Result<Versioned<T>, StoreError> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    Ok(Versioned {
        value: decode(&key, kv.value())?,
        key,
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
    })
}

pub(crate) fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// The end of the range holding every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/romana/v1/"), b"/romana/v10".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
