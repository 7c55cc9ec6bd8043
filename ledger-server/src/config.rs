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
    /// Bearer tokens and their roles (`[[tokens]]`). With none, calls need
    /// no token, which only loopback serving allows.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// TLS (`[tls]`); without it the server speaks plaintext.
    pub tls: Option<TlsConfig>,
    /// Address of the Prometheus metrics endpoint (plain HTTP, no token;
    /// it shows counts and latencies, no member data). None = no endpoint.
    pub metrics: Option<SocketAddr>,
}

/// TLS settings (`[tls]` in the config file). Paths are PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA
    /// (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// The tonic server TLS settings, reading the files and naming any that
    /// cannot be read.
    pub fn server_config(&self) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|error| {
                anyhow::anyhow!("tls.{what}: cannot read {}: {error}", path.display())
            })
        };
        let identity = tonic::transport::Identity::from_pem(
            read("cert", &self.cert)?,
            read("key", &self.key)?,
        );
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(client_ca) = &self.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(read(
                "client_ca",
                client_ca,
            )?));
        }
        Ok(config)
    }
}

/// One bearer token (`[[tokens]]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: recorded as the principal of every event it writes.
    pub name: String,
    /// The secret sent as `authorization: Bearer <token>`.
    pub token: String,
    /// What it may call.
    pub role: Role,
}

/// What a token may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Ledger commands and queries.
    Writer,
    /// Ledger queries and Reports.
    Reader,
    /// Audit, Ledger queries and Reports.
    Auditor,
    /// Everything.
    Admin,
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

/// Plain, token-less serving is allowed on loopback only; any other address
/// needs TLS and bearer tokens. Token names and secrets must be unique and
/// not empty.
pub fn check_listen(listen: SocketAddr, tls: bool, tokens: &[TokenConfig]) -> anyhow::Result<()> {
    for (index, token) in tokens.iter().enumerate() {
        if token.name.trim().is_empty() || token.token.len() < 16 {
            anyhow::bail!(
                "tokens[{index}]: a token needs a name and a secret of at least 16 characters"
            );
        }
        let clash = tokens
            .iter()
            .take(index)
            .any(|earlier| earlier.name == token.name || earlier.token == token.token);
        if clash {
            anyhow::bail!("tokens[{index}]: its name or secret is already used by another token");
        }
    }
    if listen.ip().is_loopback() || (tls && !tokens.is_empty()) {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {listen}: off loopback ledgerd needs TLS ([tls] in the config) \
         and bearer tokens ([[tokens]]); without them it serves on 127.0.0.1 or ::1 only"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_addresses_are_refused() {
        let token = TokenConfig {
            name: "checkout".into(),
            token: "0123456789abcdef".into(),
            role: Role::Writer,
        };
        let any: SocketAddr = "0.0.0.0:50051".parse().expect("addr");
        assert!(check_listen("127.0.0.1:50051".parse().expect("addr"), false, &[]).is_ok());
        assert!(check_listen("[::1]:50051".parse().expect("addr"), false, &[]).is_ok());
        let refused = check_listen(any, false, &[]).expect_err("refused");
        assert!(refused.to_string().contains("loopback"));
        assert!(check_listen(any, true, &[]).is_err(), "TLS without tokens");
        assert!(
            check_listen(any, false, std::slice::from_ref(&token)).is_err(),
            "tokens without TLS"
        );
        assert!(check_listen(any, true, std::slice::from_ref(&token)).is_ok());
        let short = TokenConfig {
            token: "short".into(),
            ..token.clone()
        };
        let error = check_listen(any, true, &[short]).expect_err("short secret");
        assert!(error.to_string().contains("tokens[0]"));
        let twice = check_listen(any, true, &[token.clone(), token]).expect_err("duplicate");
        assert!(twice.to_string().contains("tokens[1]"));
    }

    #[test]
    fn config_file_rejects_unknown_keys() {
        let parsed: Result<FileConfig, _> = toml::from_str("listen = \"127.0.0.1:1\"\nport = 3");
        assert!(parsed.is_err());
        let parsed: FileConfig = toml::from_str("data_dir = \"/tmp/x\"").expect("valid");
        assert_eq!(parsed.data_dir, Some(PathBuf::from("/tmp/x")));
    }
}
