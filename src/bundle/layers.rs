//! The outer layers of an object in the sync dir: zstd compression, then
//! age encryption. A bundle is plain JSON; in the sync dir it is stored as
//! `zstd(bundle)`, or `age(zstd(bundle))` when the sync dir is encrypted.
//! Readers recognise each layer by its magic bytes, so plain bundles (older
//! sync dirs, exported files) still read.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use super::BundleError;

const AGE_MAGIC: &[u8] = b"age-encryption.org/";
const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";
/// zstd's default: most of the ratio at a small cost in time.
const ZSTD_LEVEL: i32 = 3;

type Identity = Box<dyn age::Identity + Send + Sync>;
type Recipient = Box<dyn age::Recipient + Send + Sync>;

/// How objects are written to and read from one sync dir.
#[derive(Default)]
pub struct Layers {
    /// Compress what is written (on by default in the sync dir).
    pub compress: bool,
    /// Encrypt what is written to these; the sync dir is encrypted when
    /// there are any, and then nothing plain is read from it.
    recipients: Vec<(String, Recipient)>,
    /// What this machine decrypts with.
    identities: Vec<Identity>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers")
            .field("compress", &self.compress)
            .field("recipients", &self.recipient_keys())
            .field("identities", &self.identities.len())
            .finish()
    }
}

/// A key this machine cannot use, and why.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{0:?} is not an age public key (age1…) or an ssh public key line (ssh-ed25519 …, ssh-rsa …), nor a file of them"
    )]
    NotARecipient(String),
    #[error("{path}: {reason}")]
    Identity { path: String, reason: String },
}

impl Layers {
    /// Plain objects, compressed.
    pub fn compressed() -> Self {
        Self {
            compress: true,
            ..Self::default()
        }
    }

    /// Compressed and encrypted to `recipients` (public key lines), read
    /// with the identity in `identity_file` (if given).
    pub fn encrypted(
        recipients: &[String],
        identity_file: Option<&Path>,
    ) -> Result<Self, KeyError> {
        let mut layers = Self::compressed();
        for r in recipients {
            layers.recipients.push((r.clone(), parse_recipient(r)?));
        }
        if let Some(path) = identity_file {
            layers.identities = read_identity(path)?;
        }
        Ok(layers)
    }

    pub fn is_encrypted(&self) -> bool {
        !self.recipients.is_empty()
    }

    pub fn has_identity(&self) -> bool {
        !self.identities.is_empty()
    }

    pub fn recipient_keys(&self) -> Vec<&str> {
        self.recipients.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Wraps `out` so that what is written to it is stored with these
    /// layers. Call [`LayeredWriter::finish`] at the end.
    pub fn writer<W: Write + Send>(&self, out: W) -> io::Result<LayeredWriter<W>> {
        let inner = if self.is_encrypted() {
            let encryptor = age::Encryptor::with_recipients(
                self.recipients
                    .iter()
                    .map(|(_, r)| r.as_ref() as &dyn age::Recipient),
            )
            .map_err(io::Error::other)?;
            Inner::Age(encryptor.wrap_output(out)?)
        } else {
            Inner::Plain(out)
        };
        Ok(LayeredWriter(if self.compress {
            Outer::Zstd(zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?)
        } else {
            Outer::Raw(inner)
        }))
    }

    /// Unwraps the layers of an object being read: decrypts (refusing a
    /// plain object when the sync dir is encrypted) and decompresses.
    pub fn reader<'a, R: Read + 'a>(&'a self, input: R) -> Result<Box<dyn Read + 'a>, BundleError> {
        self.reader_in(input, None)
    }

    /// The same, decompressing with `context` when given: one context
    /// serves many objects read one after another (making one per object
    /// cost more than decoding a small one).
    pub fn reader_in<'a, R: Read + 'a>(
        &'a self,
        input: R,
        context: Option<&'a mut zstd::zstd_safe::DCtx<'static>>,
    ) -> Result<Box<dyn Read + 'a>, BundleError> {
        let mut input = BufReader::with_capacity(1 << 16, input);
        let start = input.fill_buf()?;
        let after_age: Box<dyn Read + 'a> = if start.starts_with(AGE_MAGIC) {
            if self.identities.is_empty() {
                return Err(BundleError::Encrypted(
                    "it is encrypted (age) and this machine has no identity for the sync dir; run `ccsync init LOCATION --identity FILE --recipient KEY…`".into(),
                ));
            }
            let decryptor = age::Decryptor::new_buffered(input).map_err(decrypt_error)?;
            let plain = decryptor
                .decrypt(
                    self.identities
                        .iter()
                        .map(|i| i.as_ref() as &dyn age::Identity),
                )
                .map_err(decrypt_error)?;
            Box::new(Tampered(plain))
        } else if self.is_encrypted() {
            return Err(BundleError::Encrypted(
                "it is not encrypted, in a sync dir that is: a plaintext object is refused (someone without the keys wrote it, or an older ccsync); remove it".into(),
            ));
        } else {
            Box::new(input)
        };
        let mut after_age = BufReader::with_capacity(1 << 16, after_age);
        if after_age.fill_buf()?.starts_with(ZSTD_MAGIC) {
            Ok(match context {
                Some(context) => Box::new(zstd::stream::read::Decoder::with_context(
                    after_age, context,
                )),
                None => Box::new(zstd::stream::read::Decoder::with_buffer(after_age)?),
            })
        } else {
            Ok(Box::new(after_age))
        }
    }
}

