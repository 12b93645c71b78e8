//! Encryption at rest: every object holding server data (bases and segments) can be encrypted
//! with [age](https://age-encryption.org/v1) to X25519 recipients, after compression.
//!
//! Why age: a small, well-reviewed format (X25519 key wrapping, HKDF, ChaCha20-Poly1305 in
//! 64 KiB authenticated chunks, truncation detected) that streams, so bases of any size keep
//! bounded memory; and public-key, so the split of duties is real: the agent that writes needs
//! only the **recipients** (public keys), while reading back (`restore`, `verify`) needs an
//! **identity** (secret key). A host that ships backups and is compromised cannot read the
//! backups it already wrote. Each object gets its own random file key.
//!
//! [`KeyRing`] holds both lists, parsed from the configuration's text; its `Debug` shows counts
//! only. Writing is done by wrapping a sink ([`KeyRing::encrypt`]); reading by wrapping the
//! object's byte stream ([`KeyRing::decrypt`]), which tells a wrong key ([`Unreadable::WrongKey`])
//! from damaged bytes ([`Unreadable::Damaged`]).
//!
//! What is *not* encrypted, and why, is in `docs/SECURITY.md`: manifests, chain heads, the
//! lease and the format marker hold names, sizes, offsets, CRCs and times, no key or value of
//! the dataset, and the agent must read them back with nothing but the public key (to resume a
//! chain, publish snapshots and prune).

use std::fmt;
use std::io::{self, Write};

use age::x25519;
use futures::AsyncBufRead;

/// A key file or variable that does not hold what it should. Carries where it came from and a
/// line number, never the line itself (it may be a secret key pasted into the wrong file).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{origin}, line {line}: not an age X25519 recipient (a public key, `age1...`){hint}")]
    NotARecipient {
        origin: String,
        line: usize,
        hint: &'static str,
    },
    #[error("{origin}, line {line}: not an age X25519 identity (a secret key, `AGE-SECRET-KEY-1...`){hint}")]
    NotAnIdentity {
        origin: String,
        line: usize,
        hint: &'static str,
    },
    #[error("{origin}: holds no key")]
    Empty { origin: String },
}

/// Why an encrypted object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// No identity is configured.
    #[error("no identity configured")]
    NoIdentity,
    /// None of the configured identities opens it.
    #[error("wrong key")]
    WrongKey,
    /// Not a well-formed age object, or its bytes were altered.
    #[error("{0}")]
    Damaged(String),
}

/// The recipients new objects are encrypted to and the identities that read them back.
#[derive(Clone, Default)]
pub struct KeyRing {
    recipients: Vec<x25519::Recipient>,
    identities: Vec<x25519::Identity>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyRing({} recipients, {} identities)",
            self.recipients.len(),
            self.identities.len()
        )
    }
}

/// The lines of a key file that hold something: not blank, not a `#` comment. (line number, text)
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

impl KeyRing {
    /// Parses recipients (`age1...`, one per line, `#` comments) from each `(origin, text)`
    /// and identities (`AGE-SECRET-KEY-1...`, the format `age-keygen` writes) from `identities`.
    /// With identities but no recipient, new objects are encrypted to the identities' public
    /// keys (encryption is on as soon as any key is configured).
    pub fn parse(
        recipients: &[(String, String)],
        identities: Option<(&str, &str)>,
    ) -> Result<KeyRing, KeyError> {
        let mut keys = KeyRing::default();
        for (origin, text) in recipients {
            let before = keys.recipients.len();
            for (line, key) in key_lines(text) {
                let recipient = key.parse::<x25519::Recipient>().map_err(|_| KeyError::NotARecipient {
                    origin: origin.clone(),
                    line,
                    hint: if key.starts_with("AGE-SECRET-KEY-") {
                        ": this is a secret key; give its public key (`age-keygen -y`) and keep the secret off this host"
                    } else {
                        ""
                    },
                })?;
                keys.recipients.push(recipient);
            }
            if keys.recipients.len() == before {
                return Err(KeyError::Empty {
                    origin: origin.clone(),
                });
            }
        }
        if let Some((origin, text)) = identities {
            for (line, key) in key_lines(text) {
                let identity =
                    key.parse::<x25519::Identity>()
                        .map_err(|_| KeyError::NotAnIdentity {
                            origin: origin.to_string(),
                            line,
                            hint: if key.starts_with("age1") {
                                ": this is a public key (a recipient)"
                            } else {
                                ""
                            },
                        })?;
                keys.identities.push(identity);
            }
            if keys.identities.is_empty() {
                return Err(KeyError::Empty {
                    origin: origin.to_string(),
                });
            }
            if keys.recipients.is_empty() {
                keys.recipients = keys
                    .identities
                    .iter()
                    .map(x25519::Identity::to_public)
                    .collect();
            }
        }
        Ok(keys)
    }

