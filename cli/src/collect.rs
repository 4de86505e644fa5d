//! What `meshray view` and `meshray traces` read for a time window: the trace ids
//! (`GetTraceSummaries`), their documents (`BatchGetTraces`) and the service map
//! (`GetServiceGraph`, else derived from the documents by [`ServiceMap::from_traces`]).

use std::time::SystemTime;

use meshray_core::trace::{ServiceMap, Trace};

use crate::service_graph::{MapSource, map_from_services};
use crate::xray::{ReadError, XrayReader};

/// What [`collect`] reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// `GetTraceSummaries` listed this many traces; this many will be read.
    Listed {
        /// Traces in the window.
        listed: usize,
        /// Traces that will be read (the most recent, at most the limit).
        reading: usize,
    },
    /// `BatchGetTraces` has returned this many of them.
    Read(usize),
    /// `GetServiceGraph` answered this many services (0: the map is derived).
    ServiceGraph(usize),
    /// `GetServiceGraph` failed; the map is derived from the documents.
    ServiceGraphFailed(String),
}

/// The traces and the map of a window.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The traces read, oldest first.
    pub traces: Vec<Trace>,
    /// Traces the API listed in the window.
    pub listed: usize,
    /// The service map.
    pub map: ServiceMap,
    /// Where the map came from.
    pub map_source: MapSource,
}

/// Reads the window `[from, to]`: at most `limit` traces (the most recent; ids begin with
/// their start epoch), and the service map.
///
/// # Errors
/// [`ReadError`] when listing or reading the traces fails. A failing `GetServiceGraph`
/// is reported through `progress` and the map derived from the documents.
pub async fn collect(
    reader: &XrayReader,
    from: SystemTime,
    to: SystemTime,
    limit: usize,
    mut progress: impl FnMut(Progress),
) -> Result<Collected, ReadError> {
    let ids = reader.list_trace_ids(from, to).await?;
    let listed = ids.len();
    let chosen = &ids[listed.saturating_sub(limit)..];
    progress(Progress::Listed {
        listed,
        reading: chosen.len(),
    });
    let traces = reader
        .batch_get_traces_with_progress(chosen, |n| progress(Progress::Read(n)))
        .await?;
    let (map, map_source) = match reader.service_graph(from, to).await {
        Ok(services) => {
            progress(Progress::ServiceGraph(services.len()));
            match map_from_services(&services) {
                Some(map) => (map, MapSource::ServiceGraph),
                None => (ServiceMap::from_traces(&traces), MapSource::Documents),
            }
        }
        Err(err) => {
            progress(Progress::ServiceGraphFailed(err.to_string()));
            (ServiceMap::from_traces(&traces), MapSource::Documents)
        }
    };
    Ok(Collected {
        traces,
        listed,
        map,
        map_source,
    })
}
