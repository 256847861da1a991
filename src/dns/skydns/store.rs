//! The skydns prefix in etcd: list it with its revision, watch it from a revision, and
//! write/delete entries. The only module here that talks to etcd.
//!
//! etcd-client 0.21 notes: a watch's first response is the "created" acknowledgement;
//! a watch from a compacted revision comes back `canceled` with `compact_revision` set
//! (reported as [`StoreError::Compacted`]: list again and watch from the new revision);
//! deletes carry no value, which is fine because the index is keyed by key.

use std::time::Duration;

use super::security::{EtcdSecurity, SecurityError};
use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, WatchOptions, WatchResponse, WatchStream,
};
use thiserror::Error;

use super::codec::{self, SkydnsValue};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("connecting to etcd at {endpoints}: {source}")]
    Connect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd request failed: {0}")]
    Request(#[from] etcd_client::Error),
    /// The watch start revision was compacted away: re-list.
    #[error("etcd compacted revision {compact_revision}; the prefix must be listed again")]
    Compacted { compact_revision: i64 },
    #[error("etcd watch ended: {0}")]
    WatchEnded(String),
    #[error(transparent)]
    Security(#[from] SecurityError),
}

/// One entry of a listing or a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    /// The key's lease, 0 for none.
    pub lease: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(RawEntry),
    Delete { key: String, mod_revision: i64 },
}

/// The prefix at one revision.
#[derive(Debug)]
pub struct Listing {
    pub revision: i64,
    pub entries: Vec<RawEntry>,
}

/// What one watch response carries.
#[derive(Debug)]
pub struct WatchBatch {
    pub changes: Vec<Change>,
    /// Every change up to this revision has been delivered.
    pub revision: i64,
}

/// Keys in the first page of a listing. Pages then double up to [`LIST_PAGE_MAX`]:
/// etcd 3.4/3.5 count the whole rest of the range for every limited request, so many
/// small pages make a listing quadratic (1 000-key pages of a 1 M-key prefix cost etcd
/// minutes); a few big ones keep it linear.
const LIST_PAGE_MIN: i64 = 1_000;
const LIST_PAGE_MAX: i64 = 128 * 1024;
/// The largest listing page we accept from etcd (tonic's default is 4 MiB). A page
/// bigger than this (huge values) is read again with half the keys.
const LIST_MESSAGE_MAX: usize = 256 << 20;

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// The next page size: double after a page that was full, halve after a response too
/// big to decode.
fn next_page(limit: i64, too_big: bool) -> i64 {
    if too_big {
        (limit / 2).max(1)
    } else {
        (limit * 2).min(LIST_PAGE_MAX)
    }
}

fn is_too_big(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(s)
        if matches!(s.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted))
}

/// Every key under `range_prefix` (e.g. `/skydns/`) with its value, read page by page
/// at one revision, and that revision.
pub async fn list_prefix(
    client: &mut Client,
    range_prefix: &str,
) -> Result<(i64, Vec<RawEntry>), etcd_client::Error> {
    let mut entries = Vec::new();
    let revision = list_prefix_pages(client, range_prefix, |page| entries.extend(page)).await?;
    Ok((revision, entries))
}

/// Like [`list_prefix`], handing each page to `page` as it arrives, so that a caller
/// that decodes entries never holds the whole raw listing.
pub async fn list_prefix_pages(
    client: &mut Client,
    range_prefix: &str,
    mut page: impl FnMut(Vec<RawEntry>),
) -> Result<i64, etcd_client::Error> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(LIST_MESSAGE_MAX);
    let end = prefix_end(range_prefix.as_bytes());
    let mut start = range_prefix.as_bytes().to_vec();
    let mut revision = 0;
    let mut limit = LIST_PAGE_MIN;
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(limit);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let resp = match kv.get(start.clone(), Some(opts)).await {
            Ok(r) => r,
            Err(e) if is_too_big(&e) && limit > 1 => {
                limit = next_page(limit, true);
                continue;
            }
            Err(e) => return Err(e),
        };
        if revision == 0 {
            revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        }
        let next = match resp.kvs().last() {
            Some(last) if resp.more() => {
                let mut k = last.key().to_vec();
                k.push(0);
                Some(k)
            }
            _ => None,
        };
        page(
            resp.kvs()
                .iter()
                .map(|kv| RawEntry {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                    lease: kv.lease(),
                })
                .collect(),
        );
        match next {
            Some(k) => {
                start = k;
                limit = next_page(limit, false);
            }
            None => return Ok(revision),
        }
    }
}

/// A client bound to one prefix.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// `/skydns/` — with the slash, so that `/skydnsx` is not under `/skydns`.
    range_prefix: String,
}

