//! Helpers shared by the integration tests.
#![allow(dead_code)]

use xenbus::wire::{Header, MsgType, HEADER_LEN};

/// One whole message: header and payload.
pub fn msg(ty: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    Header { msg_type: ty, req_id, tx_id, payload_len: payload.len() }
        .emit(&mut out)
        .expect("test message fits")
        .payload_mut()
        .copy_from_slice(payload);
    out
}

/// A message with a raw type and length field (for hostile headers).
pub fn raw_header(ty: u32, req_id: u32, tx_id: u32, len: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&ty.to_le_bytes());
    h[4..8].copy_from_slice(&req_id.to_le_bytes());
    h[8..12].copy_from_slice(&tx_id.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h
}
