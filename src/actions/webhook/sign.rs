//! HMAC-SHA256 (RFC 2104) over the request body, with the RustCrypto `hmac` and `sha2` crates:
//! signing the webhooks Reflex sends, and verifying the ones it receives (`POST /v1/github`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The HMAC-SHA256 state after `message` under `key`.
fn mac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (longer ones are hashed first, RFC 2104 §2), so this
    // cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac
}

/// HMAC-SHA256 of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    mac(key, message).finalize().into_bytes().into()
}

/// The signature header value: `sha256=<lowercase hex>` (the GitHub webhook convention, which
/// most receivers already know how to verify).
pub(crate) fn signature_header(key: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(key, body)))
}

/// Whether `header` is [`signature_header`] of `body` under `key`. The comparison is the `hmac`
/// crate's constant-time one, so timing tells a forger nothing about how close a guess came.
/// The hex digits may be in either case; anything but `sha256=` and 64 of them is refused.
pub(crate) fn verify_signature_header(key: &[u8], body: &[u8], header: &str) -> bool {
    let Some(tag) = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|hex| hex::decode(hex).ok())
    else {
        return false;
    };
    // `verify_slice` refuses a tag of the wrong length before comparing.
    mac(key, body).verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test vectors: a short key, a key shorter than the output, and a key longer than
    // a block (which must be hashed first).
    #[test]
    fn hmac_matches_the_rfc_4231_test_vectors() {
        let case1 = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            hex::encode(case1),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let case2 = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(case2),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let case6 = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(case6),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_signature_header_is_prefixed_hex() {
        let value = signature_header(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            value,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signature_header_verifies_and_malformed_ones_do_not() {
        let key = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        // GitHub's documented example (docs: "Validating webhook deliveries").
        let github = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_signature_header(key, body, github));
        assert!(verify_signature_header(
            key,
            body,
            &github.to_uppercase().replace("SHA256=", "sha256=")
        ));
        for bad in [
            "",
            "sha256=",
            "sha1=757107ea",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=zz",
            &github[..github.len() - 2],
        ] {
            assert!(!verify_signature_header(key, body, bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any body under any key verifies against its own signature, and flipping any one bit
        /// of the body, the key or the signature makes it fail.
        #[test]
        fn any_signature_verifies_and_any_bit_flip_fails(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
            bit in proptest::prelude::any::<usize>(),
        ) {
            let header = signature_header(&key, &body);
            proptest::prop_assert!(verify_signature_header(&key, &body, &header));

            let mut flipped = body.clone();
            flipped[(bit / 8) % body.len()] ^= 1 << (bit % 8);
            proptest::prop_assert!(!verify_signature_header(&key, &flipped, &header));

            let mut tag = hmac_sha256(&key, &body);
            tag[(bit / 8) % 32] ^= 1 << (bit % 8);
            let forged = format!("sha256={}", hex::encode(tag));
            proptest::prop_assert!(!verify_signature_header(&key, &body, &forged));

            if !key.is_empty() {
                let mut other = key.clone();
                other[(bit / 8) % key.len()] ^= 1 << (bit % 8);
                proptest::prop_assert!(!verify_signature_header(&other, &body, &header));
            }
        }
    }
}