impl EtcdStore {
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore, StoreError> {
        EtcdStore::connect_with(endpoints, prefix, &EtcdSecurity::default()).await
    }

    /// [`EtcdStore::connect`] with TLS and credentials.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        security: &EtcdSecurity,
    ) -> Result<EtcdStore, StoreError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let opts = security.apply(opts, endpoints)?;
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(|source| StoreError::Connect {
                endpoints: endpoints.join(","),
                source,
            })?;
        Ok(EtcdStore {
            client,
            range_prefix: format!("{}/", codec::normalize_prefix(prefix)),
        })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Every entry under the prefix, and the revision they were read at.
    pub async fn load(&mut self) -> Result<Listing, StoreError> {
        let (revision, entries) = list_prefix(&mut self.client, &self.range_prefix).await?;
        Ok(Listing { revision, entries })
    }

    /// Watches the prefix from `from_revision` (inclusive), after the creation
    /// acknowledgement. A compacted start revision is reported here or by the first
    /// [`PrefixWatch::next`].
    pub async fn watch(&mut self, from_revision: i64) -> Result<PrefixWatch, StoreError> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from_revision)
            .with_progress_notify();
        let mut stream = self
            .client
            .watch(self.range_prefix.as_bytes(), Some(opts))
            .await?;
        let first = stream
            .message()
            .await?
            .ok_or_else(|| StoreError::WatchEnded("closed before it was created".into()))?;
        check_canceled(&first)?;
        let pending = if first.events().is_empty() {
            None
        } else {
            Some(first)
        };
        Ok(PrefixWatch { stream, pending })
    }

    /// Seconds left on `lease`; `None` when it has expired or is unknown.
    pub async fn lease_ttl(&mut self, lease: i64) -> Result<Option<i64>, StoreError> {
        let resp = self.client.lease_time_to_live(lease, None).await?;
        Ok(Some(resp.ttl()).filter(|t| *t > 0))
    }

    pub async fn put(&mut self, key: &str, value: &SkydnsValue) -> Result<i64, StoreError> {
        let r = self.client.put(key, value.encode(), None).await?;
        Ok(r.header().map(|h| h.revision()).unwrap_or_default())
    }

    pub async fn delete(&mut self, key: &str) -> Result<i64, StoreError> {
        let r = self.client.delete(key, None).await?;
        Ok(r.header().map(|h| h.revision()).unwrap_or_default())
    }
}

fn check_canceled(resp: &WatchResponse) -> Result<(), StoreError> {
    if resp.compact_revision() > 0 {
        return Err(StoreError::Compacted {
            compact_revision: resp.compact_revision(),
        });
    }
    if resp.canceled() {
        return Err(StoreError::WatchEnded(format!(
            "canceled: {}",
            resp.cancel_reason()
        )));
    }
    Ok(())
}

pub struct PrefixWatch {
    stream: WatchStream,
    pending: Option<WatchResponse>,
}

impl PrefixWatch {
    /// The next batch of changes (empty for a progress notification).
    pub async fn next(&mut self) -> Result<WatchBatch, StoreError> {
        let resp = match self.pending.take() {
            Some(r) => r,
            None => self
                .stream
                .message()
                .await?
                .ok_or_else(|| StoreError::WatchEnded("stream closed".into()))?,
        };
        check_canceled(&resp)?;
        let mut revision = 0;
        let changes = resp
            .events()
            .iter()
            .filter_map(|ev| {
                let kv = ev.kv()?;
                revision = revision.max(kv.mod_revision());
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                Some(match ev.event_type() {
                    EventType::Put => Change::Put(RawEntry {
                        key,
                        value: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                        lease: kv.lease(),
                    }),
                    EventType::Delete => Change::Delete {
                        key,
                        mod_revision: kv.mod_revision(),
                    },
                })
            })
            .collect::<Vec<_>>();
        if changes.is_empty() {
            // A progress notification: everything up to the header revision was sent.
            revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        }
        Ok(WatchBatch { changes, revision })
    }

    /// Asks etcd for a progress notification (answered once the watch is in sync).
    pub async fn request_progress(&mut self) -> Result<(), StoreError> {
        self.stream.request_progress().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{LIST_PAGE_MAX, next_page, prefix_end};

    #[test]
    fn pages_grow_to_the_cap_and_shrink_when_too_big() {
        assert_eq!(next_page(1000, false), 2000);
        assert_eq!(next_page(LIST_PAGE_MAX, false), LIST_PAGE_MAX);
        assert_eq!(next_page(1000, true), 500);
        assert_eq!(next_page(1, true), 1);
    }

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/skydns/"), b"/skydns0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
