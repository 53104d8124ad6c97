//! Optional encryption at rest with age (X25519): blobs and manifests
//! are `age(zstd(content))`, readable with the `age` and `zstd` tools and
//! the key. Blob names are keyed BLAKE3 hashes, so equal contents are
//! not recognisable without the key.

use std::io::{self, BufReader, Read, Write};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

/// Derives the object-name key from the secret key.
const NAME_CONTEXT: &str = "acp-backup 2026-11 object names";

/// The key of an encrypted repository.
pub struct Cipher {
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
    names: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher({})", self.recipient)
    }
}

impl Cipher {
    /// Reads an `AGE-SECRET-KEY-1...` key.
    ///
    /// # Errors
    /// A message saying what a key looks like (never echoing the input).
    pub(crate) fn from_key(key: &str) -> Result<Self, String> {
        let identity = age::x25519::Identity::from_str(key.trim()).map_err(|_| {
            "ACP_BACKUP_KEY is not an age secret key (AGE-SECRET-KEY-1...): make one with `acp backup keygen`".to_owned()
        })?;
        let secret = identity.to_string();
        let names = blake3::derive_key(NAME_CONTEXT, secret.expose_secret().as_bytes());
        Ok(Self {
            recipient: identity.to_public(),
            identity,
            names,
        })
    }

    /// A new random key: `(secret, public recipient)`.
    #[must_use]
    pub fn generate() -> (String, String) {
        let identity = age::x25519::Identity::generate();
        (
            identity.to_string().expose_secret().to_owned(),
            identity.to_public().to_string(),
        )
    }

    /// The public half, recorded in the repository marker.
    #[must_use]
    pub fn recipient(&self) -> String {
        self.recipient.to_string()
    }

    /// The on-disk name of the object holding content with this hash.
    #[must_use]
    pub(crate) fn object_name(&self, hash: &str) -> String {
        blake3::keyed_hash(&self.names, hash.as_bytes())
            .to_hex()
            .to_string()
    }

    /// Wraps a writer so what is written is encrypted; call `finish` on it.
    ///
    /// # Errors
    /// I/O errors writing the header.
    pub(crate) fn encrypt<W: Write>(&self, out: W) -> io::Result<age::stream::StreamWriter<W>> {
        age::Encryptor::with_recipients(std::iter::once(&self.recipient as &dyn age::Recipient))
            .map_err(io::Error::other)?
            .wrap_output(out)
    }

    /// Encrypts a whole buffer.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn encrypt_bytes(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plain.len() + 256);
        let mut w = self.encrypt(&mut out)?;
        w.write_all(plain)?;
        w.finish()?;
        Ok(out)
    }

    /// Wraps a seekable reader of encrypted data: reads from any point of
    /// the plaintext, each 64 KiB piece authenticated as it is read.
    ///
    /// # Errors
    /// Why it cannot be decrypted (damaged, or another key).
    pub(crate) fn decrypt_seekable<R: std::io::BufRead + std::io::Seek>(
        &self,
        input: R,
    ) -> Result<age::stream::StreamReader<R>, String> {
        age::Decryptor::new_buffered(input)
            .map_err(|e| e.to_string())?
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .map_err(|e| e.to_string())
    }

    /// Wraps a reader of encrypted data.
    ///
    /// # Errors
    /// Why it cannot be decrypted (damaged, or another key).
    pub(crate) fn decrypt<'a, R: Read + 'a>(&self, input: R) -> Result<Box<dyn Read + 'a>, String> {
        let decryptor = age::Decryptor::new(BufReader::new(input)).map_err(|e| e.to_string())?;
        let reader = decryptor
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .map_err(|e| e.to_string())?;
        Ok(Box::new(reader))
    }
}
