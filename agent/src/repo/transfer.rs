//! Streaming object I/O: a local file into an object (read, compress, encrypt and upload with
//! bounded memory), and an object into any writer (download, decrypt, decompress, and check the
//! plain bytes' size and CRC-32C as they pass).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use super::{codec, crypt, Codec, Repo, RepoError, Result};

impl Repo {
    /// Streams a local file (already pinned by the caller's open descriptor) into `key`,
    /// compressed, with bounded memory. Returns (plain size, crc32c).
    pub async fn put_file(
        &self,
        key: &str,
        file: std::fs::File,
        limit: Option<u64>,
    ) -> Result<(u64, u32)> {
        use tokio::io::AsyncWriteExt;
        self.check_fence(key)?;
        let codec = self.codec();
        let level = self.level;
        let keys = self.keys.clone();
        let url = self.url.clone();
        let io_err = |e: std::io::Error| RepoError::Other {
            url: url.clone(),
            reason: format!("uploading {key}: {e}"),
        };
        let mut writer = object_store::buffered::BufWriter::with_capacity(
            self.store.clone(),
            self.path(key),
            8 << 20,
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        // Reading and compressing run on a blocking thread; the async side only uploads.
        let reader = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, u32)> {
            let mut input: Box<dyn Read> = match limit {
                Some(n) => Box::new(file.take(n)),
                None => Box::new(file),
            };
            let sink = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(1 << 20),
            };
            let mut enc = codec::Encoder::new(sink, codec, level, Some(&keys))?;
            let mut crc = 0u32;
            let mut total = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                crc = crc32c::crc32c_append(crc, &buf[..n]);
                total += n as u64;
                enc.write_all(&buf[..n])?;
            }
            enc.finish()?.close()?;
            Ok((total, crc))
        });
        let mut failed = None;
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Ok(data) => {
                    if let Err(e) = writer.write_all(&data).await {
                        failed = Some(e);
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(rx);
        let read = reader.await.map_err(|e| io_err(std::io::Error::other(e)));
        if let Some(e) = failed {
            let _ = writer.abort().await;
            return Err(io_err(e));
        }
        let (total, crc) = match read {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                let _ = writer.abort().await;
                return Err(io_err(e));
            }
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        // The upload becomes visible at completion: a writer whose lease lapsed meanwhile
        // abandons it (the parts expire with the store's multipart clean-up).
        if let Err(e) = self.check_fence(key) {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.shutdown().await.map_err(io_err)?;
        Ok((total, crc))
    }

    /// Downloads `key`, decodes it into `out` as it arrives, and checks the plain bytes against
    /// `crc` and `size`. Memory stays bounded by one network chunk.
    pub async fn download<W: Write>(
        &self,
        key: &str,
        crc: u32,
        size: Option<u64>,
        out: W,
    ) -> Result<W> {
        let (got_crc, len, out) = self.download_plain(key, out).await?;
        let corrupt = |reason: String| RepoError::Corrupt {
            key: key.to_string(),
            reason,
        };
        if let Some(size) = size {
            if len != size {
                return Err(corrupt(format!("{len} bytes where {size} were recorded")));
            }
        }
        if got_crc != crc {
            return Err(corrupt(format!(
                "checksum {got_crc:08x} where {crc:08x} was recorded"
            )));
        }
        Ok(out)
    }

    /// Downloads and decodes `key` into `out` like [`Repo::download`], without comparing the
    /// plain bytes to a record: returns their CRC-32C and length for the caller to judge
    /// (`verify` weighs what several documents, or none, say about one object).
    pub async fn download_plain<W: Write>(&self, key: &str, out: W) -> Result<(u32, u64, W)> {
        let codec = Codec::from_name(key).ok_or_else(|| RepoError::Corrupt {
            key: key.to_string(),
            reason: "unknown codec suffix".into(),
        })?;
        let corrupt = |reason: String| RepoError::Corrupt {
            key: key.to_string(),
            reason,
        };
        if codec.is_encrypted() && !self.keys.can_decrypt() {
            return Err(RepoError::Encrypted {
                key: key.to_string(),
            });
        }
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| self.map_err(key, e))?;
        let mut stream = r.into_stream();
        let mut dec = codec::Decoder::new(codec, out).map_err(|e| corrupt(e.to_string()))?;
        if codec.is_encrypted() {
            dec = self.decrypt_into(key, stream, dec).await?;
        } else {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.map_err(key, e))?;
                dec.write_all(&chunk)
                    .map_err(|e| corrupt(format!("cannot decode: {e}")))?;
            }
        }
        dec.finish()
            .map_err(|e| corrupt(format!("cannot decode: {e}")))
    }

    /// Decrypts an age object as it streams in and feeds the plain bytes to `dec`. A failure of
    /// the store stays a store error (transient); everything else names the object.
    async fn decrypt_into<W: Write>(
        &self,
        key: &str,
        stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
        mut dec: codec::Decoder<W>,
    ) -> Result<codec::Decoder<W>> {
        use futures::{AsyncReadExt, TryStreamExt};
        // The reader below sees only io::Error: keep the store's own error aside.
        let store_failure: Arc<Mutex<Option<object_store::Error>>> = Arc::default();
        let slot = store_failure.clone();
        let input = stream
            .map_err(move |e| {
                slot.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                std::io::Error::other("the object store failed")
            })
            .into_async_read();
        let fail = |reason: crypt::Unreadable| -> RepoError {
            if let Some(e) = store_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return self.map_err(key, e);
            }
            let key = key.to_string();
            match reason {
                crypt::Unreadable::NoIdentity => RepoError::Encrypted { key },
                crypt::Unreadable::WrongKey => RepoError::WrongKey { key },
                crypt::Unreadable::Damaged(reason) => RepoError::Corrupt { key, reason },
            }
        };
        let mut plain = self.keys.decrypt(input).await.map_err(fail)?;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = plain
                .read(&mut buf)
                .await
                .map_err(|e| fail(crypt::Unreadable::Damaged(format!("cannot decrypt: {e}"))))?;
            if n == 0 {
                break;
            }
            dec.write_all(&buf[..n]).map_err(|e| RepoError::Corrupt {
                key: key.to_string(),
                reason: format!("cannot decode: {e}"),
            })?;
        }
        Ok(dec)
    }
}

/// Adapts a blocking `Write` to the async uploader through a bounded channel (backpressure:
/// the reader waits while the upload is slow).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(1 << 20));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("upload stopped"))
    }
    fn close(mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 20 {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
