//! The one codec of opaque page cursors, for the keyset pages of the listings ([`crate::query`])
//! and of recommendations ([`crate::recommendations::serving`]): a cursor is its own small
//! serde struct, as JSON, in unpadded URL-safe base64, so it travels in a query string as is.
//! Anything that does not decode into the expected struct is not a cursor this service issued.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The cursor's text.
pub(crate) fn encode<T: Serialize>(cursor: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).expect("a cursor serializes"))
}

/// The cursor `text` stands for, or `None` if it is not one of type `T`.
pub(crate) fn decode<T: DeserializeOwned>(text: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Example {
        k: f64,
        id: String,
    }

    #[test]
    fn cursors_round_trip_in_url_safe_text() {
        let cursor = Example {
            k: 3.75,
            id: "a/b+c?".into(),
        };
        let text = encode(&cursor);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{text}"
        );
        assert_eq!(decode::<Example>(&text), Some(cursor));
        assert_eq!(decode::<Example>("!!"), None);
        assert_eq!(
            decode::<Example>(&URL_SAFE_NO_PAD.encode(b"{\"k\":1}")),
            None
        );
    }
}
