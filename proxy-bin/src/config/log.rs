//! `[log]`: the level of engine events and their format, and the access
//! log's format and file, each bad value refused at its key.

use std::path::Path;

use crate::config::raw::RawLog;
use crate::config::{AccessFormat, ConfigError, LogSettings};

type Result<T> = std::result::Result<T, ConfigError>;

/// Default `[log] level`.
const DEFAULT_LOG_LEVEL: &str = "info";

/// The section as the process applies it; its defaults when absent.
pub fn settings(raw: Option<RawLog>, base: &Path) -> Result<LogSettings> {
    let log = raw.unwrap_or_default();
    let error_log_json = match log.error_log_format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ConfigError::at(
                "log.error_log_format",
                format!("{other:?}: \"text\" (the default) or \"json\""),
            ));
        }
    };
    let access_log_format = match log.access_log_format.as_deref() {
        None | Some("extended") => AccessFormat::Extended,
        Some("common") => AccessFormat::Common,
        Some("combined") => AccessFormat::Combined,
        Some("json") => AccessFormat::Json,
        Some(other) => {
            return Err(ConfigError::at(
                "log.access_log_format",
                format!(
                    "{other:?}: \"extended\" (the default), \"common\", \"combined\" or \"json\""
                ),
            ));
        }
    };
    let access_log_path = match log.access_log_path.as_deref() {
        Some("") => {
            return Err(ConfigError::at(
                "log.access_log_path",
                "empty: give a file, or leave it out for stdout",
            ));
        }
        Some(path) => Some(base.join(path)),
        None => None,
    };
    Ok(LogSettings {
        level: log.level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned()),
        access_log: log.access_log.unwrap_or(true),
        access_log_format,
        access_log_path,
        error_log_json,
    })
}