    /// Whether new objects are encrypted.
    pub fn encrypts(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// Whether encrypted objects can be read.
    pub fn can_decrypt(&self) -> bool {
        !self.identities.is_empty()
    }

    /// The public keys new objects are encrypted to (`age1...`): not secret, fine to print.
    pub fn recipients(&self) -> Vec<String> {
        self.recipients.iter().map(ToString::to_string).collect()
    }

    /// Wraps `sink`: what is written is encrypted, under a fresh file key, to every recipient.
    /// The caller must call `finish()` on the result, or the object is truncated (and every
    /// reader will say so).
    pub fn encrypt<W: Write>(&self, sink: W) -> io::Result<age::stream::StreamWriter<W>> {
        let encryptor = age::Encryptor::with_recipients(
            self.recipients.iter().map(|r| r as &dyn age::Recipient),
        )
        .map_err(|e| io::Error::other(format!("cannot encrypt: {e}")))?;
        encryptor.wrap_output(sink)
    }

    /// Reads an age header from `input` and opens it with the identities: the result yields
    /// the plain (still compressed) bytes, and fails on any altered or missing chunk.
    pub async fn decrypt<R: AsyncBufRead + Unpin>(
        &self,
        input: R,
    ) -> Result<age::stream::StreamReader<R>, Unreadable> {
        if self.identities.is_empty() {
            return Err(Unreadable::NoIdentity);
        }
        let decryptor = age::Decryptor::new_async_buffered(input)
            .await
            .map_err(classify)?;
        decryptor
            .decrypt_async(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(classify)
    }
}

/// Sorts age's errors into the three things a reader can do something about.
fn classify(e: age::DecryptError) -> Unreadable {
    match e {
        age::DecryptError::NoMatchingKeys => Unreadable::WrongKey,
        age::DecryptError::Io(io) => {
            Unreadable::Damaged(format!("cannot read the age header: {io}"))
        }
        other => Unreadable::Damaged(format!("not a valid age object: {other}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use futures::AsyncReadExt;

    fn identity() -> (String, String) {
        let id = x25519::Identity::generate();
        (
            id.to_string().expose_secret().to_string(),
            id.to_public().to_string(),
        )
    }

    async fn open(keys: &KeyRing, data: &[u8]) -> Result<Vec<u8>, Unreadable> {
        let mut r = keys.decrypt(data).await?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .await
            .map_err(|e| Unreadable::Damaged(e.to_string()))?;
        Ok(out)
    }

    #[tokio::test]
    async fn round_trip_wrong_key_and_tampering() {
        let (secret, public) = identity();
        let writer = KeyRing::parse(
            &[("recipients".into(), format!("# ops key\n{public}\n"))],
            None,
        )
        .unwrap();
        assert!(writer.encrypts() && !writer.can_decrypt());
        let plain: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut w = writer.encrypt(Vec::new()).unwrap();
        w.write_all(&plain).unwrap();
        let sealed = w.finish().unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1\n"));

        assert!(matches!(
            open(&writer, &sealed).await,
            Err(Unreadable::NoIdentity)
        ));
        let reader = KeyRing::parse(&[], Some(("identity", &secret))).unwrap();
        assert_eq!(open(&reader, &sealed).await.unwrap(), plain);

        let (other, _) = identity();
        let stranger = KeyRing::parse(&[], Some(("identity", &other))).unwrap();
        assert!(matches!(
            open(&stranger, &sealed).await,
            Err(Unreadable::WrongKey)
        ));
        // Several identities (a rotation): any one that matches opens it.
        let both =
            KeyRing::parse(&[], Some(("identity", &format!("{other}\n{secret}\n")))).unwrap();
        assert_eq!(open(&both, &sealed).await.unwrap(), plain);

        let mut flipped = sealed.clone();
        let at = flipped.len() - 1000;
        flipped[at] ^= 1;
        assert!(matches!(
            open(&reader, &flipped).await,
            Err(Unreadable::Damaged(_))
        ));
        let cut = &sealed[..sealed.len() - 70_000];
        assert!(matches!(
            open(&reader, cut).await,
            Err(Unreadable::Damaged(_))
        ));
        assert!(matches!(
            open(&reader, b"*1\r\n$4\r\nPING\r\n").await,
            Err(Unreadable::Damaged(_))
        ));
    }

    #[test]
    fn key_files_are_checked_without_echoing_them() {
        let (secret, public) = identity();
        let e =
            KeyRing::parse(&[("r.txt".into(), format!("{public}\n{secret}\n"))], None).unwrap_err();
        assert!(matches!(e, KeyError::NotARecipient { line: 2, .. }), "{e}");
        assert!(!e.to_string().contains(&secret[20..]), "{e}");
        assert!(e.to_string().contains("secret key"), "{e}");
        let e = KeyRing::parse(&[], Some(("id.txt", &public))).unwrap_err();
        assert!(matches!(e, KeyError::NotAnIdentity { line: 1, .. }), "{e}");
        assert!(matches!(
            KeyRing::parse(&[("r".into(), "# none\n".into())], None),
            Err(KeyError::Empty { .. })
        ));
        // An identity alone encrypts to its own public key.
        let keys = KeyRing::parse(&[], Some(("id", &secret))).unwrap();
        assert_eq!(keys.recipients(), vec![public]);
        assert!(!format!("{keys:?}").contains("AGE-SECRET"));
    }

    /// Through the repository: segments and streamed files are stored encrypted and read back
    /// only with the identity; without it, or with another, the error names the object.
    #[tokio::test]
    async fn repository_objects_are_encrypted_and_read_back() {
        use crate::repo::{Codec, Repo, RepoError, RepoSpec, ShardId};
        let (secret, public) = identity();
        let spec = RepoSpec::Memory(format!("crypt-{}", rand::random::<u64>()));
        let writer = Repo::open(&spec, 3)
            .unwrap()
            .with_key_ring(KeyRing::parse(&[("r".into(), public)], None).unwrap());
        assert_eq!(writer.codec(), Codec::ZstdAge);
        let payload = b"*3\r\n$3\r\nSET\r\n$9\r\nsecretkey\r\n$5\r\nhello\r\n".repeat(1000);
        let seg = writer
            .put_segment("i", ShardId(0), "c", 0, &payload, (1, 2))
            .await
            .unwrap();
        assert!(seg.object.ends_with(".zst.age"), "{}", seg.object);
        let key = format!(
            "{}{}",
            crate::repo::keys::chain_dir("i", ShardId(0), "c"),
            seg.object
        );
        let stored = writer.get(&key).await.unwrap();
        assert!(!stored.windows(9).any(|w| w == b"secretkey"));

        let file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &file, &payload).unwrap();
        std::io::Seek::rewind(&mut &file).unwrap();
        let base_key = "i/base-0.zst.age";
        let (size, crc) = writer.put_file(base_key, file, None).await.unwrap();
        assert_eq!(
            (size, crc),
            (payload.len() as u64, crc32c::crc32c(&payload))
        );

        let reader = Repo::open(&spec, 3)
            .unwrap()
            .with_key_ring(KeyRing::parse(&[], Some(("id", &secret))).unwrap());
        for k in [key.as_str(), base_key] {
            let got = reader
                .download(k, crc, Some(size), Vec::new())
                .await
                .unwrap();
            assert_eq!(got, payload);
            let e = writer
                .download(k, crc, Some(size), Vec::new())
                .await
                .unwrap_err();
            assert!(
                matches!(&e, RepoError::Encrypted { key } if key == k),
                "{e}"
            );
            assert!(e.to_string().contains("encryption_identity_file"), "{e}");
        }
        let (other, _) = identity();
        let stranger = Repo::open(&spec, 3)
            .unwrap()
            .with_key_ring(KeyRing::parse(&[], Some(("id", &other))).unwrap());
        let e = stranger
            .download(&key, crc, None, Vec::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, RepoError::WrongKey { key: k } if *k == key),
            "{e}"
        );
        // The checksum of the plain bytes is still checked after decryption.
        let e = reader
            .download(&key, crc ^ 1, None, Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(e, RepoError::Corrupt { .. }), "{e}");
    }
}
