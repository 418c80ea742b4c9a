//! Reading a configuration file: TOML or JSON (by extension, else by content).

use std::path::Path;

use anyhow::{Context as _, Result};
use usagepanda_core::{Config, Policy};

/// Reads and parses a config file.
pub fn read_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file `{}`", path.display()))?;
    parse_config(&text, path).with_context(|| format!("config file `{}`", path.display()))
}

/// Parses config text; the format is taken from the extension, else from the first character.
pub fn parse_config(text: &str, path: &Path) -> Result<Config> {
    let json = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => true,
        Some("toml") => false,
        _ => text.trim_start().starts_with('{'),
    };
    let config = if json {
        Config::from_json(text)?
    } else {
        Config::from_toml(text)?
    };
    Ok(config)
}

/// Reads, parses and compiles a config file.
pub fn read_policy(path: &Path) -> Result<Policy> {
    let config = read_config(path)?;
    Policy::new(config).with_context(|| format!("config file `{}`", path.display()))
}