/// What an age failure means to the user.
fn decrypt_error(e: age::DecryptError) -> BundleError {
    BundleError::Encrypted(match e {
        age::DecryptError::NoMatchingKeys => {
            "it is encrypted to other keys than this machine's identity; add this machine's public key on a machine that can read it (`ccsync recipients add KEY`)".into()
        }
        age::DecryptError::InvalidMac | age::DecryptError::DecryptionFailed => {
            "its encryption does not check out: it was altered or damaged".into()
        }
        other => format!("it cannot be decrypted: {other}"),
    })
}

/// The age stream reports a failed authentication tag as an I/O error in
/// the middle of reading; say what it means.
struct Tampered<R>(R);

impl<R: Read> Read for Tampered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                io::Error::new(
                    e.kind(),
                    "its encrypted contents do not check out: altered or cut short",
                )
            } else {
                e
            }
        })
    }
}

enum Inner<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Write for Inner<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Inner::Plain(w) => w.write(buf),
            Inner::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Inner::Plain(w) => w.flush(),
            Inner::Age(w) => w.flush(),
        }
    }
}

impl<W: Write> Inner<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Inner::Plain(w) => Ok(w),
            Inner::Age(w) => w.finish(),
        }
    }
}

/// A writer that stores with the layers; [`finish`](Self::finish) ends
/// them (a compressed or encrypted object is incomplete without it).
pub struct LayeredWriter<W: Write>(Outer<W>);

enum Outer<W: Write> {
    Raw(Inner<W>),
    Zstd(zstd::stream::write::Encoder<'static, Inner<W>>),
}

impl<W: Write> Write for LayeredWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Outer::Raw(w) => w.write(buf),
            Outer::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Outer::Raw(w) => w.flush(),
            Outer::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> LayeredWriter<W> {
    pub fn finish(self) -> io::Result<W> {
        match self.0 {
            Outer::Raw(w) => w.finish(),
            Outer::Zstd(w) => w.finish()?.finish(),
        }
    }
}

/// A public key: `age1…`, or an ssh public key line.
pub fn parse_recipient(key: &str) -> Result<Recipient, KeyError> {
    let key = key.trim();
    if key.starts_with("age1") {
        return age::x25519::Recipient::from_str(key)
            .map(|r| Box::new(r) as Recipient)
            .map_err(|_| KeyError::NotARecipient(key.into()));
    }
    if key.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(key)
            .map(|r| Box::new(r) as Recipient)
            .map_err(|_| KeyError::NotARecipient(key.into()));
    }
    Err(KeyError::NotARecipient(key.into()))
}

/// `KEY` as given on the command line: a public key, or a file of them (one
/// per line; `#` comments). Returns the keys, each checked.
pub fn recipient_keys(arg: &str) -> Result<Vec<String>, KeyError> {
    if parse_recipient(arg).is_ok() {
        return Ok(vec![arg.trim().to_owned()]);
    }
    let Ok(text) = std::fs::read_to_string(arg) else {
        return Err(KeyError::NotARecipient(arg.into()));
    };
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for k in &keys {
        parse_recipient(k)?;
    }
    if keys.is_empty() {
        return Err(KeyError::NotARecipient(arg.into()));
    }
    Ok(keys)
}

/// An age identity file, or an unencrypted OpenSSH private key.
fn read_identity(path: &Path) -> Result<Vec<Identity>, KeyError> {
    let err = |reason: String| KeyError::Identity {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----")
        || text.contains("-----BEGIN RSA PRIVATE KEY-----")
    {
        let id = age::ssh::Identity::from_buffer(&bytes[..], Some(path.display().to_string()))
            .map_err(|e| err(e.to_string()))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(id)]),
            age::ssh::Identity::Encrypted(_) => Err(err(
                "a passphrase-protected ssh key cannot be used unattended; give an unencrypted key or an age identity file".into(),
            )),
            age::ssh::Identity::Unsupported(_) => Err(err("this kind of ssh key is not supported by age; use ed25519 or rsa".into())),
        };
    }
    let file = age::IdentityFile::from_buffer(&bytes[..]).map_err(|e| err(e.to_string()))?;
    let ids = file.into_identities().map_err(|e| err(e.to_string()))?;
    if ids.is_empty() {
        return Err(err("holds no age identity (AGE-SECRET-KEY-1…)".into()));
    }
    Ok(ids)
}

