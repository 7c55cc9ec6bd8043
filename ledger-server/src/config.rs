//! Server settings: defaults, overridden by a TOML file, overridden by flags.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The address `ledgerd serve` listens on by default: loopback only.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:50051";

/// The TOML config file (`--config`). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
}

impl FileConfig {
    /// Reads and parses `path`, naming the file in errors.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read config {}: {error}", path.display()))?;
        toml::from_str(&text)
            .map_err(|error| anyhow::anyhow!("config {} is invalid: {error}", path.display()))
    }
}

/// The data directory used when none is given: `points-ledger` under the
/// user's data directory (`~/.local/share` on Linux).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("points-ledger")
}

/// Plain, token-less serving is allowed on loopback only. TLS and bearer
/// tokens are not built yet, so any other address is refused.
pub fn check_listen(listen: SocketAddr) -> anyhow::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {listen}: without TLS and bearer tokens ledgerd serves on \
         loopback only (127.0.0.1 or ::1)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_addresses_are_refused() {
        assert!(check_listen("127.0.0.1:50051".parse().expect("addr")).is_ok());
        assert!(check_listen("[::1]:50051".parse().expect("addr")).is_ok());
        let refused = check_listen("0.0.0.0:50051".parse().expect("addr")).expect_err("refused");
        assert!(refused.to_string().contains("loopback"));
    }

    #[test]
    fn config_file_rejects_unknown_keys() {
        let parsed: Result<FileConfig, _> = toml::from_str("listen = \"127.0.0.1:1\"\nport = 3");
        assert!(parsed.is_err());
        let parsed: FileConfig = toml::from_str("data_dir = \"/tmp/x\"").expect("valid");
        assert_eq!(parsed.data_dir, Some(PathBuf::from("/tmp/x")));
    }
}
