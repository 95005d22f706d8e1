//! MessagePack encoding of envelopes with named fields (maps, not arrays), so that fields can be
//! added later without breaking readers of either age.

use crate::event::Envelope;

/// An envelope could not be encoded; only a bug produces this.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode event: {0}")]
pub struct EncodeError(#[from] rmp_serde::encode::Error);

/// Bytes from the log are not an envelope this build understands.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode event: {0}")]
pub struct DecodeError(#[from] rmp_serde::decode::Error);

/// Encodes an envelope for the log.
pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
    Ok(rmp_serde::to_vec_named(envelope)?)
}

/// Decodes an envelope read from the log.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    Ok(rmp_serde::from_slice(bytes)?)
}