/// Whether `layers`' identity can read what is encrypted to `recipients`:
/// a small probe is encrypted to them and decrypted.
pub fn can_read(layers: &Layers, recipients: &[String]) -> Result<bool, KeyError> {
    let probe = Layers::encrypted(recipients, None)?;
    let mut sealed = Vec::new();
    let mut w = probe
        .writer(&mut sealed)
        .map_err(|e| KeyError::NotARecipient(e.to_string()))?;
    w.write_all(b"ccsync")
        .map_err(|e| KeyError::NotARecipient(e.to_string()))?;
    w.finish()
        .map_err(|e| KeyError::NotARecipient(e.to_string()))?;
    let mut out = Vec::new();
    let opened = layers
        .reader(&sealed[..])
        .and_then(|mut r| r.read_to_end(&mut out).map_err(BundleError::Io));
    Ok(opened.is_ok() && out == b"ccsync")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(dir: &Path, name: &str) -> (String, std::path::PathBuf) {
        let id = age::x25519::Identity::generate();
        let path = dir.join(name);
        use age::secrecy::ExposeSecret;
        std::fs::write(&path, id.to_string().expose_secret()).unwrap();
        (id.to_public().to_string(), path)
    }

    fn round_trip(w: &Layers, r: &Layers, data: &[u8]) -> Result<Vec<u8>, BundleError> {
        let mut stored = Vec::new();
        let mut out = w.writer(&mut stored).unwrap();
        out.write_all(data).unwrap();
        out.finish().unwrap();
        let mut back = Vec::new();
        r.reader(&stored[..])?.read_to_end(&mut back)?;
        Ok(back)
    }

    #[test]
    fn layers_round_trip_and_refuse_what_they_must() {
        let dir = tempfile::tempdir().unwrap();
        let (a_pub, a_key) = keypair(dir.path(), "a");
        let (_, other_key) = keypair(dir.path(), "other");
        let data = b"{\"jsonl\":\"secret prompt\"}".repeat(1000);
        let plain = Layers::default();
        let zstd = Layers::compressed();
        let enc = Layers::encrypted(std::slice::from_ref(&a_pub), Some(&a_key)).unwrap();
        let stranger = Layers::encrypted(std::slice::from_ref(&a_pub), Some(&other_key)).unwrap();
        // Plain and compressed objects read anywhere unencrypted.
        for w in [&plain, &zstd] {
            assert_eq!(round_trip(w, &zstd, &data).unwrap(), data);
        }
        assert_eq!(round_trip(&enc, &enc, &data).unwrap(), data);
        let mut stored = Vec::new();
        let mut out = enc.writer(&mut stored).unwrap();
        out.write_all(&data).unwrap();
        out.finish().unwrap();
        assert!(!stored.windows(6).any(|w| w == b"secret"));
        assert!(stored.len() < data.len() / 10, "compressed first");
        let msg = |r: Result<Vec<u8>, BundleError>| r.unwrap_err().to_string();
        assert!(msg(round_trip(&enc, &stranger, &data)).contains("other keys"));
        assert!(msg(round_trip(&enc, &zstd, &data)).contains("no identity"));
        assert!(msg(round_trip(&zstd, &enc, &data)).contains("not encrypted"));
        // Altered ciphertext.
        let mut bad = stored.clone();
        let mid = bad.len() - 20;
        bad[mid] ^= 1;
        let mut sink = Vec::new();
        let err = enc
            .reader(&bad[..])
            .and_then(|mut r| r.read_to_end(&mut sink).map_err(BundleError::Io))
            .unwrap_err();
        assert!(err.to_string().contains("altered"), "{err}");
        assert!(can_read(&enc, std::slice::from_ref(&a_pub)).unwrap());
        assert!(!can_read(&stranger, &[a_pub]).unwrap());
    }

    #[test]
    fn recipients_are_checked() {
        assert!(parse_recipient("age1nope").is_err());
        assert!(recipient_keys("/no/such/file").is_err());
        let id = age::x25519::Identity::generate();
        assert_eq!(
            recipient_keys(&id.to_public().to_string()).unwrap(),
            [id.to_public().to_string()]
        );
    }
}
