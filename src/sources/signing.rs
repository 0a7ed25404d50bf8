//! Shared signature mechanics for the HMAC sources: keyed MACs over several byte parts,
//! constant-time comparison against every secret and every offered signature, and the
//! replay window for signed timestamps.
//!
//! Sources decide which bytes are signed and how the header is written; this module only
//! does the arithmetic, so that the constant-time and no-early-exit rules live in one place.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac, digest::KeyInit};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::SignatureError;
pub use crate::config::HmacAlgorithm;

/// Whether any key's MAC over `parts` (concatenated) equals any of `offered`.
///
/// Every key is tried against every offered signature with no early exit, and each
/// comparison is constant-time (`verify_slice`), so timing reveals neither which secret
/// matched nor how much of a guess was right.
pub fn any_matches(
    algorithm: HmacAlgorithm,
    keys: &[&[u8]],
    parts: &[&[u8]],
    offered: &[Vec<u8>],
) -> bool {
    keys.iter().fold(false, |matched, key| {
        let this = match algorithm {
            HmacAlgorithm::Sha256 => matches_with::<Hmac<Sha256>>(key, parts, offered),
            HmacAlgorithm::Sha512 => matches_with::<Hmac<Sha512>>(key, parts, offered),
            HmacAlgorithm::Sha1 => matches_with::<Hmac<Sha1>>(key, parts, offered),
        };
        matched | this
    })
}

fn matches_with<M: Mac + KeyInit + Clone>(
    key: &[u8],
    parts: &[&[u8]],
    offered: &[Vec<u8>],
) -> bool {
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    offered.iter().fold(false, |matched, candidate| {
        mac.clone().verify_slice(candidate).is_ok() | matched
    })
}

/// The MAC itself, for tests and for tools that sign sample requests.
pub fn mac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn with<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match <M as KeyInit>::new_from_slice(key) {
            Ok(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    match algorithm {
        HmacAlgorithm::Sha256 => with::<Hmac<Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => with::<Hmac<Sha512>>(key, parts),
        HmacAlgorithm::Sha1 => with::<Hmac<Sha1>>(key, parts),
    }
}

/// Reads a Unix-seconds timestamp header value.
pub fn unix_seconds(
    header: &'static str,
    value: &str,
    provider: &'static str,
) -> Result<i64, SignatureError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| SignatureError::Malformed {
            header,
            encoding: "Unix-seconds timestamp",
            provider,
        })
}

/// Refuses a signed timestamp outside `now ± tolerance`: an old one is a replay or a
/// long-delayed request, a future one a wrong clock.
pub fn check_timestamp(
    header: &'static str,
    timestamp: i64,
    now: SystemTime,
    tolerance_seconds: u64,
) -> Result<(), SignatureError> {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let tolerance = i64::try_from(tolerance_seconds).unwrap_or(i64::MAX);
    let age = now.saturating_sub(timestamp);
    if age > tolerance {
        return Err(SignatureError::StaleTimestamp {
            header,
            age_seconds: age.unsigned_abs(),
            tolerance_seconds,
        });
    }
    if -age > tolerance {
        return Err(SignatureError::FutureTimestamp {
            header,
            ahead_seconds: age.unsigned_abs(),
            tolerance_seconds,
        });
    }
    Ok(())
}

/// Decodes lowercase or uppercase hex; `None` if it is not hex.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lowercase hex, for tests and signing tools.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_timestamp_inside_the_window_passes_and_outside_it_names_the_direction() {
        assert!(check_timestamp("t", 1_000, at(1_300), 300).is_ok());
        assert!(check_timestamp("t", 1_300, at(1_000), 300).is_ok());
        assert_eq!(
            check_timestamp("t", 1_000, at(1_301), 300).unwrap_err(),
            SignatureError::StaleTimestamp {
                header: "t",
                age_seconds: 301,
                tolerance_seconds: 300
            }
        );
        let future = check_timestamp("t", 1_400, at(1_000), 300).unwrap_err();
        assert_eq!(future.code(), "future_timestamp");
        assert!(future.to_string().contains("400 s in the future"));
    }

    #[test]
    fn every_key_and_every_offered_signature_is_tried() {
        let good = mac(HmacAlgorithm::Sha256, b"new", &[b"a", b"b"]);
        let keys: &[&[u8]] = &[b"old", b"new"];
        let offered = vec![vec![0; 32], good.clone()];
        assert!(any_matches(HmacAlgorithm::Sha256, keys, &[b"ab"], &offered));
        assert!(!any_matches(
            HmacAlgorithm::Sha256,
            &[b"old"],
            &[b"ab"],
            &offered
        ));
        assert!(!any_matches(
            HmacAlgorithm::Sha512,
            keys,
            &[b"ab"],
            &offered
        ));
        assert_eq!(mac(HmacAlgorithm::Sha1, b"k", &[b"x"]).len(), 20);
        assert_eq!(mac(HmacAlgorithm::Sha512, b"k", &[b"x"]).len(), 64);
    }

    #[test]
    fn hex_round_trips_and_rejects_non_hex() {
        assert_eq!(decode_hex("00ff10").unwrap(), vec![0, 255, 16]);
        assert_eq!(encode_hex(&[0, 255, 16]), "00ff10");
        assert!(decode_hex("0g").is_none());
        assert!(decode_hex("abc").is_none());
    }
}
