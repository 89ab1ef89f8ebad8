//! Standard base64 (RFC 4648 §4), the encoding of CloudEvents `data_base64`, through the
//! `base64` crate with the leniency producers need: padding is optional when decoding and
//! non-zero trailing bits are accepted.

use ::base64::Engine as _;
use ::base64::alphabet;
use ::base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Encodes with padding; decodes text whose padding was already stripped.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes bytes with padding.
pub(super) fn encode(bytes: &[u8]) -> String {
    ENGINE.encode(bytes)
}

/// Decodes padded or unpadded base64; `None` for any character outside the alphabet or an
/// impossible length.
pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
    // Up to two `=` of padding, whether or not their number matches the length (producers
    // differ); the crate then decodes the rest as unpadded.
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 {
        return None;
    }
    ENGINE.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_test_vectors_encode_and_decode() {
        // RFC 4648 §10.
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(
                decode(encoded).as_deref(),
                Some(plain.as_bytes()),
                "{encoded}"
            );
        }
    }

    #[test]
    fn unpadded_input_decodes_like_padded() {
        assert_eq!(decode("Zm9vYg"), decode("Zm9vYg=="));
    }

    #[test]
    fn every_byte_value_survives_a_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&bytes)), Some(bytes));
    }

    #[test]
    fn characters_outside_the_alphabet_and_bad_lengths_are_refused() {
        assert_eq!(decode("Zm9v!"), None);
        assert_eq!(decode("Zm9vY"), None);
        assert_eq!(decode("Zg==="), None);
    }
}
