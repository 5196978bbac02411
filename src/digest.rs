//! Content digests (`algorithm:hex`) as the OCI image spec defines them, for the algorithms this
//! registry verifies: sha256 and sha512.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm this registry can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Returns the registered name used in the `algorithm:hex` form.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Returns the number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Creates an incremental hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// An incremental hasher that yields a [`Digest`].
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_parts(Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => Digest::from_parts(Algorithm::Sha512, hex::encode(h.finalize())),
        }
    }
}

/// A validated digest: a supported algorithm and its lower-case hex encoding of the right length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// The reason a string is not a digest this registry accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} is not of the form algorithm:encoded, with a lower-case algorithm such as sha256")]
    Malformed(String),
    #[error("digest {0:?} uses an unsupported algorithm; use sha256 or sha512")]
    UnsupportedAlgorithm(String),
    #[error("digest {0:?} must have {1} lower-case hex characters after the algorithm")]
    BadEncoding(String, usize),
}

impl Digest {
    fn from_parts(algorithm: Algorithm, hex: String) -> Digest {
        Digest { algorithm, hex }
    }

    /// Computes the digest of `data` with `algorithm`.
    pub fn compute(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut hasher = algorithm.hasher();
        hasher.update(data);
        hasher.finish()
    }

    /// Computes the sha256 digest of `data`, the canonical algorithm.
    pub fn sha256(data: &[u8]) -> Digest {
        Digest::compute(Algorithm::Sha256, data)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Returns the hex encoding, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Parses `algorithm:hex`. The OCI grammar allows other algorithms and encodings, which are
    /// rejected here as unsupported rather than malformed, so the caller can tell them apart.
    fn from_str(value: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, encoded)) = value.split_once(':') else {
            return Err(DigestError::Malformed(value.to_owned()));
        };

        let algorithm_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let encoded_ok = !encoded.is_empty()
            && encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b));
        if !algorithm_ok || !encoded_ok {
            return Err(DigestError::Malformed(value.to_owned()));
        }

        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(DigestError::UnsupportedAlgorithm(value.to_owned())),
        };

        let hex_ok = encoded.len() == algorithm.hex_len()
            && encoded.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(DigestError::BadEncoding(value.to_owned(), algorithm.hex_len()));
        }

        Ok(Digest::from_parts(algorithm, encoded.to_owned()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_accepts_sha256_and_sha512() {
        let digest: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(digest, Digest::sha256(b""));
        assert_eq!(digest.to_string(), EMPTY_SHA256);

        let sha512 = Digest::compute(Algorithm::Sha512, b"abc");
        assert_eq!(sha512.to_string().parse::<Digest>().unwrap(), sha512);
    }

    #[test]
    fn parse_rejects_bad_input_with_typed_errors() {
        let cases = [
            ("", DigestError::Malformed(String::new())),
            ("sha256", DigestError::Malformed("sha256".into())),
            ("sha256:", DigestError::Malformed("sha256:".into())),
            (":abc", DigestError::Malformed(":abc".into())),
            ("SHA256:abc", DigestError::Malformed("SHA256:abc".into())),
            ("md5:abc", DigestError::UnsupportedAlgorithm("md5:abc".into())),
            ("sha256:abc", DigestError::BadEncoding("sha256:abc".into(), 64)),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Digest>().unwrap_err(), expected, "input {input:?}");
        }

        let upper = EMPTY_SHA256.to_uppercase().replace("SHA256", "sha256");
        assert!(matches!(upper.parse::<Digest>(), Err(DigestError::BadEncoding(..))));
        let trailing = format!("{EMPTY_SHA256}0");
        assert!(matches!(trailing.parse::<Digest>(), Err(DigestError::BadEncoding(..))));
        let path = "sha256:../../etc/passwd";
        assert!(matches!(path.parse::<Digest>(), Err(DigestError::Malformed(_))));
    }
}
