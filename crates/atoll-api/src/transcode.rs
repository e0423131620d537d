//! `atoll-transcoded`'s local API (`transcoded.sock`): transcode jobs that
//! turn a master file held in the local swarm store into an HLS ladder
//! whose every file (segments, playlists, poster) is a blob in that store.
//!
//! | method | path | body / answer |
//! |---|---|---|
//! | POST | `/jobs` | [`JobRequest`] → `201` [`Job`] |
//! | GET | `/jobs` | `[Job]`, newest first |
//! | GET | `/jobs/{id}` | [`Job`] (with [`Job::media`] once done) |
//! | DELETE | `/jobs/{id}` | cancel (a finished job is kept) → [`Job`] |

use atoll_core::ContentId;
use serde::{Deserialize, Serialize};

/// Body of `POST /jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The master file: a complete blob in the local atoll-swarmd store.
    pub master: ContentId,
    /// A name for the job list (e.g. the uploaded file's name); not used
    /// for any path.
    #[serde(default)]
    pub label: String,
    /// Encrypt every segment with HLS AES-128 under a fresh key (a private
    /// film): the key is returned once, in [`Media::key`].
    #[serde(default)]
    pub encrypt: bool,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a free worker.
    Queued,
    /// Being transcoded.
    Running,
    /// Finished: [`Job::media`] is set, every blob is in the store.
    Done,
    /// Failed: [`Job::error`] says why, for a person.
    Failed,
    /// Cancelled by a caller.
    Cancelled,
}

/// A transcode job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id (opaque, URL-safe).
    pub id: String,
    /// What was asked.
    pub request: JobRequest,
    /// Where it is.
    pub state: JobState,
    /// Progress while running.
    pub progress: Option<JobProgress>,
    /// Why it failed.
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds, once done, failed or cancelled.
    pub finished_at: Option<u64>,
    /// The result, once done.
    pub media: Option<Media>,
}

/// Progress of a running job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// 0.0 ..= 100.0 of the master's duration transcoded.
    pub percent: f64,
    /// Frames per second over the last seconds.
    pub fps: f64,
    /// Estimated seconds left.
    pub eta_secs: Option<u64>,
}

/// A transcoded film: everything a film entry (kind 30082) lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// The poster frame (JPEG or WebP).
    pub poster: ContentId,
    /// Its MIME type (`image/jpeg`, `image/webp`).
    pub poster_type: String,
    /// The master playlist (lists each rendition's playlist by bare hex
    /// content id, as a relative URI).
    pub master_playlist: ContentId,
    /// Renditions, lowest first.
    pub renditions: Vec<Rendition>,
    /// AES-128 key (32 hex) of an encrypted film: given once, to the caller
    /// that submitted the job, and not kept by the transcoder afterwards.
    pub key: Option<String>,
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Peak bits per second (the master playlist's `BANDWIDTH`).
    pub bandwidth: u64,
    /// RFC 6381 codecs (`avc1.64001f,mp4a.40.2`).
    pub codecs: String,
    /// The media playlist (segments listed by bare hex content id).
    pub playlist: ContentId,
    /// The initialisation segment (`EXT-X-MAP`), for fMP4 segments.
    pub init: Option<ContentId>,
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The blob.
    pub id: ContentId,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Size in bytes.
    pub size: u64,
}
