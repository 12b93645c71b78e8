//! Module type ids. A module value (type 7) and module aux data (opcode 0xF7) start with a 64-bit
//! id packing the module type's 9-character name (6 bits per character) above a 10-bit encoding
//! version; the name is what a user needs to know which module the data needs.

const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The 9-character module type name packed in `id`.
pub(crate) fn module_name(id: u64) -> String {
    (0..9)
        .map(|i| {
            let shift = 10 + 6 * (8 - i);
            char::from(CHARSET[((id >> shift) & 63) as usize])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(name: &[u8; 9], encver: u64) -> u64 {
        let mut id = 0u64;
        for c in name {
            let index = CHARSET.iter().position(|x| x == c).unwrap_or(0) as u64;
            id = (id << 6) | index;
        }
        (id << 10) | encver
    }

    #[test]
    fn names_round_trip() {
        for name in [b"ReJSON-RL", b"hellotype", b"MBbloom--", b"_-0123zZa"] {
            assert_eq!(module_name(encode(name, 3)), String::from_utf8_lossy(name));
        }
    }
}
