//! Serde helpers shared by commands and stored payloads.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::aggregate::EventDecodeError;

/// Deserializes a present field (even `null`) as `Some`, so that together with `#[serde(default)]`
/// an absent field means "unchanged" and an explicit `null` means "clear".
pub(crate) fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Decodes a stored payload into one of the private per-version payload structs.
pub(crate) fn decode_payload<T: DeserializeOwned>(
    event_type: &str,
    version: u32,
    payload: &serde_json::Value,
) -> Result<T, EventDecodeError> {
    T::deserialize(payload)
        .map_err(|error| EventDecodeError::malformed(event_type, version, error.to_string()))
}

/// Encodes a payload struct; the structs only hold strings, numbers and lists, so this cannot fail.
pub(crate) fn encode_payload<T: serde::Serialize>(payload: &T) -> serde_json::Value {
    serde_json::to_value(payload).expect("payload structs always serialize to json")
}
